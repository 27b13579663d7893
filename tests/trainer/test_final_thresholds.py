"""The final thresholds (issue 19): tuned once on dev, or bagged over bootstrap resamples of dev's rows."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.config import validate_config
from trainer.metrics import final_thresholds, tune_thresholds


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random((300, 5)) < np.array([0.3, 0.1, 0.05, 0.02, 0.2])
    return np.clip(rng.random((300, 5)) * 0.6 + 0.35 * y, 0, 1), y


def test_without_bagging_they_are_the_tuned_thresholds() -> None:
    probs, y = _data()
    assert np.array_equal(final_thresholds(probs, y, 0.2), tune_thresholds(probs, y, default=0.2))


def test_bagged_thresholds_are_the_mean_over_the_same_resamples_by_hand() -> None:
    probs, y = _data(1)
    rng = np.random.default_rng(7)
    by_hand = []
    for _ in range(12):
        rows = rng.integers(0, 300, 300)
        by_hand.append(tune_thresholds(probs[rows], y[rows], default=0.2))
    assert np.allclose(final_thresholds(probs, y, 0.2, bagging=12, seed=7), np.mean(by_hand, axis=0))
    assert np.array_equal(final_thresholds(probs, y, 0.2, 12, 7), final_thresholds(probs, y, 0.2, 12, 7))


def test_the_run_key_is_checked() -> None:
    assert validate_config({"threshold_bagging": 30}, "t").threshold_bagging == 30
    with pytest.raises(Exception, match="threshold_bagging"):
        validate_config({"threshold_bagging": -1}, "t")
