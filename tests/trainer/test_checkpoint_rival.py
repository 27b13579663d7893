"""The kept checkpoint against its closest rival (issue 19): which eval is the rival, and the paired Δ run_end
carries as best_margin, read back through the records layer."""

from __future__ import annotations

import numpy as np

from cockpit.records import RunEnd, decode
from cockpit.records.history import RUN_ORIGIN
from trainer.paired import CheckpointRival, paired_bootstrap


def _probs(rng: np.random.Generator, y: np.ndarray, skill: float) -> np.ndarray:
    return 1 / (1 + np.exp(-(rng.normal(0, 1, y.shape) + skill * (2 * y - 1) - 1.0)))


def test_the_rival_is_the_best_of_the_other_evals() -> None:
    rng = np.random.default_rng(0)
    y = rng.random((400, 6)) < 0.2
    evals = [(10, 0.30, _probs(rng, y, 0.5)), (20, 0.45, _probs(rng, y, 1.5)), (30, 0.40, _probs(rng, y, 1.2)),
             (40, 0.47, _probs(rng, y, 1.6))]
    rival = CheckpointRival()
    best = float("-inf")
    for step, score, probs in evals:
        rival.observe(step, score, probs, y, score > best)
        best = max(best, score)
    margin = rival.margin(0.3)
    assert margin is not None and margin["runner_up_step"] == 20  # step 40 kept; of the rest, 20 scored highest
    expected = paired_bootstrap(y, evals[3][2], evals[1][2], 0.3)
    assert (margin["delta"], margin["low"], margin["high"]) == (round(expected.delta, 5), round(expected.low, 5),
                                                                 round(expected.high, 5))
    assert margin["tied"] == expected.tied


def test_one_eval_has_no_rival_and_run_end_reads_back_its_margin() -> None:
    rival = CheckpointRival()
    rival.observe(5, 0.2, np.zeros((10, 3)), np.zeros((10, 3), bool), True)
    assert rival.margin(0.2) is None
    margin = {"runner_up_step": 20, "delta": -0.004, "low": -0.015, "high": 0.007, "tied": True}
    end = {"v": 1, "t": 1.0, "type": "run_end", "status": "completed", "reason": "done", "wall_s": 3.0,
           "best": {"metric": "f1_macro@0.2", "value": 0.5, "step": 40}}
    record = decode(RUN_ORIGIN, {**end, "best_margin": margin})
    assert isinstance(record, RunEnd) and record.margin is not None
    assert record.margin.text() == "over step 20: Δ -0.004 [-0.015, +0.007] ≈"
    garbled = decode(RUN_ORIGIN, {**end, "best_margin": {"delta": "x"}})
    assert isinstance(garbled, RunEnd) and garbled.margin is None
