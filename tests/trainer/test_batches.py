"""Training batches: row batches as before, and token-budget batches (``max_tokens_per_batch``) that see every
row once an epoch, cut the same number of batches every epoch and keep rows x padded width within the budget."""

from __future__ import annotations

import numpy as np
import pytest

from cockpit.pipeline.presets import load_preset
from trainer.batches import TrainBatches, token_budget_batches, token_budget_cuts
from trainer.config import ConfigError, load_config
from trainer.contract import steps_for_batches, steps_per_epoch
from trainer.data import DataError, length_grouped_batches


def _lengths(n: int = 1000, seed: int = 0) -> np.ndarray:
    """GoEmotions-like token counts: mostly 5-40, a long tail to 128, oversampled duplicates included."""
    rng = np.random.default_rng(seed)
    base = np.clip(rng.lognormal(2.9, 0.5, n), 3, 128).astype(np.int64)
    return np.concatenate([base, base[rng.integers(0, n, n // 5)]])  # duplicated rows, as oversampling adds


def _width(batch: np.ndarray, lengths: np.ndarray, multiple: int) -> int:
    return int(-(-lengths[batch].max() // multiple) * multiple)


@pytest.mark.parametrize("budget,multiple", [(256, 1), (600, 1), (4096, 8), (100, 8)])
def test_every_row_once_an_epoch_and_within_the_budget(budget, multiple):
    lengths = _lengths()
    for epoch in range(3):
        batches = token_budget_batches(lengths, budget, seed=7, epoch=epoch, multiple_of=multiple)
        seen = np.concatenate(batches)
        assert np.array_equal(np.sort(seen), np.arange(len(lengths)))  # each row (duplicates too) exactly once
        for b in batches:
            cost = len(b) * _width(b, lengths, multiple)
            assert cost <= budget or len(b) == 1, (len(b), cost)  # only a row wider than the budget goes over


def test_the_plan_is_a_pure_function_of_seed_and_epoch_with_a_constant_count():
    lengths = _lengths()
    plan = lambda seed, epoch: token_budget_batches(lengths, 512, seed, epoch)  # noqa: E731
    first = plan(3, 0)
    assert all(np.array_equal(a, b) for a, b in zip(first, plan(3, 0), strict=True))
    counts = {len(plan(3, epoch)) for epoch in range(5)} | {len(plan(4, 0))}
    assert counts == {len(first)}  # the cuts depend on the lengths only
    for other in (plan(3, 1), plan(4, 0)):
        assert [len(b) for b in other] != [len(b) for b in first]  # another batch order
        assert sorted(map(tuple, map(np.sort, other))) != sorted(map(tuple, map(np.sort, first)))  # other rows
    # Sorted by length inside the order, every epoch has the same multiset of batch sizes.
    assert sorted(len(b) for b in plan(3, 1)) == sorted(len(b) for b in first)


def test_cuts_are_greedy_and_a_wide_row_is_a_batch_of_its_own():
    lengths = np.array([2, 2, 3, 3, 3, 9, 20])
    # widths padded to 4: 4, 4, 4, 4, 4 -> 5 rows x 4 = 20 <= 20; then 12 alone (2 x 12 > 20); then 20 alone
    assert token_budget_cuts(lengths, 20, multiple_of=4).tolist() == [0, 5, 6]
    assert token_budget_cuts(lengths, 8, multiple_of=1).tolist() == [0, 2, 4, 5, 6]  # 2+2 | 3+3 | 3 | 9 | 20
    assert token_budget_cuts(np.array([], dtype=np.int64), 8).tolist() == []


def test_row_batches_are_todays_batches_and_the_step_rule_is_the_contracts():
    lengths = _lengths(500)
    rows = TrainBatches(lengths, seed=5, batch_size=16)
    assert all(np.array_equal(a, b) for a, b in zip(rows.epoch(2), length_grouped_batches(lengths, 16, 5, 2),
                                                    strict=True))
    for world, accum in [(1, 1), (2, 1), (3, 2), (4, 4)]:
        planned = TrainBatches(lengths, 5, 16, world_size=world, grad_accum=accum)
        assert planned.steps_per_epoch == steps_per_epoch(len(lengths), 16, world, accum)
        budget = TrainBatches(lengths, 5, 16, max_tokens=300, world_size=world, grad_accum=accum)
        assert budget.steps_per_epoch == steps_for_batches(budget.count, world, accum) == budget.count // world // accum
    assert steps_for_batches(0) == steps_for_batches(1, 4, 4) == 1  # never below one


@pytest.mark.parametrize("world,accum", [(1, 1), (2, 1), (2, 3), (3, 2)])
def test_the_processes_share_an_epochs_batches_without_overlap(world, accum):
    lengths = _lengths(400)
    plans = [TrainBatches(lengths, 1, 32, 400, 8, world, accum) for _ in range(world)]
    per_epoch = plans[0].steps_per_epoch
    for epoch in (0, 1):
        shares = [p.steps(epoch, rank) for rank, p in enumerate(plans)]
        assert all(len(s) == per_epoch and all(len(step) == accum for step in s) for s in shares)
        used = np.concatenate([b for s in shares for step in s for b in step])
        assert len(np.unique(used)) == len(used)  # no row twice
        all_batches = plans[0].epoch(epoch)
        assert len(all_batches) - per_epoch * world * accum < world * accum  # only a remainder left out
        if world == accum == 1:
            assert len(used) == len(lengths)  # one process: every row, once


def test_run_start_figure_and_a_budget_too_large_for_the_processes():
    lengths = _lengths(100)
    plan = TrainBatches(lengths, 1, 32, max_tokens=1000)
    assert plan.rows_per_batch == round(len(lengths) / plan.count, 2)
    with pytest.raises(DataError, match=r"max_tokens_per_batch 100000: .* only 1 batches, fewer than 2 processes"):
        TrainBatches(lengths, 1, 32, max_tokens=100_000, world_size=2)


def test_the_keys_validate_and_reach_presets():
    assert load_config(None).max_tokens_per_batch == 0 and load_config(None).compile is False
    with pytest.raises(ConfigError, match=r"^config \(with overrides\): key 'max_tokens_per_batch': input should be "
                                          r"greater than or equal to 0 \(got -1\)$"):
        load_config(None, [("max_tokens_per_batch", -1)])
    preset, _ = load_preset("quick", ["max_tokens_per_batch=4096", "compile=true"])
    configs = preset.planned_run_configs()
    assert configs and all(c.max_tokens_per_batch == 4096 and c.compile for c in configs)
