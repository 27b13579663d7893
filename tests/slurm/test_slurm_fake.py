"""The Slurm launcher on a real one-node Slurm (tests/slurm/up.sh) with the torch-free stand-in trainer:
jobs, their scripts and output in the run folders, and a job waiting in the queue (no stall). Requeue,
stall dumps through scancel and re-adoption are tested with the real trainer in test_slurm_e2e.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cockpit.pipeline import launcher
from cockpit.pipeline.presets import PresetError, load_preset
from cockpit.pipeline.start import PipelineRequest, prepare_pipeline
from cockpit.pipeline.supervisor import Supervisor
from trainer.contract import EXIT_OK, SLURM_SCRIPT_FILE, PipelinePaths, contract_violation
from trainer.events import read_events

FAKE = Path(__file__).resolve().parents[1] / "cockpit" / "fake_trainer.py"
pytestmark = pytest.mark.skipif(shutil.which("sbatch") is None or subprocess.run(
    ["sinfo", "-h"], capture_output=True).returncode != 0,
    reason="no Slurm cluster here (sbatch/sinfo missing or no controller); tests/slurm/up.sh brings one up as root")

PRESET = """
name = "fake"
[pipeline]
phases = [1]
launcher = "slurm"
max_restarts = 1
stall_floor_s = {stall}
startup_grace_s = {grace}
term_grace_s = 5
[slurm]
cpus_per_run = 1
max_concurrent_jobs = 2
extra = {extra}
[defaults]
model = "tiny-deberta"
device = "cpu"
[[configs]]
name = "bce"
loss = "bce"
[[configs]]
name = "asl"
loss = "asl"
"""


@pytest.fixture(autouse=True)
def fake_trainer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launcher, "trainer_command", lambda slot, args, **_: [sys.executable, str(FAKE), *args])


def make(tmp_path: Path, behaviours: dict[str, str], configs: list[str], stall: float = 30, grace: float = 60,
         extra: tuple[str, ...] = ()) -> Supervisor:
    os.environ["FAKE_TRAINER"] = json.dumps(behaviours)  # sbatch exports the environment to the job
    path = tmp_path / "fake.toml"
    path.write_text(PRESET.format(stall=stall, grace=grace, extra=json.dumps(list(extra))))
    preset, _ = load_preset(str(path))
    pdir = tmp_path / "runs" / "p"
    pdir.mkdir(parents=True, exist_ok=True)
    return Supervisor(pdir, preset, [1], configs, poll_s=0.1)


def test_runs_become_batch_jobs_with_script_and_output_in_the_run_folder(tmp_path: Path) -> None:
    sup = make(tmp_path, {"bce": "ok", "asl": "ok"}, ["bce", "asl"])
    assert sup.run() == EXIT_OK
    paths = PipelinePaths(sup.dir)
    events = read_events(paths.events)
    launches = [e for e in events if e["type"] == "run_launch"]
    assert {e["run"] for e in launches} == {"p1-bce", "p1-asl"} and all(e["job_id"].isdigit() for e in launches)
    for event in events:
        assert contract_violation(event) is None, event
    for run in ("p1-bce", "p1-asl"):
        folder = sup.dir / run
        script = (folder / SLURM_SCRIPT_FILE).read_text()
        assert "#SBATCH --requeue" in script and "#SBATCH --signal=B:TERM@90" in script and "\nexec " in script
        assert "goemo: job" in (folder / "stderr.log").read_text()  # Slurm's own stderr, in the run folder
        assert read_events(folder / "events.jsonl")[-1]["status"] == "completed"



def test_a_job_script_the_cluster_refuses_is_one_line_before_anything_is_created(tmp_path: Path) -> None:
    path = tmp_path / "fake.toml"
    path.write_text(PRESET.format(stall=30, grace=60, extra='["--partition=nope"]'))
    with pytest.raises(PresetError) as caught:
        prepare_pipeline(PipelineRequest(str(path), tmp_path / "runs"))
    assert str(caught.value).startswith("[slurm]: sbatch --test-only refused the job script: invalid partition")
    assert "\n" not in str(caught.value) and not (tmp_path / "runs").exists()


def _job_of(sup: Supervisor, run: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = read_events(PipelinePaths(sup.dir).events) if PipelinePaths(sup.dir).events.exists() else []
        jobs = [e["job_id"] for e in events if e.get("type") == "run_launch" and e.get("run") == run]
        if jobs:
            return jobs[-1]
        time.sleep(0.2)
    raise AssertionError(f"{run} was never launched")


def test_a_job_waiting_in_the_queue_is_not_a_stall(tmp_path: Path) -> None:
    import threading

    sup = make(tmp_path, {"bce": "ok"}, ["bce"], stall=2, grace=2, extra=("--hold",))  # held: pending

    def release_later() -> None:
        job = _job_of(sup, "p1-bce")
        time.sleep(6)  # three times the startup grace, in the queue
        subprocess.run(["scontrol", "release", job], check=True)

    threading.Thread(target=release_later, daemon=True).start()
    assert sup.run() == EXIT_OK
    events = read_events(PipelinePaths(sup.dir).events)
    assert not [e for e in events if e["type"] == "stall"]
    assert [e["status"] for e in events if e["type"] == "run_done"] == ["completed"]
    # Why it waited, in Slurm's words, once (the views show it where they would say "starting…").
    assert [(e["run"], e["reason"]) for e in events if e["type"] == "run_pending"] == [("p1-bce", "JobHeldUser")]


def test_scontrol_failing_mid_run_is_no_end_and_submits_nothing_twice(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # A busy or restarting controller: `scontrol show job` fails for 3 s while the job runs. Before, the
    # supervisor took the job for failed, submitted the run again beside it and declared the pipeline failed.
    shim_bin, state = tmp_path / "bin", tmp_path / "flaky"
    shim_bin.mkdir()
    state.mkdir()
    (shim_bin / "scontrol").symlink_to(Path(__file__).with_name("flaky_scontrol"))
    monkeypatch.setenv("REAL_SCONTROL", shutil.which("scontrol") or "scontrol")
    monkeypatch.setenv("FLAKY_DIR", str(state))
    monkeypatch.setenv("FLAKY_AFTER", "3")
    monkeypatch.setenv("FLAKY_SECONDS", "3")
    monkeypatch.setenv("PATH", f"{shim_bin}{os.pathsep}{os.environ['PATH']}")
    sup = make(tmp_path, {"bce": "steady"}, ["bce"])
    assert sup.run() == EXIT_OK
    assert (state / "failed").exists(), "scontrol never failed: the shim was not used"
    events = read_events(PipelinePaths(sup.dir).events)
    assert len([e for e in events if e["type"] == "run_launch"]) == 1  # one job for the one attempt
    assert not [e for e in events if e["type"] in ("restart", "run_exit") and e.get("code", 0) != 0]
    assert not [e for e in events if e["type"] == "alert" and e["level"] != "info"]  # 3 s is no outage to report
    assert [e["status"] for e in events if e["type"] == "run_done"] == ["completed"]
    run_events = read_events(sup.dir / "p1-bce" / "events.jsonl")
    assert [e["step"] for e in run_events if e["type"] == "step"] == [1, 2, 3]  # every step once
    assert len([e for e in run_events if e["type"] == "run_start"]) == 1
