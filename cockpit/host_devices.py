"""Devices of the hosts where a pipeline's runs train, from the trainers' own device events: a Slurm node's
GPUs, which this machine's sampling cannot see."""

from __future__ import annotations

from typing import Any, Iterable

from cockpit.records.values import integer as _int, number as _num, text as _str
from cockpit.run_state import TERMINAL, RunState
from cockpit.views import HostDevices
from trainer.devices import GpuSample


def fold_device_report(_state: Any, run: RunState, e: dict[str, Any], t: float) -> None:
    """A trainer's device event into its run's newest report from that node (a PipelineState handler)."""
    gpus = []
    for g in e.get("gpus") if isinstance(e.get("gpus"), list) else ():
        if isinstance(g, dict) and _int(g.get("index")) is not None:
            throttle = g.get("throttle")
            # the event was written from a GpuSample (device_fields); its pids/runs are the other host's
            gpus.append(GpuSample(
                _int(g["index"]) or 0, _str(g.get("name"), "GPU"), _num(g.get("util_pct")),
                _num(g.get("mem_used_mb")), _num(g.get("mem_total_mb")), _num(g.get("temp_c")),
                _num(g.get("power_w")), pids=(), runs=(),
                throttle=tuple(str(x) for x in throttle) if isinstance(throttle, list) else ()))
    host = _str(e.get("host"))
    run.device_reports[(host, _int(e.get("node")) or 0)] = (
        t, host, tuple(gpus), _str(e.get("gpu_error")) or None, _num(e.get("cpu_pct")), _num(e.get("rss_mb")))

def host_devices(runs: Iterable[RunState], local_host: str) -> tuple[HostDevices, ...]:
    """Devices of the hosts where live runs run, grouped by host; this machine's own are left to the
    cockpit's own sampling (the GPU panel), so nothing is shown twice."""
    by_host: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}
    for run in runs:
        if run.status in TERMINAL:
            continue
        for (host, _node), report in run.device_reports.items():
            if host and host != local_host:
                by_host.setdefault(host, []).append((run.run, report))
    hosts = []
    for host, reports in sorted(by_host.items()):
        newest = max(reports, key=lambda r: r[1][0])[1]
        cpu = [r[4] for _, r in reports if r[4] is not None]
        rss = [r[5] for _, r in reports if r[5] is not None]
        hosts.append(HostDevices(host, tuple(sorted({run for run, _ in reports})), newest[2], newest[3],
                                 sum(cpu) if cpu else None, sum(rss) if rss else None, newest[0]))
    return tuple(hosts)
