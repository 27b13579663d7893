"""A run's rows as token ids, tokenised once at setup: the training rows in their oversampled order, and every
split that is evaluated (dev, test and each extra source's own dev)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trainer.data import tokenize_texts
from trainer.sources import TrainingData

__all__ = ["EvalSet", "TokenizedRows", "tokenize_rows"]

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
