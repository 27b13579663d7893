"""Results from events on disk: a run's best dev scores, the leaderboard and summary.json.

Stdlib only, so views and the supervisor compute the same numbers from the same files.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from trainer.events import read_events, threshold_key


def dev_evals(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Periodic dev evaluations of a run (not the final export's)."""
    return [e for e in events if e.get("type") == "eval" and e.get("split") == "dev" and not e.get("final")]


def run_scores(events: list[dict[str, Any]], primary: float = 0.2) -> dict[str, Any] | None:
    """The best dev evaluation by macro-F1 at the primary threshold, as leaderboard numbers."""
    evals = dev_evals(events)
    key = threshold_key(primary)
    scored = [e for e in evals if (e.get("f1_macro") or {}).get(key) is not None]
    if not scored:
        return None
    best = max(scored, key=lambda e: e["f1_macro"][key])
    tuned = best.get("tuned") or {}
    return {
        f"f1_macro@{key}": best["f1_macro"][key],
        "f1_macro@0.5": (best.get("f1_macro") or {}).get("0.5"),
        f"f1_micro@{key}": (best.get("f1_micro") or {}).get(key),
        "tuned_f1_macro": tuned.get("f1_macro"),
        "best_step": best.get("step"),
        "epoch": best.get("epoch"),
    }


def final_scores(events: list[dict[str, Any]], primary: float = 0.2) -> dict[str, dict[str, Any]]:
    """dev and test numbers of the final export (eval events marked final)."""
    key = threshold_key(primary)
    out = {}
    for e in events:
        if e.get("type") == "eval" and e.get("final"):
            out[e["split"]] = {
                f"f1_macro@{key}": e["f1_macro"].get(key), "f1_macro@0.5": e["f1_macro"].get("0.5"),
                "f1_macro_tuned": (e.get("tuned") or {}).get("f1_macro"), f"f1_micro@{key}": e["f1_micro"].get(key),
                "step": e.get("step"),
            }
    return out


def read_run_events(pipeline_dir: Path, run_id: str) -> list[dict[str, Any]]:
    return read_events(pipeline_dir / run_id / "events.jsonl")


def leaderboard(rows: list[dict[str, Any]], primary: float, baseline: float | None, target: float,
                reference: float) -> list[dict[str, Any]]:
    """Rows sorted by dev macro-F1 at the primary threshold (runs without a score last)."""
    key = f"f1_macro@{threshold_key(primary)}"
    out = []
    for row in rows:
        value = row.get(key)
        row = dict(row)
        row["delta_vs_baseline"] = None if value is None or baseline is None else value - baseline
        row["delta_vs_reference"] = None if value is None else value - reference
        row["meets_target"] = value is not None and value >= target
        out.append(row)
    return sorted(out, key=lambda r: (r.get(key) is None, -(r.get(key) or 0.0), r["run"]))


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so readers see the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, allow_nan=False)
        fh.write("\n")
    os.replace(tmp, path)
