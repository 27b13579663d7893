"""Pilot tests: attach, live updates, stall banner, control keys, screens, layouts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import fake_pipeline as fp
from pilot_helpers import wait_loaded, wait_until
from cockpit.pipeline.control import take_commands
from cockpit.screens.dashboard import DashboardScreen
from cockpit.screens.help import HelpScreen
from cockpit.screens.modals import ConfirmScreen, DumpScreen
from cockpit.screens.phase_picker import PhasePickerScreen
from cockpit.screens.run_detail import RunDetailScreen, run_line
from cockpit.widgets import LeaderboardTable, RunsTable, StallBanner
from textual.widgets import Log, Static
from trainer.contract import EVENTS_FILE, SUMMARY_FILE


def cell(table, row: str, column: str) -> str:
    return str(table.get_cell(row, column))


def test_attach_to_finished_folder_shows_leaderboard(finished_pipeline: Path, make_test_app) -> None:
    async def scenario() -> None:
        app = make_test_app(finished_pipeline)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_loaded(pilot)
            board = app.screen.query_one(LeaderboardTable)
            await wait_until(pilot, lambda: board.row_count == 5)
            assert [key for key, _ in board._shown][:2] == ["p4-final", "p3-asl"]
            assert board.border_title == "leaderboard · ranked by dev F1@0.2"
            assert cell(board, "p4-final", "test") == "0.5120" and cell(board, "p3-asl", "tuned_cv") == "–"
            assert "0.5120" in str(app.screen.query_one("#final-line", Static).render())
            assert cell(app.screen.query_one(RunsTable), "p1-combined_07", "state") == "failed"

    asyncio.run(scenario())


def test_live_appended_steps_update_the_runs_table(live_pipeline: Path, make_test_app) -> None:
    events = live_pipeline / "p3-asl" / "events.jsonl"

    async def scenario() -> None:
        app = make_test_app(live_pipeline)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_loaded(pilot)
            runs = app.screen.query_one(RunsTable)
            assert cell(runs, "p3-asl", "step") == "30/80"
            for n in range(31, 41):
                fp.append(events, "step", fp.T0 + 500 + n, step=n, epoch=n / 80, loss=0.2, lr=1e-4, grad_norm=1.0,
                          samples_per_s=30.0, tokens_per_s=1.0, step_time_s=0.5, nonfinite_skipped=0)
            await wait_until(pilot, lambda: cell(runs, "p3-asl", "step") == "40/80")
            # A torn line, then its completion, never breaks the view.
            with open(events, "a") as fh:
                fh.write('{"v":1,"t":1,"type":"st')
            await pilot.pause(0.2)
            with open(events, "a") as fh:
                fh.write('ep"}\n' + fp.line("step", fp.T0 + 600, step=41, epoch=0.5, loss=0.2, lr=1e-4,
                                            grad_norm=1.0, samples_per_s=30.0, tokens_per_s=1.0,
                                            step_time_s=0.5, nonfinite_skipped=0))
            await wait_until(pilot, lambda: cell(runs, "p3-asl", "step") == "41/80")

    asyncio.run(scenario())


def test_stall_event_shows_banner_and_notifies(live_pipeline: Path, make_test_app) -> None:
    async def scenario() -> None:
        app = make_test_app(live_pipeline)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_loaded(pilot)
            banner = app.screen.query_one(StallBanner)
            assert not banner.has_class("-active")
            fp.append(live_pipeline / "pipeline.jsonl", "stall", fp.T0 + 900, run="p3-asl", attempt=1,
                      silent_s=130.0, dump="p3-asl/stall-1.txt")
            (live_pipeline / "p3-asl" / "stall-1.txt").write_text("Thread 0x1 (most recent call first):\n")
            await wait_until(pilot, lambda: banner.has_class("-active"))
            assert "p3-asl stalled" in str(banner.render())
            assert any("p3-asl stalled" in n.message for n in app._notifications)
            assert cell(app.screen.query_one(RunsTable), "p3-asl", "state") == "stalled"
            await pilot.press("d")
            await wait_until(pilot, lambda: isinstance(app.screen, DumpScreen))
            log = app.screen.query_one(Log)
            await wait_until(pilot, lambda: "most recent call first" in "\n".join(log.lines))

    asyncio.run(scenario())


def test_control_keys_write_commands(live_pipeline: Path, make_test_app) -> None:
    async def scenario() -> None:
        app = make_test_app(live_pipeline)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_loaded(pilot)
            assert app.selected_run == "p3-asl"  # the running one is selected first
            await pilot.press("s")
            await wait_until(pilot, lambda: (live_pipeline / "control").exists()
                             and len(list((live_pipeline / "control").iterdir())) == 1)
            await pilot.press("r")
            await wait_until(pilot, lambda: len(list((live_pipeline / "control").iterdir())) == 2)
            await pilot.press("x")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("n")
            await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen))
            await pilot.press("x")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await wait_until(pilot, lambda: len(list((live_pipeline / "control").iterdir())) == 3)
        taken = [(c["cmd"], c["run"]) for c in take_commands(live_pipeline)]
        assert taken == [("stop_run", "p3-asl"), ("restart_run", "p3-asl"), ("stop_pipeline", None)]

    asyncio.run(scenario())


def test_run_detail_help_and_leave(finished_pipeline: Path, make_test_app) -> None:
    async def scenario() -> None:
        app = make_test_app(finished_pipeline)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_loaded(pilot)
            await pilot.press("down", "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen))
            assert app.screen.run_id == "p1-asl"
            stderr = app.screen.query_one("#stderr", Log)
            await wait_until(pilot, lambda: any("attempt ended" in line for line in stderr.lines))
            await pilot.press("escape", "question_mark")
            await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
            ids = {row[2] for row in app.screen.rows}
            assert {"cockpit.stop_run", "cockpit.restart_run", "cockpit.stop_pipeline", "cockpit.leave",
                    "cockpit.attach", "cockpit.help", "dashboard.run_detail"} <= ids
            await pilot.press("escape", "q")
            await wait_until(pilot, lambda: not app.is_running)
        assert app.return_code == 0

    asyncio.run(scenario())


def test_picker_chooses_phases_and_configs_launches_smoke_and_watches_it_finish(runs_dir: Path,
                                                                               make_test_app) -> None:
    from textual.widgets import SelectionList

    async def scenario() -> None:
        app = make_test_app(None, runs_dir, preset="smoke")
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, PhasePickerScreen))
            picker = app.screen
            configs = picker.query_one(SelectionList)
            await wait_until(pilot, lambda: configs.option_count == 5 and picker.devices is not None)
            assert picker.phases == {1, 2, 3, 4}
            await pilot.press("2", "3", "4")  # phase 1 only
            assert picker.phases == {1}
            configs.focus()
            await pilot.press("j", "space", "j", "space", "j", "space", "j", "space")  # keep bce only
            assert picker.selected_configs() == ["bce"]
            plan = str(picker.query_one("#picker-plan").render())
            assert "1 runs" in plan and "160 rows" in plan
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.pipeline_dir is not None)
            assert app.pipeline_dir.parent == runs_dir
            await wait_until(pilot, lambda: app.snapshot is not None and any(r.run == "p1-bce" for r in app.snapshot.runs),
                             timeout=60)
            await wait_until(pilot, lambda: app.snapshot.status == "completed", timeout=180)
            assert [(r.run, r.status) for r in app.snapshot.runs] == [("p1-bce", "completed")]

    asyncio.run(scenario())


def test_picker_rejects_a_bad_override_and_keeps_the_preset(runs_dir: Path, make_test_app) -> None:
    async def scenario() -> None:
        app = make_test_app(None, runs_dir, preset="smoke")
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, PhasePickerScreen))
            picker = app.screen
            await pilot.press("o")
            await pilot.press(*"pipeline.top_k=many", "enter")
            await pilot.pause(0.2)
            assert picker.overrides == [] and picker.preset.pipeline.top_k == 2
            await pilot.press("o")
            await pilot.press(*"pipeline.top_k=1", "enter")
            await wait_until(pilot, lambda: picker.overrides == ["pipeline.top_k=1"])
            assert picker.preset.pipeline.top_k == 1 and "top 1 runs" in str(picker.query_one("#picker-plan").render())
            assert not runs_dir.exists() or not any(runs_dir.iterdir())  # nothing launched

    asyncio.run(scenario())


def test_attach_to_another_pipeline(finished_pipeline: Path, runs_dir: Path, make_test_app) -> None:
    other = fp.write_fake_pipeline(runs_dir, pipeline_id="20261127-080000-smoke", finished=False)

    async def scenario() -> None:
        app = make_test_app(finished_pipeline, runs_dir)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_loaded(pilot)
            await pilot.press("a")
            await pilot.pause(0.3)
            await pilot.press("enter")  # the newest folder is listed first
            await wait_until(pilot, lambda: app.pipeline_dir == other and app.caught_up)
            await wait_until(pilot, lambda: app.snapshot is not None and app.snapshot.status == "running")

    asyncio.run(scenario())


def test_wide_terminal_uses_a_grid_and_narrow_uses_tabs(finished_pipeline: Path, make_test_app) -> None:
    async def scenario() -> None:
        app = make_test_app(finished_pipeline)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_loaded(pilot)
            assert app.screen.query("#dashboard-grid") and not app.screen.query("#dashboard-tabs")
            await pilot.resize_terminal(80, 24)
            await wait_until(pilot, lambda: bool(app.screen.query("#dashboard-tabs")))
            await wait_until(pilot, lambda: app.screen.query_one(LeaderboardTable).row_count == 5)

    asyncio.run(scenario())


def test_oversampling_table_sorts_by_column(finished_pipeline: Path, make_test_app) -> None:
    from cockpit.widgets import OversamplingTable

    async def scenario() -> None:
        app = make_test_app(finished_pipeline)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_loaded(pilot)
            table = app.screen.query_one(OversamplingTable)
            table.focus()
            await pilot.press("o")  # first column (label), ascending
            await pilot.pause()
            assert table.cursor_key is not None and table._shown[0][0] == "admiration"
            await pilot.press("o")  # descending
            await pilot.pause()
            assert table._shown[0][0] == "surprise"
            table.sort_by(3)  # factor: the oversampled (rare) labels come last ascending
            await pilot.pause()
            factors = [values[3] for _, values in table._shown]
            assert factors == sorted(factors) and factors[-1] > 1
            assert "▲" in str(table.columns["factor"].label)

    asyncio.run(scenario())


def test_command_palette_lists_cockpit_actions(live_pipeline: Path, make_test_app) -> None:
    async def scenario() -> None:
        app = make_test_app(live_pipeline)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_loaded(pilot)
            await pilot.press("ctrl+p")
            await pilot.pause(0.2)
            await pilot.press(*"restart selected")
            await pilot.pause(0.5)
            await pilot.press("enter")
            control = live_pipeline / "control"
            await wait_until(pilot, lambda: control.exists() and any(control.iterdir()))
        assert [(c["cmd"], c["run"]) for c in take_commands(live_pipeline)] == [("restart_run", "p3-asl")]

    asyncio.run(scenario())


def test_worker_failure_becomes_a_notification(finished_pipeline: Path, make_test_app) -> None:
    def broken_sampler(pids: object) -> object:
        raise RuntimeError("sensor on fire")

    async def scenario() -> None:
        app = make_test_app(finished_pipeline, telemetry=broken_sampler)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: any("sensor on fire" in n.message for n in app._notifications))
            assert app.is_running  # a failed worker does not take the view down

    asyncio.run(scenario())


def test_leaving_a_live_pipeline_says_training_continues(live_pipeline: Path, make_test_app) -> None:
    messages: list[str] = []

    async def scenario() -> None:
        app = make_test_app(live_pipeline)
        exit_app = app.exit
        app.exit = lambda *args, **kwargs: (messages.append(str(kwargs.get("message"))), exit_app(*args, **kwargs))
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_loaded(pilot)
            await pilot.press("q")
            await wait_until(pilot, lambda: not app.is_running)

    asyncio.run(scenario())
    assert len(messages) == 1 and "Training continues" in messages[0] and "--attach" in messages[0]


def test_primary_threshold_of_the_preset_labels_every_view(runs_dir: Path, make_test_app) -> None:
    from cockpit.screens.dashboard import DashboardScreen
    from cockpit.widgets import LineChart, PerClassTable

    folder = fp.write_fake_pipeline(runs_dir, primary=0.3)

    def labels(table) -> list[str]:
        return [str(column.label) for column in table.columns.values()]

    async def scenario() -> None:
        app = make_test_app(folder)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_loaded(pilot)
            board, runs = app.screen.query_one(LeaderboardTable), app.screen.query_one(RunsTable)
            assert {"F1@0.3", "µF1@0.3", "test F1@0.3"} <= set(labels(board)) and "best F1@0.3" in labels(runs)
            assert cell(board, "p4-final", "f1") != "–" and cell(runs, "p3-asl", "f1") != "–"
            final = str(app.screen.query_one("#final-line", Static).render())
            assert "F1@0.3" in final and "µF1@0.3" in final
            assert app.screen.query_one("#f1-chart", LineChart).border_title.startswith("dev F1@0.3")
            texts = labels(board) + labels(runs) + [final]
            assert not any("0.2" in text for text in texts)
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen))
            per_class = app.screen.query_one(PerClassTable)
            await wait_until(pilot, lambda: per_class.row_count == 28)
            assert "F1@0.3" in labels(per_class)
            assert "best dev F1@0.3" in str(app.screen.query_one("#run-line", Static).render())
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen))

    asyncio.run(scenario())


def test_bad_summary_and_duplicate_labels_show_what_they_can(finished_pipeline: Path, make_test_app) -> None:
    import json

    from cockpit.widgets import OversamplingTable

    summary_path = finished_pipeline / SUMMARY_FILE
    summary = json.loads(summary_path.read_text())
    board = summary["leaderboard"]
    summary.update(leaderboard=[board[0], 5, "p1-x", board[0], dict(board[1], **{"f1_macro@0.2": "0.9"})] + board[2:],
                   final="x", target_f1="0.5")
    summary_path.write_text(json.dumps(summary))
    # The earliest data event gives the oversampling table: one with every label twice.
    rows = [{"label": label, "before": 10, "after": 40, "weight": 1.0} for label in ("joy", "joy", "love")]
    fp.append(finished_pipeline / "p1-dup" / EVENTS_FILE, "data", fp.T0 - 10, train_size_before=30,
              train_size_after=120, dev_size=1, test_size=1, per_class=rows, oversampling={"rule": "x"})

    async def scenario() -> None:
        app = make_test_app(finished_pipeline)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_loaded(pilot)
            leaderboard = app.screen.query_one(LeaderboardTable)
            keys = [key for key, _ in leaderboard._shown]
            assert len(keys) == len(set(keys)) == 5
            assert cell(leaderboard, board[1]["run"], "f1") == "–"  # a number written as a string
            assert "final test: not yet" not in str(app.screen.query_one("#final-line", Static).render())
            oversampling = app.screen.query_one(OversamplingTable)
            assert [key for key, _ in oversampling._shown] == ["joy", "love"]
            summary_path.write_text(json.dumps({"leaderboard": 5, "final": {"test": []}}))
            await wait_until(pilot, lambda: app.snapshot.leaderboard and
                             all(row.source == "live" for row in app.snapshot.leaderboard))
            await pilot.pause(0.3)
            assert app.is_running and leaderboard.row_count == 5

    asyncio.run(scenario())


def test_attach_works_while_a_supervisor_holds_the_folder_lock(finished_pipeline: Path, make_test_app) -> None:
    from cockpit.pipeline.lock import PipelineLock
    from trainer.contract import PipelinePaths

    async def scenario() -> None:
        with PipelineLock(PipelinePaths(finished_pipeline)):  # the view neither takes nor waits for it
            app = make_test_app(finished_pipeline)
            async with app.run_test(size=(120, 40)) as pilot:
                await wait_loaded(pilot)
                assert app.screen.query_one(LeaderboardTable).row_count > 0

    asyncio.run(scenario())


def test_a_ranking_keeps_its_cursor_on_top_until_the_user_moves_it() -> None:
    """Rows arriving in another order (a partial ranking first) must not drag the cursor off the leader."""
    from textual.app import App, ComposeResult

    from cockpit.widgets.tables import SnapshotTable

    class Ranking(SnapshotTable):
        COLUMNS = (("run", "run"), ("f1", "f1"))

        def format_row(self, values):
            return values

    class Host(App):
        def compose(self) -> ComposeResult:
            yield Ranking("ranking")

    async def scenario() -> None:
        app = Host()
        async with app.run_test(size=(60, 12)) as pilot:
            table = app.query_one(Ranking)
            table.set_rows([("p3-asl", ("p3-asl", 0.49)), ("p1-asl", ("p1-asl", 0.44))])
            await pilot.pause()
            table.set_rows([("p4-final", ("p4-final", 0.50)), ("p3-asl", ("p3-asl", 0.49)),
                            ("p1-asl", ("p1-asl", 0.44))])
            await pilot.pause()
            assert table.cursor_key == "p4-final"
            table.focus()
            await pilot.press("down")  # the user picks p3-asl: from now on the cursor follows it
            assert table.cursor_key == "p3-asl"
            table.set_rows([("p5", ("p5", 0.6)), ("p4-final", ("p4-final", 0.50)), ("p3-asl", ("p3-asl", 0.49))])
            await pilot.pause()
            assert table.cursor_key == "p3-asl"

    asyncio.run(scenario())


def test_tuned_cv_ranks_the_leaderboard_and_shows_in_the_run_line(runs_dir: Path, make_test_app) -> None:
    folder = fp.write_fake_pipeline(runs_dir, dev_tuned=True, select_by="tuned_cv", final_mode="ensemble")

    async def scenario() -> None:
        app = make_test_app(folder)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_loaded(pilot)
            board = app.screen.query_one(LeaderboardTable)
            await wait_until(pilot, lambda: board.row_count == 5)
            assert board.border_title == "leaderboard · ranked by dev tuned cv"
            best = app.snapshot.run("p3-asl").best_dev
            assert cell(board, "p3-asl", "tuned_cv") == f"{best.tuned_cv:.4f}"
            final = str(app.screen.query_one("#final-line", Static).render())
            assert final.startswith("final p4-final (ensemble of p3-asl + p1-bce), test:")
            line = run_line(app.snapshot.run("p3-asl"))
            assert line.endswith(f"@ step {best.step} (tuned cv {best.tuned_cv:.4f})")

    asyncio.run(scenario())
