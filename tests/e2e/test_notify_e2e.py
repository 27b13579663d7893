"""Notifications for real: a headless smoke pipeline whose bce run hangs sends its stall (with the hanging
frames) and its end to a local webhook through apprise's json:// plugin."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w

from tests.conftest import REPO, train_env
from tests.webhook import WebHook
from trainer.contract import ENV_NOTIFY, PIPELINE_FILE
from trainer.events import read_events

pytestmark = pytest.mark.e2e


def hanging_smoke_preset(tmp_path: Path) -> Path:
    """The smoke preset with its bce config hanging at step 3 and a short stall window (as the drills do)."""
    data = tomllib.loads((REPO / "presets" / "smoke.toml").read_text())
    data["name"] = "notify"
    data["pipeline"].update(stall_floor_s=4, stall_factor=10)
    for config in data["configs"]:
        if config["name"] == "bce":
            config["fault"] = "hang@3"
    path = tmp_path / "notify.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def test_a_hung_run_and_the_pipelines_end_reach_the_webhook(tmp_path):
    hook = WebHook()
    runs = tmp_path / "runs"
    env = train_env()
    env.pop(ENV_NOTIFY, None)  # only the URL given here
    try:
        res = subprocess.run(
            [sys.executable, "-m", "cockpit.cli", "--headless", "--preset", str(hanging_smoke_preset(tmp_path)),
             "--runs-dir", str(runs), "--phases", "1,2", "--configs", "bce",
             "--set", f'pipeline.notify=["{hook.url}"]'],
            capture_output=True, text=True, timeout=400, cwd=REPO, env=env)
    finally:
        hook.close()
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (pdir,) = [p for p in runs.iterdir() if p.is_dir()]
    events = read_events(pdir / PIPELINE_FILE)
    assert [e["run"] for e in events if e["type"] == "stall"] == ["p1-bce"]
    assert not [e for e in events if e["type"] == "alert" and e.get("code") == "notify"]

    titles = [p["title"] for p in hook.posts]
    assert titles == ["goemo p1-bce stalled", "goemo pipeline completed"], hook.posts
    stall, end = hook.posts
    print(f"--- {stall['title']} ---\n{stall['message']}\n--- {end['title']} ---\n{end['message']}")
    assert pdir.name in stall["message"] and "p1-bce attempt 1" in stall["message"]
    assert "restart 1 of 2" in stall["message"]
    assert "injected_hang (faults.py:" in stall["message"]  # the hanging frame, innermost first
    assert "completed (exit 0)" in end["message"] and "1. p1-bce" in end["message"]
    assert end["type"] == "success"
