"""The paired bootstrap (issue 19): Δ macro-F1 of two runs on the same dev rows, checked against a plain loop,
and its verdict: runs drawn from one distribution are tied, clearly separated ones are not."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cockpit.judgements.paired import compare_runs, paired_bootstrap
from trainer.contract import BEST, CHECKPOINTS_DIR, PROBS_FILES


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """By hand: per label 2tp / (true + predicted), 0/0 as 0, then the mean."""
    scores = []
    for j in range(y.shape[1]):
        tp = int(np.sum(y[:, j] & pred[:, j]))
        den = int(y[:, j].sum() + pred[:, j].sum())
        scores.append(2 * tp / den if den else 0.0)
    return sum(scores) / len(scores)


def test_it_matches_a_hand_computation_of_the_same_resamples() -> None:
    rng = np.random.default_rng(5)
    y = rng.random((60, 4)) < 0.3
    pa, pb = rng.random((60, 4)), np.clip(rng.random((60, 4)) + 0.3 * y, 0, 1)
    result = paired_bootstrap(y, pa, pb, 0.5, resamples=200, seed=9)
    assert np.isclose(result.delta, macro_f1(y, pb >= 0.5) - macro_f1(y, pa >= 0.5))
    # The same resamples, drawn the same way, as row indices: a plain loop over them.
    counts = np.random.default_rng(9).multinomial(60, np.full(60, 1 / 60), size=200)
    deltas = []
    for row_counts in counts:
        rows = np.repeat(np.arange(60), row_counts)
        deltas.append(macro_f1(y[rows], pb[rows] >= 0.5) - macro_f1(y[rows], pa[rows] >= 0.5))
    low, high = np.percentile(deltas, [2.5, 97.5])
    assert np.isclose(result.low, low) and np.isclose(result.high, high)
    assert result.text().startswith(f"{result.delta:+.3f} [")


def _model(rng: np.random.Generator, y: np.ndarray, skill: float) -> np.ndarray:
    return 1 / (1 + np.exp(-(rng.normal(0, 1, y.shape) + skill * (2 * y - 1) - 1.0)))


def test_two_runs_from_one_distribution_are_tied_and_separated_ones_are_not() -> None:
    rng = np.random.default_rng(0)
    y = rng.random((2000, 10)) < 0.15
    same_a, same_b = _model(rng, y, 1.0), _model(rng, y, 1.0)
    better = _model(rng, y, 2.0)
    assert paired_bootstrap(y, same_a, same_b, 0.3).tied
    separated = paired_bootstrap(y, same_a, better, 0.3)
    assert not separated.tied and separated.low > 0


def test_runs_are_compared_from_their_best_checkpoints_only_on_the_same_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    y = rng.random((300, 5)) < 0.2

    def run(name: str, probs: np.ndarray, labels: np.ndarray) -> Path:
        best = tmp_path / name / CHECKPOINTS_DIR / BEST
        best.mkdir(parents=True)
        np.save(best / PROBS_FILES[0], probs.astype(np.float32))
        np.save(best / PROBS_FILES[2], labels.astype(np.uint8))
        return tmp_path / name

    a, b = run("p1-bce", _model(rng, y, 1.0), y), run("p1-asl", _model(rng, y, 1.5), y)
    assert compare_runs(a, b, 0.3) is not None
    other_rows = run("p3-bce", _model(rng, y, 1.0), ~y)
    assert compare_runs(a, other_rows, 0.3) is None  # another dev subset: no pairing
    assert compare_runs(a, tmp_path / "p1-none", 0.3) is None  # no probabilities (an older trainer)


def test_the_leaderboard_gets_each_runs_paired_delta_against_the_leader(tmp_path: Path) -> None:
    from cockpit.judgements.paired import against_leader
    from cockpit.leaderboard import vs_leader_text

    rng = np.random.default_rng(2)
    y = rng.random((1500, 8)) < 0.2
    for name, skill in (("p1-asl", 2.0), ("p1-bce", 2.0), ("p1-focal", 0.5)):
        best = tmp_path / name / CHECKPOINTS_DIR / BEST
        best.mkdir(parents=True)
        np.save(best / PROBS_FILES[0], _model(rng, y, skill).astype(np.float32))
        np.save(best / PROBS_FILES[2], y.astype(np.uint8))
    rows = against_leader([{"run": "p1-asl"}, {"run": "p1-bce"}, {"run": "p1-focal"}, {"run": "p1-gone"}],
                          lambda run: tmp_path / run, 0.3)
    assert rows[0]["vs_leader"] is None and rows[3]["vs_leader"] is None
    assert rows[1]["vs_leader"]["tied"] is True and rows[2]["vs_leader"]["tied"] is False
    assert vs_leader_text(rows[1]["vs_leader"]).startswith("≈ ") and vs_leader_text(rows[2]["vs_leader"])[0] == "-"
    assert vs_leader_text(None) == ""


def test_the_final_test_score_carries_its_interval_wherever_it_is_shown() -> None:
    from cockpit.state import PipelineState

    summary = {"pipeline": "p", "preset": "quick", "status": "completed", "primary_threshold": 0.2,
               "leaderboard": [], "final": {"run": "p4-final", "config": "bce", "mode": "retrain",
                                            "test": {"f1_macro@0.2": 0.5244, "f1_macro_tuned": 0.5254,
                                                     "f1_macro_tuned_interval": [0.512, 0.538]}}}
    state = PipelineState()
    state.apply("summary", {"v": 1, "t": 1.0, "type": "summary", "data": summary})
    final = state.snapshot(2.0).final
    assert final.tuned_text == "0.5254 [0.512, 0.538]"
    summary["final"]["test"]["f1_macro_tuned_interval"] = [0.6, 0.5]  # not an interval: the bare score
    state.apply("summary", {"v": 1, "t": 3.0, "type": "summary", "data": summary})
    assert state.snapshot(4.0).final.tuned_text == "0.5254"


def test_the_tui_leaderboard_shows_the_paired_delta_once_summary_json_has_it(finished_pipeline: Path,
                                                                            make_test_app) -> None:
    import asyncio
    import json

    from cockpit.widgets import LeaderboardTable
    from pilot_helpers import wait_loaded
    from trainer.contract import SUMMARY_FILE

    summary_file = finished_pipeline / SUMMARY_FILE
    summary = json.loads(summary_file.read_text())
    summary["leaderboard"][1]["vs_leader"] = {"delta": -0.004, "low": -0.015, "high": 0.007, "tied": True}
    summary_file.write_text(json.dumps(summary))

    async def run() -> None:
        app = make_test_app(finished_pipeline)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_loaded(pilot)
            table = app.screen.query_one(LeaderboardTable)
            headers = [str(c.label) for c in table.columns.values()]
            assert headers[-1] == "Δ leader [95%]"
            cells = [str(table.get_row_at(i)[-1]) for i in range(table.row_count)]
            assert "≈ -0.004 [-0.015, +0.007]" in cells

    asyncio.run(run())
