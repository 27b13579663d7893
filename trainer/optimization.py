"""The optimizer and its learning-rate schedule: AdamW over four parameter groups (head or backbone, with or
without weight decay) and a warmup followed by a cosine, linear or constant schedule, counted in optimizer
steps."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

import torch

from trainer.config import RunConfig

if TYPE_CHECKING:
    from trainer.models import EmotionClassifier

__all__ = ["build_optimizer", "lr_schedule", "param_groups"]


def lr_schedule(kind: str, warmup: int, total: int) -> Callable[[int], float]:
    """The learning rate's factor at each optimizer step: linear warmup over ``warmup`` steps, then
    ``kind`` ("cosine", "linear" or "constant") until ``total``."""
    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress)) if kind == "cosine" else 1.0 - progress
    return schedule


def param_groups(model: "EmotionClassifier", cfg: RunConfig) -> list[dict[str, Any]]:
    """AdamW's groups: the head at ``head_lr`` (when set), biases and LayerNorm weights without weight decay."""
    head = model.head_parameter_names()
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        no_decay = param.ndim < 2  # biases and LayerNorm weights
        groups.setdefault((name in head, no_decay), []).append(param)
    return [
        {"params": ps, "weight_decay": 0.0 if no_decay else cfg.weight_decay,
         "lr": (cfg.head_lr or cfg.lr) if is_head else cfg.lr}
        for (is_head, no_decay), ps in groups.items()
    ]


def build_optimizer(model: "EmotionClassifier", cfg: RunConfig, total_steps: int,
                    on_cuda: bool) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (fused on CUDA) and its schedule over ``total_steps`` optimizer steps."""
    optimizer = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, fused=on_cuda or None)
    warmup = int(cfg.warmup_ratio * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(cfg.scheduler, warmup, total_steps))
    return optimizer, scheduler
