"""What goemo-train checks and loads before a run writes anything: the loss and its parameters, the device,
the data files and the model's tokenizer. A mistake here is one line and exit 2 (trainer.cli), before any
event is written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from trainer.config import RunConfig
from trainer.losses import build_loss
from trainer.model_source import ModelSource, resolve_model
from trainer.models import load_tokenizer
from trainer.sources import LoadedSources, load_sources
from trainer.taxonomy import taxonomy_labels

__all__ = ["Prepared", "prepare"]


@dataclass
class Prepared:
    """What setup produced before any event is written: validated data, tokenizer and model source."""

    config: RunConfig
    sources: LoadedSources
    names: list[str]  # the taxonomy's labels: the model's outputs
    source: ModelSource
    tokenizer: Any


def prepare(config: RunConfig) -> Prepared:
    """Validate inputs that can be wrong (data files, model name, loss) before anything starts.

    Raises DataError, ModelError or ValueError with one-line messages.
    """
    # The config already knows loss and parameter names; this also checks their values (e.g. clip < 1).
    try:
        build_loss(config.loss, config.loss_params, torch.ones(len(taxonomy_labels(config.taxonomy))))
    except ValueError as exc:
        raise ValueError(f"key 'loss_params' of loss {config.loss!r}: {exc}") from None
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("key 'device': 'cuda' requested but no CUDA device is available")
    sources = load_sources(config)
    source = resolve_model(config.model, config.pooling)
    tokenizer = load_tokenizer(source)
    return Prepared(config, sources, taxonomy_labels(config.taxonomy), source, tokenizer)
