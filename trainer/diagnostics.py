"""Is a run learning at all? Cheap figures from the dev probabilities every eval already has in hand.

A run stuck on the label prior looks healthy to every other badge: its loss falls (to the prior's entropy),
its gradients are fine and its steps flow. Three figures tell it apart, none needing a threshold that
calibration could move:

- ``auc_macro``: the mean over labels (those with positives and negatives in dev) of ROC-AUC, the chance
  that a positive row outranks a negative one. 0.5 is chance; it ignores calibration, so ASL's high
  negative probabilities do not lower it.
- ``labels_predicted``: labels predicted positive for at least one dev row at the primary threshold. A
  prior-stuck model predicts the frequent label (``neutral``) only.
- ``prior_gap``: the mean over labels and rows of |p − the label's training prior|. A model that predicts
  the prior for every row has a gap near 0, whatever its loss.

ROC-AUC is scipy's Mann–Whitney statistic (``scipy.stats.mannwhitneyu`` would compute a p-value we do not
need per label): the mean rank of the positives, ties ranked by their average (``scipy.stats.rankdata``).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def macro_auc(probs: np.ndarray, labels: np.ndarray) -> float | None:
    """Mean ROC-AUC over the labels that have both positive and negative rows; None when none has."""
    y = labels.astype(bool)
    ranks = rankdata(probs, axis=0)  # average ranks for ties, per label (column)
    pos = y.sum(axis=0)
    neg = len(y) - pos
    usable = (pos > 0) & (neg > 0)
    if not usable.any():
        return None
    rank_sum = np.where(y, ranks, 0.0).sum(axis=0)
    auc = (rank_sum - pos * (pos + 1) / 2.0) / np.where(usable, pos * neg, 1)
    return float(auc[usable].mean())


def learning_figures(probs: np.ndarray, labels: np.ndarray, prior: np.ndarray,
                     threshold: float) -> dict[str, float | int | None]:
    """The figures an eval event carries under ``learning``; see the module docstring."""
    return {
        "auc_macro": _rounded(macro_auc(probs, labels)),
        "labels_predicted": int((probs >= threshold).any(axis=0).sum()),
        "labels": int(probs.shape[1]),
        "prior_gap": _rounded(float(np.abs(probs - prior[None, :]).mean())),
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 5)
