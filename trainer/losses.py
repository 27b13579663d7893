"""Multi-label losses for the 28 GoEmotions labels, and the registry the config names them by.

Every loss takes logits and 0/1 targets, both float tensors of shape [batch, labels], and an optional
0/1 ``mask`` of the same shape, and returns a scalar. With a mask, only observed entries (mask 1) count:
a masked entry contributes exactly zero loss and zero gradient, and "mean" divides by the number of
observed entries (a row from a source that cannot know a label teaches nothing about it). Every class accepts ``class_weights`` (the trainer's 'balanced' weights N / (labels * count))
so that ``build_loss`` can pass it uniformly, whether or not the loss uses it.
"""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F

from trainer.loss_names import param_problem


def _check_param(name: str, value: object) -> None:
    """Raise ValueError unless value follows the rule trainer/loss_names.py gives parameter ``name``
    (the same table validates configs up front, so the two can never disagree)."""
    expected = param_problem(name, value)
    if expected is not None:
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def _reduce(loss: torch.Tensor, reduction: str, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Reduce an element-wise loss to a scalar, over the observed entries only when a mask is given."""
    if mask is None:
        return loss.mean() if reduction == "mean" else loss.sum()
    observed = mask > 0
    # where(), not loss * mask: a masked entry gets exactly zero gradient even if its loss is inf or NaN.
    total = torch.where(observed, loss, torch.zeros_like(loss)).sum()
    return total / observed.sum().clamp(min=1) if reduction == "mean" else total


def _safe_pow(base: torch.Tensor, exponent: float) -> torch.Tensor:
    """base ** exponent for base >= 0, with a finite gradient where base is 0.

    d/db b**g = g * b**(g-1) is infinite at b = 0 for g < 1, and autograd turns inf * 0 into NaN;
    the double ``where`` keeps that branch out of the graph. 0**0 is 1, as in torch.pow.
    """
    if exponent == 0:
        return torch.ones_like(base)
    positive = base > 0
    safe = torch.where(positive, base, torch.ones_like(base))
    return torch.where(positive, safe.pow(exponent), torch.zeros_like(base))


class BCELoss(torch.nn.Module):
    """Binary cross-entropy with logits, averaged over all elements.

    loss = mean( -[ w_c * y * log(sigmoid(x)) + (1 - y) * log(1 - sigmoid(x)) ] )

    with w_c = class_weights[c] when ``pos_weight`` is True and w_c = 1 otherwise.
    """

    pos_weight_tensor: torch.Tensor | None

    def __init__(self, pos_weight: bool = False, class_weights: torch.Tensor | None = None) -> None:
        super().__init__()
        _check_param("pos_weight", pos_weight)
        if pos_weight and class_weights is None:
            raise ValueError("BCELoss(pos_weight=True) needs class_weights, but none were given")
        # A buffer follows the module through .to(device); non-persistent because the weights are
        # recomputed from the data on every start and have no place in a checkpoint.
        self.register_buffer(
            "pos_weight_tensor",
            class_weights.detach().clone().float() if pos_weight and class_weights is not None else None,
            persistent=False,
        )

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Return the scalar loss for logits and 0/1 targets of shape [batch, labels]."""
        pos_weight = None
        if self.pos_weight_tensor is not None:
            pos_weight = self.pos_weight_tensor.to(dtype=logits.dtype)
        if mask is None:
            return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)
        loss = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight, reduction="none")
        return _reduce(loss, "mean", mask)


class AsymmetricLoss(torch.nn.Module):
    """Asymmetric loss (Ben-Baruch et al. 2020), with the semantics of Alibaba-MIIL/ASL's AsymmetricLoss.

    With p = sigmoid(x) and the shifted negative probability p_m = max(p - clip, 0)
    (so that 1 - p_m = min(1 - p + clip, 1)), each element contributes

        L = -[ y * (1 - p)^gamma_pos * log(max(p, eps))
             + (1 - y) * p_m^gamma_neg * log(max(1 - p_m, eps)) ]

    reduced by "mean" over all elements (default) or "sum". The focusing weight p_m^gamma_neg
    grows with p: confident wrong predictions on negatives (hard negatives) weigh more, easy
    negatives with p <= clip are discarded altogether. As in the reference, the gradient flows
    through the focusing weights too. ``class_weights`` is accepted and ignored.
    """

    def __init__(
        self,
        gamma_neg: float = 4.0,
        gamma_pos: float = 1.0,
        clip: float = 0.05,
        eps: float = 1e-8,
        reduction: str = "mean",
        class_weights: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("gamma_neg", gamma_neg), ("gamma_pos", gamma_pos), ("clip", clip), ("eps", eps),
                            ("reduction", reduction)):
            _check_param(name, value)
        self.gamma_neg = float(gamma_neg)
        self.gamma_pos = float(gamma_pos)
        self.clip = float(clip)
        self.eps = float(eps)
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Return the scalar loss for logits and 0/1 targets of shape [batch, labels]."""
        # log(max(q, eps)) == max(log q, log eps); working in log space via logsigmoid keeps
        # both the value and the gradient finite for saturated logits (sigmoid(50) == 1 in fp32).
        log_eps = math.log(self.eps) if self.eps > 0 else -math.inf
        log_p = F.logsigmoid(logits).clamp(min=log_eps)
        pos_weight = torch.exp(self.gamma_pos * F.logsigmoid(-logits))  # (1 - p)^gamma_pos

        if self.clip > 0:
            p_m = (torch.sigmoid(logits) - self.clip).clamp(min=0)
            # 1 - p_m >= clip > 0, computed from sigmoid(-x) so that it is exact near p = 0.
            one_minus_p_m = (torch.sigmoid(-logits) + self.clip).clamp(max=1)
            log_one_minus_p_m = one_minus_p_m.clamp(min=self.eps).log()
            neg_weight = _safe_pow(p_m, self.gamma_neg)
        else:
            log_one_minus_p_m = F.logsigmoid(-logits).clamp(min=log_eps)
            neg_weight = torch.exp(self.gamma_neg * F.logsigmoid(logits))  # p^gamma_neg

        loss = -(targets * pos_weight * log_p + (1 - targets) * neg_weight * log_one_minus_p_m)
        return _reduce(loss, self.reduction, mask)


class FocalLoss(torch.nn.Module):
    """Focal loss (Lin et al. 2017) for independent sigmoid outputs.

    With bce = BCE-with-logits per element and p_t = exp(-bce) (the probability of the true class),

        L = -alpha_t * (1 - p_t)^gamma * log(p_t) = alpha_t * (1 - p_t)^gamma * bce

    where alpha_t = alpha for positives and 1 - alpha for negatives, and alpha_t = 1 when alpha is
    None. Reduced by "mean" over all elements (default) or "sum". ``class_weights`` is ignored.
    """

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | None = None,
        reduction: str = "mean",
        class_weights: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("gamma", gamma), ("alpha", alpha), ("reduction", reduction)):
            _check_param(name, value)
        self.gamma = float(gamma)
        self.alpha = None if alpha is None else float(alpha)
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Return the scalar loss for logits and 0/1 targets of shape [batch, labels]."""
        bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        # 1 - exp(-bce) via expm1 keeps precision when the prediction is nearly right.
        loss = _safe_pow(-torch.expm1(-bce), self.gamma) * bce
        if self.alpha is not None:
            loss = (self.alpha * targets + (1 - self.alpha) * (1 - targets)) * loss
        return _reduce(loss, self.reduction, mask)


class CombinedLoss(torch.nn.Module):
    """A blend of asymmetric, focal and plain BCE losses.

    L = ratio * ASL(gamma_neg, gamma_pos, clip)
      + (1 - ratio) * mean(class_weights) * Focal(gamma, alpha)
      + bce_weight * BCE

    all three reduced by the mean; mean(class_weights) is 1 when no class weights are given.
    """

    def __init__(
        self,
        ratio: float = 0.7,
        bce_weight: float = 0.2,
        gamma_neg: float = 4.0,
        gamma_pos: float = 1.0,
        clip: float = 0.05,
        gamma: float = 2.0,
        alpha: float | None = None,
        class_weights: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        _check_param("ratio", ratio)
        _check_param("bce_weight", bce_weight)
        self.ratio = float(ratio)
        self.bce_weight = float(bce_weight)
        self.focal_scale = 1.0 if class_weights is None else float(class_weights.float().mean())
        self.asl = AsymmetricLoss(gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip)
        self.focal = FocalLoss(gamma=gamma, alpha=alpha)
        self.bce = BCELoss()

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Return the scalar loss for logits and 0/1 targets of shape [batch, labels]."""
        return (
            self.ratio * self.asl(logits, targets, mask)
            + (1 - self.ratio) * self.focal_scale * self.focal(logits, targets, mask)
            + self.bce_weight * self.bce(logits, targets, mask)
        )


LOSSES: dict[str, type[torch.nn.Module]] = {
    "bce": BCELoss,
    "asl": AsymmetricLoss,
    "focal": FocalLoss,
    "combined": CombinedLoss,
}


def build_loss(name: str, params: dict[str, object], class_weights: torch.Tensor | None) -> torch.nn.Module:
    """Construct the loss registered as ``name`` from config params and the trainer's class weights.

    Raises ValueError for an unknown loss name or a parameter the loss does not take, so that a typo
    in a config fails at start-up instead of silently training with a default.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r} (expected one of: {', '.join(sorted(LOSSES))})")
    cls = LOSSES[name]
    valid = [p for p in inspect.signature(cls).parameters if p != "class_weights"]
    for key in params:
        if key == "class_weights":
            raise ValueError(f"loss {name!r}: class_weights is supplied by the trainer, not by loss params")
        if key not in valid:
            raise ValueError(
                f"loss {name!r} has no parameter {key!r} (valid: {', '.join(valid) or 'none'})"
            )
    return cls(**params, class_weights=class_weights)
