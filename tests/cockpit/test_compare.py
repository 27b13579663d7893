"""`goemo-cockpit compare`: the comparison model, mean ± std over seeds, --headless, bad input, the TUI screen."""

from __future__ import annotations

import asyncio
import json
import statistics
from pathlib import Path

import pytest

import fake_pipeline as fp
from pilot_helpers import wait_loaded, wait_until
from cockpit.compare import (CompareError, Spread, compare_pipelines, comparison_tables, main_compare, seeds_in,
                             without_seeds)
from cockpit.export import leaderboard_table, read_pipeline
from cockpit.screens.compare import CompareScreen
from cockpit.screens.dashboard import DashboardScreen
from cockpit.screens.help import binding_rows
from textual.widgets import DataTable, Static
from trainer.contract import EVENTS_FILE, FINAL_RUN, PIPELINE_FILE, PRESET_FILE, SUMMARY_FILE

A, B, C = "20261126-221500-quick", "20261127-090000-quick", "20261128-090000-quick"
OTHER_PRESET = "\n[phase1]\nmax_train_samples = 500\n"


@pytest.fixture
def three(runs_dir: Path) -> tuple[Path, Path, Path]:
    """A and B share a preset and differ only in seed (1 and 3); C has another preset (and seed 2)."""
    return (fp.write_fake_pipeline(runs_dir, pipeline_id=A, seed=1, preset_seed=1, dev_tuned=True),
            fp.write_fake_pipeline(runs_dir, pipeline_id=B, seed=3, preset_seed=3, dev_tuned=True),
            fp.write_fake_pipeline(runs_dir, pipeline_id=C, seed=2, preset_seed=2, preset_extra=OTHER_PRESET,
                                   dev_tuned=True))


def final_test_per_class(folder: Path) -> dict[str, float]:
    events = [json.loads(line) for line in (folder / FINAL_RUN / EVENTS_FILE).read_text().splitlines()]
    test = [e for e in events if e["type"] == "eval" and e.get("final") and e["split"] == "test"][-1]
    return {c["label"]: c["f1"] for c in test["per_class"]}


def test_configs_are_matched_by_phase_and_name_across_pipelines(three) -> None:
    comparison = compare_pipelines(three)
    assert [(p.label, p.name, p.seed, p.status) for p in comparison.pipelines] == [
        ("#1", A, "1", "completed"), ("#2", B, "3", "completed"), ("#3", C, "2", "completed")]
    assert [(r.phase, r.config) for r in comparison.configs] == [
        (1, "asl"), (1, "bce"), (1, "combined_07"), (3, "asl"), (4, "final")]
    bce = comparison.configs[1]
    assert bce.dev_f1 == (0.3841, 0.3753, 0.3772)
    assert bce.dev_tuned == (0.4141, 0.4053, 0.4072)
    assert comparison.configs[2].dev_f1 == (None, None, None)  # failed everywhere: no score
    # The same numbers as each pipeline's exported leaderboard.
    for i, folder in enumerate(three):
        board = leaderboard_table(read_pipeline(folder))
        for run, phase, config, f1, tuned, cv in zip(board.column("run"), board.column("phase"), board.column("config"),
                                                     board.column("f1_macro@0.2"), board.column("tuned_f1_macro"),
                                                     board.column("tuned_cv_f1_macro")):
            row = next(r for r in comparison.configs if (r.phase, r.config) == (phase, config))
            assert (row.dev_f1[i], row.dev_tuned[i], row.dev_tuned_cv[i]) == (f1, tuned, cv), run
    assert bce.dev_tuned_cv == (0.4021, 0.3933, 0.3952)  # a bit below tuned: cross-fitted, less optimistic
    configs_table = comparison_tables(comparison)[1]
    assert configs_table.columns[2:5] == ("#1 F1@0.2", "#1 tuned", "#1 tuned cv")
    assert configs_table.rows[1][:5] == ("1", "bce", "0.3841", "0.4141", "0.4021")


def test_final_test_numbers_are_each_pipelines_summary(three) -> None:
    comparison = compare_pipelines(three)
    for pipeline, folder in zip(comparison.pipelines, three):
        test = json.loads((folder / SUMMARY_FILE).read_text())["final"]["test"]
        assert (pipeline.final_run, pipeline.test_f1, pipeline.test_tuned) == (
            FINAL_RUN, test["f1_macro@0.2"], test["f1_macro_tuned"])
    assert [(p.test_f1, p.test_tuned) for p in comparison.pipelines] == [
        (0.5106, 0.5406), (0.5149, 0.5449), (0.5106, 0.5406)]


def test_per_label_deltas_are_against_the_first_pipeline(three) -> None:
    comparison = compare_pipelines(three)
    scores = [final_test_per_class(folder) for folder in three]
    assert [row.label for row in comparison.labels] == fp.LABELS
    for row in comparison.labels:
        assert row.test_f1 == tuple(s[row.label] for s in scores)
        assert row.deltas[0] is None
        assert row.deltas[1:] == pytest.approx([s[row.label] - scores[0][row.label] for s in scores[1:]])
    admiration = comparison.labels[0]
    assert admiration.test_f1 == (0.7595, 0.8071, 0.8174)
    labels_table = comparison_tables(comparison)[2]
    assert labels_table.columns == ("label", "#1 F1", "#2 F1", "Δ #2", "#3 F1", "Δ #3")
    assert labels_table.rows[0] == ("admiration", "0.7595", "0.8071", "+0.0476", "0.8174", "+0.0579")
    assert labels_table.rows[1] == ("amusement", "0.7734", "0.7215", "-0.0519", "0.7223", "-0.0511")


def test_pipelines_that_differ_only_in_seed_get_mean_and_std(three) -> None:
    comparison = compare_pipelines(three)
    # C's preset differs beyond its seed: only A and B form a group.
    assert {(r.group, r.seeds) for r in comparison.seed_rows} == {("#1 #2", "1, 3")}
    rows = {(r.split, r.phase, r.config): r for r in comparison.seed_rows}
    assert list(rows) == [("dev", 1, "asl"), ("dev", 1, "bce"), ("dev", 3, "asl"), ("dev", 4, "final"),
                          ("test", 4, "final")]
    bce = rows["dev", 1, "bce"]
    assert (bce.f1.n, bce.f1.mean, bce.f1.std) == (2, pytest.approx(0.3797), pytest.approx(0.0062225397))
    assert bce.f1.std == pytest.approx(statistics.stdev([0.3841, 0.3753]))
    assert (bce.tuned.mean, bce.tuned.std) == (pytest.approx(0.4097), pytest.approx(0.0062225397))
    test = rows["test", 4, "final"]
    assert (test.f1.mean, test.f1.std) == (pytest.approx(0.51275), pytest.approx(0.0030405592))
    assert (test.tuned.mean, test.tuned.std) == (pytest.approx(0.54275), pytest.approx(0.0030405592))
    seeds_table = comparison_tables(comparison)[3]
    assert seeds_table.columns == ("pipelines", "seeds", "split", "phase", "config", "n", "F1@0.2", "tuned")
    # The 95 % interval of the mean is the leaderboard's over seeds: t with n - 1 = 1 degree of freedom (12.706).
    half = 12.7062047 * statistics.stdev([0.3841, 0.3753]) / 2 ** 0.5
    assert (bce.f1.low, bce.f1.high) == (pytest.approx(0.3797 - half), pytest.approx(0.3797 + half))
    assert seeds_table.rows[1] == ("#1 #2", "1, 3", "dev", "1", "bce", "2", "0.3797 ± 0.0062 [0.3238, 0.4356]",
                                   "0.4097 ± 0.0062 [0.3538, 0.4656]")
    assert seeds_table.rows[-1] == ("#1 #2", "1, 3", "test", "4", "final", "2", "0.5128 ± 0.0030 [0.4854, 0.5401]",
                                    "0.5428 ± 0.0030 [0.5154, 0.5701]")


def test_a_third_seed_joins_the_group(three, runs_dir: Path) -> None:
    d = fp.write_fake_pipeline(runs_dir, pipeline_id="20261129-090000-quick", seed=7, preset_seed=7)
    comparison = compare_pipelines([*three, d])
    test = next(r for r in comparison.seed_rows if r.split == "test")
    assert (test.group, test.seeds, test.f1.n) == ("#1 #2 #4", "1, 3, 7", 3)
    assert test.f1.mean == pytest.approx(statistics.fmean([0.5106, 0.5149, 0.512]))
    assert test.f1.std == pytest.approx(statistics.stdev([0.5106, 0.5149, 0.512]))
    # D's dev evals carry no tuned score: the tuned spread is over A and B only.
    bce = next(r for r in comparison.seed_rows if (r.split, r.config) == ("dev", "bce"))
    assert (bce.f1.n, bce.tuned.n) == (3, 2)


def test_same_seed_or_no_seed_makes_no_group(runs_dir: Path) -> None:
    same = [fp.write_fake_pipeline(runs_dir, pipeline_id=f"2026112{i}-000000-quick", seed=i, preset_seed=1)
            for i in (1, 2)]
    assert compare_pipelines(same).seed_rows == ()
    unseeded = [fp.write_fake_pipeline(runs_dir, pipeline_id=f"2026113{i}-000000-quick", seed=i) for i in (1, 2)]
    comparison = compare_pipelines(unseeded)
    assert comparison.seed_rows == () and [p.seed for p in comparison.pipelines] == [None, None]
    assert comparison_tables(comparison)[3].rows == ()


def test_seed_keys_are_removed_at_any_depth() -> None:
    preset = {"name": "q", "seed": 1, "defaults": {"seed": 42, "lr": 1e-4},
              "configs": [{"name": "bce", "seed": 42}, {"name": "asl"}]}
    assert without_seeds(preset) == {"name": "q", "defaults": {"lr": 1e-4}, "configs": [{"name": "bce"},
                                                                                          {"name": "asl"}]}
    assert seeds_in(preset) == ("1", "42")
    assert Spread.of([0.5, None]).text() == "0.5000" and Spread.of([None]).text() == "–"


def test_a_live_pipeline_is_compared_with_what_it_has(three, runs_dir: Path) -> None:
    live = fp.write_fake_pipeline(runs_dir, pipeline_id="20261129-090000-quick", finished=False)
    comparison = compare_pipelines([three[0], live])
    assert comparison.pipelines[1].status == "running"
    assert comparison.pipelines[1].final_run is None and comparison.pipelines[1].test_f1 is None
    assert comparison.notes == ("#2 still running: numbers may change",)
    assert all(row.test_f1[1] is None and row.deltas[1] is None for row in comparison.labels)
    assert next(r for r in comparison.configs if (r.phase, r.config) == (4, "final")).dev_f1[1] is None


@pytest.mark.parametrize("name", [PIPELINE_FILE, PRESET_FILE])
def test_a_pipeline_whose_files_cannot_be_read_is_unreadable_not_running(three, runs_dir: Path, name: str,
                                                                         capsys) -> None:
    live = fp.write_fake_pipeline(runs_dir, pipeline_id="20261129-090000-quick", finished=False)
    (live / name).write_bytes(b"\x00\x9f not what was written\n" * 2)
    comparison = compare_pipelines([three[0], live])
    assert comparison.pipelines[1].status == "unreadable"
    (note,) = comparison.notes
    assert note.startswith(f"#2 unreadable: {live / name}: ") and "expected" in note
    assert main_compare([str(three[0]), str(live), "--headless"]) == 0
    out = capsys.readouterr().out
    assert "unreadable" in out and "still running" not in out


def test_skipped_lines_are_counted_in_a_note(three) -> None:
    with open(three[1] / "p1-bce" / EVENTS_FILE, "ab") as fh:
        fh.write(b"{torn\n[]\n")
    assert compare_pipelines(three).notes == ("#2: 2 bad lines skipped",)


def test_headless_prints_every_table(three, capsys) -> None:
    assert main_compare([str(p) for p in three] + ["--headless"]) == 0
    out = capsys.readouterr().out
    for text in (A, B, C, "pipelines and final test", "dev F1@0.2 by config", "per-label test F1, Δ against #1",
                 "mean ± std [95% of the mean] over seeds", "0.5128 ± 0.0030 [0.4854, 0.5401]", "+0.0476", "combined_07"):
        assert text in out, text


def test_headless_says_when_no_seed_group_exists(three, capsys) -> None:
    assert main_compare([str(three[0]), str(three[2]), "--headless"]) == 0
    assert "no two pipelines share a preset that differs only in seed" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["not-a-pipeline", "missing", "twice", "none", "unknown-flag"])
def test_bad_input_is_one_line_and_exit_2(three, tmp_path: Path, capsys, case: str) -> None:
    (tmp_path / "plain").mkdir()
    argv = {"not-a-pipeline": [str(three[0]), str(tmp_path / "plain")],
            "missing": [str(tmp_path / "gone"), str(three[0])],
            "twice": [str(three[0]), str(three[0].parent / ".." / three[0].parent.name / three[0].name)],
            "none": ["--headless"],
            "unknown-flag": [str(three[0]), "--wide"]}[case]
    assert main_compare(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("goemo-cockpit compare: error: "), captured.err
    assert captured.out == ""
    with pytest.raises(CompareError):
        compare_pipelines([])


def test_the_compare_key_is_listed_in_help() -> None:
    rows = binding_rows([("dashboard", DashboardScreen), ("compare", CompareScreen)])
    assert ("dashboard", "c", "dashboard.compare") in [row[:3] for row in rows]
    assert ("compare", "escape", "compare.back") in [row[:3] for row in rows]


async def open_compare(pilot) -> None:
    """From the dashboard, press c and wait for the comparison to be drawn."""
    await wait_loaded(pilot)
    await pilot.press("c")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, CompareScreen)
                     and pilot.app.screen.comparison is not None)
    await wait_loaded(pilot)


def test_c_on_the_dashboard_opens_the_comparison_of_the_runs_folder(three, make_test_app) -> None:
    async def scenario() -> None:
        app = make_test_app(three[0])
        async with app.run_test(size=(120, 36)) as pilot:
            await open_compare(pilot)
            screen = app.screen
            pipelines = screen.query_one("#compare-pipelines", DataTable)
            # The followed pipeline first, then the others of the runs folder, newest first.
            assert [str(pipelines.get_row_at(i)[1]) for i in range(pipelines.row_count)] == [A, C, B]
            assert [p.name for p in screen.comparison.pipelines] == [A, C, B]
            assert f"Δ against #1 {A}" in str(screen.query_one("#compare-line", Static).render())
            seeds = screen.query_one("#compare-seeds", DataTable)
            assert str(seeds.get_row_at(seeds.row_count - 1)[6]) == "0.5128 ± 0.0030 [0.4854, 0.5401]"
            configs = screen.query_one("#compare-configs", DataTable)
            assert [str(configs.get_row_at(i)[1]) for i in range(configs.row_count)] == [
                "asl", "bce", "combined_07", "asl", "final"]
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen))

    asyncio.run(scenario())


def test_compare_screen_120x36(snap_compare, three, make_test_app) -> None:
    assert snap_compare(make_test_app(three[0]), terminal_size=(120, 36), run_before=open_compare)


def test_the_standalone_app_shows_a_comparison_and_escape_quits(three) -> None:
    from cockpit.screens.compare import CompareApp

    async def scenario() -> None:
        app = CompareApp(compare_pipelines(three[:2]))
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.comparison)
            pipelines = app.screen.query_one("#compare-pipelines", DataTable)
            assert [str(pipelines.get_row_at(i)[1]) for i in range(pipelines.row_count)] == [A, B]
            assert "2 pipelines · Δ against #1" in str(app.screen.query_one("#compare-line", Static).render())
            await pilot.press("escape")
            await wait_until(pilot, lambda: not app.is_running)

    asyncio.run(scenario())


def test_two_runs_per_label_put_the_largest_differences_first(finished_pipeline: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from cockpit.compare import compare_pipelines, main_compare

    c = compare_pipelines([finished_pipeline], ["p1-bce", "#1:p1-asl"])
    assert c.run_pair == ("#1:p1-bce", "#1:p1-asl") and len(c.run_labels) == 28
    deltas = [abs(r.delta) for r in c.run_labels if r.delta is not None]
    assert deltas == sorted(deltas, reverse=True) and deltas[0] > 0
    assert main_compare([str(finished_pipeline), "--runs", "p1-bce", "p1-asl", "--headless"]) == 0
    out = capsys.readouterr().out
    assert "largest differences first" in out.replace("\n", " ")
    assert main_compare([str(finished_pipeline), "--runs", "p1-bce", "p9-x", "--headless"]) == 2
    assert "no run 'p9-x'" in capsys.readouterr().err
