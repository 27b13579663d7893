"""Is a difference between two runs real? A paired bootstrap of dev macro-F1 over the dev rows both runs scored.

Both runs' best checkpoints keep their dev probabilities (checkpoints/best/dev_probs.npy and the labels), so
the same resampled rows score both models: the run-to-run noise of which rows dev happens to hold cancels, and
what is left is the models' difference. A 95 % interval of Δ that contains 0 marks the two as tied (≈).

Each resample is drawn as row counts (a multinomial over rows; `trainer.label_table`, numpy only, shared with
the final per-label table), so one resample is a few matrix products over the whole split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from trainer.contract import BEST, CHECKPOINTS_DIR, PROBS_FILES
from trainer.label_table import INTERVAL, resample_counts, resampled_f1
# The run-to-run bootstrap is the trainer's (its best checkpoint against its closest rival uses it too).
from trainer.paired import RESAMPLES, PairedDelta, paired_bootstrap

__all__ = ["INTERVAL", "PairedDelta", "against_leader", "best_dev_probs", "compare_runs", "paired_bootstrap",
           "pooled_bootstrap"]


def pooled_bootstrap(labels: np.ndarray, probs_a: list[np.ndarray], probs_b: list[np.ndarray], threshold: float,
                     resamples: int = RESAMPLES, seed: int = 0) -> PairedDelta:
    """Δ of the mean macro-F1 over b's seeds against the mean over a's, every seed scored on the same rows.

    Each draw resamples the rows (one multinomial, shared by every model: the pairing) and, within each group,
    the seeds (with replacement): the interval holds the row noise and the seed noise. One seed a side is
    `paired_bootstrap` exactly (the same row draws; drawing one seed out of one changes nothing)."""
    y = np.asarray(labels).astype(bool)
    preds = [[np.asarray(p) >= threshold for p in side] for side in (probs_a, probs_b)]
    if any(p.shape != y.shape for side in preds for p in side):
        raise ValueError(f"probabilities do not match the labels {y.shape}")
    whole = np.ones((1, len(y)))
    point = [float(np.mean([resampled_f1(whole, y, p).mean() for p in side])) for side in preds]
    counts = resample_counts(len(y), resamples, seed)
    rng = np.random.default_rng([seed, 1])
    means = []
    for side in preds:
        per_seed = np.stack([resampled_f1(counts, y, p).mean(axis=1) for p in side])  # [seeds, resamples]
        picks = rng.integers(0, len(side), size=(resamples, len(side)))  # each draw's seeds
        means.append(per_seed[picks, np.arange(resamples)[:, None]].mean(axis=1))
    deltas = means[1] - means[0]
    tail = (1.0 - INTERVAL) / 2 * 100
    low, high = np.percentile(deltas, [tail, 100 - tail])
    return PairedDelta(point[1] - point[0], float(low), float(high))


def best_dev_probs(run_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """A run's dev probabilities and labels at its best checkpoint, or None (an older trainer, no eval yet, an
    unreadable file)."""
    best = run_dir / CHECKPOINTS_DIR / BEST
    try:
        return np.load(best / PROBS_FILES[0]), np.load(best / PROBS_FILES[2]).astype(bool)
    except (OSError, ValueError):
        return None


def compare_runs(run_a: Path, run_b: Path, threshold: float) -> PairedDelta | None:
    """b against a, paired over the dev rows both scored; None when either lacks its probabilities or the two
    did not score the same rows (different dev subsets cannot be paired)."""
    a, b = best_dev_probs(run_a), best_dev_probs(run_b)
    if a is None or b is None or a[1].shape != b[1].shape or not np.array_equal(a[1], b[1]):
        return None
    return paired_bootstrap(a[1], a[0], b[0], threshold)


def against_leader(rows: list[dict], run_dir: Callable[[str], Path], threshold: float) -> list[dict]:
    """Leaderboard rows (best first) with ``vs_leader``: each run's paired Δ dev macro-F1 at ``threshold`` against
    the first row's run, {"delta", "low", "high", "tied"}; None for the leader itself and for runs that cannot
    be paired (no probabilities, another dev subset)."""
    if not rows:
        return rows
    leader = run_dir(str(rows[0]["run"]))
    out = [{**rows[0], "vs_leader": None}]
    for row in rows[1:]:
        paired = compare_runs(leader, run_dir(str(row["run"])), threshold)
        out.append({**row, "vs_leader": None if paired is None else paired.as_dict()})
    return out
