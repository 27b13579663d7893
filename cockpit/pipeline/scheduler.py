"""Slots and a queue: which run goes where, and what happened to the runs in flight.

The scheduler launches and polls; it never decides what an exit means (that is the restart
policy's job). ``poll()`` first collects every finished or stalled run, and only then do
callers act on them, so nothing iterates over ``active`` while a callee changes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from cockpit.pipeline.launcher import RunHandle
from cockpit.pipeline.slots import Slot
from cockpit.pipeline.watchdog import StallWatchdog
from cockpit.records import BadEvent, RunEnd, decode
from trainer.events import EventReader
from trainer.contract import Event

EventSink = Callable[[str, dict[str, Any]], None]


@dataclass
class RunRecord:
    """What the supervisor knows of one planned run."""

    run_id: str
    phase: int
    config: str
    status: str = "queued"  # queued, running, completed, failed, stopped
    attempts: int = 0
    export_from: str | None = None  # final = "reuse": the run whose best weights p4-final exports
    ensemble_from: list[str] = field(default_factory=list)  # final = "ensemble": the runs averaged
    seed: int | None = None  # a run of a seed group (seeds = k); None: its config's own seed

    @property
    def exports_only(self) -> bool:
        """No training: the run exports the best weights of other runs."""
        return bool(self.export_from or self.ensemble_from)


@dataclass
class ActiveRun:
    """A run in flight: its handle (a local process or a Slurm job), its event reader and its watchdog."""

    record: RunRecord
    slot: Slot
    process: RunHandle
    watchdog: StallWatchdog
    reader: EventReader
    ended: RunEnd | None = None  # the trainer's run_end, once read
    intent: str | None = None  # why we are ending it: "stop", "restart", "stall", "pipeline"
    restarts_seen: int = 0  # the scheduler's own restarts (Slurm requeues) already reported

    @property
    def pid(self) -> int | None:
        return self.process.pid


@dataclass
class Exited:
    """A run whose process has ended, with its exit code."""

    active: ActiveRun
    code: int


Launch = Callable[[RunRecord, Slot], ActiveRun]


@dataclass
class Scheduler:
    """Places queued runs on free slots and reports runs that exited or stalled."""

    slots: list[Slot]
    launch: Launch
    on_event: EventSink
    term_grace_s: float = 20.0
    queue: list[RunRecord] = field(default_factory=list)
    active: dict[str, ActiveRun] = field(default_factory=dict)

    def submit(self, records: list[RunRecord]) -> None:
        self.queue.extend(records)

    @property
    def busy(self) -> bool:
        return bool(self.queue or self.active)

    def fill_slots(self) -> None:
        busy = {a.slot.name for a in self.active.values()}
        for slot in self.slots:
            if self.queue and slot.name not in busy:
                self.start(self.queue.pop(0), slot)

    def start(self, record: RunRecord, slot: Slot) -> ActiveRun:
        active = self.launch(record, slot)
        self.active[record.run_id] = active
        return active

    def adopt(self, active: ActiveRun) -> None:
        """Watch a run that an earlier supervisor started and that is still queued or running (Slurm)."""
        self.queue = [r for r in self.queue if r.run_id != active.record.run_id]
        self.active[active.record.run_id] = active

    def requeued(self) -> list[tuple[ActiveRun, int]]:
        """Runs the cluster started again on its own since the last call (Slurm requeue), with their count."""
        found = []
        for active in self.active.values():
            restarts = active.process.restarts()
            if restarts > active.restarts_seen:
                active.restarts_seen = restarts
                found.append((active, restarts))
        return found

    def _read(self, active: ActiveRun) -> None:
        for event in active.reader.read_new():
            active.watchdog.observe(event)
            if event.get("type") == Event.RUN_END:
                try:
                    active.ended = decode(active.record.run_id, event)  # type: ignore[assignment]
                except BadEvent:
                    pass  # a garbled run_end says no status: the exit code decides alone
            self.on_event(active.record.run_id, event)

    def poll(self) -> tuple[list[Exited], list[ActiveRun]]:
        """Read new events of every active run; return (exited runs, stalled runs), removed from nothing."""
        exited: list[Exited] = []
        stalled: list[ActiveRun] = []
        for active in list(self.active.values()):
            self._read(active)
            code = active.process.poll()
            if code is None:
                if active.watchdog.last_progress is None and active.process.waiting():
                    # The startup grace counts from when the job starts, not from a queue wait. (Once the
                    # run has written progress it has started, whatever a cached job state still says.)
                    active.watchdog.started_at = active.watchdog.clock()
                    continue
                if active.intent is None and active.watchdog.stalled():
                    stalled.append(active)
                continue
            self._read(active)  # what it wrote between the read and its exit
            exited.append(Exited(active, code))
        return exited, stalled

    def release(self, active: ActiveRun) -> None:
        """Forget an exited run and close its files (its slot becomes free)."""
        self.active.pop(active.record.run_id, None)
        active.process.close()

    def terminate(self, active: ActiveRun) -> int:
        """SIGTERM the run (it checkpoints and exits), a hard kill after the grace period."""
        return active.process.terminate(self.term_grace_s)

    def end(self, active: ActiveRun, intent: str) -> Exited:
        """End one run on purpose and return its exit (the caller applies it)."""
        active.intent = intent
        code = self.terminate(active)
        self._read(active)
        return Exited(active, code)

    def end_all(self, intent: str) -> list[Exited]:
        """End every active run; the exits are collected first and returned for the caller to apply."""
        return [self.end(active, intent) for active in list(self.active.values())]
