"""Pipeline state rebuilt from events: the fold. Runs (`cockpit.run_state`), series, oversampling, stalls,
alerts and sources are folded here; the leaderboard and final result (`cockpit.leaderboard`) and the other
hosts' devices (`cockpit.host_devices`) are computed from the fold when a snapshot is taken.

Plain classes, no Textual. `PipelineState.apply(origin, event)` folds one event in (origin
is "pipeline", "summary", "preset" or a run id, as `cockpit.tail` hands them over); `snapshot(now)`
returns a `PipelineView` made of frozen dataclasses and tuples only, so views never share
a mutable container with the thread that feeds the state. Series are downsampled by
stride doubling, which keeps memory and drawing cost flat however long a run is.

Events are dispatched from two explicit tables keyed by event type, `PipelineState.PIPELINE_HANDLERS`
and `PipelineState.TRAINER_HANDLERS`; the types a view has no use for are listed in
`PIPELINE_IGNORED` / `TRAINER_IGNORED`, and a test holds both against the contract's event tables.
Every "F1@t" value is read at the primary threshold of the pipeline (summary.json, then
pipeline_start, then preset.toml, then the contract's default). What ranks runs (`select_by`: macro-F1
at that threshold, or the cross-fitted tuned score) comes from summary.json, then preset.toml, and picks
each run's best dev eval as the trainer picks its best checkpoint. Eval events that name a data
`source` score that source's own dev split only: they fill the sources table, never a run's series,
best score or leaderboard row (`cockpit.records.is_run_eval` is the rule).
"""

from __future__ import annotations

import socket
from collections import deque
from dataclasses import replace
from typing import Any, Callable, ClassVar, Iterable

from cockpit.host_devices import fold_device_report, host_devices
from cockpit.judgements.learning import NOT_LEARNING
from cockpit.leaderboard import baseline_f1, decisions, final_result, leaderboard, seed_groups
from cockpit.records import (Alert, BadEvent, DataRecord, EvalRecord, PhaseEnd, PhaseStart, PipelineEnd,
                             PipelineStart, Record, Requeue, Restart, RunDone, RunEnd, RunLaunch, RunPending,
                             RunStart, Stall, StepRecord, decode)
from cockpit.records.decode import event_time
from cockpit.records.search_events import SearchEnd, SearchReport, SearchTrial
from cockpit.records.values import integer as _int, number as _num, text as _str
from cockpit.records.values import threshold as _threshold
from cockpit.run_state import RUN_STATUSES, TERMINAL, RunState, run_total_steps
from cockpit.tail import PRESET_ORIGIN, SUMMARY_ORIGIN
from cockpit.snapshots import OversampleRow, PipelineView, RunView, SourceRow, StallAlert
from cockpit.study_state import StudyState
from trainer.contract import (DEFAULT_PRIMARY_THRESHOLD, DEFAULT_SELECT_BY, GRAD_ALERT_CODES, GRAD_VANISHING_BELOW,
                              PIPELINE_ORIGIN, SELECT_BY, threshold_key)
from trainer.contract import Event

EMA_ALPHA = 0.1
DEFAULT_MAX_RESTARTS = 2
# The names other modules and the tests read from here (RunState and its rules live in cockpit.run_state).
__all__ = ["PIPELINE_IGNORED", "PRESET_ORIGIN", "RUN_STATUSES", "SUMMARY_ORIGIN", "TERMINAL", "TRAINER_IGNORED",
           "PipelineState", "run_total_steps"]

# Contract event types no view needs; every other type has a handler below.
PIPELINE_IGNORED = frozenset({
    Event.RUN_EXIT,  # the outcome arrives as run_done (or restart); an exit code alone changes nothing shown
})
TRAINER_IGNORED = frozenset({
    Event.ACTIVITY,  # the watchdog's deadline; progress shows through step events
    Event.CHECKPOINT,  # where weights went; restarts report their step through the supervisor
})


def _select_by(value: Any) -> str | None:
    """A select_by the contract knows ("f1@primary" or "tuned_cv"), or None."""
    return value if isinstance(value, str) and value in SELECT_BY else None


def _fold_study(state: PipelineState, record: SearchTrial | SearchReport | SearchEnd) -> None:
    state.study.apply(record)  # the search phase's study folds apart (cockpit.study_state)


def source_rows_of(data: DataRecord) -> tuple[SourceRow, ...]:
    """The training sources a data event lists (newer trainers), without dev scores; () when it lists none."""
    return tuple(SourceRow(s.name, s.kind, s.path, s.train_before, s.train_after, s.dev, s.test, s.observed,
                           data.labels, s.dropped) for s in data.sources)


class PipelineState:
    """The state of one pipeline folder, folded from its events."""

    def __init__(self, primary: float = DEFAULT_PRIMARY_THRESHOLD, select_by: str = DEFAULT_SELECT_BY) -> None:
        """primary: the threshold to assume until summary.json, pipeline_start or preset.toml names one;
        select_by: what ranks runs until summary.json or preset.toml says."""
        self.pipeline = self.preset = ""
        self.status = "waiting"
        self.exit_code: int | None = None
        self.phase: int | None = None
        self.phase_name = ""
        self.phases: tuple[int, ...] = ()
        self.devices: tuple[str, ...] = ()
        # This machine's name: runs here are shown by the cockpit's own sampling, not their device events.
        self.local_host = socket.gethostname()
        self.max_restarts = DEFAULT_MAX_RESTARTS
        self.target_f1: float | None = None
        self.runs: dict[str, RunState] = {}
        self.oversampling: tuple[OversampleRow, ...] = ()
        self.oversampling_run: str | None = None
        self._oversampling_t = float("inf")
        self.sources: tuple[SourceRow, ...] = ()  # from the same first data event as oversampling
        self.taxonomy = ""
        self.study = StudyState()
        # source name -> (t, run, macro-F1 by threshold) of its latest dev eval by time, whichever run wrote
        # it: the sources table is the pipeline's, like oversampling, and a watcher wants the newest number
        # (the run it came from shows beside it).
        self._source_evals: dict[str, tuple[float, str, dict[str, float]]] = {}
        self.stalls: list[StallAlert] = []
        self.alerts: deque[Alert] = deque(maxlen=200)
        self.summary: dict[str, Any] = {}
        self.ranking: tuple[str, ...] = ()
        self.skipped_events = 0
        self.last_event_t: float | None = None
        self._views: dict[str, tuple[int, RunView]] = {}
        self._default_primary = _threshold(primary) or DEFAULT_PRIMARY_THRESHOLD
        self._primaries: dict[str, float] = {}  # source -> the primary threshold it names
        self.primary = self._default_primary
        self._default_select_by = _select_by(select_by) or DEFAULT_SELECT_BY
        self._selections: dict[str, str] = {}  # source -> the select_by it names
        self.select_by = self._default_select_by

    def apply_batch(self, origin: str, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            self.apply(origin, event)

    def apply(self, origin: str, event: dict[str, Any]) -> Record | None:
        """Fold one event in and return its record (None for summary.json and preset.toml); a malformed event
        is counted in `skipped_events` and returns None, never raises. ``origin``: "pipeline", "summary",
        "preset" or a run id, as `cockpit.tail` hands events over."""
        try:
            if origin == SUMMARY_ORIGIN:
                self._summary(event.get("data"))
                return None
            if origin == PRESET_ORIGIN:
                self._preset(event.get("data"))
                return None
            record = decode(origin, event)
            if record is None:
                return None  # a type of a newer writer, or one this file does not hold
            t = event_time(event)
            if t is not None and (self.last_event_t is None or t > self.last_event_t):
                self.last_event_t = t
            if origin == PIPELINE_ORIGIN:
                handler = self.PIPELINE_HANDLERS.get(event["type"])
                if handler is not None:
                    handler(self, record)
                return record
            run = self._run(origin)
            run.last_event_t = t
            run_handler = self.TRAINER_HANDLERS.get(event["type"])
            if run_handler is not None:
                run_handler(self, run, record)
            run.version += 1
            return record
        except (BadEvent, TypeError, ValueError, KeyError, AttributeError, IndexError, ZeroDivisionError,
                OverflowError):
            self.skipped_events += 1
            return None

    def _run(self, run_id: Any) -> RunState:
        if not isinstance(run_id, str) or not run_id:
            raise ValueError(f"not a run id: {run_id!r}")
        run = self.runs.get(run_id)
        if run is None:
            run = self.runs[run_id] = RunState(run_id)
        return run

    def _touch(self, run_id: Any) -> RunState:
        run = self._run(run_id)
        run.version += 1
        return run

    def _set_primary(self, source: str, value: Any) -> None:
        threshold = _threshold(value)
        if threshold is None:
            return
        self._primaries[source] = threshold
        primary = next((self._primaries[s] for s in (SUMMARY_ORIGIN, PIPELINE_ORIGIN, PRESET_ORIGIN)
                        if s in self._primaries), self._default_primary)
        if primary != self.primary:
            self.primary = primary
            for run in self.runs.values():
                run.refold_evals(primary, self.select_by)

    def _set_select_by(self, source: str, value: str) -> None:
        self._selections[source] = value
        select_by = next((self._selections[s] for s in (SUMMARY_ORIGIN, PRESET_ORIGIN) if s in self._selections),
                         self._default_select_by)
        if select_by != self.select_by:
            self.select_by = select_by
            for run in self.runs.values():  # each run's best dev eval is the one select_by picks
                run.refold_evals(self.primary, select_by)

    def _summary(self, summary: Any) -> None:
        """summary.json, the supervisor's ranking and final result; its leaderboard is keyed by its primary."""
        if isinstance(summary, dict):
            self.summary = summary
            self._set_primary(SUMMARY_ORIGIN, summary.get("primary_threshold"))
            # A summary without select_by (older supervisors) was ranked by macro-F1 at the primary threshold.
            self._set_select_by(SUMMARY_ORIGIN, _select_by(summary.get("select_by")) or DEFAULT_SELECT_BY)

    def _preset(self, preset: Any) -> None:
        """preset.toml, for what pipeline events do not repeat (restart limit, target, primary threshold)."""
        section = preset.get("pipeline") if isinstance(preset, dict) else None
        if isinstance(section, dict):
            self.max_restarts = _int(section.get("max_restarts")) or self.max_restarts
            self.target_f1 = _num(section.get("target_f1")) or self.target_f1
            self._set_primary(PRESET_ORIGIN, section.get("primary_threshold"))
            select_by = _select_by(section.get("select_by"))
            if select_by is not None:
                self._set_select_by(PRESET_ORIGIN, select_by)

    # pipeline.jsonl

    def _pipeline_start(self, e: PipelineStart) -> None:
        self.pipeline, self.preset, self.status = e.pipeline, e.preset, "running"
        self.phases, self.devices = e.phases, e.devices
        self.max_restarts = e.max_restarts or self.max_restarts
        self.target_f1 = e.target_f1 or self.target_f1
        self._set_primary(PIPELINE_ORIGIN, e.primary_threshold)

    def _phase_start(self, e: PhaseStart) -> None:
        self.phase, self.phase_name = e.phase, e.name
        for run_id in e.runs:
            run = self._touch(run_id)
            if run.sup_status is None:
                run.sup_status = "queued"

    def _phase_end(self, e: PhaseEnd) -> None:
        if e.ranking:
            self.ranking = e.ranking

    def _run_launch(self, e: RunLaunch) -> None:
        run = self._touch(e.run)
        run.sup_status, run.launch_t = "running", e.t
        run.attempt, run.device, run.pid = e.attempt, e.device, e.pid
        run.job_id, run.pending_reason = e.job_id, None

    def _run_pending(self, e: RunPending) -> None:
        self._touch(e.run).pending_reason = e.reason

    def _stall(self, e: Stall) -> None:
        run = self._touch(e.run)
        run.sup_status = "stalled"
        if e.dump:
            run.stall_dumps.append(e.dump)
        pending = "restart limit reached, run fails" if e.action == "fail" else "restart pending"
        self.stalls.append(StallAlert(run.run, e.attempt, e.silent_s, e.dump, e.t, f"stack dump saved, {pending}",
                                      True))

    def _resolve_stall(self, run_id: str, action: str) -> None:
        for i in range(len(self.stalls) - 1, -1, -1):
            if self.stalls[i].run == run_id and self.stalls[i].active:
                self.stalls[i] = replace(self.stalls[i], action=action, active=False)
                return

    def _restart(self, e: Restart) -> None:
        run = self._touch(e.run)
        run.sup_status = "restarting"
        run.restarts += 1
        k = e.attempt - 1  # attempt is the new one: attempt 2 is restart 1
        self._resolve_stall(run.run, f"dump + restart {k} of {self.max_restarts} from step {e.from_step}")

    def _requeue(self, e: Requeue) -> None:
        run = self._touch(e.run)
        # The job's first life ended with run_end "stopped" (SIGTERM); it runs again from now on.
        run.sup_status, run.launch_t = "running", e.t
        run.requeues = e.restarts or run.requeues + 1
        run.pending_reason = None

    def _run_done(self, e: RunDone) -> None:
        run = self._touch(e.run)
        run.sup_status = e.status
        self._resolve_stall(run.run, f"dump + {run.sup_status}")

    def _pipeline_alert(self, e: Alert) -> None:
        self.alerts.append(e)
        if e.run:
            run = self._touch(e.run)
            run.alerts.append(e)
            run.not_learning = run.not_learning or e.code == NOT_LEARNING

    def _pipeline_end(self, e: PipelineEnd) -> None:
        self.status, self.exit_code = e.status, e.exit_code

    # <run>/events.jsonl

    def _run_start(self, run: RunState, e: RunStart) -> None:
        run.config = e.config
        run.trainer_status = "running"
        run.pending_reason = None  # it left the queue
        run.pid = e.pid if e.pid is not None else run.pid
        run.world_size = e.world_size
        # 0 is a job that does not train (a reuse export, an ensemble): no step total to draw
        run.reported_total = e.total_steps
        run.device = run.device or e.device
        run.grad_alert = None  # a new attempt watches its gradients afresh
        if e.resumed_from_step is not None:
            for series in (run.loss_raw, run.loss_smooth, run.dev_f1, run.lr_series, run.grad_series):
                series.truncate_after(e.resumed_from_step)
            run.evals = [r for r in run.evals if r.step <= e.resumed_from_step or r.final]
            run.rate_window.clear()

    def _run_data(self, run: RunState, e: DataRecord) -> None:
        run.train_size_after = e.train_size_after
        if e.t < self._oversampling_t:  # the pipeline's first data event, whatever order files are read in
            self._oversampling_t = e.t
            self.oversampling = tuple(OversampleRow(c.label, c.before, c.after, c.after / c.before if c.before else None,
                                                    c.weight, c.observed) for c in e.per_class)
            self.oversampling_run = run.run
            self.sources, self.taxonomy = source_rows_of(e), e.taxonomy

    def _run_step(self, run: RunState, e: StepRecord) -> None:
        run.step, run.epoch = e.step, e.epoch
        run.samples_per_s, run.lr, run.loss, run.grad_norm = e.samples_per_s, e.lr, e.loss, e.grad_norm
        run.nonfinite_skipped = e.nonfinite_skipped
        run.rate_window.append((e.t, e.step))
        if run.loss is not None:
            run.ema = run.loss if run.ema is None else run.ema + EMA_ALPHA * (run.loss - run.ema)
            run.loss_raw.add(e.step, run.loss)
            run.loss_smooth.add(e.step, run.ema)
        if run.lr is not None:
            run.lr_series.add(e.step, run.lr)
        if run.grad_norm is not None:
            run.grad_series.add(e.step, run.grad_norm)
            # The trainer's vanishing episode ends with the first norm back over the floor.
            if run.grad_alert and run.grad_alert[0] == "vanishing" and run.grad_norm >= GRAD_VANISHING_BELOW:
                run.grad_alert = None

    def _run_eval(self, run: RunState, e: EvalRecord) -> None:
        if e.source is not None:
            latest = self._source_evals.get(e.source)
            if latest is None or (e.t or 0.0) >= latest[0]:
                self._source_evals[e.source] = (e.t or 0.0, run.run, e.macro)
            return
        run.evals.append(e)
        run.add_eval(e, self.primary, self.select_by)
        if e.final and e.split == "test" and e.per_label:
            run.final_labels = e.per_label
        if e.split != "test":
            run.per_class = e.per_class

    def _run_alert(self, run: RunState, e: Alert) -> None:
        run.alerts.append(e)
        self.alerts.append(e)
        if e.code in GRAD_ALERT_CODES:
            run.grad_alert = (e.code.removeprefix("grad_"), run.step)
        elif e.code == "nonfinite":
            run.nonfinite_alerts += 1

    def _run_end(self, run: RunState, e: RunEnd) -> None:
        run.trainer_status, run.end_t, run.plateau_since = e.status, e.t, e.plateau_since

    PIPELINE_HANDLERS: ClassVar[dict[str, Callable[[PipelineState, Any], None]]] = {
        Event.PIPELINE_START: _pipeline_start,
        Event.PHASE_START: _phase_start,
        Event.RUN_LAUNCH: _run_launch,
        Event.STALL: _stall,
        Event.RESTART: _restart,
        Event.REQUEUE: _requeue,
        Event.RUN_PENDING: _run_pending,
        Event.RUN_DONE: _run_done,
        Event.ALERT: _pipeline_alert,
        Event.PHASE_END: _phase_end,
        Event.PIPELINE_END: _pipeline_end,
        Event.SEARCH_TRIAL: _fold_study, Event.SEARCH_REPORT: _fold_study, Event.SEARCH_END: _fold_study,
    }
    """pipeline.jsonl event type -> the handler of its record; PIPELINE_IGNORED lists the rest of the contract's types."""

    TRAINER_HANDLERS: ClassVar[dict[str, Callable[[PipelineState, RunState, Any], None]]] = {
        Event.RUN_START: _run_start,
        Event.DATA: _run_data,
        Event.STEP: _run_step,
        Event.EVAL: _run_eval,
        Event.ALERT: _run_alert,
        Event.RUN_END: _run_end,
        Event.DEVICE: fold_device_report,
    }
    """events.jsonl event type -> the handler of its record; TRAINER_IGNORED lists the rest of the contract's types."""

    # views

    def source_rows(self) -> tuple[SourceRow, ...]:
        """The pipeline's sources with the latest macro-F1 on each one's dev split, at the primary threshold."""
        key = threshold_key(self.primary)
        rows = []
        for row in self.sources:
            latest = self._source_evals.get(row.name)
            rows.append(row if latest is None else replace(row, dev_f1=latest[2].get(key), dev_f1_run=latest[1]))
        return tuple(rows)

    def run_view(self, run: RunState) -> RunView:
        cached = self._views.get(run.run)
        if cached is None or cached[0] != run.version:
            cached = self._views[run.run] = (run.version, run.view())
        return cached[1]

    def snapshot(self, now: float) -> PipelineView:
        """An immutable view of everything, for widgets; unchanged runs reuse their last view."""
        runs = sorted(self.runs.values(), key=lambda r: (r.phase if r.phase is not None else 99,))
        summary_target = _num(self.summary.get("target_f1"))
        status = self.status
        if status == "waiting" and _str(self.summary.get("status")):
            status = self.summary["status"]  # a folder read without its pipeline.jsonl
        return PipelineView(
            pipeline=self.pipeline or _str(self.summary.get("pipeline")),
            preset=self.preset or _str(self.summary.get("preset")), status=status,
            exit_code=self.exit_code, phase=self.phase, phase_name=self.phase_name, phases=self.phases,
            devices=self.devices, runs=tuple(self.run_view(r) for r in runs), oversampling=self.oversampling,
            oversampling_run=self.oversampling_run, stalls=tuple(self.stalls), alerts=tuple(self.alerts),
            leaderboard=leaderboard(self.summary, self.runs, self.primary, self.select_by, self.target_f1),
            final=final_result(self.summary, self.runs, self.primary),
            baseline_f1=baseline_f1(self.summary, self.runs, self.primary),
            target_f1=summary_target if summary_target is not None else self.target_f1,
            reference_f1=_num(self.summary.get("reference_f1")), ranking=self.ranking,
            skipped_events=self.skipped_events, last_event_t=self.last_event_t, now=now, primary=self.primary,
            sources=self.source_rows(), taxonomy=self.taxonomy, select_by=self.select_by,
            hosts=host_devices(self.runs.values(), self.local_host),
            groups=seed_groups(self.summary, self.primary), decisions=decisions(self.summary),
            study=self.study.snapshot(),
        )
