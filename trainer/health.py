"""Gradient-norm health: vanishing and exploding gradients, raised as alerts once per episode."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from statistics import median

from trainer.contract import (GRAD_EXPLODING_FACTOR, GRAD_MIN_HISTORY, GRAD_VANISHING_BELOW, GRAD_VANISHING_STEPS,
                              GRAD_WINDOW)


@dataclass
class GradHealth:
    """Watches pre-clip gradient norms step by step and says when to raise an alert."""

    vanishing_below: float = GRAD_VANISHING_BELOW
    vanishing_steps: int = GRAD_VANISHING_STEPS
    exploding_factor: float = GRAD_EXPLODING_FACTOR
    window: int = GRAD_WINDOW
    min_history: int = GRAD_MIN_HISTORY
    _recent: deque = field(default_factory=lambda: deque(maxlen=GRAD_WINDOW))
    _small_run: int = 0
    _vanishing_raised: bool = False
    _exploding_cooldown: int = 0

    def observe(self, norm: float) -> list[tuple[str, str]]:
        """Feed one finite norm; returns (code, message) alerts to raise now."""
        alerts: list[tuple[str, str]] = []
        if not math.isfinite(norm):
            return alerts
        if norm < self.vanishing_below:
            self._small_run += 1
            if self._small_run >= self.vanishing_steps and not self._vanishing_raised:
                self._vanishing_raised = True
                alerts.append(("grad_vanishing",
                               f"gradient norm below {self.vanishing_below:g} for {self._small_run} steps"))
        else:
            self._small_run = 0
            self._vanishing_raised = False
        self._exploding_cooldown = max(0, self._exploding_cooldown - 1)
        if len(self._recent) >= self.min_history and self._exploding_cooldown == 0:
            med = median(self._recent)
            if med > 0 and norm > self.exploding_factor * med:
                self._exploding_cooldown = self.vanishing_steps
                alerts.append(("grad_exploding",
                               f"gradient norm {norm:.3g} is over {self.exploding_factor:g}x the running median {med:.3g}"))
        self._recent.append(norm)
        return alerts
