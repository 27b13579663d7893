"""Configs over seeds (issue 19): run ids and plans of `seeds = k`, the statistics of a seed group, the pooled paired
bootstrap against a hand computation, ties, the selection rule and its sentence, and every view of the groups."""

from __future__ import annotations

import asyncio
import io
import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import t as student_t

import fake_seeds
from test_paired import macro_f1  # the hand computation the paired bootstrap is checked against
from cockpit.judgements.paired import paired_bootstrap, pooled_bootstrap
from cockpit.judgements.seeds import decision, group_rows, seed_stats
from trainer.contract import run_id, run_seed, split_run_id


def _model(rng: np.random.Generator, y: np.ndarray, skill: float) -> np.ndarray:
    return 1 / (1 + np.exp(-(rng.normal(0, 1, y.shape) + skill * (2 * y - 1) - 1.0)))


# -- run ids and plans ------------------------------------------------------------------------------------------
def test_a_seed_run_id_names_its_config_and_seed() -> None:
    assert run_id(1, "combined_07", 43) == "p1-combined_07-s43" and run_id(1, "bce") == "p1-bce"
    assert split_run_id("p1-combined_07-s43") == (1, "combined_07") and run_seed("p1-combined_07-s43") == 43
    assert run_seed("p1-bce") is None and run_seed("p4-final") is None and run_seed("x-s3") is None


def test_seeds_k_plans_k_runs_per_config_that_share_their_eval_rows() -> None:
    from cockpit.pipeline.presets import load_preset, phase1_plan, seed_runs

    preset, _ = load_preset("smoke", ["pipeline.seeds=3", "phase3.seeds=2", "seed=7"])
    plan = phase1_plan(preset, ["bce", "asl"])
    assert [p.run_id for p in plan] == ["p1-bce-s7", "p1-bce-s8", "p1-bce-s9", "p1-asl-s7", "p1-asl-s8", "p1-asl-s9"]
    assert [p.run_id for p in seed_runs(preset, 3, ["asl"])] == ["p3-asl-s7", "p3-asl-s8"]
    configs = [preset.run_config(1, preset.config("bce"), p.run_id, p.seed) for p in plan[:3]]
    assert [c.seed for c in configs] == [7, 8, 9] and {c.evaluation_seed for c in configs} == {7}
    one, _ = load_preset("smoke")  # one seed: the ids and configs of before
    assert [p.run_id for p in phase1_plan(one, ["bce"])] == ["p1-bce"]
    assert one.run_config(1, one.config("bce"), "p1-bce").eval_seed is None


@pytest.mark.parametrize("override, expected", [
    ("phase1.seeds=0", "key 'phase1.seeds': expected the seeds per config, an integer from 1 to 10 (got 0)"),
    ("pipeline.seeds=11", "key 'pipeline.seeds'"),
    ("pipeline.final=seed_ensemble", "key 'pipeline.final': 'seed_ensemble' averages the best config trained"),
])
def test_bad_seeds_are_one_line(override: str, expected: str) -> None:
    from cockpit.pipeline.presets import PresetError, load_preset

    with pytest.raises(PresetError) as info:
        load_preset("smoke", [override])
    assert expected in str(info.value) and "\n" not in str(info.value)


# -- statistics ---------------------------------------------------------------------------------------------------
def test_a_groups_interval_is_the_t_interval_of_its_mean() -> None:
    values = [0.41, 0.43, 0.40]
    stats = seed_stats(values)
    half = student_t.ppf(0.975, 2) * statistics.stdev(values) / math.sqrt(3)
    assert stats is not None and stats.n == 3 and stats.mean == pytest.approx(statistics.fmean(values))
    assert (stats.low, stats.high) == (pytest.approx(stats.mean - half), pytest.approx(stats.mean + half))
    one = seed_stats([0.5])
    assert one is not None and (one.std, one.low, one.text()) == (None, None, "0.500") and seed_stats([]) is None


def test_the_pooled_bootstrap_matches_a_hand_computation_of_the_same_draws() -> None:
    rng = np.random.default_rng(5)
    y = rng.random((60, 4)) < 0.3
    a = [rng.random((60, 4)) for _ in range(2)]
    b = [np.clip(rng.random((60, 4)) + 0.3 * y, 0, 1) for _ in range(3)]
    result = pooled_bootstrap(y, a, b, 0.5, resamples=200, seed=9)
    assert result.delta == pytest.approx(np.mean([macro_f1(y, p >= 0.5) for p in b])
                                         - np.mean([macro_f1(y, p >= 0.5) for p in a]))
    # The same draws by hand: rows as indices (the multinomial of paired.py), then each side's seeds.
    counts = np.random.default_rng(9).multinomial(60, np.full(60, 1 / 60), size=200)
    seeds = np.random.default_rng([9, 1])
    picks_a, picks_b = seeds.integers(0, 2, size=(200, 2)), seeds.integers(0, 3, size=(200, 3))
    deltas = []
    for r, row_counts in enumerate(counts):
        rows = np.repeat(np.arange(60), row_counts)
        mean_b = np.mean([macro_f1(y[rows], b[i][rows] >= 0.5) for i in picks_b[r]])
        mean_a = np.mean([macro_f1(y[rows], a[i][rows] >= 0.5) for i in picks_a[r]])
        deltas.append(mean_b - mean_a)
    low, high = np.percentile(deltas, [2.5, 97.5])
    assert (result.low, result.high) == (pytest.approx(low), pytest.approx(high))


def test_with_one_seed_a_side_it_is_the_paired_bootstrap() -> None:
    rng = np.random.default_rng(2)
    y = rng.random((80, 5)) < 0.2
    pa, pb = _model(rng, y, 1.0), _model(rng, y, 1.5)
    assert pooled_bootstrap(y, [pa], [pb], 0.3, seed=4) == paired_bootstrap(y, pa, pb, 0.3, seed=4)


def test_configs_from_one_distribution_are_tied_and_separated_ones_are_not() -> None:
    rng = np.random.default_rng(0)
    y = rng.random((1500, 10)) < 0.15
    same_a = [_model(rng, y, 1.0) for _ in range(3)]
    same_b = [_model(rng, y, 1.0) for _ in range(3)]
    better = [_model(rng, y, 1.8) for _ in range(3)]
    assert pooled_bootstrap(y, same_a, same_b, 0.3).tied
    separated = pooled_bootstrap(y, same_a, better, 0.3)
    assert not separated.tied and separated.low > 0


# -- groups and the selection rule --------------------------------------------------------------------------------
LOSSES = {"bce": "bce", "asl": "asl", "combined_07": "combined"}


def _row(run: str, f1: float | None, tuned: float | None = None, status: str = "completed") -> dict:
    phase, config = split_run_id(run)
    return {"run": run, "phase": phase, "config": config, "loss": LOSSES[config], "status": status,
            "f1_macro@0.2": f1, "tuned_cv_f1_macro": None, "tuned_f1_macro": tuned}


def test_groups_rank_by_the_mean_and_say_how_many_seeds_finished() -> None:
    board = [_row("p1-asl-s1", 0.50), _row("p1-asl-s2", 0.38), _row("p1-bce-s1", 0.44), _row("p1-bce-s2", 0.45),
             _row("p1-bce-s3", None, status="failed")]
    groups = group_rows(board, 0.2, "f1@primary", {(1, "bce"): 3, (1, "asl"): 2})
    assert [(g["config"], g["n"], g["planned"], g["partial"]) for g in groups] == [("bce", 2, 3, True),
                                                                                   ("asl", 2, 2, False)]
    assert groups[0]["f1_macro@0.2"]["mean"] == pytest.approx(0.445) and groups[0]["status"] == "failed"


def test_equal_means_fall_to_calibration_then_to_the_simpler_loss() -> None:
    from cockpit.pipeline.results import leaderboard

    calibrated = [_row("p1-combined_07", 0.45, tuned=0.46), _row("p1-bce", 0.45, tuned=0.50)]
    groups = group_rows(calibrated, 0.2, "f1@primary", {})
    assert [g["config"] for g in groups] == ["combined_07", "bce"]
    assert "better calibrated" in decision(groups, 1, 0.2, "f1@primary")["rule"]
    simple = [_row("p1-combined_07", 0.45, tuned=0.47), _row("p1-asl", 0.45, tuned=0.47)]
    groups = group_rows(simple, 0.2, "f1@primary", {})
    assert [g["config"] for g in groups] == ["asl", "combined_07"]
    assert decision(groups, 1, 0.2, "f1@primary")["rule"] == "its means and calibration tie and its loss is simpler"
    # One seed per config: the per-run leaderboard breaks its ties by the same rule, so the two orders agree.
    assert [r["run"] for r in leaderboard(simple, 0.2, None, 0.5, 0.4)] == ["p1-asl", "p1-combined_07"]


# -- every view of a seeded pipeline --------------------------------------------------------------------------------
@pytest.fixture
def seeded(runs_dir: Path) -> Path:
    return fake_seeds.write_seeded_pipeline(runs_dir)


def test_summary_json_lists_groups_per_seed_runs_and_a_decision(seeded: Path) -> None:
    summary = json.loads((seeded / "summary.json").read_text())
    groups = {g["config"]: g for g in summary["groups"]}
    assert [g["config"] for g in summary["groups"]][0] == "combined_07"
    assert groups["bce"]["runs"] == ["p1-bce-s42", "p1-bce-s43", "p1-bce-s44"] and groups["bce"]["n"] == 3
    assert groups["bce"]["seeds"] == [42, 43, 44]
    assert groups["asl"]["vs_baseline"]["tied"] is True  # bce and asl draw from one distribution
    assert groups["bce"]["vs_leader"]["tied"] is False and groups["bce"]["vs_leader"]["high"] < 0
    assert len(summary["leaderboard"]) == 9 and summary["baseline"]["runs"] == groups["bce"]["runs"]
    assert summary["decisions"][0]["kept"] == "combined_07" and not summary["decisions"][0]["tied"]


def test_headless_prints_the_groups_and_the_decision(seeded: Path) -> None:
    from cockpit.headless import HeadlessConsole

    out = io.StringIO()
    HeadlessConsole(out=out, err=io.StringIO()).final(json.loads((seeded / "summary.json").read_text()), seeded)
    text = out.getvalue()
    assert "by config over seeds" in text and "p1-combined_07" in text and "n=3" in text
    assert "≈ +0.0" in text or "≈ -0.0" in text  # asl against bce: a tie
    assert "`combined_07` was kept because its mean over seeds is higher" in text.replace("\n", " ")


def test_the_report_has_the_groups_table_and_the_decisions(seeded: Path) -> None:
    from cockpit.pipeline.report import write_report

    text = write_report(seeded).read_text()
    assert "## By config over seeds (dev)" in text and "| 1 | bce | 3 |" in text
    assert "## Decisions" in text and "differ outside the noise" in text


def test_compare_shows_a_pipelines_configs_over_seeds(seeded: Path) -> None:
    from cockpit.compare import compare_pipelines, comparison_tables

    comparison = compare_pipelines([seeded])
    table = next(t for t in comparison_tables(comparison) if t.title.startswith("configs over seeds"))
    assert [row[1] for row in table.rows] == ["p1-combined_07", "p1-asl", "p1-bce"]
    assert all(row[2] == "n=3" and row[6].startswith("± ") for row in table.rows)
    dev = comparison_tables(comparison)[1]
    assert dev.rows[0][:3] == ("1", "asl", table.rows[1][3])  # the config's mean over its seeds


def test_the_tui_leaderboard_groups_configs_and_unfolds_their_seeds(seeded: Path, make_test_app) -> None:
    from pilot_helpers import wait_loaded

    from cockpit.widgets import LeaderboardTable

    async def scenario() -> None:
        app = make_test_app(seeded)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_loaded(pilot)
            board = app.screen.query_one(LeaderboardTable)
            for _ in range(50):
                if board.row_count == 3:
                    break
                await pilot.pause(0.05)
            assert [str(board.get_row_at(i)[1]) for i in range(board.row_count)] == [
                "p1-combined_07", "p1-asl", "p1-bce"]
            board.focus()
            await pilot.press("e")
            await pilot.pause()
            assert board.row_count == 12 and str(board.get_row_at(1)[1]) == "  ↳ p1-combined_07-s42"
            await pilot.press("e")
            await pilot.pause()
            assert board.row_count == 3

    asyncio.run(scenario())


async def _leaderboard_tab_unfolded(pilot) -> None:
    from pilot_helpers import wait_loaded

    from cockpit.widgets import LeaderboardTable

    await wait_loaded(pilot)
    pilot.app.screen.query_one("#dashboard-tabs").active = "tab-leaderboard"
    await wait_loaded(pilot)
    pilot.app.screen.query_one(LeaderboardTable).focus()
    await pilot.press("e")
    await wait_loaded(pilot)


def test_seed_groups_leaderboard_tab_unfolded_80x24(snap_compare, seeded: Path, make_test_app) -> None:
    assert snap_compare(make_test_app(seeded), terminal_size=(80, 24), run_before=_leaderboard_tab_unfolded)


def test_seed_groups_dashboard_160x48(snap_compare, seeded: Path, make_test_app) -> None:
    from pilot_helpers import wait_loaded

    assert snap_compare(make_test_app(seeded), terminal_size=(160, 48), run_before=wait_loaded)
