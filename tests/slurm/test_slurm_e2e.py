"""The real trainer under Slurm (tests/slurm/up.sh): the smoke preset as batch jobs, a requeued job that
resumes in the same run folder with the same step numbers and no duplicate steps, a hang dumped through
scancel and resubmitted, and a killed supervisor whose --resume adopts the running job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import NO_SLURM, REPO, SLURM_SETTINGS, slurm_up, train_env
from trainer.events import read_events

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not slurm_up(), reason=NO_SLURM)]
SLURM = SLURM_SETTINGS


def cockpit(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cockpit.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=train_env())


def only_pipeline(runs: Path) -> Path:
    dirs = [p for p in runs.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_the_smoke_preset_runs_as_slurm_jobs_and_completes(smoke_pipeline) -> None:
    # The session's smoke pipeline (tests/conftest.py) runs as Slurm jobs wherever this module runs; the
    # contract tests in tests/e2e/test_pipeline.py read the same folder.
    res, pdir, queue = smoke_pipeline
    assert queue is not None, "the smoke pipeline ran locally although Slurm is up"
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    events = read_events(pdir / "pipeline.jsonl")
    launches = [e for e in events if e["type"] == "run_launch"]
    assert len(launches) == 8 and all(e.get("job_id") for e in launches)
    assert {f"goemo-{pdir.name}-{e['run']}" for e in launches} <= queue  # squeue showed every job
    assert all((pdir / e["run"] / "slurm-job.sh").is_file() for e in launches)
    summary = json.loads((pdir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["final"]["test"]["f1_macro@0.2"] is not None
    assert (pdir / "final" / "thresholds.json").exists()


def test_a_requeued_trainer_resumes_with_the_same_step_numbers_and_no_duplicates(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    job: dict[str, str] = {}

    def requeue_mid_run() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            folder = next(iter(runs.glob("*/p1-bce")), None)
            steps = [e for e in read_events(folder / "events.jsonl")] if folder and (folder / "events.jsonl").exists() \
                else []
            if sum(e["type"] == "step" for e in steps) >= 6:
                launches = [e for e in read_events(folder.parent / "pipeline.jsonl") if e["type"] == "run_launch"]
                job["id"] = launches[-1]["job_id"]
                subprocess.run(["scontrol", "requeue", job["id"]], check=True)
                for _ in range(120):  # a requeued job waits for its begin time: release it at once
                    state = subprocess.run(["squeue", "-h", "-j", job["id"], "-o", "%T"], capture_output=True,
                                           text=True).stdout.strip()
                    if state == "PENDING":
                        subprocess.run(["scontrol", "update", f"JobId={job['id']}", "StartTime=now"], check=True)
                        return
                    time.sleep(0.25)
                return
            time.sleep(0.25)

    driver = threading.Thread(target=requeue_mid_run, daemon=True)
    driver.start()
    res = cockpit("--headless", "--preset", "smoke", "--runs-dir", str(runs), "--phases", "1", "--configs", "bce",
                  "--set", "phase1.max_train_samples=1600", "--set", "checkpoint_every_steps=100", *SLURM)
    driver.join(timeout=10)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    pdir = only_pipeline(runs)
    assert job, "the run finished before it could be requeued"
    pipeline = read_events(pdir / "pipeline.jsonl")
    assert [(e["run"], e["restarts"]) for e in pipeline if e["type"] == "requeue"] == [("p1-bce", 1)]
    assert [e["job_id"] for e in pipeline if e["type"] == "run_launch"] == [job["id"]]  # one job, run twice
    events = read_events(pdir / "p1-bce" / "events.jsonl")
    starts = [e for e in events if e["type"] == "run_start"]
    steps = [e["step"] for e in events if e["type"] == "step"]
    assert len(starts) == 2 and starts[1]["resumed_from_step"] >= 6  # it checkpointed on SIGTERM, in this folder
    assert steps == list(range(1, steps[-1] + 1))  # every step once, numbered as one run
    assert [e["status"] for e in events if e["type"] == "run_end"] == ["stopped", "completed"]


DRILL = """
name = "drill"
[pipeline]
phases = [1]
launcher = "slurm"
max_restarts = 1
stall_floor_s = 8
stall_factor = 10
startup_grace_s = 90
term_grace_s = 10
[slurm]
cpus_per_run = {cpus}
[defaults]
model = "tiny-deberta"
device = "cpu"
max_eval_samples = 200
batch_size = 16
lr = 3e-3
max_train_samples = {rows}
checkpoint_every_steps = 5
[[configs]]
name = "bce"
loss = "bce"
{fault}
"""


def drill(tmp_path: Path, rows: int = 160, fault: str = "") -> Path:
    path = tmp_path / "drill.toml"
    path.write_text(DRILL.format(cpus=os.cpu_count() or 1, rows=rows, fault=fault))
    return path


def test_a_hanging_trainer_under_slurm_is_dumped_through_scancel_and_resubmitted(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    res = cockpit("--headless", "--preset", str(drill(tmp_path, fault='fault = "hang@3"')), "--runs-dir", str(runs))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    pdir = only_pipeline(runs)
    events = read_events(pdir / "pipeline.jsonl")
    assert [e["run"] for e in events if e["type"] == "stall"] == ["p1-bce"]
    jobs = [e["job_id"] for e in events if e["type"] == "run_launch"]
    assert len(set(jobs)) == 2  # cancelled and submitted again, resuming from its checkpoint
    dump = (pdir / "p1-bce" / "stall-1.txt").read_text()
    assert "trainer/faults.py" in dump and "Thread" in dump  # the main thread's stack, through Slurm
    assert [e["status"] for e in events if e["type"] == "run_done"] == ["completed"]


def test_a_killed_supervisor_is_resumed_and_adopts_the_running_job(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    supervisor = subprocess.Popen([sys.executable, "-m", "cockpit.cli", "--headless", "--preset",
                                   str(drill(tmp_path, rows=1600)), "--runs-dir", str(runs)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, env=train_env())
    try:
        deadline = time.monotonic() + 120
        job = None
        while time.monotonic() < deadline and job is None:
            folder = next(iter(runs.glob("*/p1-bce/events.jsonl")), None)
            if folder and any(e["type"] == "step" for e in read_events(folder)):
                launches = [e for e in read_events(folder.parent.parent / "pipeline.jsonl")
                            if e["type"] == "run_launch"]
                job = launches[-1]["job_id"]
            time.sleep(0.25)
        assert job, "the job never started"
    finally:
        supervisor.kill()  # SIGKILL: no cleanup, the job keeps running
        supervisor.wait()
    state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout.strip()
    assert state == "RUNNING"
    pdir = only_pipeline(runs)
    res = cockpit("--headless", "--resume", str(pdir))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    events = read_events(pdir / "pipeline.jsonl")
    assert [e["job_id"] for e in events if e["type"] == "run_launch"] == [job]  # not submitted twice
    assert any(e["type"] == "alert" and e.get("code") == "adopted" for e in events)
    steps = [e["step"] for e in read_events(pdir / "p1-bce" / "events.jsonl") if e["type"] == "step"]
    assert steps == list(range(1, steps[-1] + 1))
