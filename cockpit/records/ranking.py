"""The one ranking rule: the score `select_by` chooses, then the other one, a score without the chosen number
last. The trainer's best checkpoint (`trainer.contract.selection_scores`), each run's best eval, the
leaderboard of summary.json and the TUI's live leaderboard all rank by it."""

from __future__ import annotations

from typing import Iterable

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
