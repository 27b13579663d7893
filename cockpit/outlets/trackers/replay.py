"""Post hoc: ``goemo-cockpit export runs/<id> --to TRACKER`` replays a pipeline folder's events into a tracker.

Each run folder's ``events.jsonl`` goes through the same translation and adapter as live forwarding, with
the supervisor's notes about that run (stalls, restarts, alerts) from ``pipeline.jsonl`` merged in by time.
Every replay writes new tracker runs (TensorBoard: a new event file in the same folder, whose points replace
the older ones when TensorBoard reads them), each tagged ``goemo.replay = <ISO time>``. A line that does not
parse, or an event the translation cannot use, is skipped and counted, as the live path and ``--to csv`` do.
The tracker is driven from a worker thread under the live fan-out's rule: a call that runs past
``call_timeout_s`` ends the replay with one line, so a tracking server that never answers cannot hang it.
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from cockpit.outlets.trackers.base import CALL_TIMEOUT_S, MAX_CALL_TIMEOUT_S, TrackerRun
from cockpit.outlets.trackers.events_to_calls import wall_time
from cockpit.outlets.trackers.registry import adapter_class, make_tracker_run, resolve_report_to
from cockpit.outlets.trackers.session import TrackerSession
from trainer.contract import PIPELINE_FILE, PipelinePaths, is_pipeline_dir
from trainer.events import read_events_counted

class TrackerError(RuntimeError):
    """A tracker failed during a replay: one line naming the tracker, the run and the error."""


class _Abandoned(Exception):
    """Raised in the worker when its call came back after the caller gave up on it."""


@dataclass(frozen=True)
class ReplayReport:
    """What a replay wrote: tracker runs, lines skipped (unparseable lines and unusable events, over
    ``pipeline.jsonl`` and every run's ``events.jsonl``), and the time every tracker run was tagged with."""

    tracker: str
    runs: int
    bad_lines: int
    replayed_at: str


def replay_time() -> str:
    """Now, as the value of the replay tag: ISO 8601 in UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def merge_notes(own: list[dict[str, Any]], pipeline_events: list[dict[str, Any]],
                run: str) -> list[tuple[bool, dict[str, Any]]]:
    """A run's events, with the supervisor's events about it, in time order: ``(from_pipeline, event)``."""
    notes = [(True, e) for e in pipeline_events if e.get("run") == run]
    # merge keeps the trainer's own order as it is; a note goes after the trainer events of the same instant
    return list(heapq.merge([(False, e) for e in own], notes, key=lambda item: wall_time(item[1]) or 0.0))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _read(path: Path, pipeline_dir: Path) -> tuple[list[dict[str, Any]], int]:
    """A file's events and its skipped lines; ValueError (one line) when it cannot be read at all."""
    try:
        return read_events_counted(path)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror or _one_line(exc)}); expected a readable "
                         f"events file of {pipeline_dir}") from None


class _ReplayJob:
    """The replay loop, run on a worker thread; the caller's thread times each tracker call as the live
    fan-out's watchdog does (``busy_with`` and ``busy_since``) and abandons the worker when one hangs."""

    def __init__(self, pipeline_dir: Path, tracker: str, replayed_at: str,
                 pipeline_events: list[dict[str, Any]]) -> None:
        self.pipeline_dir, self.tracker, self.replayed_at = pipeline_dir, tracker, replayed_at
        self.pipeline_events = pipeline_events
        self.run = ""
        self.busy_with = ""
        self.busy_since: float | None = None
        self.abandoned = False
        self.written = 0
        self.bad_lines = 0
        self.error: Exception | None = None

    def hung_for(self, now: float) -> float:
        since = self.busy_since
        return now - since if since is not None else 0.0

    def _timed(self, what: str, function: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        self.busy_with, self.busy_since = what, time.monotonic()
        try:
            function(*args, **kwargs)
        finally:
            self.busy_since = None
            if self.abandoned:
                raise _Abandoned

    def __call__(self) -> None:
        try:
            self._replay()
        except _Abandoned:
            pass
        except Exception as exc:  # noqa: BLE001 - handed to the caller's thread, which raises it
            self.error = exc

    def _replay(self) -> None:
        paths = PipelinePaths(self.pipeline_dir)
        pipeline_id = self.pipeline_dir.resolve().name
        adapter = adapter_class(self.tracker)
        try:
            getattr(adapter, "import_library", lambda: None)()  # untimed: an import is not a tracker that hangs
        except Exception as exc:
            raise TrackerError(f"{self.tracker}: cannot import its library ({_one_line(exc)})") from exc
        for events_file in paths.run_event_files():
            self.run = run = events_file.parent.name
            own, bad = _read(events_file, self.pipeline_dir)
            self.bad_lines += bad
            events = merge_notes(own, self.pipeline_events, run)
            if not events:
                continue
            try:
                tracker_run: TrackerRun = make_tracker_run(self.tracker, self.pipeline_dir, pipeline_id,
                                                           run)  # type: ignore[assignment]
                tracker_run.replayed_at = self.replayed_at
                session = TrackerSession(tracker_run, continue_existing=False)
                for from_pipeline, event in events:
                    what = f"{event.get('type')} event" if session.is_open else "opening the run"
                    self._timed(what, session.feed, event, from_pipeline=from_pipeline)
                self._timed("finish", session.finish, "stopped")  # a last attempt that ended without run_end
            except _Abandoned:
                raise
            except Exception as exc:
                raise TrackerError(f"{self.tracker}: replaying {run} ({events_file.relative_to(self.pipeline_dir)})"
                                   f" failed: {_one_line(exc)}") from exc
            self.bad_lines += session.bad_events
            self.written += 1


def replay(pipeline_dir: Path, to: str, *, call_timeout_s: float = CALL_TIMEOUT_S) -> ReplayReport:
    """Replay every run folder of a pipeline into tracker ``to``.

    Raises ValueError (one line) when the folder is not a pipeline folder, an events file cannot be read, the
    tracker is unknown or not installed, or the timeout is not a positive number of seconds; TrackerError when
    the tracker fails on the way or one of its calls takes longer than ``call_timeout_s``.
    """
    pipeline_dir = Path(pipeline_dir)
    if not is_pipeline_dir(pipeline_dir):
        raise ValueError(f"{pipeline_dir}: not a pipeline folder (expected {PIPELINE_FILE} in it)")
    if not isinstance(to, str) or to in ("all", "none"):
        raise ValueError(f"--to: expected one tracker name, got {to!r}")
    if not (isinstance(call_timeout_s, (int, float)) and math.isfinite(call_timeout_s)
            and 0 < call_timeout_s <= MAX_CALL_TIMEOUT_S):
        raise ValueError(f"tracker timeout: expected seconds in (0, {MAX_CALL_TIMEOUT_S:g}], got {call_timeout_s!r}")
    tracker = resolve_report_to([to])[0]
    paths = PipelinePaths(pipeline_dir)
    pipeline_events, bad_lines = _read(paths.events, pipeline_dir)
    for events_file in paths.run_event_files():  # refuse an unreadable run before any tracker run is written
        try:
            events_file.open("rb").close()
        except OSError as exc:
            raise ValueError(f"{events_file}: cannot read it ({exc.strerror or _one_line(exc)}); expected a "
                             f"readable events file of {pipeline_dir}") from None
    job = _ReplayJob(pipeline_dir, tracker, replay_time(), pipeline_events)
    worker = threading.Thread(target=job, name=f"replay-{tracker}", daemon=True)  # a hung call is left behind
    worker.start()
    interval = max(0.01, min(1.0, call_timeout_s / 4))
    while worker.is_alive():
        worker.join(interval)
        if job.hung_for(time.monotonic()) > call_timeout_s:
            job.abandoned = True
            raise TrackerError(f"{tracker} stopped answering while replaying {job.run} ({job.busy_with} took "
                               f"over {call_timeout_s:g} s); gave up after {job.written} runs")
    if job.error is not None:
        raise job.error
    return ReplayReport(tracker, job.written, bad_lines + job.bad_lines, job.replayed_at)
