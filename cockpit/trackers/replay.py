"""Post hoc: ``goemo-cockpit export runs/<id> --to TRACKER`` replays a pipeline folder's events into a tracker.

Each run folder's ``events.jsonl`` goes through the same translation and adapter as live forwarding, with
the supervisor's notes about that run (stalls, restarts, alerts) from ``pipeline.jsonl`` merged in by time.
Every replay writes new tracker runs (TensorBoard: a new event file in the same folder, whose points replace
the older ones when TensorBoard reads them).
"""

from __future__ import annotations

import heapq
from pathlib import Path
from typing import Any

from cockpit.trackers.registry import make_tracker_run, resolve_report_to
from cockpit.trackers.session import TrackerSession
from trainer.contract import PIPELINE_FILE, PipelinePaths, is_pipeline_dir
from trainer.events import read_events


class TrackerError(RuntimeError):
    """A tracker failed during a replay: one line naming the tracker, the run and the error."""


def run_events(pipeline_dir: Path, run: str,
               pipeline_events: list[dict[str, Any]]) -> list[tuple[bool, dict[str, Any]]]:
    """A run's events, with the supervisor's events about it, in time order: ``(from_pipeline, event)``."""
    own = [(False, e) for e in read_events(PipelinePaths(pipeline_dir).run(run).events)]
    notes = [(True, e) for e in pipeline_events if e.get("run") == run]
    # merge keeps the trainer's own order as it is; a note goes after the trainer events of the same instant
    return list(heapq.merge(own, notes, key=lambda item: item[1].get("t") if isinstance(item[1].get("t"),
                                                                                         (int, float)) else 0.0))


def replay(pipeline_dir: Path, to: str) -> int:
    """Replay every run folder of a pipeline into tracker ``to``; returns the number of runs written.

    Raises ValueError (one line) when the folder is not a pipeline folder or the tracker is unknown or not
    installed, and TrackerError when the tracker fails on the way.
    """
    pipeline_dir = Path(pipeline_dir)
    if not is_pipeline_dir(pipeline_dir):
        raise ValueError(f"{pipeline_dir}: not a pipeline folder (expected {PIPELINE_FILE} in it)")
    if not isinstance(to, str) or to in ("all", "none"):
        raise ValueError(f"--to: expected one tracker name, got {to!r}")
    tracker = resolve_report_to([to])[0]
    paths = PipelinePaths(pipeline_dir)
    pipeline_events = read_events(paths.events)
    pipeline_id = pipeline_dir.resolve().name
    written = 0
    for events_file in paths.run_event_files():
        run = events_file.parent.name
        events = run_events(pipeline_dir, run, pipeline_events)
        if not events:
            continue
        tracker_run = make_tracker_run(tracker, pipeline_dir, pipeline_id, run)
        tracker_run.replaying = True
        session = TrackerSession(tracker_run, continue_existing=False)
        try:
            for from_pipeline, event in events:
                session.feed(event, from_pipeline=from_pipeline)
            session.finish("stopped")  # a run whose last attempt ended without run_end
        except Exception as exc:
            raise TrackerError(f"{tracker}: replaying {run} ({events_file.relative_to(pipeline_dir)}) failed: "
                               f"{' '.join(str(exc).split()) or type(exc).__name__}") from exc
        written += 1
    return written

