"""What an export folder holds beside the weights: the dev and test probabilities and labels
(``PROBS_FILES``, in the contract's order) and ``thresholds.json``. One writer for a run's own export,
an ensemble's, and each ensemble member's, so the three folders cannot drift apart; and the readers of
what goemo-predict needs from them besides the weights: ``max_length``, ``goemo_model.json`` and an
ensemble's member folders and averaging rule. Torch-free, so goemo-predict's ONNX backends start without torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from trainer.config import ConfigError, validate_config
from trainer.contract import (DEFAULT_ENSEMBLE_RULE, ENSEMBLE_FILE, ENSEMBLE_RULES, MEMBERS_DIR, MODEL_META_FILE,
                              PROBS_FILES, THRESHOLDS_FILE, is_run_id)
from trainer.durable import write_json_atomic
from trainer.file_reads import read_json
from trainer.metrics import DEFAULT_GRID
from trainer.model_source import ModelError

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
                     max_length: int, file: str = THRESHOLDS_FILE, **extra: Any) -> None:
    """thresholds.json: per-label thresholds tuned on dev, the grid they came from, the default for a label
    the tuning left alone, ``max_length`` (the tokens per text the probabilities were computed on, so
    goemo-predict tokenises as the tuning did), and ``extra`` (the best step, or an ensemble's members).
    ``file`` names another thresholds file of the same shape (a backend's own)."""
    write_json_atomic(folder / file, {
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


POOLINGS = ("head", "mean")
_SPEC_SHAPE = '{"pooling": "head" or "mean", "labels": [label names]}'


def read_export_spec(model_dir: Path) -> dict[str, Any]:
    """goemo_model.json of an exported folder, validated; ModelError (one line naming the file) if not."""
    path = model_dir / MODEL_META_FILE
    shape = f"a JSON object {_SPEC_SHAPE} as goemo-train exports it"
    expected = f"expected {shape}"
    if not path.exists():
        raise ModelError(f"{path}: file not found (expected a model folder exported by goemo-train)")
    spec = read_json(path, shape, ModelError)
    if not isinstance(spec, dict):
        raise ModelError(f"{path}: found {type(spec).__name__}, {expected}")
    if spec.get("pooling") not in POOLINGS:
        raise ModelError(f"{path}: 'pooling' is {spec.get('pooling')!r}; expected 'head' or 'mean'")
    labels = spec.get("labels")
    if not (isinstance(labels, list) and labels and all(isinstance(n, str) and n for n in labels)):
        raise ModelError(f"{path}: 'labels' must be a non-empty list of label names (got {_short(labels)})")
    if len(set(labels)) != len(labels):
        raise ModelError(f"{path}: 'labels' names a label twice; expected each label once")
    files = spec.get("tokenizer_files")  # absent in folders exported before it was recorded
    if files is not None and not (isinstance(files, list) and files and all(
            isinstance(f, str) and f and Path(f).name == f for f in files)):
        raise ModelError(f"{path}: 'tokenizer_files' must be a non-empty list of file names (got {_short(files)})")
    return spec


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class EnsembleError(ValueError):
    """Members that cannot be averaged (one line naming the run folder and the key)."""


def member_dirs(model_dir: Path, ensemble: dict[str, Any]) -> list[Path]:
    """The member model folders an ensemble.json names, in its order; a name that is not a run id (``../..``)
    is refused, so the file cannot point goemo-predict at a folder outside ``members/``."""
    path = model_dir / ENSEMBLE_FILE
    members = ensemble.get("members")
    if not isinstance(members, list) or not members or not all(
            isinstance(m, dict) and isinstance(m.get("run"), str) and m["run"] for m in members):
        raise EnsembleError(f"{path}: expected a non-empty 'members' list of objects with 'run'")
    bad = next((m["run"] for m in members if not is_run_id(m["run"])), None)
    if bad is not None:
        raise EnsembleError(f"{path}: member 'run' {bad!r} is not a run id (expected the name of a folder under "
                            f"{MEMBERS_DIR}/: letters, digits, '.', '_' and '-', starting with a letter or digit)")
    return [model_dir / MEMBERS_DIR / m["run"] for m in members]


def ensemble_rule(model_dir: Path, ensemble: dict[str, Any]) -> str:
    """How the members of an ensemble.json are averaged: its ``ensemble_rule``, or ``mean_prob`` for a file written
    before the key (those ensembles averaged probabilities); an unknown rule is refused in one line."""
    rule = ensemble.get("ensemble_rule", DEFAULT_ENSEMBLE_RULE)
    if not isinstance(rule, str) or rule not in ENSEMBLE_RULES:
        raise EnsembleError(f"{model_dir / ENSEMBLE_FILE}: 'ensemble_rule' is {rule!r}; expected one of "
                            f"{', '.join(ENSEMBLE_RULES)}")
    return rule
