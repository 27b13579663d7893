"""Configs over seeds: a preset's ``seeds = k`` runs each config k times, and the leaderboard ranks configs, not runs.

A **seed group** is the runs of one config in one phase. Its row holds the selection score's mean over the
seeds that finished, their standard deviation, n (and how many were planned), and a 95 % t-interval of the mean
(scipy's t quantile: with n = 3 it is ±2.48 sd, which is honest about how little three seeds say).

**Against the leader** each group gets a paired Δ of dev macro-F1 at the primary threshold, pooled over its
seeds: every seed of every config scored the same dev rows (the pipeline gives a seed group one ``eval_seed``),
so one bootstrap draws rows for all of them, and the seeds are drawn too (with replacement, within each group).
The interval therefore holds both sources of noise a rerun would meet: which rows dev holds, and which seed
trained the model. With one seed per config it is exactly the run-to-run paired bootstrap of `paired.py`.

**The selection rule** (phases 2-4 and the final config; `cockpit.records.selection_place`), in order:
1. the higher mean of the selection score over seeds;
2. on equal means, the config better calibrated at the primary threshold (the smaller gap between its dev
   macro-F1 at the primary threshold and with thresholds tuned per label): it needs its thresholds least;
3. then the simpler loss (bce, then asl, then combined, then anything else);
4. then the config name.
When the runner-up's interval against the leader contains 0 the two are tied and the choice is the rule's,
not the data's; `decision` says which step of the rule decided and how sure the data is.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from cockpit.judgements.paired import INTERVAL, PairedDelta, best_dev_probs, pooled_bootstrap
from cockpit.records import selection_place
from trainer.contract import TUNED_CV_KEY, TUNED_DEV_KEY, f1_macro_key, run_seed, selection_key



@dataclass(frozen=True)
class SeedStats:
    """One score over a group's seeds."""

    n: int
    mean: float
    std: float | None  # sample standard deviation; None for one seed
    low: float | None  # 95 % t-interval of the mean; None for one seed
    high: float | None

    def text(self) -> str:
        """``0.412 ± 0.011 [0.385, 0.439]`` (one seed: ``0.412``)."""
        if self.std is None or self.low is None or self.high is None:
            return f"{self.mean:.3f}"
        return f"{self.mean:.3f} ± {self.std:.3f} [{self.low:.3f}, {self.high:.3f}]"


def seed_stats(values: Sequence[float]) -> SeedStats | None:
    """Mean, standard deviation and the 95 % t-interval of the mean over seeds; None without a value."""
    if not values:
        return None
    n, mean = len(values), statistics.fmean(values)
    if n == 1:
        return SeedStats(1, mean, None, None, None)
    from scipy.stats import t  # imported here: the cockpit view reads these numbers, it never computes them

    std = statistics.stdev(values)
    half = float(t.ppf(0.5 + INTERVAL / 2, n - 1)) * std / math.sqrt(n)
    return SeedStats(n, mean, std, mean - half, mean + half)


def group_rows(board: list[dict[str, Any]], primary: float, select_by: str,
               planned: dict[tuple[int, str], int]) -> list[dict[str, Any]]:
    """summary.json's ``groups``: one row per (phase, config) of the per-run leaderboard, best first by the rule.

    ``planned`` maps a (phase, config) to its planned seeds, so a group whose seeds have not all finished says
    n = 2 of 3. Each group ranks on the seeds it has: its interval
    is wider for it, and ``partial`` marks it."""
    f1, key = f1_macro_key(primary), selection_key(select_by, primary)
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for row in board:
        groups.setdefault((row["phase"], row["config"]), []).append(row)
    out = []
    for (phase, config), rows in groups.items():
        scored = [r for r in rows if r["status"] == "completed" and r.get(key) is not None]
        stats = {name: seed_stats([r[name] for r in scored if r.get(name) is not None])
                 for name in (f1, TUNED_CV_KEY, TUNED_DEV_KEY)}
        out.append({
            "phase": phase, "config": config, "runs": sorted(r["run"] for r in rows),
            "seeds": sorted(s for s in (run_seed(r["run"]) for r in rows) if s is not None),
            "n": len(scored), "planned": planned.get((phase, config), len(rows)),
            "partial": len(scored) < planned.get((phase, config), len(rows)),
            "status": _group_status([r["status"] for r in rows]),
            "selection_key": key,
            **{name: _stats_dict(s) for name, s in stats.items()},
            "calibration_gap": _gap(stats[f1], stats[TUNED_DEV_KEY]),
            "loss": rows[0].get("loss"),
        })
    return sorted(out, key=lambda g: group_place(g, primary, select_by))


def group_place(group: dict[str, Any], primary: float, select_by: str) -> tuple[Any, ...]:
    """The selection rule on the means over seeds as a sort key, lower first (`cockpit.records.selection_place`)."""
    return (*selection_place(select_by, _mean(group, f1_macro_key(primary)), _mean(group, TUNED_CV_KEY),
                             _mean(group, TUNED_DEV_KEY), group.get("loss")), group["config"], group["phase"])


def _stats_dict(stats: SeedStats | None) -> dict[str, Any] | None:
    if stats is None:
        return None
    return {"n": stats.n, "mean": round(stats.mean, 6), "std": None if stats.std is None else round(stats.std, 6),
            "low": None if stats.low is None else round(stats.low, 6),
            "high": None if stats.high is None else round(stats.high, 6)}


def _gap(f1: SeedStats | None, tuned: SeedStats | None) -> float | None:
    return None if f1 is None or tuned is None else round(abs(tuned.mean - f1.mean), 6)


def _group_status(statuses: list[str]) -> str:
    """completed when every seed completed; else the first of running/queued/failed/stopped any seed has."""
    if all(s == "completed" for s in statuses):
        return "completed"
    return next((s for s in ("running", "queued", "failed", "stopped") if s in statuses), statuses[0])


Members = Callable[[dict[str, Any]], list[tuple[np.ndarray, np.ndarray]]]


def group_members(run_dir: Callable[[str], Path]) -> Members:
    """A group's seeds as (dev probabilities, labels) of their best checkpoints, each run's files read once however
    many comparisons use them (against the leader, against the baseline); runs without them are left out."""
    probs: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}

    def members(group: dict[str, Any]) -> list[tuple[np.ndarray, np.ndarray]]:
        for run in group["runs"]:
            if run not in probs:
                probs[run] = best_dev_probs(run_dir(run))
        return [p for p in (probs[r] for r in group["runs"]) if p is not None]

    return members


def pooled_against_leader(groups: list[dict[str, Any]], members: Members, threshold: float) -> list[dict[str, Any]]:
    """Each group of a phase with ``vs_leader``: its pooled paired Δ dev macro-F1 against the phase's first group,
    {"delta", "low", "high", "tied"}; None for each phase's leader and where the rows cannot be paired."""
    leaders: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    out = []
    for group in groups:
        phase = group["phase"]
        if phase not in leaders:
            leaders[phase] = members(group)
            out.append({**group, "vs_leader": None})
            continue
        paired = pooled_delta(leaders[phase], members(group), threshold)
        out.append({**group, "vs_leader": None if paired is None else paired.as_dict()})
    return out


def pooled_against_baseline(groups: list[dict[str, Any]], baseline: tuple[int, str], members: Members,
                            threshold: float) -> list[dict[str, Any]]:
    """Each group with ``vs_baseline``: its pooled paired Δ against the baseline group (phase 1's bce), as
    ``vs_leader``; None for the baseline itself and where the rows cannot be paired."""
    base = next((g for g in groups if (g["phase"], g["config"]) == baseline), None)
    if base is None:
        return [{**g, "vs_baseline": None} for g in groups]
    reference = members(base)
    out = []
    for group in groups:
        paired = None if group is base else pooled_delta(reference, members(group), threshold)
        out.append({**group, "vs_baseline": None if paired is None else paired.as_dict()})
    return out


def pooled_delta(a: list[tuple[np.ndarray, np.ndarray]], b: list[tuple[np.ndarray, np.ndarray]],
                 threshold: float) -> PairedDelta | None:
    """b's seeds against a's, pooled; None without probabilities or where any two scored different rows."""
    if not a or not b:
        return None
    labels = a[0][1]
    if any(p[1].shape != labels.shape or not np.array_equal(p[1], labels) for p in a + b):
        return None
    return pooled_bootstrap(labels, [p[0] for p in a], [p[0] for p in b], threshold)


def decision(groups: list[dict[str, Any]], phase: int, primary: float, select_by: str) -> dict[str, Any] | None:
    """What the rule decided among a phase's groups (which config leads), in words and numbers: the leader, the
    runner-up, their pooled Δ and whether the data can tell them apart, and which step of the rule decided."""
    ranked = [g for g in groups if g["phase"] == phase and g["n"]]
    if not ranked:
        return None
    kept = ranked[0]
    if len(ranked) == 1:
        return {"phase": phase, "kept": kept["config"], "runner_up": None, "vs_leader": None, "tied": None,
                "rule": "the only config with a score", "text": f"`{kept['config']}` was the only config scored."}
    second = ranked[1]
    paired = second.get("vs_leader")
    tied = None if paired is None else bool(paired["tied"])
    rule = _deciding_step(kept, second, primary, select_by)
    name = selection_key(select_by, primary)
    means = f"{_fmt(_mean(kept, name))} vs {_fmt(_mean(second, name))}"
    where = f"phase {phase}: " if phase else ""
    if paired is None:
        verdict = "could not be paired (no dev probabilities on the same rows)"
    else:
        delta = (f"`{second['config']}` − `{kept['config']}`: Δ {paired['delta']:+.3f}, 95% [{paired['low']:+.3f}, "
                 f"{paired['high']:+.3f}]")
        verdict = f"are indistinguishable ({delta})" if tied else f"differ outside the noise ({delta})"
    text = (f"{where}`{kept['config']}` and `{second['config']}` {verdict}; `{kept['config']}` was kept because "
            f"{rule} ({name} mean over {kept['n']} and {second['n']} seed(s): {means}).")
    return {"phase": phase, "kept": kept["config"], "runner_up": second["config"], "vs_leader": paired,
            "tied": tied, "rule": rule, "text": text}


def _mean(group: dict[str, Any], name: str) -> float | None:
    return (group.get(name) or {}).get("mean")


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _deciding_step(kept: dict[str, Any], second: dict[str, Any], primary: float, select_by: str) -> str:
    a, b = group_place(kept, primary, select_by), group_place(second, primary, select_by)
    if a[:3] != b[:3]:  # the ranking rule's three parts
        return "its mean over seeds is higher"
    if a[3] != b[3]:
        return f"its means tie and it is better calibrated at the primary threshold (gap {kept['calibration_gap']})"
    if a[4] != b[4]:
        return "its means and calibration tie and its loss is simpler"
    return "everything else ties and its name comes first"
