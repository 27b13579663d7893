"""The cockpit over a real pipeline: launch from the picker, see a real hang become a stall banner,
open its stack dump, and watch the run restart and finish."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

import pytest
import tomli_w
from pilot_helpers import wait_until
from textual.widgets import Log

from cockpit.screens.dashboard import DashboardScreen
from cockpit.screens.modals import DumpScreen
from cockpit.screens.phase_picker import PhasePickerScreen
from cockpit.pipeline.presets import preset_dir
from cockpit.widgets.alerts import StallBanner

pytestmark = pytest.mark.e2e


def hang_preset(tmp_path: Path) -> Path:
    data = tomllib.loads((preset_dir() / "smoke.toml").read_text())
    data["name"] = "hang-drill"
    data["pipeline"].update(phases=[1], stall_floor_s=4, stall_factor=10)
    data["configs"] = [{"name": "hang", "loss": "bce", "fault": "hang@4"}]
    path = tmp_path / "hang-drill.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def test_a_real_hang_shows_the_stall_banner_its_dump_and_the_restart(tmp_path: Path, runs_dir: Path,
                                                                       make_test_app) -> None:
    async def scenario() -> None:
        app = make_test_app(None, runs_dir, preset=str(hang_preset(tmp_path)))
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, PhasePickerScreen) and app.screen.preset)
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen))
            banner = app.screen.query_one(StallBanner)
            await wait_until(pilot, lambda: banner.has_class("-active"), timeout=120)
            assert "p1-hang stalled" in str(banner.render())
            await pilot.press("d")
            await wait_until(pilot, lambda: isinstance(app.screen, DumpScreen))
            log = app.screen.query_one(Log)
            await wait_until(pilot, lambda: "injected_hang" in "\n".join(log.lines))
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.snapshot is not None and app.snapshot.status == "completed",
                             timeout=180)
            run = next(r for r in app.snapshot.runs if r.run == "p1-hang")
            assert run.status == "completed" and run.attempt == 2 and run.restarts == 1

    asyncio.run(scenario())
