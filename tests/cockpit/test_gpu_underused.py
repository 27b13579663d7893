"""gpu_underused (issue 20): a training run's own device events at 15 % for longer than the window raise the
alert once; at 80 %, outside training, or on a CPU run they never do."""

from __future__ import annotations

from typing import Any

from cockpit.judgements.devices import GpuRule, GpuWatch


def event(kind: str, t: float, **fields: Any) -> dict:
    return {"v": 1, "t": t, "type": kind, **fields}


def device(t: float, *utils: float | None) -> dict:
    gpus = [{"index": i, "name": "NVIDIA H200", "util_pct": u, "mem_used_mb": 1000.0, "mem_total_mb": 141000.0,
             "temp_c": 40.0, "power_w": 100.0} for i, u in enumerate(utils)]
    return event("device", t, host="node1", local_rank=0, gpus=gpus, cpu_pct=100.0, rss_mb=2000.0)


STEP = dict(epoch=0.1, loss=0.5, lr=1e-4, grad_norm=1.0, samples_per_s=261.0, tokens_per_s=4000.0, step_time_s=0.1,
            nonfinite_skipped=0)


def feed(watch: GpuWatch, utils: float | None, seconds: int = 300, every: int = 10, train: bool = True) -> list[str]:
    said = []
    if train:
        watch.observe("p3-large", event("step", 0.0, step=1, **STEP))
    for t in range(every, seconds + 1, every):
        message = watch.observe("p3-large", device(float(t), utils))
        if message:
            said.append((t, message))
    return said


def test_fifteen_percent_for_two_minutes_fires_once_and_names_causes() -> None:
    said = feed(GpuWatch(), 15.0)
    assert len(said) == 1
    t, message = said[0]
    assert t == 130  # the streak started at the first low sample (t=10); 120 s later
    assert "NVIDIA H200 at 15 %" in message and "batch" in message and "CPU" in message


def test_eighty_percent_a_cpu_run_and_a_run_not_yet_training_never_fire() -> None:
    assert feed(GpuWatch(), 80.0) == []
    assert feed(GpuWatch(), None) == []  # no utilisation: a CPU run or NVML unreadable
    assert feed(GpuWatch(), 15.0, train=False) == []  # loading, tokenising: no step yet


def test_a_busy_sample_restarts_the_window_and_a_new_attempt_waits_for_its_first_step() -> None:
    watch = GpuWatch(GpuRule(below_pct=30, window_s=60))
    watch.observe("p3-large", event("step", 0.0, step=1, **STEP))
    for t, util in ((10, 10.0), (40, 10.0), (50, 90.0), (60, 10.0), (100, 10.0)):
        assert watch.observe("p3-large", device(float(t), util)) is None
    assert watch.observe("p3-large", device(120.0, 10.0)) is not None  # 60 s since t=60
    other = GpuWatch(GpuRule(below_pct=30, window_s=60))
    other.observe("p1-x", event("step", 0.0, step=1, **STEP))
    other.observe("p1-x", event("run_end", 1.0, status="failed", reason="oom", wall_s=1.0, best=None))
    assert all(other.observe("p1-x", device(float(t), 5.0)) is None for t in range(0, 200, 10))
