"""Stall detection (the contract's progress rule) and the forensics written when a run stalls."""

from __future__ import annotations

import math
import os
import signal
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cockpit.tail import read_text_tail
from trainer.contract import STDERR_FILE, stall_file
from trainer.contract import Event
from trainer.durable import write_atomic

PROGRESS_TYPES = (Event.STEP, Event.ACTIVITY)
BATCH_S = 0.05  # events whose arrivals are closer than this were read in one batch


def _event_time(event: dict[str, Any]) -> float | None:
    try:
        t = float(event["t"])
    except (KeyError, TypeError, ValueError):
        return None
    return t if math.isfinite(t) else None


@dataclass
class StallWatchdog:
    """Progress-based stall detection for one run attempt.

    A run is stalled when no ``step`` or ``activity`` event has arrived for longer than
    ``max(floor_s, factor × median of its last 50 step intervals)``; an ``activity``
    event extends that deadline to at least its ``expect_s``. Before the first event the
    allowance is ``startup_grace_s`` from launch.

    Silence is measured on ``clock`` (the supervisor's monotonic clock) from the time an event is
    observed, never from the trainer's wall-clock stamp ``t``: a clock step on either side can
    neither fake a stall nor hide one.
    """

    floor_s: float
    factor: float
    startup_grace_s: float
    clock: Callable[[], float] = time.monotonic
    started_at: float | None = None  # on ``clock``; None: when the watchdog is made
    last_progress: float | None = None  # arrival (on ``clock``) of the last step or activity
    expect_s: float = 0.0
    _last_step_t: float | None = None
    _last_step_arrival: float | None = None
    _intervals: deque = field(default_factory=lambda: deque(maxlen=50))

    def __post_init__(self) -> None:
        if self.started_at is None:
            self.started_at = self.clock()

    def observe(self, event: dict[str, Any]) -> None:
        # Liveness, not meaning: any step or activity line proves the trainer is alive, even one the records
        # layer would refuse, so the watchdog reads the raw type and never decodes (a stall is never invented).
        kind = event.get("type")
        if kind not in PROGRESS_TYPES:
            return
        now = self.clock()
        if kind == Event.STEP:
            t = _event_time(event)
            if self._last_step_arrival is not None:
                self._learn(t, now)
            self._last_step_t, self._last_step_arrival = t, now
            self.expect_s = 0.0
        else:
            try:
                expect = float(event.get("expect_s") or 0.0)
            except (TypeError, ValueError):
                expect = 0.0
            self.expect_s = expect if math.isfinite(expect) and expect > 0 else 0.0
            # the next step interval includes the announced work; don't learn it
            self._last_step_t = self._last_step_arrival = None
        self.last_progress = now

    def _learn(self, t: float | None, now: float) -> None:
        assert self._last_step_arrival is not None
        by_arrival = now - self._last_step_arrival
        by_stamp = t - self._last_step_t if t is not None and self._last_step_t is not None else None
        # trainer Δt if 0 < Δt ≤ arrival gap + allowance (clock steps fail), else arrival gap if not one batch
        if by_stamp is not None and 0.0 < by_stamp <= by_arrival + self.allowance_s():
            self._intervals.append(by_stamp)
        elif by_arrival > BATCH_S:
            self._intervals.append(by_arrival)

    def allowance_s(self) -> float:
        if self.last_progress is None:
            return self.startup_grace_s
        typical = statistics.median(self._intervals) if self._intervals else 0.0
        return max(self.floor_s, self.factor * typical, self.expect_s)

    def silent_s(self) -> float:
        """Seconds on ``clock`` since the last progress event arrived (since launch before the first)."""
        since = self.last_progress if self.last_progress is not None else self.started_at
        assert since is not None
        return max(0.0, self.clock() - since)

    def stalled(self) -> bool:
        return self.silent_s() > self.allowance_s()


def _gpu_snapshot() -> str:
    from trainer.devices import TelemetrySampler

    sampler = TelemetrySampler()
    try:
        snap = sampler.sample()
    finally:
        sampler.close()
    if not snap.gpus:
        return snap.gpu_error or "no GPU"
    rows = []
    for g in snap.gpus:
        rows.append(f"GPU {g.index} {g.name}: util {g.util_pct}% mem {g.mem_used_mb}/{g.mem_total_mb} MiB "
                    f"temp {g.temp_c} C power {g.power_w} W pids {list(g.pids)}")
    return "\n".join(rows)


def _process_state(pid: int) -> str:
    try:
        import psutil

        proc = psutil.Process(pid)
        cpu = proc.cpu_percent(interval=0.5)
        verdict = "spinning (busy)" if cpu > 50 else "blocked or sleeping"
        return f"pid {pid} status {proc.status()} cpu {cpu:.0f}% of one core: {verdict}; " \
               f"threads {proc.num_threads()} rss {proc.memory_info().rss / 2**20:.0f} MiB"
    except Exception as exc:  # the process may be gone already
        return f"pid {pid}: {type(exc).__name__}"


def write_stall_forensics(run_dir: Path, n: int, pid: int | None, silent_s: float, allowance_s: float,
                          dump_wait_s: float = 1.5, request_dump: Callable[[], None] | None = None) -> Path:
    """Ask the run for its stacks (SIGUSR1 → faulthandler to ``STDERR_FILE``), then write ``stall_file(n)``
    (``stall-<n>.txt``, atomically) with the stacks, a GPU snapshot, the process's CPU state
    and the last 50 lines of stderr."""
    run_dir = Path(run_dir)
    stderr_path = run_dir / STDERR_FILE
    before = stderr_path.stat().st_size if stderr_path.exists() else 0
    if request_dump is not None:  # a run elsewhere (Slurm: scancel --signal=USR1 --full)
        request_dump()
    elif pid is not None:
        try:
            os.kill(pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + dump_wait_s
    while time.monotonic() < deadline:  # faulthandler writes from a C handler: quick, but give it a moment
        time.sleep(0.1)
        if stderr_path.exists() and stderr_path.stat().st_size > before:
            time.sleep(0.2)
            break
    stacks = ""
    if stderr_path.exists():
        with open(stderr_path, "rb") as fh:
            fh.seek(before)
            stacks = fh.read().decode("utf-8", "replace")
    path = run_dir / stall_file(n)
    write_atomic(path, (
        f"stall {n} of run {run_dir.name} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
        f"silent for {silent_s:.1f} s (allowed {allowance_s:.1f} s)\n\n"
        f"== stacks (SIGUSR1, all threads) ==\n{stacks or '(no dump arrived)'}\n\n"
        f"== process ==\n{_process_state(pid) if pid is not None else 'not on this machine'}\n\n"
        f"== GPU ==\n{_gpu_snapshot()}\n\n"
        f"== last 50 lines of {stderr_path.name} ==\n" + "\n".join(read_text_tail(stderr_path, max_lines=50)) + "\n"
    ))
    return path
