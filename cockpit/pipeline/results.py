"""Results from events on disk: a run's best dev scores, final scores and the leaderboard.

Stdlib only, so views and the supervisor compute the same numbers from the same files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.contract import (DEFAULT_PRIMARY_THRESHOLD, DEFAULT_SELECT_BY, SECONDARY_THRESHOLD, TUNED_CV_KEY,
                              TUNED_DEV_KEY, TUNED_KEY, PipelinePaths, f1_macro_key, f1_micro_key, selection_key,
                              selection_scores, threshold_key)
from trainer.events import read_events


def eval_source(event: dict[str, Any]) -> str | None:
    """The extra data source an eval event scored on that source's own dev split, or None for the run's own
    evaluation (events of older trainers carry no ``source``)."""
    source = event.get("source")
    return str(source) if source else None


def is_run_eval(event: dict[str, Any]) -> bool:
    """An eval of the run itself. A per-source eval scores only that source's observed labels, so it is never
    a point on the run's curves, a candidate for its best score, nor a number of the leaderboard or report."""
    return event.get("type") == "eval" and eval_source(event) is None


def dev_evals(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Periodic dev evaluations of a run (not the final export's, not the per-source ones)."""
    return [e for e in events if is_run_eval(e) and e.get("split") == "dev" and not e.get("final")]


def final_evals(events: list[dict[str, Any]], split: str) -> list[dict[str, Any]]:
    """The final export's evaluations of the run on one split (dev or test)."""
    return [e for e in events if is_run_eval(e) and e.get("final") and e.get("split") == split]


def _score(block: Any, threshold: float) -> float | None:
    value = block.get(threshold_key(threshold)) if isinstance(block, dict) else None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _selection(event: dict[str, Any], primary: float, select_by: str) -> tuple[float, float] | None:
    """(value, tie-break) of a dev eval under select_by, as the trainer ranks its checkpoints; None when
    the eval lacks the chosen score (an older trainer's eval has no tuned_cv)."""
    value, tie = selection_scores(select_by, _score(event.get("f1_macro"), primary), _number(event.get("tuned_cv")))
    if value is None:
        return None
    return value, tie if tie is not None else float("-inf")


def run_scores(events: list[dict[str, Any]], primary: float = DEFAULT_PRIMARY_THRESHOLD,
               select_by: str = DEFAULT_SELECT_BY) -> dict[str, Any] | None:
    """The best dev evaluation under select_by (ties: the other score, then the earlier step), as
    leaderboard numbers."""
    scored = [(sel, e) for e in dev_evals(events) if (sel := _selection(e, primary, select_by)) is not None]
    if not scored:
        return None
    best = max(scored, key=lambda pair: pair[0])[1]  # max keeps the first of equals: the earlier step
    tuned = best.get("tuned") if isinstance(best.get("tuned"), dict) else {}
    return {
        f1_macro_key(primary): _score(best["f1_macro"], primary),
        f1_macro_key(SECONDARY_THRESHOLD): _score(best.get("f1_macro"), SECONDARY_THRESHOLD),
        f1_micro_key(primary): _score(best.get("f1_micro"), primary),
        TUNED_DEV_KEY: tuned.get("f1_macro"),
        TUNED_CV_KEY: _number(best.get("tuned_cv")),
        "best_step": best.get("step"),
        "epoch": best.get("epoch"),
    }


def final_scores(events: list[dict[str, Any]], primary: float = DEFAULT_PRIMARY_THRESHOLD) -> dict[str, dict[str, Any]]:
    """dev and test numbers of the final export (eval events marked final)."""
    out = {}
    for e in events:
        if is_run_eval(e) and e.get("final"):
            tuned = e.get("tuned") if isinstance(e.get("tuned"), dict) else {}
            out[e["split"]] = {
                f1_macro_key(primary): _score(e.get("f1_macro"), primary),
                f1_macro_key(SECONDARY_THRESHOLD): _score(e.get("f1_macro"), SECONDARY_THRESHOLD),
                TUNED_KEY: tuned.get("f1_macro"),
                f1_micro_key(primary): _score(e.get("f1_micro"), primary),
                "step": e.get("step"),
            }
            if _number(e.get("tuned_cv")) is not None:
                out[e["split"]][TUNED_CV_KEY] = _number(e.get("tuned_cv"))
    return out


def read_run_events(pipeline_dir: Path, run_id: str) -> list[dict[str, Any]]:
    return read_events(PipelinePaths(pipeline_dir).run(run_id).events)


def leaderboard(rows: list[dict[str, Any]], primary: float, baseline: float | None, target: float,
                reference: float, select_by: str = DEFAULT_SELECT_BY) -> list[dict[str, Any]]:
    """Rows sorted by the select_by key, best first (runs without that score last); the baseline delta
    and the target stay on macro-F1 at the primary threshold, the methodology's numbers."""
    key, rank = f1_macro_key(primary), selection_key(select_by, primary)
    out = []
    for row in rows:
        value = row.get(key)
        row = dict(row)
        row["delta_vs_baseline"] = None if value is None or baseline is None else value - baseline
        row["delta_vs_reference"] = None if value is None else value - reference
        row["meets_target"] = value is not None and value >= target
        out.append(row)
    return sorted(out, key=lambda r: (r.get(rank) is None, -(r.get(rank) or 0.0), -(r.get(key) or 0.0), r["run"]))
