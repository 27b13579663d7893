"""The study screen (issue 21 §3): opened with `t` from the dashboard; trials, best so far, importances, the best
config; `c` writes that config to <pipeline>/best_config.toml. Snapshots at 80×24 and 160×48."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

import pytest

import fake_search
from cockpit.screens.study import NO_STUDY, importance_bars, study_line
from cockpit.study_export import BEST_CONFIG_FILE, ExportError, write_best_config
from cockpit.state import PipelineState
from cockpit.tail import replay


@pytest.fixture
def searched(runs_dir: Path) -> Path:
    return fake_search.write_search_pipeline(runs_dir)


def study_of(folder: Path):
    state = PipelineState()
    replay(folder, state.apply_batch)
    return state.snapshot(0.0).study


def test_the_fake_search_folds_into_a_finished_study(searched: Path) -> None:
    study = study_of(searched)
    assert [r.state for r in study.trials] == ["complete", "complete", "pruned", "complete", "pruned", "complete"]
    assert (study.best_trial, study.best_run) == (3, "s-003")
    assert study_line(study) == "study ended (n_trials): 4 complete, 2 pruned · best trial 3 (s-003) 0.4759"


def test_importance_bars_scale_to_the_share() -> None:
    assert importance_bars(()) == "needs two complete trials"
    lines = importance_bars((("lr", 1.0), ("gamma_neg", 0.5))).splitlines()
    assert lines[0] == "lr        " + "█" * 16 + " 1.00"
    assert lines[1] == "gamma_neg " + "█" * 8 + " " * 8 + " 0.50"


def test_the_best_config_is_written_as_a_configs_block_in_the_pipeline_folder(searched: Path) -> None:
    path = write_best_config(searched, study_of(searched))
    assert path == searched / BEST_CONFIG_FILE
    data = tomllib.loads(path.read_text())
    assert data == {"configs": [{"name": "s_003", "loss": "asl", "loss_params": {"gamma_neg": 4.1},
                                 "settings": {"lr": 0.00012}}]}


def test_no_best_config_without_a_readable_preset(searched: Path) -> None:
    (searched / "preset.toml").write_text("name = 'x'\n[[configs]]\nname = 'bce'\nloss = 'bce'\n")
    with pytest.raises(ExportError, match="no \\[search\\] table"):
        write_best_config(searched, study_of(searched))
    assert not (searched / BEST_CONFIG_FILE).exists()


async def _study_screen(pilot) -> None:
    from pilot_helpers import wait_loaded

    await wait_loaded(pilot)
    await pilot.press("t")
    await wait_loaded(pilot)


def test_study_screen_80x24(snap_compare, searched: Path, make_test_app) -> None:
    assert snap_compare(make_test_app(searched), terminal_size=(80, 24), run_before=_study_screen)


def test_study_screen_160x48(snap_compare, searched: Path, make_test_app) -> None:
    assert snap_compare(make_test_app(searched), terminal_size=(160, 48), run_before=_study_screen)


def test_c_writes_the_best_config_and_says_where(searched: Path, make_test_app) -> None:
    from pilot_helpers import wait_loaded

    from cockpit.screens.study import StudyScreen

    app = make_test_app(searched)
    told: list[str] = []

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await _study_screen(pilot)
            assert isinstance(app.screen, StudyScreen)
            app.screen.notify = lambda message, **kw: told.append(message)  # type: ignore[method-assign]
            await pilot.press("c")
            await pilot.pause()
            await pilot.press("escape")
            await wait_loaded(pilot)
            assert not isinstance(app.screen, StudyScreen)

    asyncio.run(scenario())
    assert (searched / BEST_CONFIG_FILE).exists()
    assert told == [f"wrote {searched / BEST_CONFIG_FILE}"]


def test_a_pipeline_without_search_has_no_trials_key_and_its_study_screen_says_so(finished_pipeline: Path,
                                                                                   make_test_app) -> None:
    from pilot_helpers import wait_loaded
    from textual.widgets import Static

    from cockpit.screens.study import StudyScreen

    app = make_test_app(finished_pipeline)
    seen: list[object] = []

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await _study_screen(pilot)  # t does nothing here
            seen.append(type(app.screen).__name__)
            seen.append("t" in {b.binding.key for b in app.active_bindings.values()})
            await app.push_screen(StudyScreen(finished_pipeline))
            await wait_loaded(pilot)
            seen.append(str(app.screen.query_one("#study-line", Static).render()))
            await pilot.press("c")
            await pilot.pause()

    asyncio.run(scenario())
    assert seen == ["DashboardScreen", False, NO_STUDY]
    assert not (finished_pipeline / BEST_CONFIG_FILE).exists()


def test_a_search_pipeline_shows_the_trials_key(searched: Path, make_test_app) -> None:
    from pilot_helpers import wait_loaded

    app = make_test_app(searched)
    shown: list[bool] = []

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_loaded(pilot)
            shown.append(any(b.binding.key == "t" and b.enabled for b in app.active_bindings.values()))

    asyncio.run(scenario())
    assert shown == [True]
