"""The cockpit never imports torch (views must start fast and run where torch is absent)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def assert_clean_import(code: str) -> None:
    """Run ``code`` in a fresh interpreter; it exits 1 (printing what leaked) when an import is wrong."""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cockpit_modules_do_not_load_torch() -> None:
    assert_clean_import("import sys; import cockpit.app, cockpit.state, cockpit.tail, trainer.devices, "
                        "cockpit.pipeline.control; "
                        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')); "
                        "print(bad); sys.exit(1 if bad else 0)")


def test_views_do_not_import_the_cli_and_the_pipeline_does_not_import_textual() -> None:
    assert_clean_import("import sys; import cockpit.screens.phase_picker, cockpit.app; "
                        "bad = 'cockpit.cli' in sys.modules; print(bad); sys.exit(1 if bad else 0)")
    assert_clean_import("import sys; import cockpit.pipeline.supervisor, cockpit.pipeline.start, cockpit.cli; "
                        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'torch')); "
                        "print(bad); sys.exit(1 if bad else 0)")
