"""The Slurm launcher against stand-in Slurm commands (tests/slurm/slurm_shim.py on PATH), no cluster needed:
a failed query is "unknown", a job is gone only when scontrol and squeue agree, a run is never submitted
while Slurm still lists a job of it, an outage is alerted only when it lasts, sbatch's refusals are one
line (before the start: exit 2; at launch: pipeline failed, exit 1), [slurm] strings cannot inject lines,
a trainer that cannot be found is not restarted, and a second trainer on a run folder exits 2."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cockpit.cli import main as cockpit_main
from cockpit.headless import HeadlessConsole
from cockpit.pipeline import slurm
from cockpit.pipeline.restarts import Outcome, RestartPolicy
from cockpit.pipeline.slots import Slot
from cockpit.pipeline.presets import PresetError, load_preset
from cockpit.pipeline.start import PipelineRequest, prepare_pipeline
from tests.conftest import REPO
from trainer.contract import EXIT_BAD_INPUT, EXIT_FAILED, PipelinePaths, RunPaths
from trainer.events import EventWriter, read_events
from trainer.run_lock import RunLock

SHIM = Path(__file__).with_name("slurm_shim.py")
UNREACHABLE = {"rc": 1, "err": "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"}
INVALID = {"rc": 1, "err": "slurm_load_jobs error: Invalid job id specified\n"}


class Shims:
    """Stand-in Slurm commands on PATH, their answers, and the calls they saw."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch, tools: tuple[str, ...]) -> None:
        self.dir = folder
        bin_dir = folder / "bin"
        bin_dir.mkdir(parents=True)
        for tool in tools:
            path = bin_dir / tool
            path.write_text(f'#!/bin/sh\nexec {sys.executable} {SHIM} {tool} "$@"\n')
            path.chmod(0o755)
        monkeypatch.setenv("SLURM_SHIM_DIR", str(folder))
        monkeypatch.setenv("PATH", str(bin_dir))  # only the stand-ins: never a real Slurm command

    def answer(self, tool: str, *answers: dict) -> None:
        (self.dir / f"{tool}.json").write_text(json.dumps(list(answers)))

    def calls(self) -> list[list[str]]:
        log = self.dir / "calls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def shims(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Shims:
    monkeypatch.setattr(slurm, "STATE_TTL_S", 0.0)  # every call asks
    monkeypatch.setattr(slurm.time, "sleep", lambda s: None)  # backoff waits take no time here
    return Shims(tmp_path / "shims", monkeypatch, ("scontrol", "squeue", "sbatch", "scancel"))


def running(job: str = "7", state: str = "RUNNING", extra: str = "") -> dict:
    return {"out": f"JobId={job} JobName=x JobState={state} Reason=None Restarts=0 ExitCode=0:0 {extra}\n"}


def test_a_failed_scontrol_is_unknown_and_a_job_is_gone_only_when_squeue_agrees(shims: Shims, tmp_path: Path) -> None:
    shims.answer("scontrol", running(), UNREACHABLE, INVALID, INVALID)
    shims.answer("squeue", {"out": "RUNNING\n"}, {"out": ""})
    job = slurm.SlurmJob("7", RunPaths(tmp_path / "p1-bce"))
    assert job.poll() is None and job._state == "RUNNING"
    assert job.poll() is None and job._state == "RUNNING"  # no answer: the last known state
    assert job.health.failures == 1 and job.health.retry_in() == 2.0  # and the next question waits
    job._checked = float("-inf")
    assert job.poll() is None  # scontrol forgot it but squeue lists it RUNNING: not gone
    job._checked = float("-inf")
    assert job.poll() == 1  # both agree, and the run wrote no run_end: it failed
    assert [c[:2] for c in shims.calls()] == [["scontrol", "show"]] * 3 + [["squeue", "-h"]] + \
        [["scontrol", "show"], ["squeue", "-h"]]


def test_a_forgotten_job_whose_run_completed_counts_as_completed(shims: Shims, tmp_path: Path) -> None:
    shims.answer("scontrol", INVALID)
    shims.answer("squeue", {"rc": 1, "err": "slurm_load_jobs error: Invalid job id specified\n"})
    run = RunPaths(tmp_path / "p1-bce")
    run.root.mkdir()
    with EventWriter(run.events) as events:
        events.emit("run_end", status="completed", reason="done", wall_s=1.0, best={})
    assert slurm.SlurmJob("7", run).poll() == 0


def test_a_long_outage_is_alerted_once_and_its_end_too() -> None:
    now = [0.0]
    alerts: list[tuple[str, str, str]] = []
    health = slurm.ControllerHealth(lambda *a: alerts.append(a), alert_after_s=300, clock=lambda: now[0])
    for t in (0, 100, 299):
        now[0] = t
        health.failed("scontrol show: Unable to contact slurm controller")
    assert alerts == []  # a few minutes of a busy controller is nothing to wake anyone for
    assert health.retry_in() == 8.0
    for t in (300, 400, 900):
        now[0] = t
        health.failed("scontrol show: Unable to contact slurm controller")
    assert [(level, code) for level, code, _ in alerts] == [("error", "slurm")]  # once, and still watching
    assert "300 s" in alerts[0][2] and "still watched" in alerts[0][2]
    assert health.retry_in() == slurm.BACKOFF_MAX_S
    now[0] = 950
    health.answered()
    assert [(level, code) for level, code, _ in alerts] == [("error", "slurm"), ("info", "slurm")]
    assert health.failures == 0 and health.retry_in() == slurm.STATE_TTL_S


def launcher(tmp_path: Path, **settings: object) -> tuple[slurm.SlurmLauncher, RunPaths]:
    run = RunPaths(tmp_path / "p1-bce")
    run.root.mkdir(exist_ok=True)
    return slurm.SlurmLauncher(slurm.SlurmSettings(**settings), "pipe"), run


def test_a_run_is_not_submitted_while_slurm_still_lists_a_job_of_it(shims: Shims, tmp_path: Path) -> None:
    shims.answer("squeue", {"rc": 1, "err": "squeue: error: Socket timed out on send/recv operation\n"},
                 {"out": "8\n"}, {"out": "8\n"}, {"out": ""})
    shims.answer("sbatch", {"out": "9\n"})
    launch, run = launcher(tmp_path)
    job = launch.start(run, Slot("slurm0", "cpu", (), 2), ["--out", str(run.root)], {})
    assert job.job_id == "9"
    tools = [c[0] for c in shims.calls()]
    assert tools == ["squeue", "squeue", "scancel", "squeue", "scancel", "squeue", "sbatch"]
    assert ["--name", "goemo-pipe-p1-bce"] == shims.calls()[0][2:4]


def test_an_sbatch_refusal_is_one_line_with_slurms_reason(shims: Shims, tmp_path: Path) -> None:
    shims.answer("sbatch", {"rc": 1, "err": "sbatch: error: invalid partition specified: nope\n"
                                            "allocation failure: Invalid partition name specified\n"})
    launch, run = launcher(tmp_path, partition="nope")
    with pytest.raises(slurm.SlurmError) as caught:
        launch.start(run, Slot("slurm0", "cpu", (), 2), ["--out", str(run.root)], {})
    assert str(caught.value).endswith("invalid partition specified: nope; allocation failure: Invalid partition "
                                      "name specified") and "\n" not in str(caught.value)


def test_sbatch_is_tried_again_while_the_controller_is_away(shims: Shims, tmp_path: Path) -> None:
    shims.answer("sbatch", {"rc": 1, "err": "sbatch: error: Batch job submission failed: Unable to contact slurm "
                                            "controller (connect failure)\n"}, {"out": "12;cluster\n"})
    launch, run = launcher(tmp_path)
    assert launch.start(run, Slot("slurm0", "cpu", (), 2), ["--out", str(run.root)], {}).job_id == "12"


PRESET = """
name = "shimmed"
[pipeline]
phases = [1]
launcher = "slurm"
[slurm]
cpus_per_run = 1
{slurm}
[defaults]
model = "tiny-deberta"
device = "cpu"
[[configs]]
name = "bce"
loss = "bce"
"""


def preset_file(tmp_path: Path, slurm_keys: str = "") -> Path:
    path = tmp_path / "shimmed.toml"
    path.write_text(PRESET.format(slurm=slurm_keys))
    return path


def headless(tmp_path: Path, preset: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, Path]:
    runs = tmp_path / "runs"
    code = cockpit_main(["--headless", "--preset", str(preset), "--runs-dir", str(runs)])
    return code, capsys.readouterr().err, runs


def test_no_sbatch_on_path_is_exit_2_before_anything_is_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    Shims(tmp_path / "shims", monkeypatch, ("scontrol", "squeue", "scancel"))  # no sbatch
    code, err, runs = headless(tmp_path, preset_file(tmp_path), capsys)
    assert code == EXIT_BAD_INPUT and not runs.exists()
    assert err.strip().splitlines() == ['goemo-cockpit: error: [pipeline] launcher = "slurm": sbatch is not on PATH '
                                        "(is this a Slurm login node?)"]


def test_a_job_script_sbatch_test_only_refuses_is_exit_2_with_slurms_reason(
        shims: Shims, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shims.answer("sbatch", {"match": "--test-only", "rc": 1, "err": "sbatch: error: Invalid --time specification\n"})
    code, err, runs = headless(tmp_path, preset_file(tmp_path, 'time = "abc"'), capsys)
    assert code == EXIT_BAD_INPUT and not runs.exists()
    assert err.strip().splitlines() == ["goemo-cockpit: error: [slurm]: sbatch --test-only refused the job script: "
                                        "Invalid --time specification"]
    script = next(c for c in shims.calls() if "--test-only" in c)[-1]
    assert script.endswith("slurm-job.sh") and not Path(script).exists()  # a scratch copy, removed


def test_a_slurm_python_that_does_not_exist_is_exit_2(shims: Shims, tmp_path: Path) -> None:
    path = preset_file(tmp_path, 'python = "/nowhere/bin/python"')
    with pytest.raises(PresetError, match=r"\[slurm\] python = '/nowhere/bin/python': no such executable"):
        prepare_pipeline(PipelineRequest(str(path), tmp_path / "runs"))


def test_a_refusal_at_launch_is_a_failed_pipeline_in_one_line(shims: Shims, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    shims.answer("sbatch", {"match": "--test-only", "err": "sbatch: Job 3 to start at now\n"},
                 {"rc": 1, "err": "sbatch: error: QOSMaxSubmitJobPerUserLimit\n"})
    code, err, runs = headless(tmp_path, preset_file(tmp_path), capsys)
    assert code == EXIT_FAILED
    assert err.strip().splitlines() == ["goemo-cockpit: error: p1-bce: launch failed: sbatch --parsable: "
                                        "QOSMaxSubmitJobPerUserLimit"]
    (pdir,) = runs.iterdir()
    events = read_events(PipelinePaths(pdir).events)
    assert [(e["level"], e["code"]) for e in events if e["type"] == "alert"] == [("error", "launch")]
    assert events[-1]["type"] == "pipeline_end" and events[-1]["status"] == "failed" and events[-1]["exit_code"] == 1
    assert json.loads(PipelinePaths(pdir).summary.read_text())["status"] == "failed"  # not "running" forever


@pytest.mark.parametrize("key, value", [("partition", '"debug\\n#SBATCH --wrap=id"'), ("account", '"a b"'),
                                        ("mem", '"4G\\necho x"'), ("time", '"1:00:00 "'),
                                        ("extra", '["--qos", "high"]'), ("extra", '["--qos=high\\nid"]')])
def test_slurm_strings_cannot_inject_lines_into_the_job_script(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(PresetError, match=rf"slurm\.{key}"):
        load_preset(str(preset_file(tmp_path, f"{key} = {value}")))


def test_setup_stays_shell_lines(tmp_path: Path) -> None:
    preset, _ = load_preset(str(preset_file(tmp_path, 'setup = """module load cuda\nsource /venv/bin/activate"""')))
    assert preset.slurm.setup.count("\n") == 1


def test_a_trainer_that_cannot_be_found_fails_without_a_restart() -> None:
    policy = RestartPolicy(max_restarts=2)
    assert policy.decide(127, None, None, attempts=1).outcome is Outcome.FAILED
    assert policy.decide(126, None, None, attempts=1).outcome is Outcome.FAILED
    assert policy.decide(1, None, None, attempts=1).outcome is Outcome.RESTART


def test_the_console_names_the_job_and_why_it_waits() -> None:
    out = io.StringIO()
    con = HeadlessConsole(out=out, err=io.StringIO(), progress_every_s=0, clock=lambda: 10.0)
    con.on_event("pipeline", {"v": 1, "t": 1.0, "type": "run_launch", "run": "p1-bce", "device": "slurm0",
                              "pid": None, "attempt": 1, "job_id": "42", "launcher": "slurm"})
    con.on_event("pipeline", {"v": 1, "t": 2.0, "type": "run_pending", "run": "p1-bce", "attempt": 1,
                              "reason": "Resources"})
    con.on_tick()
    lines = [line.split(" ", 1)[1] for line in out.getvalue().splitlines()]  # without the time
    assert "[p1-bce] launched on slurm0 (attempt 1, job 42)" in lines
    assert "[p1-bce] starting… (queued in Slurm: Resources)" in lines
    assert con.state.snapshot(10.0).run("p1-bce").pending_reason == "Resources"


def test_a_second_trainer_on_a_run_folder_exits_2_naming_the_holder(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "8")
    holder = RunLock(tmp_path / "p1-bce").acquire()
    try:
        env = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}
        res = subprocess.run([sys.executable, "-m", "trainer.cli", "--out", str(tmp_path / "p1-bce"), "--resume"],
                             capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    finally:
        holder.release()
    assert res.returncode == EXIT_BAD_INPUT
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"goemo-train: error: {tmp_path / 'p1-bce'}: already trained by pid {os.getpid()} on ")
    assert "(Slurm job 8)" in line and "one trainer per run folder" in line
