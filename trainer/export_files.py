"""What an export folder holds beside the weights: the dev and test probabilities and labels
(``PROBS_FILES``, in the contract's order) and ``thresholds.json``. One writer for a run's own export,
an ensemble's, and each ensemble member's, so the three folders cannot drift apart."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from trainer.contract import PROBS_FILES, THRESHOLDS_FILE, write_json_atomic
from trainer.metrics import DEFAULT_GRID

# tune_thresholds' grid as thresholds.json records it: [first, last, step]
THRESHOLD_GRID = [float(DEFAULT_GRID[0]), float(DEFAULT_GRID[-1]), round(float(DEFAULT_GRID[1] - DEFAULT_GRID[0]), 4)]


def save_probs(folder: Path, dev_probs: np.ndarray, test_probs: np.ndarray, dev_labels: np.ndarray,
               test_labels: np.ndarray) -> None:
    """The probabilities (float32) and 0/1 labels (uint8) of dev and test, one .npy each."""
    for name, array in zip(PROBS_FILES, (dev_probs, test_probs, dev_labels.astype(np.uint8),
                                         test_labels.astype(np.uint8))):
        np.save(folder / name, array)


def write_thresholds(folder: Path, names: Sequence[str], thresholds: np.ndarray, primary: float,
                     **extra: Any) -> None:
    """thresholds.json: per-label thresholds tuned on dev, the grid they came from, the default for a label
    the tuning left alone, and ``extra`` (the best step, or an ensemble's members)."""
    write_json_atomic(folder / THRESHOLDS_FILE, {
        "labels": list(names), "thresholds": [float(t) for t in thresholds], "tuned_on": "dev",
        "grid": THRESHOLD_GRID, "default": primary, **extra})
