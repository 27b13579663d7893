"""One training run's events into one tracker run: translation, opening, restarts and the end.

Used by the live fan-out (one per run and tracker, on its own thread) and by replay (in turn), so both
write the same thing.
"""

from __future__ import annotations

from typing import Any

from cockpit.outlets.trackers.base import TrackerRun
from cockpit.outlets.trackers.events_to_calls import RunTranslator, wall_time
from trainer.contract import Event


class TrackerSession:
    """Feeds events in order. The tracker run opens at the first event that produces calls, finishes at
    ``run_end``, and a later ``run_start`` (a restart after a failed or stopped attempt) opens it again as a
    continuation of the same run. An attempt killed without ``run_end`` simply continues."""

    def __init__(self, tracker_run: TrackerRun, *, continue_existing: bool) -> None:
        self.tracker_run = tracker_run
        self.translator = RunTranslator()
        self.is_open = False
        self._continue = continue_existing
        self._last_t: float | None = None

    def feed(self, event: dict[str, Any], *, from_pipeline: bool = False) -> None:
        t = wall_time(event)
        self._last_t = t if t is not None else self._last_t
        if from_pipeline and not self.is_open:
            return  # a note about a run that has ended (run_done, run_failed) or not started in the tracker
        calls = self.translator.translate(event, from_pipeline=from_pipeline)
        if calls and not self.is_open:
            self.tracker_run.open(continue_existing=self._continue, wall_time=t)
            self.is_open, self._continue = True, True
        for call in calls:
            self.tracker_run.apply(call)
        if not from_pipeline and event.get("type") == Event.RUN_END and self.is_open:
            self.finish(str(event.get("status") or "completed"), t)

    @property
    def bad_events(self) -> int:
        """Events skipped because their shape could not be translated."""
        return self.translator.bad_events

    def flush(self) -> None:
        if self.is_open:
            self.tracker_run.flush()

    def finish(self, status: str = "stopped", wall_time: float | None = None) -> None:
        """Flush and finish the tracker run (``stopped`` when the forwarding ends before the run did)."""
        if self.is_open:
            self.is_open = False
            self.tracker_run.flush()
            self.tracker_run.finish(status, wall_time if wall_time is not None else self._last_t)
