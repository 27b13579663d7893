"""Helpers for Pilot and snapshot tests: frozen clock, fixed telemetry, waiting for the tail."""

from __future__ import annotations

import time
from typing import Callable

import fake_pipeline as fp
from trainer.devices import GpuSample, ProcessSample, TelemetrySnapshot

FROZEN_NOW = fp.T0 + 3600.0
FIXED_TELEMETRY = TelemetrySnapshot(
    t=fp.T0, gpus=(GpuSample(0, "NVIDIA H200", 87.0, 40960.0, 143360.0, 65.0, 312.0, (40001,), ("p3-asl",)),),
    gpu_error=None, processes=(ProcessSample(40001, "p3-asl", 98.0, 2048.0),), cpu_pct=12.0, ram_used_mb=4096.0,
    ram_total_mb=16384.0)


def fixed_telemetry(pids: object) -> TelemetrySnapshot:
    return FIXED_TELEMETRY


async def wait_until(pilot, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the app run until predicate() holds; fails the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.05)
    await pilot.pause()


async def wait_loaded(pilot) -> None:
    """Until the tail has read every file once and telemetry has arrived (deterministic screens)."""
    from textual.widgets import DataTable

    app = pilot.app
    await wait_until(pilot, lambda: app.caught_up and app.telemetry is not None)

    def tables_laid_out() -> bool:
        # DataTable sizes its columns and rows on idle; a screenshot before that shows stale widths.
        shown = [t for t in app.screen.query(DataTable) if t.region.height > 0]
        return all(t.virtual_size.height >= t.row_count + 1 for t in shown)

    await wait_until(pilot, tables_laid_out)
    await pilot.pause(0.1)
