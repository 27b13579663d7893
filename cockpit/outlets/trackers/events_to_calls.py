"""What a run's events become in a tracker: a pure translation from one event to neutral calls.

Every tracker adapter applies the same calls, so live forwarding and ``export`` replay write the
same thing, and the translation is tested without any tracker library. Keys follow the event
table of ``trainer.contract``; metric tags carry the threshold as ``@<t>`` (``dev/f1_macro@0.2``)
and adapters whose tracker forbids ``@`` rewrite the tag themselves.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from cockpit.records import (Alert, DataRecord, EvalRecord, Record, Restart, RunEnd, RunStart, Stall, StepRecord,
                             decode)
from cockpit.records.history import RUN_ORIGIN
from cockpit.records.values import number
from trainer.contract import PIPELINE_ORIGIN, TUNED_CV_KEY, TUNED_DEV_KEY

ParamValue = Union[str, int, float, bool]

PER_CLASS_COLUMNS = ("label", "precision", "recall", "f1", "support")  # ClassScore's fields


@dataclass(frozen=True)
class Params:
    """Hyperparameters: ``values`` flat (dotted keys, scalar values), ``nested`` as given (for trackers that
    take nested configs); ``group`` is ``config`` (the run config) or ``data`` (the data event's sizes)."""

    values: dict[str, ParamValue]
    nested: dict[str, Any]
    group: str = "config"


@dataclass(frozen=True)
class Scalar:
    tag: str
    value: float
    step: int
    wall_time: float | None = None


@dataclass(frozen=True)
class Text:
    """A note at a step: a trainer alert, a stall or restart of the run. ``level``: info, warn or error."""

    tag: str
    text: str
    step: int
    level: str = "info"
    wall_time: float | None = None


@dataclass(frozen=True)
class Table:
    tag: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    step: int


@dataclass(frozen=True)
class Resume:
    """The run continues from its checkpoint at ``step``: points the earlier attempt logged after it are void."""

    step: int
    wall_time: float | None = None


@dataclass(frozen=True)
class Summary:
    """Numbers (and a status) that describe the whole run, from its ``run_end``."""

    values: dict[str, ParamValue] = field(default_factory=dict)


Call = Union[Params, Scalar, Text, Table, Summary, Resume]


def flatten_params(config: dict[str, Any], prefix: str = "") -> dict[str, ParamValue]:
    """``{"loss_params": {"gamma": 2}}`` -> ``{"loss_params.gamma": 2}``; lists and None as JSON strings."""
    flat: dict[str, ParamValue] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_params(value, name + "."))
        elif isinstance(value, bool) or isinstance(value, (int, str)):
            flat[name] = value
        elif isinstance(value, float):
            flat[name] = value if math.isfinite(value) else json.dumps(None)
        else:  # lists (sources, thresholds), None, empty dicts
            flat[name] = json.dumps(value, sort_keys=True, default=str)
    return flat


def _int64(value: Any) -> int | None:
    """An integer every tracker can store as a step (int64), or None."""
    if isinstance(value, int) and not isinstance(value, bool) and -(1 << 63) <= value < (1 << 63):
        return value
    return None


def wall_time(event: dict[str, Any]) -> float | None:
    """The event's ``t`` when it is a plausible Unix time (finite, from 1970 to about the year 5000), else None:
    trackers turn it into int64 milliseconds and TensorBoard into a double, and both refuse the rest."""
    return _plausible_time(number(event.get("t")))


def _plausible_time(t: float | None) -> float | None:
    # 0 is also what a record holds for an event without a usable t (`cockpit.records.decode`)
    return t if t is not None and 0 < t < 1e11 else None


def _step(step: int | None, last_step: int) -> int:
    step = _int64(step)
    return step if step is not None else last_step


def _run_start_calls(record: RunStart, last_step: int) -> list[Call]:
    config = record.config
    nested = dict(config)
    for key, value in record.launched.items():
        if key not in config or config[key] != value:
            nested[key if key not in config else f"{key}_resolved"] = value
    calls: list[Call] = [Params(flatten_params(nested), nested, "config")]
    resumed, t = _int64(record.resumed_from_step), _plausible_time(record.t)
    if resumed is not None:
        calls.append(Resume(resumed, t))
        calls.append(Text("events/resume", f"resumed from the checkpoint at step {resumed}", resumed, "info", t))
    return calls


def _data_calls(record: DataRecord, last_step: int) -> list[Call]:
    sizes: dict[str, Any] = {key: value for key, value in (
        ("train_size_before", record.train_size_before), ("train_size_after", record.train_size_after),
        ("dev_size", record.dev_size), ("test_size", record.test_size), ("source", record.source or None),
        ("taxonomy", record.taxonomy or None)) if value is not None}
    if record.oversampling_rule:
        sizes["oversampling"] = {"rule": record.oversampling_rule, "factor": record.oversampling_factor,
                                 "classes": list(record.oversampling_classes)}
    if record.sources:
        sizes["sources"] = [source.name for source in record.sources]
    nested = {"data": sizes}
    calls: list[Call] = [Params(flatten_params(nested), nested, "data")]
    rows = record.per_class
    if rows:
        columns = ("label", "before", "after") + tuple(
            column for column in ("weight", "observed") if any(getattr(r, column) is not None for r in rows))
        calls.append(Table("data/per_class", columns, tuple(tuple(getattr(r, c) for c in columns) for r in rows),
                           last_step))
    return calls


def _step_calls(record: StepRecord, last_step: int) -> list[Call]:
    step, t = _step(record.step, last_step), _plausible_time(record.t)
    values = (("loss", record.loss), ("lr", record.lr), ("grad_norm", record.grad_norm),
              ("samples_per_s", record.samples_per_s), ("tokens_per_s", record.tokens_per_s), ("epoch", record.epoch))
    # a non-finite loss is null in the events: no point rather than a fake one
    return [Scalar(f"train/{key}", value, step, t) for key, value in values if value is not None]


def _eval_prefix(record: EvalRecord) -> str | None:
    """``dev``, ``test`` (the final evaluation on test), ``source/<name>``, or None for the final dev evaluation
    (the same weights and data as the dev point at its step: only its per-label table is new)."""
    if record.source:
        return f"source/{record.source}"
    if record.final:
        return "test" if record.split == "test" else None
    return record.split


def _eval_calls(record: EvalRecord, last_step: int) -> list[Call]:
    step, t = _step(record.step, last_step), _plausible_time(record.t)
    prefix = _eval_prefix(record)
    calls: list[Call] = []
    if prefix is not None:
        for metric, values in record.by_threshold.items():
            calls += [Scalar(f"{prefix}/{metric}@{threshold}", value, step, t) for threshold, value in values.items()]
        learning = record.learning
        for name, value in (("loss", record.loss), (TUNED_DEV_KEY, record.tuned), (TUNED_CV_KEY, record.tuned_cv),
                            ("learning/auc_macro", learning.auc_macro if learning else None),
                            ("learning/labels_predicted", learning.labels_predicted if learning else None),
                            ("learning/prior_gap", learning.prior_gap if learning else None)):
            if value is not None:
                calls.append(Scalar(f"{prefix}/{name}", float(value), step, t))
    if record.final and not record.source:
        split = record.split if record.split in ("dev", "test") else "dev"
        calls += [Scalar(f"{split}/f1/{row.label}", row.f1, step, t) for row in record.per_class if row.f1 is not None]
        if record.per_class:
            calls.append(Table(f"{split}/per_class", PER_CLASS_COLUMNS,
                               tuple(tuple(getattr(r, c) for c in PER_CLASS_COLUMNS) for r in record.per_class),
                               step))
    return calls


def _alert_calls(record: Alert, last_step: int) -> list[Call]:
    level = record.level if record.level in ("info", "warn", "error") else "warn"
    return [Text(f"alerts/{record.code or 'alert'}", f"[{level}] {record.message}", last_step, level,
                 _plausible_time(record.t))]


def _run_end_calls(record: RunEnd, last_step: int) -> list[Call]:
    values: dict[str, ParamValue] = {"status": record.status}
    if record.wall_s is not None:
        values["wall_s"] = record.wall_s
    if record.best_value is not None:
        values[f"best/{record.best_metric or 'value'}"] = record.best_value
        if _int64(record.best_step) is not None:
            values["best/step"] = record.best_step
    calls: list[Call] = [Summary(values)]
    if record.status != "completed":
        calls.append(Text("events/run_end", f"run ended {record.status}: {record.reason}", last_step,
                          "error" if record.status == "failed" else "warn", _plausible_time(record.t)))
    return calls


def _pipeline_calls(record: Record, last_step: int) -> list[Call]:
    """Supervisor events about one run (stall, restart, its alerts) as notes in that run."""
    t = _plausible_time(record.t)
    if isinstance(record, Stall):
        text = f"stalled: silent {record.silent_s} s (attempt {record.attempt}); {record.action}"
        return [Text("events/stall", text.rstrip("; "), last_step, "warn", t)]
    if isinstance(record, Restart):
        text = f"restart {record.attempt} from step {record.from_step}: {record.reason}"
        return [Text("events/restart", text.rstrip(": "), _step(record.from_step, last_step), "warn", t)]
    if isinstance(record, Alert) and record.code != "tracker":  # our own failures are the supervisor's to show
        return _alert_calls(record, last_step)
    return []


TRAINER_TRANSLATIONS: dict[type, Callable[[Any, int], list[Call]]] = {
    RunStart: _run_start_calls, DataRecord: _data_calls, StepRecord: _step_calls, EvalRecord: _eval_calls,
    Alert: _alert_calls, RunEnd: _run_end_calls}
"""The record types of a run's own events that become tracker calls, and how."""


def calls_for_record(record: Record, last_step: int = 0, *, from_pipeline: bool = False) -> list[Call]:
    """The tracker calls one event's record stands for. ``last_step`` places events without a step (alerts,
    notes); ``from_pipeline``: a supervisor event about this run rather than one of the trainer's."""
    if from_pipeline:
        return _pipeline_calls(record, last_step)
    translate = TRAINER_TRANSLATIONS.get(type(record))
    return translate(record, last_step) if translate else []


def calls_for_event(event: dict[str, Any], last_step: int = 0, *, from_pipeline: bool = False) -> list[Call]:
    """`calls_for_record` of the event's record; an event the contract refuses raises `BadEvent` (the translator
    counts it), as the views skip and count it."""
    record = decode(PIPELINE_ORIGIN if from_pipeline else RUN_ORIGIN, event)
    return [] if record is None else calls_for_record(record, last_step, from_pipeline=from_pipeline)


class RunTranslator:
    """Translates one run's events in order, remembering the last step for events that carry none. An event
    whose shape the translation cannot use (valid JSON, wrong types) is skipped and counted in ``bad_events``,
    as readers skip and count lines that do not parse: one odd line must not end a tracker run part-way."""

    def __init__(self) -> None:
        self.last_step = 0
        self.bad_events = 0

    def translate(self, event: dict[str, Any], *, from_pipeline: bool = False) -> list[Call]:
        try:
            record = decode(PIPELINE_ORIGIN if from_pipeline else RUN_ORIGIN, event)
            calls = [] if record is None else calls_for_record(record, self.last_step, from_pipeline=from_pipeline)
        except Exception:  # noqa: BLE001 - decoding and translating are pure: any error is this event's shape
            self.bad_events += 1
            return []
        if isinstance(record, StepRecord) and not from_pipeline:
            self.last_step = _step(record.step, self.last_step)
        elif isinstance(record, RunStart) and not from_pipeline and _int64(record.resumed_from_step) is not None:
            self.last_step = record.resumed_from_step
        return calls
