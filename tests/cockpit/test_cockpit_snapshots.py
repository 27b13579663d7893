"""Snapshot tests of the dashboard on the fake finished pipeline (frozen clock, fixed telemetry).

Update the stored SVGs after an intended change with:
    python -m pytest tests/cockpit/test_cockpit_snapshots.py --snapshot-update
"""

from __future__ import annotations

from pathlib import Path

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
