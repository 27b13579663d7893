"""A run's rows as token ids, tokenised once at setup (the training rows in their oversampled order, and every
split that is evaluated: dev, test and each extra source's own dev), and the training batches of each epoch:
rows of ``batch_size``, or rows under a token budget (``max_tokens_per_batch``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from trainer.contract import steps_for_batches
from trainer.data import DataError, length_grouped_batches, tokenize_texts
from trainer.sources import TrainingData

__all__ = ["EvalSet", "TokenizedRows", "TrainBatches", "pad_multiple", "token_budget_batches", "token_budget_cuts",
           "tokenize_rows"]

EvalSet = tuple[list[np.ndarray], np.ndarray, np.ndarray | None]  # token ids, labels, observed mask (None: all)


@dataclass
class TokenizedRows:
    """The token ids, labels and label masks a run trains and evaluates on."""

    train_ids: list[np.ndarray]  # one per training row, oversampled duplicates included
    train_labels: np.ndarray  # float32 [rows, labels]
    train_masks: np.ndarray | None  # float32, 1 where a row's label is observed; None: all observed
    train_lengths: np.ndarray  # tokens per training row, for length-grouped batches
    eval_sets: dict[str, EvalSet]  # "dev", "test" and each extra source's name
    source_devs: dict[str, list[int]]  # extra source -> the taxonomy ids its dev split observes


def tokenize_rows(data: TrainingData, tokenizer: Any, max_length: int) -> TokenizedRows:
    """Tokenise a run's rows; the distinct training rows once, so oversampled duplicates reuse them."""
    train, rows = data.train, data.oversampling.indices
    ids = tokenize_texts(train.texts, tokenizer, max_length)
    train_ids = [ids[i] for i in rows]
    eval_sets: dict[str, EvalSet] = {
        name: (tokenize_texts(s.texts, tokenizer, max_length), s.labels.astype(np.float32), None)
        for name, s in (("dev", data.dev), ("test", data.test))
    }
    # Each extra source's own dev split, scored over the labels it observes.
    for name, (split, _) in data.source_devs.items():
        eval_sets[name] = (tokenize_texts(split.texts, tokenizer, max_length),
                           split.labels.astype(np.float32), split.mask.astype(np.float32))
    return TokenizedRows(
        train_ids=train_ids, train_labels=train.labels[rows].astype(np.float32),
        train_masks=None if train.mask is None else train.mask[rows].astype(np.float32),
        train_lengths=np.array([len(t) for t in train_ids]), eval_sets=eval_sets,
        source_devs={name: observed for name, (_, observed) in data.source_devs.items()})


def pad_multiple(device_type: str) -> int:
    """The multiple a batch's width is padded to: 8 on CUDA (tensor cores like multiples of 8), else 1."""
    return 8 if device_type == "cuda" else 1


def _padded(length: int, multiple_of: int) -> int:
    return -(-max(int(length), 1) // multiple_of) * multiple_of  # as trainer.data.pad_batch pads


def token_budget_cuts(sorted_lengths: np.ndarray, max_tokens: int, multiple_of: int = 1) -> np.ndarray:
    """Where each batch starts among rows sorted by ascending length, cut greedily so that a batch's rows ×
    padded width (its longest row, rounded up to ``multiple_of``) stay within ``max_tokens``. A row wider
    than the budget is a batch of its own. Depends on the lengths only, so every epoch has as many batches."""
    starts, rows = [0], 0
    for i, length in enumerate(sorted_lengths):
        # Ascending order: the new row is the batch's widest, so it sets the width of all of them.
        if rows and (rows + 1) * _padded(length, multiple_of) > max_tokens:
            starts.append(i)
            rows = 0
        rows += 1
    return np.array(starts if len(sorted_lengths) else [], dtype=np.int64)


def token_budget_batches(lengths: np.ndarray, max_tokens: int, seed: int, epoch: int, multiple_of: int = 1,
                         cuts: np.ndarray | None = None) -> list[np.ndarray]:
    """Batches of similar lengths within a token budget, a pure function of (seed, epoch), each row once.

    Rows are sorted by (length, a random key of this epoch): the sequence of lengths is the same every epoch,
    so the cuts (``token_budget_cuts``, passed in when already known) and the number of batches are too,
    while which rows of equal length share a batch changes. Then the batches are shuffled.
    """
    rng = np.random.default_rng([seed, epoch])
    order = np.lexsort((rng.random(len(lengths)), lengths))
    if cuts is None:
        cuts = token_budget_cuts(lengths[order], max_tokens, multiple_of)
    batches = np.split(order, cuts[1:])
    return [batches[i] for i in rng.permutation(len(batches))]


class TrainBatches:
    """The training batches of every epoch and each process's share of them, a pure function of (seed, epoch)
    so that a resumed run recomputes the same order. Row batches of ``batch_size`` by default; with
    ``max_tokens`` > 0, token-budget batches instead (``batch_size`` is then not used for training).

    A token budget does not scale the learning rate. How lr should follow the batch (linearly for SGD, about
    with its square root for AdamW, neither once the batch passes its critical size) is a measurement to make,
    not a rule to apply behind the user's back, and a budget's batches vary in rows, so there is no one factor.
    ``rows_per_batch`` (in run_start) shows the mean. The loss stays a mean over each batch's rows, as with
    fairseq's ``max_tokens``: every step weighs the same, so a row in a batch of long rows (few of them)
    weighs more than one in a batch of short rows, a reweighting by length that docs/architecture.md sizes.
    """

    def __init__(self, lengths: np.ndarray, seed: int, batch_size: int, max_tokens: int = 0, multiple_of: int = 1,
                 world_size: int = 1, grad_accum: int = 1) -> None:
        self.lengths, self.seed, self.batch_size, self.max_tokens = lengths, seed, batch_size, max_tokens
        self.multiple_of, self.world_size, self.grad_accum = multiple_of, world_size, grad_accum
        if max_tokens and self.count < world_size * grad_accum:
            # Some process would have no micro-batch for a step and wait for the others' all-reduce forever.
            raise DataError(f"max_tokens_per_batch {max_tokens}: the {len(lengths)} training rows make only "
                            f"{self.count} batches, fewer than {world_size} processes x grad_accum {grad_accum} "
                            f"(expected a smaller budget)")

    @cached_property
    def _cuts(self) -> np.ndarray:
        return token_budget_cuts(np.sort(self.lengths), self.max_tokens, self.multiple_of)

    @property
    def count(self) -> int:
        """Batches per epoch (over all processes)."""
        return len(self._cuts) if self.max_tokens else -(-len(self.lengths) // self.batch_size)

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch, by the contract's rule."""
        return steps_for_batches(self.count, self.world_size, self.grad_accum)

    @property
    def rows_per_batch(self) -> float:
        """Mean training rows per micro-batch: the effective batch of a token budget is this x processes x
        grad_accum (run_start records it)."""
        return round(len(self.lengths) / max(self.count, 1), 2)

    def epoch(self, epoch: int) -> list[np.ndarray]:
        """Every batch of an epoch, in the order the processes take them."""
        if self.max_tokens:
            return token_budget_batches(self.lengths, self.max_tokens, self.seed, epoch, self.multiple_of, self._cuts)
        return length_grouped_batches(self.lengths, self.batch_size, self.seed, epoch)

    def steps(self, epoch: int, rank: int) -> list[list[np.ndarray]]:
        """This process's micro-batches for each optimizer step of an epoch (a remainder short of a whole step
        across the processes is left out, as ``steps_for_batches`` counts)."""
        mine = self.epoch(epoch)[rank::self.world_size]
        ga = self.grad_accum
        steps = [mine[i * ga:(i + 1) * ga] for i in range(self.steps_per_epoch)]
        return [s for s in steps if s]
