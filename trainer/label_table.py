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


def per_label_table(probs: np.ndarray, labels: np.ndarray, thresholds: np.ndarray, names: Sequence[str],
                    resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> list[dict[str, Any]]:
    """One row per label: {label, threshold, precision, recall, f1, support, f1_low, f1_high}."""
    y = np.asarray(labels).astype(bool)
    pred = np.asarray(probs) >= np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (y.shape[1],))[None, :]
    tp, npred, true = (y & pred).sum(0), pred.sum(0), y.sum(0)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(y), np.full(len(y), 1.0 / len(y)), size=resamples).astype(np.float64)
    b_tp, b_pred, b_true = counts @ (y & pred), counts @ pred, counts @ y
    den = b_true + b_pred
    b_f1 = np.divide(2.0 * b_tp, den, out=np.zeros_like(den), where=den > 0)
    tail = (1.0 - INTERVAL) / 2 * 100
    low, high = np.percentile(b_f1, [tail, 100 - tail], axis=0)
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
    the tuned thresholds (``tuned_interval``: [low, high]; the same resamples as the per-label intervals)."""
    y = np.asarray(labels).astype(bool)
    pred = np.asarray(probs) >= np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (y.shape[1],))[None, :]
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(y), np.full(len(y), 1.0 / len(y)), size=resamples).astype(np.float64)
    b_tp, b_pred, b_true = counts @ (y & pred), counts @ pred, counts @ y
    den = b_true + b_pred
    macro = np.divide(2.0 * b_tp, den, out=np.zeros_like(den), where=den > 0).mean(axis=1)
    tail = (1.0 - INTERVAL) / 2 * 100
    low, high = np.percentile(macro, [tail, 100 - tail])
    return {"per_label": per_label_table(probs, labels, thresholds, names, resamples, seed),
            "tuned_interval": [round(float(low), 4), round(float(high), 4)]}
