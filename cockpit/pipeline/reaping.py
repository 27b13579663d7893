"""Reaping finished runs: what each exit (or stall) means for the run and the pipeline, acted on.

The scheduler reports exits and stalls; the restart policy says what an exit means; the reaper
records it in ``pipeline.jsonl`` (run_exit, then run_done or restart), frees the slot, relaunches a
run that gets another attempt, and ends every run when a failure aborts the pipeline.
"""

from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from cockpit.pipeline.launcher import process_start_time
from cockpit.pipeline.restarts import EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, Outcome, RestartPolicy
from cockpit.pipeline.scheduler import ActiveRun, Exited, RunRecord, Scheduler
from cockpit.pipeline.watchdog import write_stall_forensics
from cockpit.records import Record, RunExit, RunLaunch
from trainer.contract import (EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_TERMINATED, PipelinePaths, RunPaths,
                              checkpoint_step)
from trainer.contract import Event

# A run that exits 2 (EXIT_BAD_INPUT) printed why as its last line on stderr: read that much of the file's end.
STDERR_TAIL_BYTES = 64 * 1024
_ERROR_PREFIX = re.compile(r"^[\w.-]+: error: ")  # argparse's "goemo-train: error: ", shown once as "bad input: "
_EXIT_WORDS = {
    EXIT_FAILED: "failed",
    EXIT_BAD_INPUT: "bad input",
    EXIT_NOT_EXECUTABLE: f"the trainer could not be executed (exit {EXIT_NOT_EXECUTABLE})",
    EXIT_NOT_FOUND: f"the trainer's command was not found (exit {EXIT_NOT_FOUND}; check [slurm] python and setup)",
    EXIT_INTERRUPTED: "interrupted",
    EXIT_TERMINATED: "terminated",
}


def last_stderr_line(stderr: Path) -> str | None:
    """The last non-empty line of a run's stderr file (at most 500 characters), or None."""
    try:
        with open(stderr, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - STDERR_TAIL_BYTES))
            tail = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    line = next((line.strip() for line in reversed(tail.splitlines()) if line.strip()), None)
    return line[:500] if line else None


def exit_reason(run: RunPaths, code: int) -> str:
    """Why a run exited that said nothing in its events: for bad input, the one line it printed."""
    line = last_stderr_line(run.stderr) if code == EXIT_BAD_INPUT else None
    return f"bad input: {_ERROR_PREFIX.sub('', line)}" if line else describe_exit(code)


def describe_exit(code: int) -> str:
    """An exit code in words (a negative code is the signal that killed the process)."""
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return _EXIT_WORDS.get(code, f"exit code {code}")


# Why the supervisor ended a run, as its run_exit says it (other ends take the trainer's own reason).
INTENT_REASONS = {"stall": "stalled", "not_learning": "not learning (on_not_learning = \"stop\")",
                  "pruned": "pruned by the search's pruner"}


@dataclass
class RunReaper:
    """Applies the exits the scheduler collected; ``aborted`` turns True once a failure aborts the pipeline."""

    paths: PipelinePaths
    scheduler: Scheduler
    policy: RestartPolicy
    emit: Callable[..., None]
    alert: Callable[..., None]
    write_summary: Callable[[str], None]
    aborted: bool = False

    def apply_all(self, exits: list[Exited]) -> None:
        """Apply collected exits one by one; an abort on the way ends the others, which are applied too."""
        pending = list(exits)
        while pending:
            exit_ = pending.pop(0)
            if self.scheduler.active.get(exit_.active.record.run_id) is not exit_.active:
                continue  # already applied (ended by an abort above)
            abort = self._apply(exit_)
            if abort:
                self.aborted = True
                ended = self.scheduler.end_all("pipeline")
                pending = ended  # the same runs, now ended: their earlier exits are superseded
                self.scheduler.queue.clear()

    def _apply(self, exit_: Exited) -> bool:
        """Record one exit and act on it; returns True when the pipeline must abort."""
        active, code = exit_.active, exit_.code
        rec = active.record
        self.scheduler.release(active)
        status = active.ended.status if active.ended else None
        reason = (INTENT_REASONS.get(active.intent or "") or (active.ended.reason if active.ended else None)
                  or exit_reason(self.paths.run(rec.run_id), code))
        self.emit(Event.RUN_EXIT, run=rec.run_id, code=code, attempt=rec.attempts, reason=reason, status=status)
        decision = self.policy.decide(code, status, active.intent, rec.attempts)
        if decision.outcome is Outcome.COMPLETED:
            self._done(rec, "completed")
        elif decision.outcome is Outcome.STOPPED:
            self._done(rec, "stopped")
        elif decision.outcome is Outcome.REQUEUED:
            rec.status = "queued"  # ended with the pipeline: --resume continues it
        elif decision.outcome is Outcome.RESTART:
            self.emit(Event.RESTART, run=rec.run_id, attempt=rec.attempts + 1,
                      from_step=checkpoint_step(self.paths.run(rec.run_id).root),
                      reason="requested" if active.intent == "restart" else reason)
            self.scheduler.start(rec, active.slot)
        else:
            self._done(rec, "failed")
            self.alert("error", "run_failed", f"{rec.run_id} failed after {rec.attempts} attempt(s): {reason}",
                       rec.run_id)
        self.write_summary("running")
        return decision.abort_pipeline

    def end_stalled(self, active: ActiveRun) -> Exited:
        """Keep the stalled run's forensics (a stack dump), say so, and end it; the exit is applied later."""
        rec = active.record
        run = self.paths.run(rec.run_id)
        silent, allowed = active.watchdog.silent_s(), active.watchdog.allowance_s()
        n = len(run.stall_dumps()) + 1
        remote = active.pid is None  # a Slurm job: the signal travels through slurmctld and the node
        dump = write_stall_forensics(run.root, n, active.pid, silent, allowed, dump_wait_s=8.0 if remote else 1.5,
                                     request_dump=active.process.dump_stack if remote else None)
        self.emit(Event.STALL, run=rec.run_id, attempt=rec.attempts, silent_s=round(silent, 1),
                  dump=str(dump.relative_to(self.paths.root)), allowed_s=round(allowed, 1),
                  action=self.policy.stall_action(rec.attempts))
        return self.scheduler.end(active, "stall")

    def _done(self, rec: RunRecord, status: str) -> None:
        rec.status = status
        self.emit(Event.RUN_DONE, run=rec.run_id, status=status, attempts=rec.attempts)


def launches_of(history: list[Record]) -> tuple[dict[str, RunLaunch], set[tuple[str, int | None]]]:
    """From an earlier supervisor's pipeline.jsonl: each run's last launch, and the (run, attempt) pairs that
    exited (a launch without its exit may still be running: a trainer to end, or a Slurm job to adopt)."""
    launched = {r.run: r for r in history if isinstance(r, RunLaunch)}
    exited = {(r.run, r.attempt) for r in history if isinstance(r, RunExit)}
    return launched, exited


def end_leftover_trainers(history: list[Any], alert: Callable[..., None], term_grace_s: float) -> None:
    """Trainers launched by a supervisor that died keep running (own session): end them first, so a
    resumed run never has two writers. A trainer is recognised by the pid and the process start time
    recorded at launch, never by its command line. They checkpoint on SIGTERM."""
    launched, exited = launches_of(history)
    for run, launch in launched.items():
        pid, started = launch.pid, launch.proc_start
        if (run, launch.attempt) in exited or pid is None or started is None:
            continue
        now_started = process_start_time(pid)
        if now_started is None or abs(now_started - started) > 0.05:
            continue  # gone, or the pid now names another process
        alert("warn", "orphan", f"{run}: ending pid {pid} left running by the previous supervisor", run)
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + term_grace_s
        while time.monotonic() < deadline and process_start_time(pid) is not None:
            time.sleep(0.1)
        if process_start_time(pid) is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
