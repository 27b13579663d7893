"""Early stopping on a plateau: after ``early_stop_patience`` dev evals without the selection score rising by
more than ``early_stop_min_delta`` over its best, the run ends as completed (its best checkpoint is kept, as
at any end), with the reason and the step since which it has been flat.

The min-delta stands in for the selection score's noise until the statistics of issue 19 measure it; 0 stops
only on evals that do not beat the best at all. The state travels in trainer_state.json, so a resumed run
counts on from where it stopped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Plateau:
    patience: int  # 0: never stop early
    min_delta: float
    best: float | None = None
    best_step: int | None = None
    flat_evals: int = 0

    def observe(self, step: int, value: float | None) -> None:
        """One dev eval's selection score (None: the eval lacks it; it counts as flat)."""
        if value is not None and (self.best is None or value > self.best + self.min_delta):
            self.best, self.best_step, self.flat_evals = value, step, 0
        else:
            self.flat_evals += 1

    @property
    def reached(self) -> bool:
        return self.patience > 0 and self.best_step is not None and self.flat_evals >= self.patience

    def reason(self, metric: str) -> str:
        return (f"plateau since step {self.best_step}: dev {metric} has not risen more than {self.min_delta:g} "
                f"above {self.best:.4f} in {self.flat_evals} evals (early_stop_patience)")

    def state(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("patience", "min_delta")}

    def restore(self, state: Any) -> None:
        """From trainer_state.json; a checkpoint written before early stopping existed starts afresh."""
        if isinstance(state, dict):
            self.best, self.best_step = state.get("best"), state.get("best_step")
            self.flat_evals = int(state.get("flat_evals") or 0)


def flat_everywhere(accelerator: Any, plateau: Plateau) -> bool:
    """A collective after each dev eval: whether the run has reached its plateau. Only the main process scores
    dev, so its verdict is summed over the ranks, and every rank ends at the same step."""
    flat = accelerator.is_main_process and plateau.reached
    if accelerator.num_processes > 1:
        import torch

        flag = torch.tensor([1 if flat else 0], device=accelerator.device)
        flat = bool(accelerator.reduce(flag, reduction="sum").item())
    return flat
