"""An ``eval`` event, decoded once: `EvalRecord`, its per-label scores, and which evals are a run's own."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cockpit.records.values import integer, number, objects, scores, strings, text
from trainer.contract import Event, threshold_key


def eval_source(event: dict[str, Any]) -> str | None:
    """The extra data source an eval event scored on that source's own dev split, or None for the run's own
    evaluation (events of older trainers carry no ``source``)."""
    source = event.get("source")
    return str(source) if source else None


def is_run_eval(event: dict[str, Any]) -> bool:
    """An eval of the run itself. A per-source eval scores only that source's observed labels, so it is never
    a point on the run's curves, a candidate for its best score, nor a number of the leaderboard or report."""
    return event.get("type") == Event.EVAL and eval_source(event) is None


# Metrics an eval event carries as {threshold string: value} objects (trackers log each as a scalar).
THRESHOLD_METRICS = ("f1_macro", "f1_micro", "f1_weighted", "precision_macro", "recall_macro", "precision_micro",
                     "recall_micro")


@dataclass(frozen=True)
class ClassScore:
    """One label's scores in an eval (at the primary threshold, as the trainer reports them)."""

    label: str
    precision: float | None
    recall: float | None
    f1: float | None
    support: int | None
    predicted: int | None = None
    """Rows predicted positive (newer trainers): 0 is a label the model never predicts."""


@dataclass(frozen=True)
class LabelResult:
    """One label of the final model on a split: its tuned threshold, scores there and the 95 % bootstrap
    interval of its F1 (trainer/label_table.py)."""

    label: str
    threshold: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    support: int | None
    f1_low: float | None
    f1_high: float | None


def label_results(rows: Any) -> tuple[LabelResult, ...]:
    return tuple(LabelResult(str(row["label"]), number(row.get("threshold")), number(row.get("precision")),
                             number(row.get("recall")), number(row.get("f1")), integer(row.get("support")),
                             number(row.get("f1_low")), number(row.get("f1_high"))) for row in unique_labels(rows))


def unique_labels(rows: Any) -> list[dict[str, Any]]:
    """Rows of a per-class list that are objects with a label, the first of each label only."""
    seen: set[str] = set()
    out = []
    for row in objects(rows):
        if row.get("label") is not None and str(row["label"]) not in seen:
            seen.add(str(row["label"]))
            out.append(row)
    return out


def class_scores(rows: Any) -> tuple[ClassScore, ...]:
    return tuple(ClassScore(str(row["label"]), number(row.get("precision")), number(row.get("recall")),
                            number(row.get("f1")), integer(row.get("support")), integer(row.get("predicted")))
                 for row in unique_labels(rows))


@dataclass(frozen=True)
class Learning:
    """An eval's ``learning`` figures: discrimination (macro ROC-AUC, 0.5 is chance), how many labels are
    predicted positive at the primary threshold, and how far predictions sit from the training prior."""

    auc_macro: float | None
    labels_predicted: int | None
    labels: int | None
    prior_gap: float | None


def interval(value: Any) -> tuple[float, float] | None:
    """A [low, high] pair of finite numbers, low <= high; None otherwise."""
    if not isinstance(value, list) or len(value) != 2:
        return None
    low, high = number(value[0]), number(value[1])
    return (low, high) if low is not None and high is not None and low <= high else None


def decode_learning(value: Any) -> Learning | None:
    if not isinstance(value, dict):
        return None
    return Learning(number(value.get("auc_macro")), integer(value.get("labels_predicted")),
                    integer(value.get("labels")), number(value.get("prior_gap")))


@dataclass(frozen=True)
class EvalRecord:
    """What one eval event says, whichever threshold is primary."""

    step: int
    split: str
    """"dev" or "test"."""
    final: bool
    """The final export's evaluation of the best weights (not a point of the training curve)."""
    source: str | None = None
    """The extra data source scored on its own dev split; None for the run's own evaluation."""
    epoch: float | None = None
    macro: dict[str, float] = field(default_factory=dict)
    """Macro-F1 by threshold string ("0.2")."""
    micro: dict[str, float] = field(default_factory=dict)
    tuned: float | None = None
    """Macro-F1 with per-label thresholds tuned on this split."""
    tuned_cv: float | None = None
    """Macro-F1 with thresholds cross-fitted on two halves of dev: an estimate that did not see its rows."""
    t: float | None = None
    loss: float | None = None
    per_class: tuple[ClassScore, ...] = ()
    observed_labels: tuple[str, ...] | None = None
    """The labels a per-source eval covers (its source's map); None for the run's own evals."""
    by_threshold: dict[str, dict[str, float]] = field(default_factory=dict)
    """Every THRESHOLD_METRICS score the event carries: metric -> threshold string -> value."""
    learning: Learning | None = None
    """Is the run learning at all (dev evals of newer trainers: trainer/diagnostics.py)."""
    per_label: tuple[LabelResult, ...] = ()
    """The final test eval's per-label table at the tuned thresholds (newer trainers)."""
    tuned_interval: tuple[float, float] | None = None
    tuned_cv_sd: float | None = None
    """The standard deviation of tuned_cv over its split seeds (newer trainers: tuned_cv is their mean)."""
    """The final test eval's 95 % bootstrap interval of ``tuned`` (newer trainers)."""

    def f1(self, at: float) -> float | None:
        """Macro-F1 at a threshold."""
        return self.macro.get(threshold_key(at))

    def micro_f1(self, at: float) -> float | None:
        """Micro-F1 at a threshold."""
        return self.micro.get(threshold_key(at))

    @property
    def is_periodic_dev(self) -> bool:
        """A dev evaluation during training: a candidate for the run's best score."""
        return self.split == "dev" and not self.final and self.source is None

    @property
    def label_f1(self) -> dict[str, float]:
        """Per-label F1 by label, where the eval reports it."""
        return {row.label: row.f1 for row in self.per_class if row.f1 is not None}


def decode_eval(event: dict[str, Any]) -> EvalRecord:
    """An eval event as a record; values of the wrong kind read as missing."""
    tuned, observed = event.get("tuned"), event.get("observed_labels")
    return EvalRecord(step=integer(event.get("step")) or 0, split=text(event.get("split"), "dev"),
                      final=event.get("final") is True, source=eval_source(event), epoch=number(event.get("epoch")),
                      macro=scores(event.get("f1_macro")), micro=scores(event.get("f1_micro")),
                      tuned=number(tuned.get("f1_macro")) if isinstance(tuned, dict) else None,
                      tuned_cv=number(event.get("tuned_cv")), t=number(event.get("t")), loss=number(event.get("loss")),
                      per_class=class_scores(event.get("per_class")),
                      observed_labels=strings(observed) if isinstance(observed, list) else None,
                      by_threshold={m: scores(event[m]) for m in THRESHOLD_METRICS if isinstance(event.get(m), dict)},
                      learning=decode_learning(event.get("learning")), per_label=label_results(event.get("per_label")),
                      tuned_interval=interval(event.get("tuned_interval")),
                      tuned_cv_sd=number(event.get("tuned_cv_sd")))
