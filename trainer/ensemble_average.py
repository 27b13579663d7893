"""How an ensemble turns its members' probabilities into its own, by one of the contract's ENSEMBLE_RULES.

One function for the export (trainer/ensemble.py, whose dev average the thresholds are tuned on) and for every
goemo-predict backend (trainer/predict.py), so what goemo-predict computes is what the thresholds were tuned on
and what the test macro-F1 in final/ measured. Numpy only: the ONNX backends never import torch.

The members hand over float32 sigmoid probabilities, not logits: that is what the export's scoring
(``TrainingRun.predict``) and the ONNX graphs give, and what final/members/<run>/ keeps as .npy, from which
issue 19 measured the rule. Reading logits back in one place keeps the export, torch and ONNX on one number;
logits taken from the model in some places only would part them exactly where reading back is poor.
``mean_logit`` reads each member's logit back from its probability, in float64:

- below 0 the logit comes back within 2.4e-7 (float32 keeps p's relative precision near 0);
- above 0 within about 9e-8 * e^x (float32 spaces p near 1 by 6e-8): 1e-5 at x = 4, 1e-3 at 9, 0.03 at 13.
  A bf16 model's logits are themselves rounded to 2^-9 of their size (0.02 at x = 10), so below x ~ 13
  reading them back adds less than the model's own rounding;
- float32 rounds p to 1 from x ~ 16.6 up: each member's logit is clipped to +-LOGIT_BOUND, the largest it can
  say, on both sides so that a confident "no" weighs no more than the most confident "yes".

(Measured on 4e6 float32 logits in [-20, 20] through torch.sigmoid: the worst error was 2.4e-7 * max(1, e^x).)
A decision moves only where the mean logit lies near a threshold's logit (the grid's 0.05..0.95: |m| < 3)
while a member is beyond |x| ~ 12: members of one config seldom disagree by 15 logits.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from trainer.contract import ENSEMBLE_MEAN_LOGIT, ENSEMBLE_RULES

# The probabilities a float32 can hold short of 0 and 1 on the same footing: 2^-24 and 1 - 2^-24.
_P_HIGH = float(np.nextafter(np.float32(1.0), np.float32(0.0)))
_P_LOW = 1.0 - _P_HIGH
LOGIT_BOUND = float(np.log(_P_HIGH) - np.log1p(-_P_HIGH))  # 16.6355: the logit of the largest float32 below 1


def logits_of(probs: np.ndarray) -> np.ndarray:
    """The logits (float64) of sigmoid probabilities, clipped to +-LOGIT_BOUND (see the module's note)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), _P_LOW, _P_HIGH)
    return np.log(p) - np.log1p(-p)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """The sigmoid of float64 logits in +-LOGIT_BOUND (exp cannot overflow there)."""
    return 1.0 / (1.0 + np.exp(-logits))


def average_members(member_probs: Sequence[np.ndarray], rule: str) -> np.ndarray:
    """The ensemble's probabilities (float32) from each member's (same shape): ``mean_prob`` averages them,
    ``mean_logit`` averages their logits and takes the sigmoid. Sums run in float64, in the members' order."""
    if rule not in ENSEMBLE_RULES:
        raise ValueError(f"ensemble rule {rule!r}: expected one of {', '.join(ENSEMBLE_RULES)}")
    if not member_probs:
        raise ValueError("an ensemble average needs at least one member")
    by_logit = rule == ENSEMBLE_MEAN_LOGIT
    total = np.zeros(np.shape(member_probs[0]), dtype=np.float64)
    for probs in member_probs:
        total += logits_of(probs) if by_logit else probs
    mean = total / len(member_probs)
    return (sigmoid(mean) if by_logit else mean).astype(np.float32)
