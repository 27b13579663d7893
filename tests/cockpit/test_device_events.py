"""Device telemetry from where a run runs: the trainer's device events (a fake NVML), their grouping by
host in the state, and the GPU panel showing this machine and a remote node."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import fake_pipeline as fp
from pilot_helpers import FROZEN_NOW, wait_loaded
from cockpit.state import PipelineState
from trainer.contract import TRAINER_EVENTS, contract_violation
from trainer.devices import DeviceReporter, TelemetrySampler, device_fields, throttle_names
from trainer.events import EventWriter, read_events


class FakeNvml:
    """pynvml's calls the sampler makes, for two GPUs; GPU 1 is thermally throttled."""

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return b"NVIDIA A100-SXM4-80GB"

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=90 + handle)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(used=40 * 2**30, total=80 * 2**30)

    def nvmlDeviceGetTemperature(self, handle: int, kind: int) -> int:
        return 70 + 10 * handle

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return 300_000

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: int) -> int:
        return 0x1 | (0x40 if handle == 1 else 0)  # idle is not reported; hardware thermal is

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list:
        return []

    def nvmlShutdown(self) -> None:
        pass


def fake_sampler() -> TelemetrySampler:
    sampler = TelemetrySampler()
    sampler._nvml = FakeNvml()
    return sampler


def test_throttle_reasons_are_named_and_idle_is_left_out() -> None:
    assert throttle_names(0x1) == () and throttle_names(None) == ()
    assert throttle_names(0x44) == ("software power cap", "hardware thermal")


def test_the_reporter_writes_device_events_with_the_nodes_gpus(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as events:
        reporter = DeviceReporter(events.emit, 0.05, local_rank=0, sampler=fake_sampler(), host="gpu-node-7")
        reporter.start()
        time.sleep(0.3)
        reporter.stop()
    devices = [e for e in read_events(path) if e["type"] == "device"]
    assert len(devices) >= 2 and all(contract_violation(e, TRAINER_EVENTS) is None for e in devices)
    first = devices[0]
    assert first["host"] == "gpu-node-7" and first["local_rank"] == 0 and first["rss_mb"] > 0
    gpus = first["gpus"]
    assert [g["index"] for g in gpus] == [0, 1] and gpus[0]["mem_total_mb"] == 80 * 1024
    assert gpus[0]["throttle"] == [] and gpus[1]["throttle"] == ["hardware thermal"]
    assert gpus[1]["temp_c"] == 80 and gpus[1]["power_w"] == 300


def test_without_a_gpu_the_event_still_carries_cpu_and_rss() -> None:
    sampler = TelemetrySampler()
    sampler._gpu_error = "no NVIDIA GPU"  # as on a machine without the driver
    import os

    fields = device_fields(sampler.sample({os.getpid(): "run"}), "cpu-node", 0)
    assert fields["gpus"] == [] and fields["gpu_error"] == "no NVIDIA GPU" and fields["rss_mb"] > 0


def _device(host: str, t: float, util: float = 50.0) -> dict:
    return {"v": 1, "t": t, "type": "device", "host": host, "local_rank": 0, "cpu_pct": 98.0, "rss_mb": 2048.0,
            "gpu_error": None, "gpus": [{"index": 0, "name": "NVIDIA A100", "util_pct": util, "mem_used_mb": 1024.0,
                                         "mem_total_mb": 81920.0, "temp_c": 70.0, "power_w": 250.0,
                                         "throttle": ["hardware thermal"]}]}


def test_the_state_groups_remote_devices_by_host_and_leaves_this_machine_to_its_own_sampling() -> None:
    state = PipelineState()
    state.local_host = "login-1"
    for run in ("p1-bce", "p1-asl", "p1-focal", "p1-done"):
        state.apply("pipeline", {"v": 1, "t": 1.0, "type": "run_launch", "run": run, "device": "slurm0", "pid": None,
                                 "attempt": 1})
    state.apply("p1-bce", _device("node-a", 10.0))
    state.apply("p1-asl", _device("node-a", 12.0, util=90.0))
    state.apply("p1-focal", _device("login-1", 12.0))  # this machine: the panel's own sampling shows it
    state.apply("p1-done", _device("node-b", 11.0))
    state.apply("pipeline", {"v": 1, "t": 13.0, "type": "run_done", "run": "p1-done", "status": "completed",
                             "attempts": 1})
    hosts = state.snapshot(20.0).hosts
    assert [h.host for h in hosts] == ["node-a"]  # node-b's only run has ended
    assert hosts[0].runs == ("p1-asl", "p1-bce") and hosts[0].gpus[0].util_pct == 90.0  # the newest report
    assert hosts[0].cpu_pct == 196.0 and hosts[0].gpus[0].throttle == ("hardware thermal",)


def test_a_multi_node_runs_other_nodes_are_read_from_their_own_files_and_shown_per_host(tmp_path: Path) -> None:
    from cockpit.tail import replay
    from trainer.contract import EVENTS_FILE, PIPELINE_FILE, node_devices_file

    (tmp_path / PIPELINE_FILE).write_text(json.dumps({"v": 1, "t": 1.0, "type": "run_launch", "run": "p3-bce",
                                                      "device": "slurm0", "pid": None, "attempt": 1}) + "\n")
    run = tmp_path / "p3-bce"
    run.mkdir()
    (run / EVENTS_FILE).write_text(json.dumps(_device("node-a", 10.0)) + "\n")
    # node 1 on another host, and node 2 on the same host as node 1: two processes, one host line
    (run / node_devices_file(1)).write_text(json.dumps({**_device("node-b", 11.0, util=70.0), "node": 1}) + "\n")
    (run / node_devices_file(2)).write_text(json.dumps({**_device("node-b", 12.0, util=80.0), "node": 2}) + "\n")
    state = PipelineState()
    state.local_host = "login-1"
    sources = []

    def on_batch(source: str, events: list) -> None:
        sources.append(source)
        for event in events:
            state.apply(source, event)

    replay(tmp_path, on_batch)
    assert set(sources) == {"pipeline", "p3-bce"}  # the node files are handed over as the run's own
    hosts = state.snapshot(20.0).hosts
    assert [h.host for h in hosts] == ["node-a", "node-b"] and all(h.runs == ("p3-bce",) for h in hosts)
    assert hosts[1].gpus[0].util_pct == 80.0 and hosts[1].cpu_pct == 196.0  # newest of node-b; both nodes' CPU


def test_the_gpu_panel_shows_this_machine_and_a_slurm_node_160x48(snap_compare, live_pipeline: Path,
                                                                  make_test_app) -> None:
    with open(live_pipeline / "p3-asl" / "events.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(_device("gpu-node-7", FROZEN_NOW - 4, util=93.0)) + "\n")
    assert snap_compare(make_test_app(live_pipeline), terminal_size=(160, 48), run_before=wait_loaded)


def test_this_machines_throttled_gpu_is_flagged_like_a_remote_one() -> None:
    """Local and remote GPUs are drawn by one formatter: a throttle reason on this machine's GPU gets its
    warning line too (it used to be shown for other hosts only)."""
    import asyncio

    from textual.app import App, ComposeResult

    from cockpit.widgets.gpu_panel import GpuPanel

    class PanelApp(App[None]):
        def compose(self) -> ComposeResult:
            yield GpuPanel()

    async def scenario() -> list[str]:
        async with PanelApp().run_test(size=(80, 16)) as pilot:
            panel = pilot.app.query_one(GpuPanel)
            panel.show(fake_sampler().sample({}))
            return [line.plain for line in panel._lines()]

    lines = asyncio.run(scenario())
    assert lines[0].startswith("GPU0") and lines[2].startswith("GPU1")
    assert lines[3].strip() == "⚠ throttled: hardware thermal"
    assert sum("throttled" in line for line in lines) == 1  # GPU 0 is only idle-flagged, which is left out
