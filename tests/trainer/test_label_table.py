"""The final model's per-label table (issue 20): scores equal sklearn's, intervals hold the point and widen for
rare labels, and the resamples are seeded."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score, precision_score, recall_score

from trainer.label_table import per_label_table


def test_scores_match_sklearn_and_intervals_hold_the_point_and_widen_for_rare_labels() -> None:
    rng = np.random.default_rng(1)
    y = np.zeros((2000, 3), dtype=bool)
    y[:, 0] = rng.random(2000) < 0.3  # common
    y[:, 1] = rng.random(2000) < 0.01  # rare
    probs = np.clip(rng.normal(0.25, 0.15, (2000, 3)) + y * 0.35, 0, 1)
    thresholds = np.array([0.5, 0.6, 0.3])
    rows = per_label_table(probs, y, thresholds, ["common", "rare", "none"], resamples=500, seed=3)
    for i, row in enumerate(rows):
        pred = probs[:, i] >= thresholds[i]
        assert row["f1"] == round(f1_score(y[:, i], pred, zero_division=0), 4)
        assert row["precision"] == round(precision_score(y[:, i], pred, zero_division=0), 4)
        assert row["recall"] == round(recall_score(y[:, i], pred, zero_division=0), 4)
        assert row["support"] == int(y[:, i].sum()) and row["threshold"] == thresholds[i]
        assert row["f1_low"] <= row["f1"] <= row["f1_high"]
    width = {r["label"]: r["f1_high"] - r["f1_low"] for r in rows}
    assert width["rare"] > 2 * width["common"]
    assert rows[2]["support"] == 0 and rows[2]["f1"] == 0.0 and rows[2]["f1_high"] == 0.0
    again = per_label_table(probs, y, thresholds, ["common", "rare", "none"], resamples=500, seed=3)
    assert again == rows


def test_the_final_test_fields_give_the_macro_f1_an_interval_around_its_point() -> None:
    from trainer.label_table import final_test_fields

    rng = np.random.default_rng(4)
    y = rng.random((1000, 6)) < 0.2
    probs = np.clip(rng.normal(0.25, 0.15, (1000, 6)) + y * 0.35, 0, 1)
    fields = final_test_fields(probs, y, np.full(6, 0.45), [f"l{i}" for i in range(6)], resamples=300)
    macro = f1_score(y, probs >= 0.45, average="macro", zero_division=0)
    low, high = fields["tuned_interval"]
    assert low < macro < high and high - low < 0.1 and len(fields["per_label"]) == 6
