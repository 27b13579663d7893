"""What an export folder holds beside the weights: the dev and test probabilities and labels
(``PROBS_FILES``, in the contract's order) and ``thresholds.json``. One writer for a run's own export,
an ensemble's, and each ensemble member's, so the three folders cannot drift apart; and the reader of
what goemo-predict needs from them besides the thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from trainer.config import ConfigError, validate_config
from trainer.contract import PROBS_FILES, THRESHOLDS_FILE
from trainer.durable import write_json_atomic
from trainer.file_reads import read_json
from trainer.metrics import DEFAULT_GRID

# tune_thresholds' grid as thresholds.json records it: [first, last, step]
THRESHOLD_GRID = [float(DEFAULT_GRID[0]), float(DEFAULT_GRID[-1]), round(float(DEFAULT_GRID[1] - DEFAULT_GRID[0]), 4)]
# The tokens per text of an export whose thresholds.json predates 'max_length': what goemo-predict always used.
LEGACY_MAX_LENGTH = 128


def save_probs(folder: Path, dev_probs: np.ndarray, test_probs: np.ndarray, dev_labels: np.ndarray,
               test_labels: np.ndarray) -> None:
    """The probabilities (float32) and 0/1 labels (uint8) of dev and test, one .npy each."""
    for name, array in zip(PROBS_FILES, (dev_probs, test_probs, dev_labels.astype(np.uint8),
                                         test_labels.astype(np.uint8))):
        np.save(folder / name, array)


def write_thresholds(folder: Path, names: Sequence[str], thresholds: np.ndarray, primary: float, *,
                     max_length: int, **extra: Any) -> None:
    """thresholds.json: per-label thresholds tuned on dev, the grid they came from, the default for a label
    the tuning left alone, ``max_length`` (the tokens per text the probabilities were computed on, so
    goemo-predict tokenises as the tuning did), and ``extra`` (the best step, or an ensemble's members)."""
    write_json_atomic(folder / THRESHOLDS_FILE, {
        "labels": list(names), "thresholds": [float(t) for t in thresholds], "tuned_on": "dev",
        "grid": THRESHOLD_GRID, "default": primary, "max_length": int(max_length), **extra})


def read_max_length(folder: Path) -> int:
    """The ``max_length`` an export's thresholds.json records (LEGACY_MAX_LENGTH when it predates the key);
    ValueError, one line naming the file, when the file is unreadable or the value is not a valid max_length."""
    path = folder / THRESHOLDS_FILE
    data = read_json(path, "the tuned thresholds of an exported model")
    if not isinstance(data, dict) or "max_length" not in data:
        return LEGACY_MAX_LENGTH  # an older export, or a malformed file that the thresholds' reader names
    value = data["max_length"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{path}: key 'max_length' is {value!r}; expected a whole number of tokens")
    try:  # the run config's own bounds for max_length, so the two cannot disagree
        return validate_config({"max_length": value}, str(path)).max_length
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
