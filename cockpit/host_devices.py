"""Devices of the hosts where a pipeline's runs train, from the trainers' own device events: a Slurm node's
GPUs, which this machine's sampling cannot see."""

from __future__ import annotations

from typing import Any, Iterable

from cockpit.records import DeviceRecord
from cockpit.run_state import TERMINAL, RunState
from cockpit.snapshots import HostDevices
from trainer.devices import GpuSample


def fold_device_report(_state: Any, run: RunState, e: DeviceRecord) -> None:
    """A trainer's device event into its run's newest report from that node (a PipelineState handler)."""
    # the event was written from a GpuSample (device_fields); its pids/runs are the other host's
    gpus = tuple(GpuSample(g.index, g.name, g.util_pct, g.mem_used_mb, g.mem_total_mb, g.temp_c, g.power_w, pids=(),
                           runs=(), throttle=g.throttle) for g in e.gpus)
    run.device_reports[(e.host, e.node)] = (e.t, e.host, gpus, e.gpu_error, e.cpu_pct, e.rss_mb)


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
