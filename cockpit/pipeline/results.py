"""Results from events on disk: a run's best dev scores, final scores and the leaderboard of summary.json.

Stdlib only; evals are read through the records layer (`cockpit.records`), as the views read them, so the
supervisor and the views compute the same numbers from the same files.
"""

from __future__ import annotations

from typing import Any

from cockpit.records import RunHistory, best_eval, selection_place
from trainer.contract import (DEFAULT_PRIMARY_THRESHOLD, DEFAULT_SELECT_BY, SECONDARY_THRESHOLD, TUNED_CV_KEY,
                              TUNED_DEV_KEY, TUNED_INTERVAL_KEY, TUNED_KEY, f1_macro_key, f1_micro_key)


def run_scores(history: RunHistory, primary: float = DEFAULT_PRIMARY_THRESHOLD,
               select_by: str = DEFAULT_SELECT_BY) -> dict[str, Any] | None:
    """The best dev evaluation under select_by (the records' ranking rule; on a tie the earlier step), as
    leaderboard numbers."""
    best = best_eval(history.dev_evals(), primary, select_by)
    if best is None:
        return None
    return {
        f1_macro_key(primary): best.f1(primary),
        f1_macro_key(SECONDARY_THRESHOLD): best.f1(SECONDARY_THRESHOLD),
        f1_micro_key(primary): best.micro_f1(primary),
        TUNED_DEV_KEY: best.tuned,
        TUNED_CV_KEY: best.tuned_cv,
        "tuned_cv_sd": best.tuned_cv_sd,  # over the trainer's split seeds: tuned_cv's own noise
        "best_step": best.step,
        "epoch": best.epoch,
        # is it learning at all (trainer/diagnostics.py): the best eval's macro ROC-AUC
        "auc_macro": best.learning.auc_macro if best.learning else None,
        # the kept checkpoint against the next best eval, paired over the dev rows (run_end's best_margin)
        "best_margin": _margin(history),
    }


def _margin(history: RunHistory) -> dict[str, Any] | None:
    end = history.last_end()
    margin = end.margin if end is not None else None
    return None if margin is None else {"runner_up_step": margin.runner_up_step, "delta": margin.delta,
                                        "low": margin.low, "high": margin.high, "tied": margin.tied}


def final_scores(history: RunHistory, primary: float = DEFAULT_PRIMARY_THRESHOLD) -> dict[str, dict[str, Any]]:
    """dev and test numbers of the final export (eval events marked final)."""
    out = {}
    for record in history.final_evals():
        out[record.split] = {
            f1_macro_key(primary): record.f1(primary),
            f1_macro_key(SECONDARY_THRESHOLD): record.f1(SECONDARY_THRESHOLD),
            TUNED_KEY: record.tuned,
            f1_micro_key(primary): record.micro_f1(primary),
            "step": record.step,
        }
        if record.tuned_cv is not None:
            out[record.split][TUNED_CV_KEY] = record.tuned_cv
        if record.tuned_interval is not None:
            out[record.split][TUNED_INTERVAL_KEY] = list(record.tuned_interval)
    return out


def leaderboard(rows: list[dict[str, Any]], primary: float, baseline: float | None, target: float,
                reference: float, select_by: str = DEFAULT_SELECT_BY) -> list[dict[str, Any]]:
    """Rows sorted by the selection rule, best first (runs without the select_by score last; ties by calibration,
    then the simpler loss, then run id: `cockpit.records.selection_place`); the baseline delta
    and the target stay on macro-F1 at the primary threshold, the methodology's numbers."""
    key = f1_macro_key(primary)
    out = []
    for row in rows:
        value = row.get(key)
        row = dict(row)
        row["delta_vs_baseline"] = None if value is None or baseline is None else value - baseline
        row["delta_vs_reference"] = None if value is None else value - reference
        row["meets_target"] = value is not None and value >= target
        out.append(row)
    return sorted(out, key=lambda r: (selection_place(select_by, r.get(key), r.get(TUNED_CV_KEY), r.get(TUNED_DEV_KEY),
                                                      r.get("loss")), r["run"]))
