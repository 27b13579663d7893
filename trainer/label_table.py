"""The final model's per-label table: each label's tuned threshold, precision, recall, F1 and support on a
split, with a 95 % bootstrap interval of its F1.

The interval resamples the split's rows (1,000 resamples, seeded): GoEmotions' rare labels (``grief``: 6 test
rows) have F1s that move by tenths between resamples, and a reader comparing two labels or two models needs
to see that. The resamples are drawn as row counts (a multinomial over rows), so each one is three matrix
products over the whole split rather than a Python loop over rows.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 1000
INTERVAL = 0.95


def resample_counts(rows: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> np.ndarray:
    """Bootstrap resamples of ``rows`` rows as row counts (one multinomial draw per resample), float64."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(rows, np.full(rows, 1.0 / rows), size=resamples).astype(np.float64)


def resampled_f1(counts: np.ndarray, y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-label F1 of each resample [resamples, labels]: 2tp / (true + predicted), 0/0 as 0."""
    b_tp, b_pred, b_true = counts @ (y & pred), counts @ pred, counts @ y
    den = b_true + b_pred
    return np.divide(2.0 * b_tp, den, out=np.zeros_like(den), where=den > 0)


def _percentiles(values: np.ndarray) -> np.ndarray:
    tail = (1.0 - INTERVAL) / 2 * 100
    return np.percentile(values, [tail, 100 - tail], axis=0)


def _predicted(probs: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(bool)
    return y, np.asarray(probs) >= np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (y.shape[1],))[None, :]


def per_label_table(probs: np.ndarray, labels: np.ndarray, thresholds: np.ndarray, names: Sequence[str],
                    resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                    b_f1: np.ndarray | None = None) -> list[dict[str, Any]]:
    """One row per label: {label, threshold, precision, recall, f1, support, f1_low, f1_high}. ``b_f1``: the
    resampled per-label F1 when the caller already drew it (`final_test_fields`)."""
    y, pred = _predicted(probs, labels, thresholds)
    tp, npred, true = (y & pred).sum(0), pred.sum(0), y.sum(0)
    if b_f1 is None:
        b_f1 = resampled_f1(resample_counts(len(y), resamples, seed), y, pred)
    low, high = _percentiles(b_f1)
    rows = []
    for i, name in enumerate(names):
        precision = tp[i] / npred[i] if npred[i] else 0.0
        recall = tp[i] / true[i] if true[i] else 0.0
        f1 = 2 * tp[i] / (true[i] + npred[i]) if true[i] + npred[i] else 0.0
        rows.append({"label": str(name), "threshold": round(float(np.broadcast_to(thresholds, (y.shape[1],))[i]), 4),
                     "precision": round(float(precision), 4), "recall": round(float(recall), 4),
                     "f1": round(float(f1), 4), "support": int(true[i]), "predicted": int(npred[i]),
                     "f1_low": round(float(low[i]), 4), "f1_high": round(float(high[i]), 4)})
    return rows


def final_test_fields(probs: np.ndarray, labels: np.ndarray, thresholds: np.ndarray, names: Sequence[str],
                      resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """What the final test eval adds: the per-label table and the 95 % bootstrap interval of the macro-F1 at
    the tuned thresholds (``tuned_interval``: [low, high]), both from one draw of resamples."""
    y, pred = _predicted(probs, labels, thresholds)
    b_f1 = resampled_f1(resample_counts(len(y), resamples, seed), y, pred)
    low, high = _percentiles(b_f1.mean(axis=1))
    return {"per_label": per_label_table(probs, labels, thresholds, names, b_f1=b_f1),
            "tuned_interval": [round(float(low), 4), round(float(high), 4)]}
