"""The one ranking rule: the score `select_by` chooses, then the other one, a score without the chosen number
last. The trainer's best checkpoint (`trainer.contract.selection_scores`), each run's best eval, the leaderboard
of summary.json and the TUI's live leaderboard all rank by it. Between runs or configs (not checkpoints) that
tie on both, the selection rule goes on: the better calibrated at the primary threshold, then the simpler loss
(`selection_place`)."""

from __future__ import annotations

import math
from typing import Any, Iterable

from cockpit.records.evals import EvalRecord
from trainer.contract import selection_scores


def rank_key(select_by: str, f1_primary: float | None, tuned_cv: float | None) -> tuple[bool, float, float]:
    """How a score ranks, higher is better: (has the chosen score, the chosen score, the other one)."""
    value, tie = selection_scores(select_by, f1_primary, tuned_cv)
    return value is not None, value if value is not None else float("-inf"), tie if tie is not None else float("-inf")


def rank_place(select_by: str, f1_primary: float | None, tuned_cv: float | None) -> tuple[float, float, float]:
    """The same rule as a sort key, lower first (ties are then broken by the caller, e.g. by run id)."""
    has, value, tie = rank_key(select_by, f1_primary, tuned_cv)
    return -float(has), -value, -tie


# Between configs that tie on their scores: the fewer parts and parameters a loss has, the simpler.
LOSS_SIMPLICITY = {"bce": 0, "asl": 1, "combined": 2}


def selection_place(select_by: str, f1_primary: float | None, tuned_cv: float | None, tuned: float | None,
                    loss: str | None) -> tuple[Any, ...]:
    """The selection rule between runs or configs (over seeds: their means) as a sort key, lower first: the
    ranking rule, then the smaller gap between the dev macro-F1 at the primary threshold and with thresholds tuned
    per label (the one that needs its tuned thresholds least), then the simpler loss. Callers break what is left
    by name."""
    gap = abs(tuned - f1_primary) if tuned is not None and f1_primary is not None else math.inf
    return (*rank_place(select_by, f1_primary, tuned_cv), gap, LOSS_SIMPLICITY.get(loss or "", len(LOSS_SIMPLICITY)))


def best_eval(records: Iterable[EvalRecord], primary: float, select_by: str) -> EvalRecord | None:
    """A run's best periodic dev eval: strictly better only, so on a tie the earlier eval stays, as the
    trainer keeps its best checkpoint; None when no eval has the chosen score."""
    best, best_key = None, None
    for record in records:
        if not record.is_periodic_dev:
            continue
        key = rank_key(select_by, record.f1(primary), record.tuned_cv)
        if key[0] and (best_key is None or key > best_key):
            best, best_key = record, key
    return best
