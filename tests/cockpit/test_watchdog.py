"""Stall detection on the supervisor's monotonic clock (injected here), and the stall forensics file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cockpit.pipeline import watchdog as watchdog_module
from cockpit.pipeline.watchdog import StallWatchdog, write_stall_forensics
from trainer.contract import STDERR_FILE, stall_file


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def step(t: float) -> dict:
    return {"type": "step", "t": t}


def make(clock: FakeClock, **kw) -> StallWatchdog:
    return StallWatchdog(**{"floor_s": 5, "factor": 10, "startup_grace_s": 60, **kw}, clock=clock)


def feed_steps(w: StallWatchdog, clock: FakeClock, n: int, every: float, t0: float = 1.7e9) -> float:
    """n steps, `every` seconds apart on both clocks; returns the last trainer stamp."""
    t = t0
    for i in range(n):
        if i:
            clock.advance(every)
            t += every
        w.observe(step(t))
    return t


def test_startup_grace_before_the_first_event():
    clock = FakeClock()
    w = make(clock)
    clock.advance(59.0)
    assert not w.stalled()
    clock.advance(2.0)
    assert w.stalled() and w.silent_s() == 61.0


def test_rule_is_max_of_floor_and_factor_times_median_interval():
    clock = FakeClock()
    w = make(clock)
    feed_steps(w, clock, 20, 2.0)  # 2 s per step -> 20 s allowance
    assert w.allowance_s() == 20.0
    clock.advance(19.0)
    assert not w.stalled()
    clock.advance(2.0)
    assert w.stalled()
    fast_clock = FakeClock()
    fast = make(fast_clock)
    feed_steps(fast, fast_clock, 20, 0.01)
    assert fast.allowance_s() == 5.0  # the floor


def test_silence_is_measured_by_the_supervisor_clock_not_the_event_stamp():
    clock = FakeClock()
    w = make(clock)
    feed_steps(w, clock, 10, 1.0)  # allowance 10 s
    clock.advance(11.0)
    w.observe({"type": "step", "t": 0.0})  # a stamp from 1970 is still progress that arrived now
    assert w.silent_s() == 0.0 and not w.stalled()
    clock.advance(10.5)
    assert w.stalled()  # silence past the allowance on the fake clock triggers, whatever the stamps said


@pytest.mark.parametrize("jump", [3600.0, -3600.0])
def test_a_wall_clock_step_in_event_t_neither_fakes_nor_hides_a_stall(jump: float):
    clock = FakeClock()
    w = make(clock)
    t = feed_steps(w, clock, 10, 1.0)
    before = w.allowance_s()
    assert before == 10.0
    # The trainer's wall clock jumps by ±1 h between two steps that really are 1 s apart.
    for _ in range(5):
        clock.advance(1.0)
        t += 1.0 + jump if _ == 0 else 1.0
        w.observe(step(t))
        assert not w.stalled()
    assert w.allowance_s() == before  # the jump was not learned as a step interval
    clock.advance(9.0)
    assert not w.stalled()  # no fake stall
    clock.advance(2.0)
    assert w.stalled()  # and none hidden: 11 s of silence > 10 s allowance


def test_a_jump_is_not_learned_even_as_the_only_interval():
    clock = FakeClock()
    w = make(clock, floor_s=30)
    w.observe(step(100.0))
    clock.advance(2.0)
    w.observe(step(100.0 + 2.0 + 3600.0))  # one interval, and its stamp difference is an hour
    assert w.allowance_s() == 30.0  # learned the 2 s arrival gap: 10 × 2 s < the floor
    clock.advance(31.0)
    assert w.stalled()


def test_steps_read_in_one_batch_learn_the_trainer_intervals():
    clock = FakeClock()
    w = make(clock)
    w.observe(step(100.0))
    clock.advance(40.0)  # the supervisor was busy; 20 steps 2 s apart arrive at once
    for i in range(1, 21):
        w.observe(step(100.0 + 2.0 * i))
    assert w.allowance_s() == 20.0
    # In one batch with unusable stamps, the ~0 arrival gaps are not learned either.
    clock2 = FakeClock()
    w2 = make(clock2)
    w2.observe(step(100.0))
    clock2.advance(40.0)
    for _ in range(20):
        w2.observe(step(50.0))
    assert list(w2._intervals) == [40.0]  # only the gap into the batch; 19 zero gaps would make the median 0


def test_activity_extends_the_deadline_and_is_not_learned_as_a_step_interval():
    clock = FakeClock()
    w = make(clock)
    feed_steps(w, clock, 10, 1.0)
    clock.advance(1.0)
    w.observe({"type": "activity", "t": 5.0, "what": "eval", "expect_s": 300})
    clock.advance(299.0)
    assert not w.stalled()
    clock.advance(2.0)
    assert w.stalled()
    w.observe(step(1e12))  # the long gap over the eval is not a step interval
    assert w.allowance_s() == 10.0 and not w.stalled()


def test_other_events_are_not_progress():
    clock = FakeClock()
    w = make(clock)
    w.observe(step(100.0))
    clock.advance(100.0)
    w.observe({"type": "alert", "t": 200.0})
    # The device reporter is a thread of its own: it keeps writing while the training thread hangs.
    w.observe({"type": "device", "t": 200.0, "host": "n", "local_rank": 0, "gpus": [], "cpu_pct": 0, "rss_mb": 1})
    assert w.silent_s() == 100.0


def test_default_clock_is_monotonic():
    import time

    assert StallWatchdog(5, 10, 60).clock is time.monotonic


def test_stall_forensics_use_the_contract_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    run_dir = tmp_path / "p1-bce"
    run_dir.mkdir()
    stderr = run_dir / STDERR_FILE
    stderr.write_text("earlier output\n")
    signals = []

    def fake_kill(pid: int, sig: int) -> None:  # the trainer's faulthandler answers at once
        signals.append((pid, sig))
        with open(stderr, "a") as fh:
            fh.write("Thread 0x1 (most recent call first):\n  File train.py, line 9\n")

    monkeypatch.setattr(watchdog_module.os, "kill", fake_kill)
    monkeypatch.setattr(watchdog_module, "_process_state", lambda pid: f"pid {pid} blocked")
    monkeypatch.setattr(watchdog_module, "_gpu_snapshot", lambda: "no GPU")
    path = write_stall_forensics(run_dir, 2, 4242, 130.0, 120.0, dump_wait_s=0)
    assert path == run_dir / stall_file(2)
    text = path.read_text()
    assert signals and signals[0][0] == 4242
    assert "silent for 130.0 s (allowed 120.0 s)" in text
    assert "Thread 0x1" in text.split("== process ==")[0]
    assert "earlier output" not in text.split("== process ==")[0]
    assert f"== last 50 lines of {STDERR_FILE} ==\nearlier output" in text
    assert sorted(os.listdir(run_dir)) == sorted([STDERR_FILE, stall_file(2)])  # no temp file left
