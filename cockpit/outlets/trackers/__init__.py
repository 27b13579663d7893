"""Forward training events to the trackers users already use (``report_to``), live or after the fact.

``events.jsonl`` stays the one source of truth: ``events_to_calls`` turns each event into neutral calls,
one adapter per tracker (TensorBoard, MLflow, trackio, W&B; each imports its library only when a run of
it opens) applies them, ``TrackerFanout`` does it live for the supervisor and ``replay`` for a finished
pipeline folder.
"""

from cockpit.outlets.trackers.base import REPLAY_TAG
from cockpit.outlets.trackers.fanout import TrackerFanout
from cockpit.outlets.trackers.registry import installed_trackers, resolve_report_to
from cockpit.outlets.trackers.replay import ReplayReport, TrackerError, replay

__all__ = ["REPLAY_TAG", "ReplayReport", "TrackerFanout", "TrackerError", "installed_trackers", "replay",
           "resolve_report_to"]
