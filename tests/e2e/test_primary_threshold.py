"""One real pipeline with primary threshold 0.3 and a reuse final: the threshold reaches every view (the
headless output, summary.json, report.md and the TUI's leaderboard attached to the finished folder), and
the final exports the best run's weights without retraining them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, train_env
from trainer.contract import PipelinePaths
from trainer.events import read_events

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def reuse_at_0_3(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path, Path]:
    runs = tmp_path_factory.mktemp("runs")
    res = subprocess.run([sys.executable, "-m", "cockpit.cli", "--headless", "--preset", "smoke", "--runs-dir",
                          str(runs), "--phases", "1,2,4", "--configs", "bce,asl", "--set", "pipeline.final=reuse",
                          "--set", "pipeline.primary_threshold=0.3"],
                         capture_output=True, text=True, timeout=400, cwd=REPO, env=train_env())
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    (pdir,) = [p for p in runs.iterdir() if p.is_dir()]
    return res, runs, pdir


def test_final_reuse_exports_the_best_run_without_retraining(reuse_at_0_3) -> None:
    _, _, pdir = reuse_at_0_3
    summary = json.loads(PipelinePaths(pdir).summary.read_text())
    best = summary["leaderboard"][0]
    assert summary["final"]["trained_in"] == best["run"]
    assert summary["final"]["dev"]["f1_macro@0.3"] == pytest.approx(best["f1_macro@0.3"])  # same weights, same dev
    final_events = read_events(pdir / "p4-final" / "events.jsonl")
    assert not any(e["type"] == "step" for e in final_events)  # exported, not retrained
    assert (pdir / "final" / "thresholds.json").exists()


def test_primary_threshold_0_3_is_what_every_view_shows(reuse_at_0_3) -> None:
    res, runs, pdir = reuse_at_0_3
    assert "F1@0.3" in res.stdout and "f1_macro@0.3" in res.stdout and "F1@0.2" not in res.stdout
    paths = PipelinePaths(pdir)
    summary = json.loads(paths.summary.read_text())
    assert summary["primary_threshold"] == 0.3
    assert all(row["f1_macro@0.3"] is not None for row in summary["leaderboard"]) and summary["leaderboard"]
    assert "f1_macro@0.2" not in summary["leaderboard"][0]
    report = paths.report.read_text()
    assert "F1@0.3" in report or "f1_macro@0.3" in report
    assert "@0.2" not in report

    from cockpit.app import make_app
    from cockpit.widgets import LeaderboardTable

    async def attach() -> None:
        app = make_app(pdir, runs, poll_interval=0.05, refresh_interval=0.1)
        async with app.run_test(size=(160, 48)) as pilot:
            deadline = time.monotonic() + 30
            board = None
            while time.monotonic() < deadline:
                await pilot.pause(0.1)
                boards = list(app.screen.query(LeaderboardTable))
                if boards and boards[0].row_count >= 2:
                    board = boards[0]
                    break
            assert board is not None, "leaderboard stayed empty"
            labels = [str(c.label) for c in board.columns.values()]
            assert "F1@0.3" in labels and not any("0.2" in label for label in labels), labels

    asyncio.run(attach())
