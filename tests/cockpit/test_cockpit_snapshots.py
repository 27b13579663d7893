"""Snapshot tests of the dashboard on the fake finished pipeline (frozen clock, fixed telemetry).

Update the stored SVGs after an intended change with:
    python -m pytest tests/cockpit/test_cockpit_snapshots.py --snapshot-update
"""

from __future__ import annotations

from pathlib import Path

import fake_pipeline as fp
from pilot_helpers import wait_loaded


def test_dashboard_80x24(snap_compare, finished_pipeline: Path, make_test_app) -> None:
    assert snap_compare(make_test_app(finished_pipeline), terminal_size=(80, 24), run_before=wait_loaded)


def test_dashboard_160x48(snap_compare, finished_pipeline: Path, make_test_app) -> None:
    assert snap_compare(make_test_app(finished_pipeline), terminal_size=(160, 48), run_before=wait_loaded)


def test_dashboard_curves_tab_80x24(snap_compare, finished_pipeline: Path, make_test_app) -> None:
    async def open_curves(pilot) -> None:
        await wait_loaded(pilot)
        pilot.app.screen.query_one("#dashboard-tabs").active = "tab-curves"
        await pilot.pause()

    assert snap_compare(make_test_app(finished_pipeline), terminal_size=(80, 24), run_before=open_curves)


def test_dashboard_with_three_sources_160x48(snap_compare, runs_dir: Path, make_test_app) -> None:
    folder = fp.write_fake_pipeline(runs_dir, sources=fp.three_sources())
    assert snap_compare(make_test_app(folder), terminal_size=(160, 48), run_before=wait_loaded)


def test_dashboard_data_tab_with_three_sources_80x24(snap_compare, runs_dir: Path, make_test_app) -> None:
    async def open_data(pilot) -> None:
        await wait_loaded(pilot)
        pilot.app.screen.query_one("#dashboard-tabs").active = "tab-oversampling"
        await wait_loaded(pilot)  # the tables of the tab now shown lay out their rows

    folder = fp.write_fake_pipeline(runs_dir, sources=fp.three_sources())
    assert snap_compare(make_test_app(folder), terminal_size=(80, 24), run_before=open_data)


def test_dashboard_leaderboard_tab_ranked_by_tuned_cv_80x24(snap_compare, runs_dir: Path, make_test_app) -> None:
    """The tuned cv column, the ranking key in the border title and an ensemble final, at 80 columns."""
    async def open_leaderboard(pilot) -> None:
        await wait_loaded(pilot)
        pilot.app.screen.query_one("#dashboard-tabs").active = "tab-leaderboard"
        await wait_loaded(pilot)

    folder = fp.write_fake_pipeline(runs_dir, dev_tuned=True, select_by="tuned_cv", final_mode="ensemble")
    assert snap_compare(make_test_app(folder), terminal_size=(80, 24), run_before=open_leaderboard)


async def _open_run_detail(pilot) -> None:
    """The first run of the dashboard's runs table, in the run-detail screen (its heatmap tab)."""
    from cockpit.screens.run_detail import RunDetailScreen
    from cockpit.widgets import LabelHeatmap

    await wait_loaded(pilot)
    await pilot.press("enter")
    for _ in range(100):
        maps = pilot.app.screen.query(LabelHeatmap) if isinstance(pilot.app.screen, RunDetailScreen) else []
        if maps and maps.first()._history:
            break
        await pilot.pause(0.05)
    await pilot.pause()


def test_run_detail_label_heatmap_80x24(snap_compare, finished_pipeline: Path, make_test_app) -> None:
    assert snap_compare(make_test_app(finished_pipeline), terminal_size=(80, 24), run_before=_open_run_detail)


def test_run_detail_label_heatmap_160x48(snap_compare, finished_pipeline: Path, make_test_app) -> None:
    assert snap_compare(make_test_app(finished_pipeline), terminal_size=(160, 48), run_before=_open_run_detail)


async def _open_final_labels(pilot) -> None:
    """The final run's run-detail screen, on its "Final per label" tab."""
    from cockpit.screens.run_detail import RunDetailScreen
    from cockpit.widgets import FinalLabelsTable

    await wait_loaded(pilot)
    pilot.app.open_run_detail("p4-final")
    for _ in range(100):
        tables = pilot.app.screen.query(FinalLabelsTable) if isinstance(pilot.app.screen, RunDetailScreen) else []
        if tables and tables.first().row_count:
            break
        await pilot.pause(0.05)
    pilot.app.screen.query_one("#run-tabs").active = "tab-final-labels"
    await pilot.pause()


def test_run_detail_final_labels_80x24(snap_compare, finished_pipeline: Path, make_test_app) -> None:
    fp.append_final_labels(finished_pipeline)
    assert snap_compare(make_test_app(finished_pipeline), terminal_size=(80, 24), run_before=_open_final_labels)


def test_run_detail_final_labels_160x48(snap_compare, finished_pipeline: Path, make_test_app) -> None:
    fp.append_final_labels(finished_pipeline)
    assert snap_compare(make_test_app(finished_pipeline), terminal_size=(160, 48), run_before=_open_final_labels)
