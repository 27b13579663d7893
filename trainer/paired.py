"""Is a difference between two models real? A paired bootstrap of macro-F1 over the rows both scored (numpy only).

The same resampled rows score both models, so the noise of which rows the split happens to hold cancels, and
what is left is the models' difference; a 95 % interval of Δ that contains 0 marks the two as tied (≈). The
pipeline compares runs with it (cockpit/judgements/paired.py, seeds.py) and the trainer its best checkpoint
with that checkpoint's closest rival (`CheckpointRival`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trainer.label_table import BOOTSTRAP_RESAMPLES, INTERVAL, resample_counts, resampled_f1

RESAMPLES = BOOTSTRAP_RESAMPLES


@dataclass(frozen=True)
class PairedDelta:
    """macro-F1(b) − macro-F1(a) on the same rows, with its bootstrap interval."""

    delta: float
    low: float
    high: float

    @property
    def tied(self) -> bool:
        """The interval contains 0: this split cannot tell the two apart."""
        return self.low <= 0.0 <= self.high

    def text(self) -> str:
        """``+0.012 [+0.004, +0.021]``."""
        return f"{self.delta:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"

    def as_dict(self) -> dict[str, Any]:
        """summary.json's and run_end's form: {"delta", "low", "high", "tied"}."""
        return {"delta": round(self.delta, 5), "low": round(self.low, 5), "high": round(self.high, 5),
                "tied": self.tied}


def paired_bootstrap(labels: np.ndarray, probs_a: np.ndarray, probs_b: np.ndarray, threshold: float,
                     resamples: int = RESAMPLES, seed: int = 0) -> PairedDelta:
    """Δ macro-F1 at ``threshold`` of b over a on the same rows, and its 95 % percentile interval."""
    y = np.asarray(labels).astype(bool)
    pa, pb = np.asarray(probs_a) >= threshold, np.asarray(probs_b) >= threshold
    if pa.shape != y.shape or pb.shape != y.shape:
        raise ValueError(f"probabilities {pa.shape} and {pb.shape} do not match the labels {y.shape}")
    whole = np.ones((1, len(y)))
    delta = float((resampled_f1(whole, y, pb).mean(axis=1) - resampled_f1(whole, y, pa).mean(axis=1))[0])
    counts = resample_counts(len(y), resamples, seed)
    deltas = resampled_f1(counts, y, pb).mean(axis=1) - resampled_f1(counts, y, pa).mean(axis=1)
    tail = (1.0 - INTERVAL) / 2 * 100
    low, high = np.percentile(deltas, [tail, 100 - tail])
    return PairedDelta(delta, float(low), float(high))


class CheckpointRival:
    """The best checkpoint's closest rival among a run's other dev evals, so run_end can say whether the kept
    checkpoint is better than the next best outside the noise (``best_margin``).

    It holds the probabilities of two evals (the best and the best of the rest), a few MB at most. What it has
    seen since the trainer last started: after a resume the rival is the best of the evals since then."""

    def __init__(self) -> None:
        self.best: tuple[int, float, np.ndarray] | None = None  # step, score, probabilities
        self.rival: tuple[int, float, np.ndarray] | None = None
        self.labels: np.ndarray | None = None  # the dev rows every eval of the run scores

    def observe(self, step: int, score: float | None, probs: np.ndarray, labels: np.ndarray, new_best: bool) -> None:
        if score is None:
            return
        self.labels = labels
        entry = (step, score, np.asarray(probs, dtype=np.float32))
        if new_best:
            if self.best is not None and (self.rival is None or self.best[1] >= self.rival[1]):
                self.rival = self.best
            self.best = entry
        elif self.rival is None or score > self.rival[1]:
            self.rival = entry

    def margin(self, threshold: float) -> dict[str, Any] | None:
        """The rival against the best, paired over the dev rows ({"runner_up_step", "delta", "low", "high",
        "tied"}; Δ is the rival's minus the best's); None without two evals."""
        if self.best is None or self.rival is None or self.labels is None:
            return None
        paired = paired_bootstrap(self.labels, self.best[2], self.rival[2], threshold)
        return {"runner_up_step": self.rival[0], **paired.as_dict()}
