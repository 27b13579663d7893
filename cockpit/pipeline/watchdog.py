"""Stall detection (the contract's progress rule) and the forensics written when a run stalls."""

from __future__ import annotations

import os
import signal
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.tail import read_text_tail

PROGRESS_TYPES = ("step", "activity")


@dataclass
class StallWatchdog:
    """Progress-based stall detection for one run attempt.

    A run is stalled when no ``step`` or ``activity`` event has arrived for longer than
    ``max(floor_s, factor × median of its last 50 step intervals)``; an ``activity``
    event extends that deadline to at least its ``expect_s``. Before the first event the
    allowance is ``startup_grace_s`` from launch.
    """

    floor_s: float
    factor: float
    startup_grace_s: float
    started_at: float = field(default_factory=time.time)
    last_progress: float | None = None
    expect_s: float = 0.0
    _last_step_t: float | None = None
    _intervals: deque = field(default_factory=lambda: deque(maxlen=50))

    def observe(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind not in PROGRESS_TYPES:
            return
        t = float(event.get("t", time.time()))
        if kind == "step":
            if self._last_step_t is not None and t > self._last_step_t:
                self._intervals.append(t - self._last_step_t)
            self._last_step_t = t
            self.expect_s = 0.0
        else:
            self.expect_s = float(event.get("expect_s") or 0.0)
            self._last_step_t = None  # the next step interval includes the announced work; don't learn it
        self.last_progress = max(t, self.last_progress or t)

    def allowance_s(self) -> float:
        if self.last_progress is None:
            return self.startup_grace_s
        typical = statistics.median(self._intervals) if self._intervals else 0.0
        return max(self.floor_s, self.factor * typical, self.expect_s)

    def silent_s(self, now: float | None = None) -> float:
        now = time.time() if now is None else now
        return now - (self.last_progress if self.last_progress is not None else self.started_at)

    def stalled(self, now: float | None = None) -> bool:
        return self.silent_s(now) > self.allowance_s()


def _gpu_snapshot() -> str:
    from cockpit.telemetry import TelemetrySampler

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


def write_stall_forensics(run_dir: Path, n: int, pid: int, silent_s: float, allowance_s: float,
                          dump_wait_s: float = 1.5) -> Path:
    """Ask the run for its stacks (SIGUSR1 → faulthandler to stderr.log), then write ``stall-<n>.txt``
    with the stacks, a GPU snapshot, the process's CPU state and the last 50 lines of stderr."""
    stderr_path = run_dir / "stderr.log"
    before = stderr_path.stat().st_size if stderr_path.exists() else 0
    try:
        os.kill(pid, signal.SIGUSR1)
    except ProcessLookupError:
        pass
    deadline = time.time() + dump_wait_s
    while time.time() < deadline:  # faulthandler writes from a C handler: quick, but give it a moment
        time.sleep(0.1)
        if stderr_path.exists() and stderr_path.stat().st_size > before:
            time.sleep(0.2)
            break
    stacks = ""
    if stderr_path.exists():
        with open(stderr_path, "rb") as fh:
            fh.seek(before)
            stacks = fh.read().decode("utf-8", "replace")
    path = run_dir / f"stall-{n}.txt"
    path.write_text(
        f"stall {n} of run {run_dir.name} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
        f"silent for {silent_s:.1f} s (allowed {allowance_s:.1f} s)\n\n"
        f"== stacks (SIGUSR1, all threads) ==\n{stacks or '(no dump arrived)'}\n\n"
        f"== process ==\n{_process_state(pid)}\n\n"
        f"== GPU ==\n{_gpu_snapshot()}\n\n"
        f"== last 50 lines of stderr.log ==\n" + "\n".join(read_text_tail(stderr_path, max_lines=50)) + "\n"
    )
    return path
