"""The search phase through real trainer processes (issue 21): a smoke-sized study of six trials whose median
pruner stops at least one trial through the supervisor, read back from pipeline.jsonl, the runs and the journal."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, train_env
from trainer.events import read_events

pytestmark = pytest.mark.e2e
pytest.importorskip("optuna", reason="the search phase needs the search extra (pip install '.[search]')")

SMOKE = (REPO / "presets" / "smoke.toml").read_text()
# smoke's runs, evaluated every 2 of their 11 steps (the pruner needs reports), and a study over lr and the loss.
STUDY = SMOKE.replace('name = "smoke"', 'name = "smoke-search"').replace(
    "seed = 42\n", "seed = 42\neval_every_steps = 2\n", 1) + """
[search]
sampler = "random"
pruner = "median"
n_trials = 6
objective = "tuned_cv"
seed = 3
prune_after_trials = 2

[search.params]
lr = { log_uniform = [1e-4, 3e-2] }
loss = { choice = ["bce", "asl"] }
"""


def test_a_six_trial_study_prunes_through_the_supervisor_and_ends_with_six_trials(tmp_path) -> None:
    preset = tmp_path / "smoke-search.toml"
    preset.write_text(STUDY)
    runs = tmp_path / "runs"
    res = subprocess.run([sys.executable, "-m", "cockpit.cli", "--headless", "--preset", str(preset), "--runs-dir",
                          str(runs), "--phases", "search"], capture_output=True, text=True, timeout=900, cwd=REPO,
                         env=train_env())
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    pdir = next(p for p in runs.iterdir() if p.is_dir())
    events = read_events(pdir / "pipeline.jsonl")
    ends = [e for e in events if e["type"] == "search_trial" and e["state"] != "running"]
    assert len(ends) == 6 and {e["state"] for e in ends} <= {"complete", "pruned"}
    pruned = [e for e in ends if e["state"] == "pruned"]
    assert pruned, [(e["run"], e.get("value")) for e in ends]
    for trial in pruned:  # stopped by the supervisor at a reported step, from its control path
        reports = [e["step"] for e in events if e["type"] == "search_report" and e["trial"] == trial["trial"]]
        assert trial["step"] == reports[-1]
        assert any(e["type"] == "run_exit" and e["run"] == trial["run"] and e["reason"] == "pruned by the search's "
                   "pruner" for e in events)
        assert any(e["type"] == "run_done" and e["run"] == trial["run"] and e["status"] == "stopped" for e in events)
    end = next(e for e in events if e["type"] == "search_end")
    assert end["trials"] == 6 and end["pruned"] == len(pruned) and end["best_run"].startswith("s-")
    assert (pdir / "search.journal").is_file() and events[-1]["status"] == "completed"
    assert "== search: 6 trials" in res.stdout
    summary = json.loads((pdir / "summary.json").read_text())
    assert {r["run"] for r in summary["leaderboard"]} == {e["run"] for e in ends}


def test_a_supervisor_killed_mid_study_resumes_and_ends_with_exactly_n_trials(tmp_path) -> None:
    preset = tmp_path / "smoke-search.toml"
    preset.write_text(STUDY)
    runs = tmp_path / "runs"
    first = subprocess.Popen([sys.executable, "-m", "cockpit.cli", "--headless", "--preset", str(preset),
                              "--runs-dir", str(runs), "--phases", "search"], cwd=REPO, env=train_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        finished: dict[str, str] = {}
        while time.monotonic() < deadline and len(finished) < 2:
            time.sleep(0.5)
            folders = [p for p in runs.iterdir() if p.is_dir()] if runs.exists() else []
            if folders and (folders[0] / "pipeline.jsonl").exists():
                finished = {e["run"]: e["state"] for e in read_events(folders[0] / "pipeline.jsonl")
                            if e["type"] == "search_trial" and e["state"] != "running"}
        assert len(finished) >= 2, "no two trials finished in 300 s"
    finally:
        first.send_signal(signal.SIGKILL)  # no goodbye: its trainer runs on (own session), the journal stays
        first.wait(30)
    pdir = next(p for p in runs.iterdir() if p.is_dir())
    starts_before = sum(1 for e in read_events(pdir / "pipeline.jsonl") if e["type"] == "pipeline_start")
    res = subprocess.run([sys.executable, "-m", "cockpit.cli", "--headless", "--resume", str(pdir)],
                         capture_output=True, text=True, timeout=900, cwd=REPO, env=train_env())
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    events = read_events(pdir / "pipeline.jsonl")
    resumed_at = [i for i, e in enumerate(events) if e["type"] == "pipeline_start"][starts_before]
    after = events[resumed_at:]
    end = next(e for e in after if e["type"] == "search_end")
    assert end["trials"] == 6  # complete + pruned: exactly n_trials, whatever the kill interrupted
    states = {}
    for e in events:
        if e["type"] == "search_trial" and e["state"] != "running":
            states[e["trial"]] = e["state"]
    assert sum(s in ("complete", "pruned") for s in states.values()) == 6
    relaunched = {e["run"] for e in after if e["type"] == "run_launch"}
    assert not relaunched & set(finished), (finished, relaunched)  # a finished trial is kept, never run again
    assert events[-1]["type"] == "pipeline_end" and events[-1]["status"] == "completed"
