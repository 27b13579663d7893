"""Loss names, their parameter names and the rule every parameter value follows, torch-free, so configs
and presets are validated up front (the cockpit never imports torch). A test keeps LOSS_PARAMS equal to
the classes in trainer/losses.py, and those classes check their arguments with PARAM_RULES too."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

LOSS_PARAMS: dict[str, tuple[str, ...]] = {
    "asl": ("gamma_neg", "gamma_pos", "clip", "eps", "reduction"),
    "bce": ("pos_weight",),
    "combined": ("ratio", "bce_weight", "gamma_neg", "gamma_pos", "clip", "gamma", "alpha"),
    "focal": ("gamma", "alpha", "reduction"),
}


@dataclass(frozen=True)
class ParamRule:
    """What one loss parameter accepts: a finite number in a range, a bool, or one of some strings."""

    kind: str  # "number", "bool" or "choice"
    low: float | None = None  # numbers: inclusive lower bound
    high: float | None = None  # numbers: upper bound, inclusive unless high_open
    high_open: bool = False
    optional: bool = False  # None is accepted too (unset; TOML cannot write it)
    choices: tuple[str, ...] = ()

    def expected(self) -> str:
        """``a number in [0, 1)``, ``a number >= 0``, ``true or false``, ``'mean' or 'sum'``."""
        if self.kind == "bool":
            text = "true or false"
        elif self.kind == "choice":
            text = " or ".join(repr(c) for c in self.choices)
        elif self.low is not None and self.high is not None:
            text = f"a number in [{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        elif self.low is not None:
            text = f"a number >= {self.low:g}"
        else:
            text = "a finite number"
        return text + (" (or unset)" if self.optional else "")

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "choice":
            return isinstance(value, str) and value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.low is not None and value < self.low:
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True


REDUCTIONS = ("mean", "sum")

# One rule per parameter name: a name means the same thing in every loss that takes it
# (combined passes gamma_neg/gamma_pos/clip to its ASL part and gamma/alpha to its focal part).
PARAM_RULES: dict[str, ParamRule] = {
    "gamma_neg": ParamRule("number", low=0),  # focusing exponent on negatives
    "gamma_pos": ParamRule("number", low=0),  # focusing exponent on positives
    "clip": ParamRule("number", low=0, high=1, high_open=True),  # probability shift of negatives
    "eps": ParamRule("number", low=0, high=1, high_open=True),  # floor inside the logs
    "reduction": ParamRule("choice", choices=REDUCTIONS),
    "pos_weight": ParamRule("bool"),  # weigh positives by the balanced class weights
    "ratio": ParamRule("number", low=0, high=1),  # ASL share of the combined loss (focal gets 1 - ratio)
    "bce_weight": ParamRule("number", low=0),
    "gamma": ParamRule("number", low=0),  # focal exponent
    "alpha": ParamRule("number", low=0, high=1, optional=True),  # focal weight of positives
}


def param_problem(name: str, value: Any) -> str | None:
    """What a value of loss parameter ``name`` should be (``a number in [0, 1)``) when it is not that,
    else None. Names without a rule are not judged here (unknown names are reported per loss)."""
    rule = PARAM_RULES.get(name)
    if rule is None or rule.accepts(value):
        return None
    return rule.expected()


def loss_params_problem(loss: str, params: Mapping[str, Any]) -> str | None:
    """One line saying what is wrong with a loss name and its parameters, or None when they are valid."""
    valid = LOSS_PARAMS.get(loss)
    if valid is None:
        return f"unknown loss {loss!r} (expected one of: {', '.join(sorted(LOSS_PARAMS))})"
    unknown = sorted(set(params) - set(valid))
    if unknown:
        return f"loss {loss!r} has no parameter {unknown[0]!r} (valid: {', '.join(valid)})"
    for name in valid:
        if name in params:
            expected = param_problem(name, params[name])
            if expected is not None:
                return f"key 'loss_params.{name}': expected {expected} for loss {loss!r} (got {params[name]!r})"
    return None
