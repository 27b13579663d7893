"""Every user error of goemo-cockpit is one line on stderr, exit 2, and nothing is created or started.

In-process through cockpit.cli.main (the same code path as the command); one case also runs as a
real subprocess to prove that no traceback reaches the terminal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cockpit.cli import main
from cockpit.pipeline.slots import detect_gpus
from tests.conftest import REPO
from trainer.contract import CHECKPOINTS_DIR, EVENTS_FILE, LATEST, PIPELINE_FILE, PRESET_FILE, TRAINER_STATE_FILE

SMOKE = (REPO / "presets" / "smoke.toml").read_text()
NO_GPU = not detect_gpus()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = main(list(args))
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def bad_preset(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "bad.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def data_folder(tmp_path: Path, train: str) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    for split in ("dev", "test"):
        (folder / f"{split}.tsv").write_text("fine text\t1\n")
    if train == "dir":
        (folder / "train.tsv").mkdir()
    elif train == "gzip":
        (folder / "train.tsv.gz").write_bytes(b"this is not gzip at all")
    return folder


def broken_pooling_model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "1_Pooling" / "config.json").write_text("{not json")
    return folder


CASES = {
    "model typo": (lambda t: ["--set", "model=minlm"], "not a known model"),
    "clip out of range": (lambda t: ["--preset", bad_preset(t, SMOKE.replace('loss = "asl"', 'loss = "asl"\nloss_params = { clip = 5 }'))],
                          "loss_params.clip"),
    "gamma_neg not a number": (lambda t: ["--preset", bad_preset(t, SMOKE.replace('loss = "asl"', 'loss = "asl"\nloss_params = { gamma_neg = "abc" }'))],
                               "loss_params.gamma_neg"),
    "epochs inf": (lambda t: ["--set", "epochs=inf"], "'epochs'"),
    "seed negative": (lambda t: ["--set", "seed=-1"], "'seed'"),
    "oversampling inf": (lambda t: ["--set", "oversampling_factor=inf"], "'oversampling_factor'"),
    "stall floor inf": (lambda t: ["--set", "pipeline.stall_floor_s=inf"], "pipeline.stall_floor_s"),
    "non-UTF-8 preset": (lambda t: ["--preset", bad_preset(t, b'name = "caf\xe9"\n')], "not UTF-8"),
    "name with a slash": (lambda t: ["--set", "name=a/b"], "'name'"),
    "broken pooling config": (lambda t: ["--set", f"model={broken_pooling_model(t)}"], "1_Pooling"),
    "data file is a folder": (lambda t: ["--set", f"source={data_folder(t, 'dir')}"], "train.tsv"),
    "garbage gzip": (lambda t: ["--set", f"source={data_folder(t, 'gzip')}"], "train.tsv.gz"),
    "unknown config": (lambda t: ["--configs", "bce,hinge"], "unknown config 'hinge'"),
    "bad phases": (lambda t: ["--phases", "1,7"], "--phases"),
    "5000-digit integer in a preset": (lambda t: ["--preset", bad_preset(t, "x = " + "7" * 5000 + "\n")],
                                       "a number with more than"),
    "5000-digit integer in --set": (lambda t: ["--set", "epochs=" + "7" * 5000], "--set epochs: a number with more"),
    "preset nested too deeply": (lambda t: ["--preset", bad_preset(t, "x = " + "[" * 50_000 + "]" * 50_000)],
                                 "nested too deeply"),
    "a source named goemotions": (lambda t: ["--set", 'sources=[{kind="goemotions"}, {kind="table", path="x.csv", '
                                                      'name="goemotions"}]'], "'sources.1.name'"),
    "phase 2 alone": (lambda t: ["--phases", "2"], "--phases 2: phase 2 ranks phase 1's runs"),
    "phase 2 without 1 in the preset": (lambda t: ["--set", "pipeline.phases=[2, 3]"],
                                        "key 'pipeline.phases' = [2, 3]: phase 2 ranks phase 1's runs"),
    "ensemble of runs that differ per phase": (
        lambda t: ["--set", "pipeline.final=ensemble", "--set", "phase1.max_length=64"],
        "'max_length' is 64 in p1-bce but 128 in p3-bce"),
    "ensemble of runs that differ per config": (
        lambda t: ["--set", "pipeline.final=ensemble", "--set", "configs.1.settings.taxonomy=ekman"],
        "'taxonomy' is 'goemotions' in p1-bce but 'ekman' in p1-asl"),
    "unknown tracker": (lambda t: ["--set", 'report_to=["foo"]'], "unknown tracker 'foo'"),
    "source weight 1e300": (lambda t: ["--set", 'sources=[{kind = "goemotions", weight = 1e300}]'],
                            "key 'sources.0.weight'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_nothing_is_created(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             case: str) -> None:
    make_args, needle = CASES[case]
    args = make_args(tmp_path)
    if "--preset" not in args:
        args = ["--preset", "smoke", *args]
    runs = tmp_path / "runs"
    code, err = run(capsys, "--headless", "--runs-dir", str(runs), *args)
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert not runs.exists()


def test_an_ensemble_of_runs_that_cannot_be_averaged_names_every_differing_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "--headless", "--preset", "smoke", "--runs-dir", str(tmp_path / "runs"),
                    "--set", "pipeline.final=ensemble", "--set", "phase3.pooling=mean",
                    "--set", "configs.2.settings.max_length=64")
    assert code == 2 and len(err) == 1, err
    assert "pipeline.final = 'ensemble'" in err[0] and "model, pooling, taxonomy, max_length" in err[0]
    assert "'pooling' is 'auto' in p1-bce but 'mean' in p3-bce" in err[0]
    assert "'max_length' is 128 in p1-bce but 64 in p1-combined_07" in err[0]
    assert "'model' is" not in err[0] and "'taxonomy' is" not in err[0]  # only the keys that differ


@pytest.mark.skipif(not NO_GPU, reason="needs a machine without an NVIDIA GPU")
@pytest.mark.parametrize("args", [["--set", "device=cuda"], ["--set", "pipeline.gpus=[0]"]])
def test_cuda_without_a_gpu_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, err = run(capsys, "--headless", "--preset", "smoke", "--runs-dir", str(tmp_path / "runs"), *args)
    assert code == 2 and len(err) == 1 and "GPU" in err[0], err
    assert not (tmp_path / "runs").exists()


def test_runs_dir_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    runs.write_text("not a folder")
    code, err = run(capsys, "--headless", "--preset", "smoke", "--runs-dir", str(runs))
    assert code == 2 and len(err) == 1 and "is a file" in err[0], err


def test_hub_source_offline_says_how_to_use_the_embedded_data(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "empty-cache"))
    code, err = run(capsys, "--headless", "--preset", "smoke", "--runs-dir", str(tmp_path / "runs"),
                    "--set", "source=hub")
    assert code == 2 and len(err) == 1 and "unreachable" in err[0] and "embedded" in err[0], err


def interrupted_pipeline(tmp_path: Path, state_text: str) -> Path:
    pdir = tmp_path / "runs" / "p"
    latest = pdir / "p1-bce" / CHECKPOINTS_DIR / LATEST
    latest.mkdir(parents=True)
    (pdir / PRESET_FILE).write_text(SMOKE)
    (pdir / PIPELINE_FILE).write_text(json.dumps({"v": 1, "t": 1.0, "type": "pipeline_start", "pipeline": "p",
                                                  "preset": "smoke", "phases": [1], "configs": ["bce"]}) + "\n")
    (pdir / "p1-bce" / EVENTS_FILE).write_text("")
    (latest / TRAINER_STATE_FILE).write_text(state_text)
    return pdir


@pytest.mark.parametrize("state, needle", [('{"step": 5, "epo', "not valid JSON"),
                                           ('{"steps": 5}', "missing key 'step'")])
def test_resume_with_a_broken_trainer_state_is_refused_before_anything_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], state: str, needle: str) -> None:
    pdir = interrupted_pipeline(tmp_path, state)
    before = (pdir / PIPELINE_FILE).read_text()
    code, err = run(capsys, "--headless", "--resume", str(pdir))
    assert code == 2 and len(err) == 1 and needle in err[0] and TRAINER_STATE_FILE in err[0], err
    assert (pdir / PIPELINE_FILE).read_text() == before


def test_resume_of_a_folder_that_is_no_pipeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "--headless", "--resume", str(tmp_path))
    assert code == 2 and len(err) == 1 and "not a pipeline folder" in err[0], err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
def test_a_fifo_as_a_source_is_one_line_not_a_hang(tmp_path: Path) -> None:
    # a subprocess with a timeout: a regression that opens the FIFO blocks forever, and must fail, not hang CI
    fifo = tmp_path / "mine.csv"
    os.mkfifo(fifo)
    sources = f'sources=[{{kind="goemotions"}}, {{kind="table", path="{fifo}"}}]'
    res = subprocess.run([sys.executable, "-m", "cockpit.cli", "--headless", "--preset", "smoke", "--runs-dir",
                          str(tmp_path / "runs"), "--set", sources], capture_output=True, text=True, cwd=REPO,
                         timeout=60)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and f"{fifo}: expected " in lines[0] and "FIFO" in lines[0], lines
    assert not (tmp_path / "runs").exists()


def test_no_traceback_reaches_the_terminal(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "cockpit.cli", "--headless", "--preset", "smoke", "--runs-dir",
                          str(tmp_path / "runs"), "--set", "epochs=inf"], capture_output=True, text=True, cwd=REPO,
                         timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_a_run_that_exits_2_shows_its_one_line_reason_everywhere(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Not just "bad input": the console, the TUI's alert line and the notification quote the run's stderr."""
    import io
    import socket

    from cockpit.headless import HeadlessConsole
    from cockpit.pipeline import launcher
    from cockpit.outlets.notify_messages import Context, build
    from cockpit.records import decode
    from cockpit.pipeline.slots import Slot
    from cockpit.pipeline.presets import load_preset
    from cockpit.pipeline.supervisor import Supervisor
    from trainer.contract import EXIT_FAILED, PIPELINE_ORIGIN, PipelinePaths
    from trainer.events import read_events

    fake = Path(__file__).with_name("fake_trainer.py")
    monkeypatch.setattr(launcher, "trainer_command", lambda slot, args, **_: [sys.executable, str(fake), *args])
    monkeypatch.setenv("FAKE_TRAINER", json.dumps({"bce": "bad_input"}))
    preset_file = tmp_path / "fake.toml"
    preset_file.write_text('name = "fake"\n[pipeline]\nphases = [1]\nmax_restarts = 2\n[defaults]\n'
                           'model = "tiny-deberta"\ndevice = "cpu"\n[[configs]]\nname = "bce"\nloss = "bce"\n')
    preset, _ = load_preset(str(preset_file))
    pdir = tmp_path / "runs" / "p"
    pdir.mkdir(parents=True)
    console_err = io.StringIO()
    console = HeadlessConsole(out=io.StringIO(), err=console_err)
    sup = Supervisor(pdir, preset, [1], ["bce"], on_event=console.on_event, poll_s=0.05,
                     slots=[Slot("cpu0", "cpu", (), 1)])
    assert sup.run() == EXIT_FAILED
    reason = "bad input: " + str(pdir / "p1-bce" / "run.toml") + ": key 'max_length' is 64, but the ensemble's is 128"
    events = read_events(PipelinePaths(pdir).events)
    assert [e["reason"] for e in events if e["type"] == "run_exit"] == [reason]  # exit 2: never restarted
    alert = next(e for e in events if e["type"] == "alert" and e["code"] == "run_failed")
    assert alert["message"] == f"p1-bce failed after 1 attempt(s): {reason}"  # the TUI's alert line
    assert f"!! [p1-bce] exited with 2: {reason}" in console_err.getvalue()
    done = next(e for e in events if e["type"] == "run_done")
    note = build("failed", PIPELINE_ORIGIN, decode(PIPELINE_ORIGIN, done), Context("p", socket.gethostname(), 2, reason),
                 pdir, 0.2)
    assert reason in note.body


def test_the_reason_is_the_last_line_of_a_long_stderr(tmp_path: Path) -> None:
    from cockpit.pipeline.reaping import STDERR_TAIL_BYTES, last_stderr_line

    stderr = tmp_path / "stderr.log"
    assert last_stderr_line(stderr) is None  # no file: the exit code's own words are shown
    stderr.write_text("warning\n" * (STDERR_TAIL_BYTES // 4) + "goemo-train: error: the reason\n\n  \n")
    assert last_stderr_line(stderr) == "goemo-train: error: the reason"

