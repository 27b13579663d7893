"""Tests for trainer.losses: values against hand formulas, gradients, extremes and the registry."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.losses import LOSSES, AsymmetricLoss, BCELoss, CombinedLoss, FocalLoss, build_loss

N_LABELS = 28

# A tiny example, small enough to check by hand: two samples, two labels.
LOGITS = [[2.0, -1.0], [0.5, -3.0]]
TARGETS = [[1.0, 0.0], [0.0, 1.0]]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _elements() -> list[tuple[float, float]]:
    return [(x, y) for row_x, row_y in zip(LOGITS, TARGETS) for x, y in zip(row_x, row_y)]


def _tensors(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(LOGITS, dtype=dtype), torch.tensor(TARGETS, dtype=dtype)


def _bce_ref(x: float, y: float, w: float = 1.0) -> float:
    p = _sigmoid(x)
    return -(w * y * math.log(p) + (1 - y) * math.log(1 - p))


def _asl_ref(x: float, y: float, gamma_neg: float, gamma_pos: float, clip: float, eps: float = 1e-8) -> float:
    p = _sigmoid(x)
    p_m = max(p - clip, 0.0)
    return -(
        y * (1 - p) ** gamma_pos * math.log(max(p, eps))
        + (1 - y) * p_m**gamma_neg * math.log(max(1 - p_m, eps))
    )


def _focal_ref(x: float, y: float, gamma: float, alpha: float | None) -> float:
    p = _sigmoid(x)
    p_t = p if y == 1 else 1 - p
    alpha_t = 1.0 if alpha is None else (alpha if y == 1 else 1 - alpha)
    return -alpha_t * (1 - p_t) ** gamma * math.log(p_t)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _all_losses(class_weights: torch.Tensor) -> list[torch.nn.Module]:
    return [
        BCELoss(),
        BCELoss(pos_weight=True, class_weights=class_weights),
        AsymmetricLoss(),
        AsymmetricLoss(clip=0.0),
        AsymmetricLoss(gamma_neg=0.5, gamma_pos=0.5),
        FocalLoss(),
        FocalLoss(gamma=0.5, alpha=0.25),
        CombinedLoss(class_weights=class_weights),
    ]


@pytest.fixture
def class_weights() -> torch.Tensor:
    return torch.linspace(0.5, 3.0, N_LABELS, dtype=torch.float64)


def test_bce_matches_hand_formula() -> None:
    logits, targets = _tensors()
    expected = _mean([_bce_ref(x, y) for x, y in _elements()])
    assert BCELoss()(logits, targets).item() == pytest.approx(expected, rel=1e-12)


def test_bce_pos_weight_uses_class_weights() -> None:
    logits, targets = _tensors()
    weights = [3.0, 0.5]
    expected = _mean([_bce_ref(x, y, weights[j % 2]) for j, (x, y) in enumerate(_elements())])
    loss = BCELoss(pos_weight=True, class_weights=torch.tensor(weights))(logits, targets)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_bce_pos_weight_without_class_weights_is_an_error() -> None:
    with pytest.raises(ValueError, match="class_weights"):
        BCELoss(pos_weight=True)


@pytest.mark.parametrize(
    ("gamma_neg", "gamma_pos", "clip"), [(4.0, 1.0, 0.05), (2.0, 0.0, 0.3), (1.5, 0.5, 0.0)]
)
def test_asl_matches_hand_formula(gamma_neg: float, gamma_pos: float, clip: float) -> None:
    logits, targets = _tensors()
    refs = [_asl_ref(x, y, gamma_neg, gamma_pos, clip) for x, y in _elements()]
    mean_loss = AsymmetricLoss(gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip)(logits, targets)
    sum_loss = AsymmetricLoss(gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip, reduction="sum")(
        logits, targets
    )
    assert mean_loss.item() == pytest.approx(_mean(refs), rel=1e-12)
    assert sum_loss.item() == pytest.approx(sum(refs), rel=1e-12)


def test_asl_clip_discards_easy_negatives() -> None:
    # p = sigmoid(-3) ~ 0.047 < clip: the negative contributes nothing at all.
    loss = AsymmetricLoss(clip=0.05, reduction="sum")(torch.tensor([[-3.0]]), torch.tensor([[0.0]]))
    assert loss.item() == 0.0


def test_asl_weights_hard_negatives_more() -> None:
    # For a negative the focusing weight is loss / -log(1 - p_m); it must grow with p, so that
    # confident false positives dominate (the reverse of a known reference bug).
    clip = 0.05
    asl = AsymmetricLoss(gamma_neg=4.0, gamma_pos=1.0, clip=clip, reduction="sum")
    logits = torch.linspace(-2.0, 4.0, 13, dtype=torch.float64)
    weights = []
    for x in logits:
        loss = asl(x.view(1, 1), torch.zeros(1, 1, dtype=torch.float64)).item()
        p_m = max(_sigmoid(float(x)) - clip, 0.0)
        weights.append(loss / -math.log(1 - p_m))
    assert all(b > a for a, b in zip(weights, weights[1:])), weights
    # An easy negative (p ~ 0.12) weighs far less than a hard one (p ~ 0.98).
    assert weights[0] < 1e-3 * weights[-1]


def test_asl_hard_negative_gets_larger_gradient_than_plain_weighting() -> None:
    # Relative to BCE, ASL shrinks the gradient of an easy negative much more than of a hard one.
    asl = AsymmetricLoss(reduction="sum")
    bce = BCELoss()
    ratios = []
    for x in (-1.0, 3.0):
        logit = torch.tensor([[x]], dtype=torch.float64, requires_grad=True)
        (g_asl,) = torch.autograd.grad(asl(logit, torch.zeros(1, 1, dtype=torch.float64)), logit)
        (g_bce,) = torch.autograd.grad(bce(logit, torch.zeros(1, 1, dtype=torch.float64)), logit)
        ratios.append((g_asl / g_bce).item())
    assert ratios[0] < ratios[1]


def test_asl_with_no_clip_and_no_focusing_equals_bce() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(16, N_LABELS, generator=gen, dtype=torch.float64) * 4
    targets = (torch.rand(16, N_LABELS, generator=gen) < 0.2).double()
    asl = AsymmetricLoss(gamma_neg=0.0, gamma_pos=0.0, clip=0.0)
    torch.testing.assert_close(asl(logits, targets), BCELoss()(logits, targets))


@pytest.mark.parametrize(
    "kwargs",
    [{"reduction": "none"}, {"clip": 1.0}, {"clip": -0.1}, {"gamma_neg": -1.0}, {"gamma_pos": -0.5}],
)
def test_asl_rejects_bad_parameters(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        AsymmetricLoss(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("gamma", "alpha"), [(2.0, None), (0.0, None), (2.0, 0.25), (0.5, 0.75)])
def test_focal_matches_hand_formula(gamma: float, alpha: float | None) -> None:
    logits, targets = _tensors()
    expected = _mean([_focal_ref(x, y, gamma, alpha) for x, y in _elements()])
    assert FocalLoss(gamma=gamma, alpha=alpha)(logits, targets).item() == pytest.approx(expected, rel=1e-12)


def test_focal_with_gamma_zero_equals_bce() -> None:
    logits, targets = _tensors()
    torch.testing.assert_close(FocalLoss(gamma=0.0)(logits, targets), BCELoss()(logits, targets))


@pytest.mark.parametrize("kwargs", [{"gamma": -1.0}, {"alpha": 1.5}, {"reduction": "max"}])
def test_focal_rejects_bad_parameters(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        FocalLoss(**kwargs)  # type: ignore[arg-type]


def test_combined_matches_hand_formula() -> None:
    logits, targets = _tensors()
    weights = torch.tensor([0.5, 2.5])  # mean 1.5
    elements = _elements()
    expected = (
        0.6 * _mean([_asl_ref(x, y, 3.0, 1.0, 0.1) for x, y in elements])
        + 0.4 * 1.5 * _mean([_focal_ref(x, y, 2.0, 0.25) for x, y in elements])
        + 0.3 * _mean([_bce_ref(x, y) for x, y in elements])
    )
    loss = CombinedLoss(
        ratio=0.6, bce_weight=0.3, gamma_neg=3.0, clip=0.1, alpha=0.25, class_weights=weights
    )(logits, targets)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_combined_equals_its_parts(class_weights: torch.Tensor) -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(8, N_LABELS, generator=gen, dtype=torch.float64) * 3
    targets = (torch.rand(8, N_LABELS, generator=gen) < 0.3).double()
    combined = CombinedLoss(ratio=0.7, bce_weight=0.2, class_weights=class_weights)(logits, targets)
    parts = (
        0.7 * AsymmetricLoss()(logits, targets)
        + 0.3 * class_weights.mean() * FocalLoss()(logits, targets)
        + 0.2 * BCELoss()(logits, targets)
    )
    torch.testing.assert_close(combined, parts)
    # Without class weights the focal term enters with weight 1.
    unweighted = CombinedLoss(ratio=0.0, bce_weight=0.0)(logits, targets)
    torch.testing.assert_close(unweighted, FocalLoss()(logits, targets))


@pytest.mark.parametrize("ratio", [-0.1, 1.1])
def test_combined_rejects_ratio_outside_unit_interval(ratio: float) -> None:
    with pytest.raises(ValueError, match="ratio"):
        CombinedLoss(ratio=ratio)


@pytest.mark.parametrize("index", range(8))
def test_gradcheck(index: int) -> None:
    gen = torch.Generator().manual_seed(2)
    weights = torch.linspace(0.5, 2.0, 4, dtype=torch.float64)
    loss_fn = _all_losses(weights)[index]
    # Keep logits away from sigmoid(x) == clip, where ASL's max(p - clip, 0) has a kink.
    logits = (torch.randn(3, 4, generator=gen, dtype=torch.float64) * 2).requires_grad_()
    targets = (torch.rand(3, 4, generator=gen) < 0.5).double()
    assert torch.autograd.gradcheck(lambda x: loss_fn(x, targets), (logits,))


@pytest.mark.parametrize("fill", [0.0, 1.0])
@pytest.mark.parametrize("index", range(8))
def test_all_zero_and_all_one_targets(index: int, fill: float, class_weights: torch.Tensor) -> None:
    loss_fn = _all_losses(class_weights)[index]
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(4, N_LABELS, generator=gen, dtype=torch.float64).requires_grad_()
    targets = torch.full((4, N_LABELS), fill, dtype=torch.float64)
    loss = loss_fn(logits, targets)
    (grad,) = torch.autograd.grad(loss, logits)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss.item() >= 0
    assert torch.isfinite(grad).all()
    # Raising the logits of positives (or lowering those of negatives) never raises the loss;
    # ASL's clip zeroes the gradient of the easiest negatives, hence the non-strict signs.
    assert ((grad <= 0) if fill == 1.0 else (grad >= 0)).all()
    assert grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("index", range(8))
def test_extreme_logits_stay_finite(index: int, dtype: torch.dtype, class_weights: torch.Tensor) -> None:
    loss_fn = _all_losses(class_weights)[index]
    # Every combination of a saturated logit with either target: right, wrong, both signs.
    logits = torch.tensor([50.0, -50.0] * (N_LABELS // 2), dtype=dtype).repeat(2, 1).requires_grad_()
    targets = torch.stack([torch.ones(N_LABELS), torch.zeros(N_LABELS)]).to(dtype)
    loss = loss_fn(logits, targets)
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.isfinite(loss)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_asl_without_clip_stays_finite_at_extremes(dtype: torch.dtype) -> None:
    logits = torch.tensor([[50.0, -50.0], [50.0, -50.0]], dtype=dtype, requires_grad=True)
    targets = torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=dtype)
    for gammas in [(0.0, 0.0), (4.0, 1.0), (0.5, 0.5)]:
        loss = AsymmetricLoss(gamma_neg=gammas[0], gamma_pos=gammas[1], clip=0.0)(logits, targets)
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_registry_names() -> None:
    assert sorted(LOSSES) == ["asl", "bce", "combined", "focal"]


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_build_loss_constructs_every_registered_loss(name: str, class_weights: torch.Tensor) -> None:
    loss_fn = build_loss(name, {}, class_weights)
    assert isinstance(loss_fn, LOSSES[name])
    logits = torch.zeros(2, N_LABELS, dtype=torch.float64)
    assert torch.isfinite(loss_fn(logits, torch.ones_like(logits)))


def test_build_loss_passes_params(class_weights: torch.Tensor) -> None:
    loss_fn = build_loss("asl", {"gamma_neg": 2.0, "clip": 0.1}, None)
    assert isinstance(loss_fn, AsymmetricLoss)
    assert (loss_fn.gamma_neg, loss_fn.clip) == (2.0, 0.1)
    bce = build_loss("bce", {"pos_weight": True}, class_weights)
    assert bce.pos_weight_tensor is not None


def test_build_loss_unknown_name() -> None:
    with pytest.raises(ValueError) as info:
        build_loss("x", {}, None)
    assert str(info.value) == "unknown loss 'x' (expected one of: asl, bce, combined, focal)"


def test_build_loss_unknown_param_names_it_and_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="gama_neg") as info:
        build_loss("asl", {"gama_neg": 2.0}, None)
    for valid in ("gamma_neg", "gamma_pos", "clip", "eps", "reduction"):
        assert valid in str(info.value)


def test_build_loss_rejects_class_weights_in_params() -> None:
    with pytest.raises(ValueError, match="class_weights"):
        build_loss("bce", {"class_weights": torch.ones(N_LABELS)}, None)


def test_torch_free_loss_table_matches_the_loss_classes():
    import inspect

    from trainer.loss_names import LOSS_PARAMS
    from trainer.losses import LOSSES

    assert set(LOSS_PARAMS) == set(LOSSES)
    for name, cls in LOSSES.items():
        params = [p for p in inspect.signature(cls).parameters if p != "class_weights"]
        assert tuple(params) == LOSS_PARAMS[name], name


# -- label masks: a source that cannot know a label teaches nothing about it ---------------------------
def _masked_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(11)
    logits = (torch.randn(5, 6, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    targets = (torch.rand(5, 6, generator=gen) < 0.4).double()
    mask = torch.ones(5, 6, dtype=torch.float64)
    mask[1:4, 2:5] = 0  # three rows from a source that observes labels 0, 1 and 5 only
    return logits, targets, mask


@pytest.mark.parametrize("index", range(8))
def test_masked_entries_contribute_zero_loss_and_zero_gradient(index: int) -> None:
    weights = torch.linspace(0.5, 2.0, 6, dtype=torch.float64)
    loss_fn = _all_losses(weights)[index]
    logits, targets, mask = _masked_case()
    loss_fn(logits, targets, mask).backward()
    grad = logits.grad.clone()
    assert torch.all(grad[mask == 0] == 0)
    assert grad[mask == 1].abs().sum() > 0  # (ASL's clip may zero an easy negative's gradient itself)
    # Whatever a masked entry's target or logit, the loss is the same: it is not counted at all.
    flipped = torch.where(mask == 0, 1 - targets, targets)
    wild = torch.where(mask == 0, torch.full_like(logits, 40.0), logits.detach())
    base = loss_fn(logits.detach(), targets, mask)
    assert torch.allclose(loss_fn(logits.detach(), flipped, mask), base)
    assert torch.allclose(loss_fn(wild, targets, mask), base)


@pytest.mark.parametrize("index", range(8))
def test_masked_mean_divides_by_observed_entries(index: int) -> None:
    """With a mask, "mean" averages over observed entries: the mean of the per-element losses kept."""
    weights = torch.linspace(0.5, 2.0, 6, dtype=torch.float64)
    loss_fn = _all_losses(weights)[index]
    logits, targets, mask = _masked_case()
    logits = logits.detach()
    ones = torch.ones_like(mask)
    assert torch.allclose(loss_fn(logits, targets, ones), loss_fn(logits, targets))
    kept = mask.bool()
    # Rows 0 and 4 observe everything: on them alone, masked and unmasked losses agree.
    full_rows = torch.tensor([0, 4])
    assert torch.allclose(loss_fn(logits[full_rows], targets[full_rows], mask[full_rows]),
                          loss_fn(logits[full_rows], targets[full_rows]))
    if getattr(loss_fn, "reduction", "mean") == "sum":
        return
    if isinstance(loss_fn, BCELoss) and loss_fn.pos_weight_tensor is not None:
        return  # pos_weight is per column; single elements lose their column (checked by the zero-gradient test)
    if isinstance(loss_fn, CombinedLoss):
        return  # its focal scale is a property of the whole class-weight vector; parts are checked above
    # Element-wise losses from a batch of single elements; their observed mean is the masked loss.
    per_element = torch.stack([loss_fn(logits[i, j].view(1, 1), targets[i, j].view(1, 1))
                               for i in range(5) for j in range(6) if kept[i, j]])
    assert torch.allclose(loss_fn(logits, targets, mask), per_element.mean())


@pytest.mark.parametrize("index", range(8))
def test_masked_gradcheck(index: int) -> None:
    weights = torch.linspace(0.5, 2.0, 6, dtype=torch.float64)
    loss_fn = _all_losses(weights)[index]
    logits, targets, mask = _masked_case()
    assert torch.autograd.gradcheck(lambda x: loss_fn(x, targets, mask), (logits.detach().requires_grad_(),))
