"""Tests for trainer.metrics: agreement with sklearn, threshold tuning and the eval-event shape."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_recall_fscore_support, precision_score, recall_score

from trainer.metrics import (
    DEFAULT_GRID,
    SUMMARY_KEYS,
    apply_thresholds,
    evaluate_probs,
    f1_summary,
    per_class_scores,
    threshold_key,
    tune_thresholds,
    tuned_summary,
)

N_LABELS = 28
LABEL_NAMES = [f"label_{i}" for i in range(N_LABELS)]


def _random_multilabel(seed: int, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Random probs and labels with the awkward columns every real eval set has."""
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0.01, 0.4, N_LABELS)
    labels = (rng.random((n, N_LABELS)) < rates).astype(np.int64)
    # Noisy but informative probabilities, so F1 varies with the threshold.
    probs = np.clip(0.6 * labels + rng.normal(0.15, 0.2, (n, N_LABELS)), 0.0, 1.0)
    labels[:, 0] = 0  # no positives ...
    probs[:, 0] = 0.0  # ... and never predicted
    labels[:, 1] = 0  # no positives, but predicted
    probs[:, 2] = 0.0  # positives, never predicted
    labels[:3, 2] = 1
    return probs, labels


def _sklearn_summary(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    kw = {"zero_division": 0}
    return {
        "f1_macro": f1_score(y_true, y_pred, average="macro", **kw),
        "f1_micro": f1_score(y_true, y_pred, average="micro", **kw),
        "f1_weighted": f1_score(y_true, y_pred, average="weighted", **kw),
        "precision_macro": precision_score(y_true, y_pred, average="macro", **kw),
        "recall_macro": recall_score(y_true, y_pred, average="macro", **kw),
        "precision_micro": precision_score(y_true, y_pred, average="micro", **kw),
        "recall_micro": recall_score(y_true, y_pred, average="micro", **kw),
    }


@pytest.mark.parametrize(
    ("t", "key"),
    [
        (0.2, "0.2"),
        (0.5, "0.5"),
        (0.35, "0.35"),
        (0.1 + 0.2, "0.3"),
        (np.arange(0.05, 0.951, 0.05)[6], "0.35"),  # 0.35000000000000003
        (1, "1"),
    ],
)
def test_threshold_key(t: float, key: str) -> None:
    assert threshold_key(t) == key


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold", [0.2, 0.5])
def test_f1_summary_equals_sklearn(seed: int, threshold: float) -> None:
    probs, labels = _random_multilabel(seed)
    y_pred = (probs >= threshold).astype(np.int64)
    ours = f1_summary(labels, y_pred)
    theirs = _sklearn_summary(labels, y_pred)
    assert set(ours) == set(SUMMARY_KEYS)
    for name in SUMMARY_KEYS:
        assert isinstance(ours[name], float)
        assert ours[name] == theirs[name], name  # bit-for-bit, not just close


@pytest.mark.parametrize("seed", range(3))
def test_per_class_scores_equal_sklearn(seed: int) -> None:
    probs, labels = _random_multilabel(seed)
    y_pred = probs >= 0.3
    ours = per_class_scores(labels, y_pred)
    theirs = precision_recall_fscore_support(labels, y_pred.astype(np.int64), average=None, zero_division=0)
    for mine, ref in zip(ours, theirs):
        np.testing.assert_array_equal(mine, ref)
    precision, recall, f1, support = ours
    assert support.dtype.kind == "i"
    assert precision[0] == recall[0] == f1[0] == 0.0  # 0/0 everywhere counts as 0


def test_f1_summary_with_no_positives_at_all() -> None:
    y_true = np.zeros((5, N_LABELS), dtype=np.int64)
    y_pred = np.zeros_like(y_true)
    y_pred[0, 3] = 1
    ours = f1_summary(y_true, y_pred)
    theirs = _sklearn_summary(y_true, y_pred)
    assert ours == theirs
    assert all(v == 0.0 for v in ours.values())


def test_f1_summary_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="shape"):
        f1_summary(np.zeros((3, N_LABELS)), np.zeros((3, N_LABELS - 1)))


def test_evaluate_probs_keys_values_and_json() -> None:
    probs, labels = _random_multilabel(7)
    result = evaluate_probs(probs.astype(np.float32), labels, [0.5, 0.3], LABEL_NAMES, primary=0.2)
    assert set(result) == {*SUMMARY_KEYS, "per_class"}
    for name in SUMMARY_KEYS:
        # The primary threshold is added even though it was not asked for.
        assert set(result[name]) == {"0.2", "0.3", "0.5"}
        assert all(type(v) is float for v in result[name].values())
    ref = _sklearn_summary(labels, (probs.astype(np.float32) >= 0.5).astype(np.int64))
    assert result["f1_macro"]["0.5"] == ref["f1_macro"]
    assert result["recall_micro"]["0.5"] == ref["recall_micro"]

    per_class = result["per_class"]
    assert len(per_class) == N_LABELS
    precision, recall, f1, support = per_class_scores(labels, probs.astype(np.float32) >= 0.2)
    for i, row in enumerate(per_class):
        assert set(row) == {"label", "precision", "recall", "f1", "support", "predicted"}
        assert row["label"] == LABEL_NAMES[i]
        assert row["predicted"] == int((probs[:, i].astype(np.float32) >= 0.2).sum())
        assert type(row["support"]) is int and row["support"] == support[i]
        assert (row["precision"], row["recall"], row["f1"]) == (precision[i], recall[i], f1[i])
        assert all(type(row[k]) is float for k in ("precision", "recall", "f1"))
    json.dumps(result, allow_nan=False)


def test_evaluate_probs_merges_equal_thresholds() -> None:
    probs, labels = _random_multilabel(8)
    result = evaluate_probs(probs, labels, [0.2, 0.1 + 0.1, np.float64(0.5)], LABEL_NAMES)
    assert list(result["f1_micro"]) == ["0.2", "0.5"]
    json.dumps(result, allow_nan=False)


def test_evaluate_probs_rejects_wrong_label_names() -> None:
    probs, labels = _random_multilabel(9)
    with pytest.raises(ValueError, match="label names"):
        evaluate_probs(probs, labels, [0.5], LABEL_NAMES[:-1])


def test_tune_thresholds_finds_known_optimum() -> None:
    probs = np.array(
        [
            [0.90, 0.50, 0.12, 0.90, 0.01],
            [0.70, 0.50, 0.08, 0.60, 0.99],
            [0.30, 0.50, 0.02, 0.40, 0.99],
            [0.10, 0.50, 0.50, 0.96, 0.99],
        ]
    )
    labels = np.array(
        [
            [1, 0, 1, 1, 1],
            [1, 0, 1, 1, 0],
            [0, 0, 0, 1, 0],
            [0, 0, 0, 1, 0],
        ]
    )
    tuned = tune_thresholds(probs, labels)
    # 0: perfect for any t in (0.3, 0.7], the smallest on the grid is 0.35.
    # 1: no positives, keeps the default.
    # 2: t = 0.05 catches both positives with one false positive (F1 0.8); higher loses one.
    # 3: every sample positive, F1 = 1 for every t <= 0.4, so the tie goes to 0.05.
    # 4: the one positive scores 0.01, below the whole grid, so best F1 is 0: default.
    np.testing.assert_array_equal(tuned, [0.35, 0.2, 0.05, 0.05, 0.2])
    assert tuned.dtype == np.float64

    coarse = tune_thresholds(probs, labels, grid=[0.5, 0.25, 0.75], default=0.4)
    np.testing.assert_array_equal(coarse, [0.5, 0.4, 0.4, 0.25, 0.4])


@pytest.mark.parametrize("seed", range(5))
def test_tuned_thresholds_never_hurt_a_label_on_dev(seed: int) -> None:
    probs, labels = _random_multilabel(seed)
    tuned = tune_thresholds(probs, labels, default=0.2)
    assert tuned.shape == (N_LABELS,)
    assert set(np.round(tuned, 2)) <= set(DEFAULT_GRID)
    _, _, f1_default, _ = per_class_scores(labels, probs >= 0.2)
    _, _, f1_tuned, _ = per_class_scores(labels, apply_thresholds(probs, tuned))
    assert (f1_tuned >= f1_default).all()
    assert tuned[0] == tuned[1] == 0.2  # labels without positives keep the default

    summary = tuned_summary(probs, labels, tuned)
    assert set(summary) == {"thresholds", "f1_macro", "f1_micro"}
    assert summary["thresholds"] == tuned.tolist()
    assert summary["f1_macro"] >= f1_summary(labels, probs >= 0.2)["f1_macro"]
    tuned_pred = apply_thresholds(probs, tuned).astype(np.int64)
    assert summary["f1_macro"] == f1_score(labels, tuned_pred, average="macro", zero_division=0)
    json.dumps(summary, allow_nan=False)


def test_apply_thresholds_scalar_and_per_label() -> None:
    probs = np.array([[0.1, 0.5, 0.9], [0.3, 0.2, 0.6]])
    np.testing.assert_array_equal(apply_thresholds(probs, 0.5), [[False, True, True], [False, False, True]])
    per_label = apply_thresholds(probs, [0.1, 0.6, 0.95])
    assert per_label.dtype == bool
    np.testing.assert_array_equal(per_label, [[True, False, False], [True, False, False]])
    with pytest.raises(ValueError, match="thresholds"):
        apply_thresholds(probs, [0.5, 0.5])


def test_tuned_summary_accepts_scalar_threshold() -> None:
    probs, labels = _random_multilabel(3)
    summary = tuned_summary(probs, labels, np.float64(0.5))
    assert summary["thresholds"] == [0.5] * N_LABELS
    assert summary["f1_micro"] == f1_summary(labels, probs >= 0.5)["f1_micro"]


def test_metrics_imports_neither_torch_nor_sklearn() -> None:
    code = (
        "import sys, trainer.metrics; "
        "bad = [m for m in ('torch', 'sklearn') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=__file__.rsplit("/tests/", 1)[0])


# -- the cross-fitted tuned score (issue 10, part 1) -----------------------------------------------
from trainer.metrics import stratified_halves, tuned_cv  # noqa: E402


def test_stratified_halves_put_every_label_with_two_rows_in_both_halves():
    rng = np.random.default_rng(3)
    labels = (rng.random((400, 28)) < np.linspace(0.005, 0.3, 28)).astype(np.uint8)
    labels[[5, 77], 0] = 1  # a label with exactly two rows
    labels[:, 1] = 0
    labels[9, 1] = 1  # a label with one row can only be in one half
    first = stratified_halves(labels, seed=7)
    assert abs(int(first.sum()) - 200) <= 2
    for label in range(28):
        n = int(labels[:, label].sum())
        if n >= 2:
            assert labels[first, label].any() and labels[~first, label].any(), label
    assert np.array_equal(first, stratified_halves(labels, seed=7))  # seeded
    assert not np.array_equal(first, stratified_halves(labels, seed=8))


def test_tuned_cv_ranks_a_better_model_calibrated_high_above_one_calibrated_at_0_2():
    """The issue's test: config A is calibrated for the fixed 0.2 threshold, B separates better but its
    scores sit high. F1@0.2 prefers A; the cross-fitted tuned score prefers B."""
    rng = np.random.default_rng(0)
    labels = (rng.random((2000, 10)) < 0.1).astype(np.uint8)
    a = np.clip(np.where(labels == 1, 0.35, 0.08) + rng.normal(0, 0.12, labels.shape), 0, 1)
    b = np.clip(np.where(labels == 1, 0.9, 0.45) + rng.normal(0, 0.08, labels.shape), 0, 1)
    at_02 = {name: f1_summary(labels, p >= 0.2)["f1_macro"] for name, p in (("a", a), ("b", b))}
    cv = {name: tuned_cv(p, labels, seed=1) for name, p in (("a", a), ("b", b))}
    assert at_02["a"] > at_02["b"]
    assert cv["b"] > cv["a"]


def test_tuned_cv_does_not_reward_thresholds_fitted_to_noise():
    """On pure noise, tuning and scoring on the same rows looks good; cross-fitting does not."""
    rng = np.random.default_rng(4)
    labels = (rng.random((300, 28)) < 0.05).astype(np.uint8)
    probs = rng.random((300, 28))
    same_rows = f1_summary(labels, probs >= tune_thresholds(probs, labels))["f1_macro"]
    assert tuned_cv(probs, labels, seed=0) < same_rows - 0.02


def test_tuned_cv_spread_is_the_mean_and_sd_over_split_seeds() -> None:
    from trainer.metrics import tuned_cv, tuned_cv_spread

    rng = np.random.default_rng(3)
    y = rng.random((400, 6)) < 0.2
    probs = np.clip(rng.random((400, 6)) * 0.6 + y * 0.3, 0, 1)
    mean, sd = tuned_cv_spread(probs, y, seed=42, default=0.2, splits=5)
    scores = [tuned_cv(probs, y, seed=42 + i, default=0.2) for i in range(5)]
    assert np.isclose(mean, np.mean(scores)) and np.isclose(sd, np.std(scores, ddof=1)) and sd > 0
