"""The adapter interface: one training run's run in one tracker, fed neutral calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cockpit.outlets.trackers.events_to_calls import Call, Params, Resume, Scalar, Summary, Table, Text
from trainer.contract import PipelinePaths

# How long one tracker call (open, one event's calls, flush, finish) may take before the live fan-out drops
# the tracker for that run, or an export gives up: a tracking server that never answers must not hang either.
CALL_TIMEOUT_S = 30.0
MAX_CALL_TIMEOUT_S = 24 * 3600.0  # a day: past that, a "timeout" is a typo
# The tag, param or config key that marks a tracker run written by `export --to TRACKER`, with the export's
# time (ISO 8601, UTC) as its value: a second export is told apart from the first and from live forwarding.
REPLAY_TAG = "goemo.replay"


def tracker_run_name(pipeline_id: str, run: str) -> str:
    """``<pipeline-id>/<run-id>``: the name of a training run in every tracker."""
    return f"{pipeline_id}/{run}"


def markdown_table(columns: tuple[str, ...], rows: tuple[tuple[Any, ...], ...]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


class TrackerRun:
    """A training run's run in one tracker. It is opened before its first call (``continue_existing``: carry on
    a run of the same name where the tracker allows), fed calls, flushed now and then, and finished with the
    run's status (``completed``, ``failed`` or ``stopped``). Methods may raise; the caller drops the tracker."""

    tracker = ""
    replayed_at: str | None = None  # set by replay: a post-hoc export's time (adapters tag the run with it)

    @property
    def replaying(self) -> bool:
        """A post-hoc export (adapters send no notifications then)."""
        return self.replayed_at is not None

    def __init__(self, *, pipeline_dir: Path, pipeline_id: str, run: str) -> None:
        self.paths = PipelinePaths(Path(pipeline_dir))
        self.pipeline_id = pipeline_id
        self.run = run
        self.name = tracker_run_name(pipeline_id, run)

    @classmethod
    def import_library(cls) -> None:
        """Import the tracker's library ahead of the first call (seconds for MLflow), so that a replay's
        watchdog times the tracker, not the import."""

    @property
    def store(self) -> Path:
        """This tracker's local folder in the pipeline folder (``tb/``, ``mlruns/``, ``trackio/``, ``wandb/``)."""
        return self.paths.tracker_dir(self.tracker)

    def apply(self, call: Call) -> None:
        if isinstance(call, Scalar):
            self.scalar(call)
        elif isinstance(call, Text):
            self.text(call)
        elif isinstance(call, Params):
            self.params(call)
        elif isinstance(call, Table):
            self.table(call)
        elif isinstance(call, Summary):
            self.summary(call)
        elif isinstance(call, Resume):
            self.resume(call)

    def open(self, *, continue_existing: bool, wall_time: float | None) -> None:
        raise NotImplementedError

    def params(self, call: Params) -> None:
        raise NotImplementedError

    def scalar(self, call: Scalar) -> None:
        raise NotImplementedError

    def text(self, call: Text) -> None:
        raise NotImplementedError

    def table(self, call: Table) -> None:
        self.text(Text(call.tag, markdown_table(call.columns, call.rows), call.step))

    def summary(self, call: Summary) -> None:
        """Trackers without a run summary have every number already as a scalar."""

    def resume(self, call: Resume) -> None:
        """Most trackers keep both attempts' points past the checkpoint; TensorBoard can void the older ones."""

    def flush(self) -> None:
        """Write what is buffered (called when the run's queue runs dry, and before finishing)."""

    def finish(self, status: str, wall_time: float | None) -> None:
        raise NotImplementedError


class StepRows:
    """Scalars of one step gathered into one row, as trackio's and wandb's charts expect: a value for a new
    step writes the row of the previous one; ``flush`` writes what is pending."""

    def __init__(self) -> None:
        self.row: dict[str, Any] = {}
        self.step: int | None = None

    def add(self, key: str, value: Any, step: int) -> tuple[dict[str, Any], int] | None:
        """Add a value; returns the finished row of an earlier step, to be written, or None."""
        done = self.take() if self.step is not None and step != self.step else None
        self.step = step
        self.row[key] = value
        return done

    def take(self) -> tuple[dict[str, Any], int] | None:
        """The pending row and its step (emptied), or None."""
        if not self.row or self.step is None:
            return None
        done, self.row, self.step = (self.row, self.step), {}, None
        return done
