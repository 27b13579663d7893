"""Results from events on disk: a run's best dev scores, final scores and the leaderboard.

Stdlib only, so views and the supervisor compute the same numbers from the same files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.contract import (DEFAULT_PRIMARY_THRESHOLD, SECONDARY_THRESHOLD, TUNED_DEV_KEY, TUNED_KEY,
                              PipelinePaths, f1_macro_key, f1_micro_key, threshold_key)
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


def run_scores(events: list[dict[str, Any]], primary: float = DEFAULT_PRIMARY_THRESHOLD) -> dict[str, Any] | None:
    """The best dev evaluation by macro-F1 at the primary threshold, as leaderboard numbers."""
    scored = [e for e in dev_evals(events) if _score(e.get("f1_macro"), primary) is not None]
    if not scored:
        return None
    best = max(scored, key=lambda e: _score(e["f1_macro"], primary))
    tuned = best.get("tuned") if isinstance(best.get("tuned"), dict) else {}
    return {
        f1_macro_key(primary): _score(best["f1_macro"], primary),
        f1_macro_key(SECONDARY_THRESHOLD): _score(best.get("f1_macro"), SECONDARY_THRESHOLD),
        f1_micro_key(primary): _score(best.get("f1_micro"), primary),
        TUNED_DEV_KEY: tuned.get("f1_macro"),
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
    return out


def read_run_events(pipeline_dir: Path, run_id: str) -> list[dict[str, Any]]:
    return read_events(PipelinePaths(pipeline_dir).run(run_id).events)


def leaderboard(rows: list[dict[str, Any]], primary: float, baseline: float | None, target: float,
                reference: float) -> list[dict[str, Any]]:
    """Rows sorted by dev macro-F1 at the primary threshold (runs without a score last)."""
    key = f1_macro_key(primary)
    out = []
    for row in rows:
        value = row.get(key)
        row = dict(row)
        row["delta_vs_baseline"] = None if value is None or baseline is None else value - baseline
        row["delta_vs_reference"] = None if value is None else value - reference
        row["meets_target"] = value is not None and value >= target
        out.append(row)
    return sorted(out, key=lambda r: (r.get(key) is None, -(r.get(key) or 0.0), r["run"]))
