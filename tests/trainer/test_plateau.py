"""early_stop_patience (issue 20): a flat selection score ends the run, a rising one never does."""

from __future__ import annotations

from trainer.plateau import Plateau


def feed(plateau: Plateau, values: list[float | None]) -> list[bool]:
    out = []
    for i, value in enumerate(values, start=1):
        plateau.observe(10 * i, value)
        out.append(plateau.reached)
    return out


def test_a_flat_score_ends_after_patience_evals_and_says_since_when() -> None:
    plateau = Plateau(patience=3, min_delta=0.001)
    assert feed(plateau, [0.30, 0.40, 0.4005, 0.399, 0.4009]) == [False, False, False, False, True]
    assert plateau.best_step == 20 and "plateau since step 20" in plateau.reason("dev_f1_macro@0.2")


def test_a_rising_score_never_ends_and_patience_0_is_off() -> None:
    assert not any(feed(Plateau(patience=2, min_delta=0.001), [0.1 + 0.01 * i for i in range(30)]))
    assert not any(feed(Plateau(patience=0, min_delta=0.0), [0.5] * 30))


def test_missing_scores_count_as_flat_and_the_state_survives_a_resume() -> None:
    plateau = Plateau(patience=2, min_delta=0.0)
    feed(plateau, [0.3, None])
    resumed = Plateau(patience=2, min_delta=0.0)
    resumed.restore(plateau.state())
    resumed.observe(30, 0.3)  # equal is not a rise
    assert resumed.reached and resumed.best_step == 10
    fresh = Plateau(patience=2, min_delta=0.0)
    fresh.restore(None)  # a checkpoint from before early stopping existed
    assert fresh.best is None and fresh.flat_evals == 0
