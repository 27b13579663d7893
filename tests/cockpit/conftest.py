"""Fixtures for the cockpit tests: fake pipeline folders, a frozen clock, fixed telemetry."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
for path in (str(HERE.parents[1]), str(HERE)):  # the repo (cockpit, trainer) and fake_pipeline
    if path not in sys.path:
        sys.path.insert(0, path)

import pytest  # noqa: E402

import fake_pipeline as fp  # noqa: E402
from pilot_helpers import FROZEN_NOW, fixed_telemetry  # noqa: E402


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def finished_pipeline(runs_dir: Path) -> Path:
    return fp.write_fake_pipeline(runs_dir)


@pytest.fixture
def live_pipeline(runs_dir: Path) -> Path:
    return fp.write_fake_pipeline(runs_dir, finished=False)


@pytest.fixture
def make_test_app() -> Callable[..., object]:
    """make_app with a frozen clock, fixed telemetry and fast polling."""
    from cockpit.app import make_app

    def build(pipeline_dir: Path | None, runs_dir: Path | None = None, **kwargs: object):
        runs = runs_dir if runs_dir is not None else (pipeline_dir.parent if pipeline_dir else Path("runs"))
        options = dict(now=lambda: FROZEN_NOW, telemetry=fixed_telemetry, poll_interval=0.05,
                       refresh_interval=0.1)
        options.update(kwargs)
        return make_app(pipeline_dir, runs, **options)

    return build
