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
from typing import Any, Union

from trainer.contract import TUNED_CV_KEY, TUNED_DEV_KEY
from trainer.contract import F1_MACRO, F1_MICRO, F1_WEIGHTED, TUNED_CV_FIELD, Event

ParamValue = Union[str, int, float, bool]

# Metrics of an eval event that are objects keyed by threshold string ("0.2", "0.5").
THRESHOLD_METRICS = (F1_MACRO, F1_MICRO, F1_WEIGHTED, "precision_macro", "recall_macro",
                     "precision_micro", "recall_micro")
STEP_SCALARS = ("loss", "lr", "grad_norm", "samples_per_s", "tokens_per_s", "epoch")
# run_start keys that describe the run as launched (beside its config); "_resolved" when the config says otherwise.
RUN_START_META = ("model", "n_params", "device", "world_size", "precision", "steps_per_epoch", "total_steps",
                  "torch_threads")
DATA_SIZES = ("train_size_before", "train_size_after", "dev_size", "test_size", "source", "taxonomy")
PER_CLASS_COLUMNS = ("label", "precision", "recall", "f1", "support")


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


def _number(value: Any) -> float | None:
    """A finite float, or None for null, NaN, booleans, integers too large for a float and anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _int64(value: Any) -> int | None:
    """An integer every tracker can store as a step (int64), or None."""
    if isinstance(value, int) and not isinstance(value, bool) and -(1 << 63) <= value < (1 << 63):
        return value
    return None


def wall_time(event: dict[str, Any]) -> float | None:
    """The event's ``t`` when it is a plausible Unix time (finite, from 1970 to about the year 5000), else None:
    trackers turn it into int64 milliseconds and TensorBoard into a double, and both refuse the rest."""
    t = _number(event.get("t"))
    return t if t is not None and 0 <= t < 1e11 else None


def _step(event: dict[str, Any], last_step: int) -> int:
    step = _int64(event.get("step"))
    return step if step is not None else last_step


def _dict_rows(value: Any) -> list[dict[str, Any]]:
    """The objects of a list of rows (per_class), or none when it is not a list."""
    return [row for row in value if isinstance(row, dict)] if isinstance(value, list) else []


def _run_start_calls(event: dict[str, Any], last_step: int) -> list[Call]:
    config = event.get("config") if isinstance(event.get("config"), dict) else {}
    nested = dict(config)
    for key in RUN_START_META:
        if key in event and event[key] is not None:
            name = key if key not in config else f"{key}_resolved"
            if key not in config or config[key] != event[key]:
                nested[name] = event[key]
    calls: list[Call] = [Params(flatten_params(nested), nested, "config")]
    resumed = _int64(event.get("resumed_from_step"))
    if resumed is not None:
        calls.append(Resume(resumed, wall_time(event)))
        calls.append(Text("events/resume", f"resumed from the checkpoint at step {resumed}", resumed, "info",
                          wall_time(event)))
    return calls


def _data_calls(event: dict[str, Any], last_step: int) -> list[Call]:
    sizes = {key: event[key] for key in DATA_SIZES if key in event}
    oversampling = event.get("oversampling")
    if isinstance(oversampling, dict):
        sizes["oversampling"] = {k: v for k, v in oversampling.items() if k in ("rule", "factor", "classes")}
    sources = event.get("sources")
    if isinstance(sources, list):
        sizes["sources"] = [s.get("name") for s in sources if isinstance(s, dict)]
    nested = {"data": sizes}
    calls: list[Call] = [Params(flatten_params(nested), nested, "data")]
    rows = _dict_rows(event.get("per_class"))
    if rows:
        columns = tuple(c for c in ("label", "before", "after", "weight", "observed") if c in rows[0])
        calls.append(Table("data/per_class", columns, tuple(tuple(r.get(c) for c in columns) for r in rows),
                           last_step))
    return calls


def _step_calls(event: dict[str, Any], last_step: int) -> list[Call]:
    step, t = _step(event, last_step), wall_time(event)
    calls: list[Call] = []
    for key in STEP_SCALARS:
        value = _number(event.get(key))
        if value is not None:  # a non-finite loss is null in the events: no point rather than a fake one
            calls.append(Scalar(f"train/{key}", value, step, t))
    return calls


def _eval_prefix(event: dict[str, Any]) -> str | None:
    """``dev``, ``test`` (the final evaluation on test), ``source/<name>``, or None for the final dev evaluation
    (the same weights and data as the dev point at its step: only its per-label table is new)."""
    if event.get("source"):
        return f"source/{event['source']}"
    split = event.get("split")
    if event.get("final"):
        return "test" if split == "test" else None
    return "dev" if split == "dev" else (split if isinstance(split, str) else None)


def _eval_calls(event: dict[str, Any], last_step: int) -> list[Call]:
    step, t = _step(event, last_step), wall_time(event)
    prefix = _eval_prefix(event)
    calls: list[Call] = []
    if prefix is not None:
        for metric in THRESHOLD_METRICS:
            values = event.get(metric)
            if isinstance(values, dict):
                for threshold, value in values.items():
                    number = _number(value)
                    if number is not None:
                        calls.append(Scalar(f"{prefix}/{metric}@{threshold}", number, step, t))
        for name, value in (("loss", event.get("loss")),
                            (TUNED_DEV_KEY, (event.get("tuned") or {}).get(F1_MACRO)
                             if isinstance(event.get("tuned"), dict) else None),
                            (TUNED_CV_KEY, _tuned_cv(event.get(TUNED_CV_FIELD)))):
            number = _number(value)
            if number is not None:
                calls.append(Scalar(f"{prefix}/{name}", number, step, t))
    if event.get("final") and not event.get("source"):
        split = event.get("split") if event.get("split") in ("dev", "test") else "dev"
        rows = [r for r in _dict_rows(event.get("per_class")) if "label" in r]
        for row in rows:
            number = _number(row.get("f1"))
            if number is not None:
                calls.append(Scalar(f"{split}/f1/{row['label']}", number, step, t))
        if rows:
            calls.append(Table(f"{split}/per_class", PER_CLASS_COLUMNS,
                               tuple(tuple(r.get(c) for c in PER_CLASS_COLUMNS) for r in rows), step))
    return calls


def _tuned_cv(value: Any) -> Any:
    return value.get(F1_MACRO) if isinstance(value, dict) else value


def _alert_calls(event: dict[str, Any], last_step: int) -> list[Call]:
    level = event.get("level") if event.get("level") in ("info", "warn", "error") else "warn"
    code = event.get("code") if isinstance(event.get("code"), str) and event.get("code") else "alert"
    return [Text(f"alerts/{code}", f"[{level}] {event.get('message', '')}", last_step, level, wall_time(event))]


def _run_end_calls(event: dict[str, Any], last_step: int) -> list[Call]:
    values: dict[str, ParamValue] = {"status": str(event.get("status"))}
    wall = _number(event.get("wall_s"))
    if wall is not None:
        values["wall_s"] = wall
    best = event.get("best")
    if isinstance(best, dict) and _number(best.get("value")) is not None:
        values[f"best/{best.get('metric') or 'value'}"] = float(best["value"])
        if _int64(best.get("step")) is not None:
            values["best/step"] = best["step"]
    calls: list[Call] = [Summary(values)]
    if event.get("status") != "completed":
        calls.append(Text("events/run_end", f"run ended {event.get('status')}: {event.get('reason', '')}",
                          last_step, "error" if event.get("status") == "failed" else "warn", wall_time(event)))
    return calls


def _pipeline_calls(event: dict[str, Any], last_step: int) -> list[Call]:
    """Supervisor events about one run (stall, restart, its alerts) as notes in that run."""
    kind, t = event.get("type"), wall_time(event)
    if kind == Event.STALL:
        text = f"stalled: silent {event.get('silent_s')} s (attempt {event.get('attempt')}); {event.get('action', '')}"
        return [Text("events/stall", text.rstrip("; "), last_step, "warn", t)]
    if kind == Event.RESTART:
        text = f"restart {event.get('attempt')} from step {event.get('from_step')}: {event.get('reason', '')}"
        at = _int64(event.get("from_step"))
        at = at if at is not None else last_step
        return [Text("events/restart", text.rstrip(": "), at, "warn", t)]
    if kind == Event.ALERT and event.get("code") != "tracker":  # our own failures are the supervisor's to show
        return _alert_calls(event, last_step)
    return []


TRAINER_TRANSLATIONS = {Event.RUN_START: _run_start_calls, Event.DATA: _data_calls, Event.STEP: _step_calls,
                        Event.EVAL: _eval_calls, Event.ALERT: _alert_calls, Event.RUN_END: _run_end_calls}


def calls_for_event(event: dict[str, Any], last_step: int = 0, *, from_pipeline: bool = False) -> list[Call]:
    """The tracker calls one event stands for. ``last_step`` places events without a step (alerts, notes);
    ``from_pipeline``: a supervisor event about this run rather than one of the trainer's."""
    if from_pipeline:
        return _pipeline_calls(event, last_step)
    kind = event.get("type")
    translate = TRAINER_TRANSLATIONS.get(kind) if isinstance(kind, str) else None
    return translate(event, last_step) if translate else []


class RunTranslator:
    """Translates one run's events in order, remembering the last step for events that carry none. An event
    whose shape the translation cannot use (valid JSON, wrong types) is skipped and counted in ``bad_events``,
    as readers skip and count lines that do not parse: one odd line must not end a tracker run part-way."""

    def __init__(self) -> None:
        self.last_step = 0
        self.bad_events = 0

    def translate(self, event: dict[str, Any], *, from_pipeline: bool = False) -> list[Call]:
        try:
            calls = calls_for_event(event, self.last_step, from_pipeline=from_pipeline)
        except Exception:  # noqa: BLE001 - the translation is pure: any error is this event's shape
            self.bad_events += 1
            return []
        if not from_pipeline:
            kind = event.get("type")
            if kind == Event.STEP:
                self.last_step = _step(event, self.last_step)
            elif kind == Event.RUN_START and _int64(event.get("resumed_from_step")) is not None:
                self.last_step = event["resumed_from_step"]
        return calls
