"""Selection (issue 10): ranking runs and picking checkpoints by F1 at the primary threshold or by tuned_cv."""

from __future__ import annotations

import numpy as np
import pytest

from cockpit.pipeline.results import leaderboard, run_scores
from cockpit.records import decode_run
from trainer.contract import TUNED_CV_KEY, f1_macro_key, is_better, selection_key, selection_scores
from trainer.metrics import evaluate_probs, tuned_cv

LABELS = [f"l{i}" for i in range(8)]


def _labels(rng: np.random.Generator, n: int) -> np.ndarray:
    y = rng.random((n, len(LABELS))) < 0.12
    y[: len(LABELS), :] |= np.eye(len(LABELS), dtype=bool)  # every label has positives
    return y


def _probs(rng: np.random.Generator, y: np.ndarray, separation: float, shift: float) -> np.ndarray:
    """Logits that separate positives by `separation`, shifted by `shift` (a high shift: calibrated high)."""
    logits = np.where(y, separation / 2, -separation / 2) + rng.normal(0.0, 1.0, y.shape) + shift
    return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def dev_eval(step: int, probs: np.ndarray, y: np.ndarray) -> dict:
    """An eval event as the trainer writes it at a periodic dev evaluation."""
    metrics = evaluate_probs(probs, y, [0.2, 0.5], LABELS, 0.2)
    return {"v": 1, "t": float(step), "type": "eval", "split": "dev", "step": step, "epoch": 1.0, "loss": 0.1,
            "tuned": {"f1_macro": 0.0}, "tuned_cv": tuned_cv(probs, y, seed=42, default=0.2), **metrics}


def _scores(events: list[dict], select_by: str) -> dict | None:
    return run_scores(decode_run(events), 0.2, select_by)


@pytest.fixture(scope="module")
def two_configs() -> dict[str, list[dict]]:
    """'calibrated' is well calibrated at 0.2; 'better' separates the labels better but sits high, so at
    0.2 it predicts almost every label."""
    rng = np.random.default_rng(0)
    y = _labels(rng, 3000)
    calibrated = _probs(rng, y, separation=2.5, shift=-2.0)
    better = _probs(rng, y, separation=4.5, shift=3.0)
    return {"p1-calibrated": [dev_eval(10, calibrated, y)], "p1-better": [dev_eval(10, better, y)]}


def _board(runs: dict[str, list[dict]], select_by: str) -> list[str]:
    rows = [{"run": run, "phase": 1, "config": run[3:], "status": "completed",
             **(_scores(events, select_by) or {})} for run, events in runs.items()]
    return [r["run"] for r in leaderboard(rows, 0.2, None, 0.5, 0.42, select_by)]


def test_tuned_cv_ranks_the_better_model_first_and_f1_at_the_primary_threshold_does_not(two_configs) -> None:
    f1 = {run: events[0]["f1_macro"]["0.2"] for run, events in two_configs.items()}
    cv = {run: events[0]["tuned_cv"] for run, events in two_configs.items()}
    assert f1["p1-calibrated"] > f1["p1-better"] + 0.05  # the fixed threshold punishes the high calibration
    assert cv["p1-better"] > cv["p1-calibrated"] + 0.05  # ... which per-label thresholds undo
    assert _board(two_configs, "f1@primary") == ["p1-calibrated", "p1-better"]
    assert _board(two_configs, "tuned_cv") == ["p1-better", "p1-calibrated"]


def test_run_scores_pick_the_best_checkpoint_by_the_selection_key() -> None:
    def ev(step: int, f1: float, cv: float | None) -> dict:
        event = {"v": 1, "t": float(step), "type": "eval", "split": "dev", "step": step, "epoch": 1.0, "loss": 0.1,
                 "f1_macro": {"0.2": f1}, "f1_micro": {}, "per_class": [], "tuned": None, "tuned_cv": cv}
        return event if cv is not None else {k: v for k, v in event.items() if k != "tuned_cv"}

    events = [ev(100, 0.40, 0.50), ev(200, 0.45, 0.48), ev(300, 0.45, 0.49)]
    assert _scores(events, "f1@primary")["best_step"] == 300  # tie at 0.45: the better tuned_cv wins
    assert _scores(events, "tuned_cv")["best_step"] == 100
    assert _scores(events, "tuned_cv")[TUNED_CV_KEY] == 0.50
    # An eval without tuned_cv (an older trainer) has no tuned_cv score: it is not a candidate under tuned_cv.
    assert _scores([ev(1, 0.3, None)], "tuned_cv") is None


def test_the_trainer_keeps_a_checkpoint_only_when_it_beats_the_best_with_ties_broken_by_the_other_score() -> None:
    assert selection_scores("f1@primary", 0.45, 0.50) == (0.45, 0.50)
    assert selection_scores("tuned_cv", 0.45, 0.50) == (0.50, 0.45)
    best = {"value": 0.45, "tie_break": 0.48, "step": 200}
    assert is_better(0.45, 0.49, best) and not is_better(0.45, 0.48, best) and not is_better(0.44, 0.9, best)
    assert is_better(0.1, 0.0, {"value": None})
    assert is_better(0.45, 0.0, {"value": 0.45, "step": 1})  # a best saved before tie-breaks existed


def test_selection_key_names_the_leaderboard_column() -> None:
    assert selection_key("f1@primary", 0.3) == f1_macro_key(0.3)
    assert selection_key("tuned_cv", 0.3) == TUNED_CV_KEY
    with pytest.raises(ValueError, match="select_by 'f1'"):
        selection_key("f1", 0.2)


def test_the_presets_choices_are_the_contracts() -> None:
    from typing import get_args

    from cockpit.pipeline.presets import PipelineSettings
    from trainer.config import RunConfig
    from trainer.contract import FINAL_MODES, SELECT_BY

    assert get_args(PipelineSettings.model_fields["select_by"].annotation) == SELECT_BY
    assert get_args(RunConfig.model_fields["select_by"].annotation) == SELECT_BY
    assert get_args(PipelineSettings.model_fields["final"].annotation) == FINAL_MODES
