"""Multi-label classification metrics for eval events and per-label threshold tuning.

Numpy only: the numbers match sklearn's precision/recall/F1 with ``zero_division=0`` for multilabel
indicator arrays, but the trainer and the cockpit do not need sklearn at run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trainer.events import threshold_key
from trainer.contract import F1_MACRO, F1_MICRO, F1_WEIGHTED

SUMMARY_KEYS: tuple[str, ...] = (
    F1_MACRO,
    F1_MICRO,
    F1_WEIGHTED,
    "precision_macro",
    "recall_macro",
    "precision_micro",
    "recall_micro",
)

DEFAULT_GRID: np.ndarray = np.round(np.arange(0.05, 0.951, 0.05), 2)


def _as_2d_bool(name: str, a: np.ndarray) -> np.ndarray:
    """Return a [samples, labels] indicator array as bool, or raise ValueError."""
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D [samples, labels], got shape {a.shape}")
    return a.astype(bool, copy=False)


def _check_same_shape(a: np.ndarray, b: np.ndarray, names: str) -> None:
    """Raise ValueError if two arrays that pair up element-wise differ in shape."""
    if a.shape != b.shape:
        raise ValueError(f"{names} must have the same shape, got {a.shape} and {b.shape}")


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den as float64, with 0 where den == 0 (sklearn's zero_division=0)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _counts(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-label true positives, predicted positives and actual positives (int64)."""
    tp = np.count_nonzero(y_true & y_pred, axis=0).astype(np.int64)
    pred = np.count_nonzero(y_pred, axis=0).astype(np.int64)
    true = np.count_nonzero(y_true, axis=0).astype(np.int64)
    return tp, pred, true


def _prf(tp: np.ndarray, pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 from counts; F1 = 2tp / (true + pred) exactly as sklearn computes it."""
    return _divide(tp, pred), _divide(tp, true), _divide(2.0 * tp, true + pred)


def per_class_scores(
    y_true: np.ndarray, y_pred: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 (float64) and support (int64) per label; 0/0 counts as 0."""
    t = _as_2d_bool("y_true", y_true)
    p = _as_2d_bool("y_pred", y_pred)
    _check_same_shape(t, p, "y_true and y_pred")
    tp, pred, true = _counts(t, p)
    precision, recall, f1 = _prf(tp, pred, true)
    return precision, recall, f1, true


def f1_summary(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Macro, micro and weighted F1 with macro and micro precision and recall, as plain floats.

    Equal to sklearn's f1_score / precision_score / recall_score with zero_division=0: macro is
    the unweighted mean of the per-label scores, micro pools the counts over labels, weighted
    averages per-label F1 by support (plain mean if no label has support, as sklearn does).
    """
    t = _as_2d_bool("y_true", y_true)
    p = _as_2d_bool("y_pred", y_pred)
    _check_same_shape(t, p, "y_true and y_pred")
    tp, pred, true = _counts(t, p)
    precision, recall, f1 = _prf(tp, pred, true)
    micro_p, micro_r, micro_f1 = _prf(tp.sum(), pred.sum(), true.sum())
    weighted = np.average(f1, weights=true) if true.sum() > 0 else np.mean(f1)
    return {
        F1_MACRO: float(np.mean(f1)),
        F1_MICRO: float(micro_f1),
        F1_WEIGHTED: float(weighted),
        "precision_macro": float(np.mean(precision)),
        "recall_macro": float(np.mean(recall)),
        "precision_micro": float(micro_p),
        "recall_micro": float(micro_r),
    }


def evaluate_probs(
    probs: np.ndarray,
    labels: np.ndarray,
    thresholds: Sequence[float],
    label_names: Sequence[str],
    primary: float = 0.2,
) -> dict[str, Any]:
    """The metric part of an eval event, JSON-serialisable.

    For every key of ``f1_summary``, a dict {threshold_key(t): value} over the thresholds (the
    primary one always included), plus "per_class": one {"label", "precision", "recall", "f1",
    "support", "predicted"} dict per label at the primary threshold (``predicted``: rows predicted positive,
    so a label never predicted is told from one predicted wrongly). A label is predicted when prob >= t.
    """
    probs = np.asarray(probs)
    y_true = _as_2d_bool("labels", labels)
    _check_same_shape(probs, y_true, "probs and labels")
    if len(label_names) != y_true.shape[1]:
        raise ValueError(f"got {len(label_names)} label names for {y_true.shape[1]} labels")

    # Keyed by the printed form so that 0.2 and 0.20000000000000001 are one threshold.
    by_key = {threshold_key(t): float(t) for t in [*thresholds, primary]}
    result: dict[str, Any] = {name: {} for name in SUMMARY_KEYS}
    for key, t in sorted(by_key.items(), key=lambda kv: kv[1]):
        summary = f1_summary(y_true, probs >= t)
        for name in SUMMARY_KEYS:
            result[name][key] = summary[name]

    predicted_rows = probs >= primary
    precision, recall, f1, support = per_class_scores(y_true, predicted_rows)
    predicted = predicted_rows.sum(axis=0)
    result["per_class"] = [
        {
            "label": str(name),
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
            "predicted": int(predicted[i]),
        }
        for i, name in enumerate(label_names)
    ]
    return result


def final_thresholds(probs: np.ndarray, labels: np.ndarray, default: float = 0.2, bagging: int = 0,
                     seed: int = 0) -> np.ndarray:
    """The per-label thresholds a final model ships, tuned on dev: `tune_thresholds` once, or (``bagging`` > 0)
    the mean of the thresholds it tunes on that many bootstrap resamples of dev's rows.

    Why bagging: a rare label's tuned threshold jumps with the few dev rows that carry it (GoEmotions' grief has
    13 dev rows), and the jump is noise that test pays for. Averaging over resamples keeps what the data agree
    on. Measured on quick's final (docs/results.md, "Thresholds"): dev macro-F1 cross-fitted +0.001 to +0.010,
    test +0.005 to +0.009, with 30 resamples."""
    if bagging <= 0:
        return tune_thresholds(probs, labels, default=default)
    probs, rows = np.asarray(probs), len(labels)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, rows, rows) for _ in range(bagging)]
    return np.mean([tune_thresholds(probs[i], labels[i], default=default) for i in draws], axis=0)


def tune_thresholds(
    probs: np.ndarray,
    labels: np.ndarray,
    grid: Sequence[float] | None = None,
    default: float = 0.2,
) -> np.ndarray:
    """Per-label threshold from ``grid`` that maximises that label's own F1 on (probs, labels).

    Ties go to the smallest threshold; a label whose best F1 is 0 (no positives, or never hit)
    gets ``default``, since the data say nothing about where its threshold should be.
    """
    probs = np.asarray(probs)
    y_true = _as_2d_bool("labels", labels)
    _check_same_shape(probs, y_true, "probs and labels")
    candidates = np.sort(np.asarray(DEFAULT_GRID if grid is None else grid, dtype=np.float64))
    if candidates.ndim != 1 or candidates.size == 0:
        raise ValueError("grid must be a non-empty 1-D sequence of thresholds")

    true = np.count_nonzero(y_true, axis=0)
    f1 = np.empty((candidates.size, y_true.shape[1]), dtype=np.float64)
    for i, t in enumerate(candidates):
        pred = probs >= t
        tp = np.count_nonzero(pred & y_true, axis=0)
        f1[i] = _divide(2.0 * tp, true + np.count_nonzero(pred, axis=0))

    # argmax returns the first maximum, i.e. the smallest threshold of the sorted grid.
    best = np.argmax(f1, axis=0)
    chosen = candidates[best]
    best_f1 = f1[best, np.arange(f1.shape[1])]
    return np.where(best_f1 > 0, chosen, float(default))


def apply_thresholds(probs: np.ndarray, thresholds: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """Boolean predictions probs >= threshold, with one threshold for all labels or one per label."""
    probs = np.asarray(probs)
    t = np.asarray(thresholds, dtype=np.float64)
    if t.ndim > 1 or (t.ndim == 1 and (probs.ndim != 2 or t.shape[0] != probs.shape[1])):
        raise ValueError(f"thresholds of shape {t.shape} do not fit probs of shape {probs.shape}")
    return probs >= t


def tuned_summary(probs: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> dict[str, Any]:
    """The "tuned" part of an eval event: per-label thresholds and the macro/micro F1 they give."""
    thresholds = np.asarray(thresholds, dtype=np.float64)
    summary = f1_summary(labels, apply_thresholds(probs, thresholds))
    return {
        "thresholds": [float(t) for t in np.broadcast_to(thresholds, (np.asarray(probs).shape[1],))],
        F1_MACRO: summary[F1_MACRO],
        F1_MICRO: summary[F1_MICRO],
    }


def stratified_halves(labels: np.ndarray, seed: int) -> np.ndarray:
    """A seeded split of the rows into two halves (True: the first), stratified so that every label with
    two or more rows appears in both.

    Labels are taken rarest first; each label's rows not yet placed go, in a seeded order, to whichever
    half holds fewer of that label's rows, so a rare label is split before common ones can crowd it into
    one half. Rows without any label then even out the halves' sizes.
    """
    y = _as_2d_bool("labels", labels)
    rng = np.random.default_rng([seed, 2])
    side = np.full(len(y), -1, dtype=np.int8)
    for label in np.argsort(np.count_nonzero(y, axis=0), kind="stable"):
        rows = np.flatnonzero(y[:, label])
        counts = [int(np.count_nonzero(side[rows] == 0)), int(np.count_nonzero(side[rows] == 1))]
        free = rows[side[rows] < 0]
        for row in rng.permutation(free):
            half = 0 if counts[0] < counts[1] or (counts[0] == counts[1] and rng.random() < 0.5) else 1
            side[row] = half
            counts[half] += 1
    sizes = [int(np.count_nonzero(side == 0)), int(np.count_nonzero(side == 1))]
    for row in rng.permutation(np.flatnonzero(side < 0)):
        half = 0 if sizes[0] <= sizes[1] else 1
        side[row] = half
        sizes[half] += 1
    return side == 0


def tuned_cv(probs: np.ndarray, labels: np.ndarray, seed: int = 0, default: float = 0.2,
             grid: Sequence[float] | None = None) -> float:
    """Cross-fitted tuned macro-F1: per-label thresholds tuned on one stratified half of the rows and
    scored on the other, then the other way round; the mean of the two.

    Unlike tuning and scoring on the same rows (``tuned_summary`` on dev), the thresholds never see the
    rows they are scored on, so a model whose thresholds merely fit dev's noise gains nothing.
    """
    probs = np.asarray(probs)
    y = _as_2d_bool("labels", labels)
    _check_same_shape(probs, y, "probs and labels")
    first = stratified_halves(y, seed)
    scores = []
    for fit, score in ((first, ~first), (~first, first)):
        thresholds = tune_thresholds(probs[fit], y[fit], grid=grid, default=default)
        scores.append(f1_summary(y[score], probs[score] >= thresholds)[F1_MACRO])
    return float(np.mean(scores))


CV_SPLITS = 5  # split seeds tuned_cv is averaged over: one split's score moves by 0.004-0.006 (docs/results.md)


def tuned_cv_spread(probs: np.ndarray, labels: np.ndarray, seed: int = 0, default: float = 0.2,
                    splits: int = CV_SPLITS) -> tuple[float, float]:
    """``tuned_cv`` over ``splits`` stratified splits (seeds ``seed`` .. ``seed + splits - 1``): the mean, the
    number that ranks and picks checkpoints, and the standard deviation over the splits, its own noise."""
    scores = [tuned_cv(probs, labels, seed=seed + i, default=default) for i in range(splits)]
    return float(np.mean(scores)), float(np.std(scores, ddof=1)) if splits > 1 else 0.0
