"""What a trainer writes into its run folder's events.jsonl, decoded once: one frozen record per event type
(``eval`` is `cockpit.records.evals`). Each carries the event's time ``t`` and what consumers read; the fields
a consumer passes through whole (a run's config) stay as the trainer wrote them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cockpit.records.values import (integer, number, objects, optional_text, required_integer, required_number,
                                    required_text, strings, text)
from cockpit.records.evals import unique_labels


# run_start keys that describe the run as launched, beside its config (trackers log them as parameters)
RUN_START_META = ("model", "n_params", "device", "world_size", "precision", "steps_per_epoch", "total_steps",
                  "torch_threads")


@dataclass(frozen=True)
class RunStart:
    t: float
    config: dict[str, Any]
    """The run config as the trainer resolved it ({} when it is not an object)."""
    pid: int | None
    world_size: int
    total_steps: int | None
    """Optimizer steps the run will take; 0 for a job that does not train (a reuse export, an ensemble)."""
    device: str
    resumed_from_step: int | None
    precision: str = ""
    """The precision the trainer resolved ("bf16", "fp32", ...)."""
    launched: dict[str, Any] = field(default_factory=dict)
    """What describes the run as launched beside its config (RUN_START_META keys the event carries, not null)."""


@dataclass(frozen=True)
class OversampleCount:
    """One label's train rows before and after oversampling, its loss weight and the rows that can have it."""

    label: str
    before: int
    after: int
    weight: float | None
    observed: int | None = None


@dataclass(frozen=True)
class SourceCount:
    """One training data source as the data event lists it."""

    name: str
    kind: str
    path: str
    train_before: int | None
    train_after: int | None
    dev: int | None
    test: int | None
    observed: tuple[str, ...]
    dropped: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class DataRecord:
    t: float
    train_size_after: int | None
    per_class: tuple[OversampleCount, ...]
    """Labels with both counts, the first row of each label only."""
    labels: int | None
    """Labels listed in per_class (what a source's observed labels are out of)."""
    sources: tuple[SourceCount, ...]
    taxonomy: str
    oversampling_rule: str = ""
    oversampling_factor: float | None = None
    oversampling_classes: tuple[str, ...] = ()
    train_size_before: int | None = None
    dev_size: int | None = None
    test_size: int | None = None
    source: str = ""
    """The data source of single-source trainers (newer ones list ``sources``)."""


@dataclass(frozen=True)
class StepRecord:
    t: float
    step: int
    epoch: float
    loss: float | None
    """None for a step whose loss was not finite."""
    lr: float | None
    grad_norm: float | None
    samples_per_s: float | None
    nonfinite_skipped: int
    tokens_per_s: float | None = None
    step_time_s: float | None = None


@dataclass(frozen=True)
class ActivityRecord:
    t: float
    what: str
    expect_s: float | None


@dataclass(frozen=True)
class CheckpointRecord:
    t: float
    step: int
    path: str


@dataclass(frozen=True)
class Alert:
    """An alert from a trainer (about its run) or from the supervisor (``run`` None: about the pipeline)."""

    t: float
    level: str
    code: str
    message: str
    run: str | None = None


@dataclass(frozen=True)
class RunEnd:
    t: float
    status: str
    reason: str
    wall_s: float | None
    best_metric: str | None
    best_value: float | None
    best_step: int | None
    plateau_since: int | None = None
    """The step since which the selection score was flat, when early_stop_patience ended the run."""
    margin: BestMargin | None = None
    """The kept checkpoint against the next best dev eval, paired over the dev rows (trainer/paired.py)."""


@dataclass(frozen=True)
class BestMargin:
    """run_end's ``best_margin``: the next best eval's step and its Δ dev macro-F1 at the primary threshold
    against the kept checkpoint, with the 95 % interval; tied where the interval holds 0."""

    runner_up_step: int
    delta: float
    low: float
    high: float
    tied: bool

    def text(self) -> str:
        """``over step 40: Δ -0.004 [-0.015, +0.007] ≈`` (≈: the data cannot tell the two checkpoints apart)."""
        return (f"over step {self.runner_up_step}: Δ {self.delta:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"
                + (" ≈" if self.tied else ""))


@dataclass(frozen=True)
class GpuReading:
    """One GPU as a trainer's device event reports it (the node's, which this machine may not see)."""

    index: int
    name: str
    util_pct: float | None
    mem_used_mb: float | None
    mem_total_mb: float | None
    temp_c: float | None
    power_w: float | None
    throttle: tuple[str, ...]


@dataclass(frozen=True)
class DeviceRecord:
    t: float
    host: str
    node: int
    gpus: tuple[GpuReading, ...]
    gpu_error: str | None
    cpu_pct: float | None
    rss_mb: float | None


def decode_run_start(e: dict[str, Any], t: float) -> RunStart:
    reported = integer(e.get("total_steps"))
    return RunStart(t, e["config"] if isinstance(e.get("config"), dict) else {}, integer(e.get("pid")),
                    integer(e.get("world_size")) or 1, reported if reported is not None and reported >= 0 else None,
                    text(e.get("device")), integer(e.get("resumed_from_step")), text(e.get("precision")),
                    {key: e[key] for key in RUN_START_META if e.get(key) is not None})


def _source(raw: dict[str, Any]) -> SourceCount:
    counts = raw.get("rows") if isinstance(raw.get("rows"), dict) else {}
    dropped = raw.get("dropped")
    return SourceCount(
        text(raw.get("name")), text(raw.get("kind")), text(raw.get("path")), integer(counts.get("train_before")),
        integer(counts.get("train_after")), integer(counts.get("dev")), integer(counts.get("test")),
        strings(raw.get("observed_labels")),
        tuple((str(reason), n) for reason, n in ((r, integer(v)) for r, v in dropped.items()) if n is not None)
        if isinstance(dropped, dict) else ())


def decode_data(e: dict[str, Any], t: float) -> DataRecord:
    """A source that is not an object with a name is left out, and a name listed twice counts once."""
    rows = unique_labels(e.get("per_class"))
    counts = []
    for row in rows:
        before, after = integer(row.get("before")), integer(row.get("after"))
        if before is not None and after is not None:
            counts.append(OversampleCount(str(row["label"]), before, after, number(row.get("weight")),
                                          integer(row.get("observed"))))
    sources: list[SourceCount] = []
    for raw in objects(e.get("sources")):
        source = _source(raw)
        if source.name and all(s.name != source.name for s in sources):
            sources.append(source)
    oversampling = e.get("oversampling") if isinstance(e.get("oversampling"), dict) else {}
    return DataRecord(t, integer(e.get("train_size_after")), tuple(counts), len(rows) or None, tuple(sources),
                      text(e.get("taxonomy")), text(oversampling.get("rule")), number(oversampling.get("factor")),
                      strings(oversampling.get("classes")), integer(e.get("train_size_before")),
                      integer(e.get("dev_size")), integer(e.get("test_size")), text(e.get("source")))


def decode_step(e: dict[str, Any], t: float) -> StepRecord:
    return StepRecord(t, required_integer(e, "step"), required_number(e, "epoch"), number(e.get("loss")),
                      number(e.get("lr")), number(e.get("grad_norm")), number(e.get("samples_per_s")),
                      integer(e.get("nonfinite_skipped")) or 0, number(e.get("tokens_per_s")),
                      number(e.get("step_time_s")))


def decode_activity(e: dict[str, Any], t: float) -> ActivityRecord:
    return ActivityRecord(t, text(e.get("what")), number(e.get("expect_s")))


def decode_checkpoint(e: dict[str, Any], t: float) -> CheckpointRecord:
    return CheckpointRecord(t, required_integer(e, "step"), text(e.get("path")))


def decode_alert(e: dict[str, Any], t: float) -> Alert:
    return Alert(t, required_text(e, "level"), required_text(e, "code"), required_text(e, "message"),
                 optional_text(e.get("run")))


def decode_run_end(e: dict[str, Any], t: float) -> RunEnd:
    best = e.get("best") if isinstance(e.get("best"), dict) else {}
    return RunEnd(t, required_text(e, "status"), text(e.get("reason")), number(e.get("wall_s")),
                  optional_text(best.get("metric")), number(best.get("value")), integer(best.get("step")),
                  integer(e.get("plateau_since")), _best_margin(e.get("best_margin")))


def _best_margin(value: Any) -> BestMargin | None:
    """A well-formed best_margin, or None (older trainers, a run with one eval, a garbled field)."""
    if not isinstance(value, dict):
        return None
    step, numbers = integer(value.get("runner_up_step")), [number(value.get(k)) for k in ("delta", "low", "high")]
    if step is None or any(n is None for n in numbers) or not isinstance(value.get("tied"), bool):
        return None
    delta, low, high = numbers
    return BestMargin(step, delta, low, high, value["tied"])


def decode_device(e: dict[str, Any], t: float) -> DeviceRecord:
    gpus = []
    for g in objects(e.get("gpus")):
        index = integer(g.get("index"))
        if index is not None:
            gpus.append(GpuReading(index, text(g.get("name"), "GPU"), number(g.get("util_pct")),
                                   number(g.get("mem_used_mb")), number(g.get("mem_total_mb")),
                                   number(g.get("temp_c")), number(g.get("power_w")), strings(g.get("throttle"))))
    return DeviceRecord(t, text(e.get("host")), integer(e.get("node")) or 0, tuple(gpus),
                        optional_text(e.get("gpu_error")), number(e.get("cpu_pct")), number(e.get("rss_mb")))
