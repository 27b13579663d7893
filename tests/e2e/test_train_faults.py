"""goemo-train under faults: refused resumes that leave the folder resumable, planted pickles that are
never opened, a full disk, errors during setup, and the watchdog's allowances for load and first eval."""

from __future__ import annotations

import json
import pathlib
import pickle
import shutil
import signal
from pathlib import Path

import pytest

from tests.conftest import TINY, run_train, train_env
from trainer import run as run_module
from trainer import timing
from trainer.checkpoints import validate_latest
from trainer.config import RunConfig
from trainer.contract import (CHECKPOINTS_DIR, ENV_STARTUP_GRACE, EVENTS_FILE, LATEST, RUN_CONFIG_FILE,
                              TRAINER_STATE_FILE, CheckpointStateError)
from trainer.events import EventWriter, read_events
from trainer.loop import TrainingRun
from trainer.model_source import ModelSource
from trainer.preflight import Prepared

SMALL = [*TINY, "--max-eval-samples", "50", "--max-train-samples", "64", "--batch-size", "16", "--max-steps", "4",
         "--set", "checkpoint_every_steps=2"]  # 4 steps per epoch: a checkpoint at 2, then 4


class Marker:
    """Unpickling this creates ``path``, as a crafted checkpoint file could run anything."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (self.path,))


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.fixture(scope="module")
def crashed_run(tmp_path_factory) -> Path:
    """A run killed at step 4, its latest checkpoint at step 2 (made once, copied per test)."""
    out = tmp_path_factory.mktemp("crashed") / "run"
    res = run_train(*SMALL, "--out", str(out), env=train_env(GOEMO_FAULT="crash@4", GOEMO_STARTUP_GRACE_S="321"))
    assert res.returncode == -signal.SIGKILL, res.stderr
    return out


@pytest.mark.e2e
def test_refused_resumes_change_nothing_and_planted_pickles_are_never_opened(crashed_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(crashed_run, out)
    state_file = out / CHECKPOINTS_DIR / LATEST / TRAINER_STATE_FILE
    good_state = state_file.read_text()
    run_toml, events = (out / RUN_CONFIG_FILE).read_bytes(), (out / EVENTS_FILE).read_bytes()
    resume = ["--out", str(out), "--resume"]

    # torn or changed trainer_state.json: exit 2, one line naming the file, nothing written
    for text, needle in ((good_state[:40], "not valid JSON"), (good_state.replace('"step"', '"steps"', 1),
                                                               "missing key 'step'")):
        state_file.write_text(text)
        res = run_train(*resume, "--set", "eval_batch_size=64")
        assert res.returncode == 2 and needle in _one_line(res.stderr) and str(state_file) in res.stderr
        assert (out / RUN_CONFIG_FILE).read_bytes() == run_toml and (out / EVENTS_FILE).read_bytes() == events
    state_file.write_text(good_state)

    res = run_train(*resume, "--seed", "5")  # another seed: refused before anything loads
    assert res.returncode == 2 and "seed" in _one_line(res.stderr)

    # another schedule is only known after the data is set up: the run fails in setup, in events.jsonl
    res = run_train(*resume, "--max-steps", "9")
    assert res.returncode == 1 and "different config" in _one_line(res.stderr)
    tail = read_events(out / EVENTS_FILE)[-2:]
    assert [e["type"] for e in tail] == ["alert", "run_end"] and tail[0]["level"] == "error"
    assert tail[1]["status"] == "failed" and "different config" in tail[1]["reason"]
    assert (out / RUN_CONFIG_FILE).read_bytes() == run_toml

    # still resumable; files a pickle-based loader would open are ignored
    marker = tmp_path / "pwned"
    for name in ("custom_checkpoint_0.pkl", "random_states_0.pkl", "optimizer.bin", "scheduler.bin"):
        (state_file.parent / name).write_bytes(pickle.dumps(Marker(marker)))
    res = run_train(*resume, env=train_env(GOEMO_ATTEMPT="2"))
    assert res.returncode == 0, res.stderr
    assert not marker.exists()
    events_after = read_events(out / EVENTS_FILE)
    assert [e["resumed_from_step"] for e in events_after if e["type"] == "run_start"][-1] == 2
    assert events_after[-1]["type"] == "run_end" and events_after[-1]["status"] == "completed"
    # the first eval is announced with an allowance sized to the dev set (no eval was timed before)
    first_eval = next(i for i, e in enumerate(events_after) if e["type"] == "eval")
    announced = [e for e in events_after[:first_eval] if e["type"] == "activity"][-1]
    dev_size = next(e for e in events_after if e["type"] == "data")["dev_size"]
    assert announced["what"] == "eval"
    assert announced["expect_s"] == timing.expect_s(0, timing.eval_guess_s(dev_size))


@pytest.mark.e2e
def test_watchdog_hears_of_the_model_load_with_the_startup_allowance_and_state_is_strict_json(crashed_run):
    events = read_events(crashed_run / EVENTS_FILE)
    start = next(i for i, e in enumerate(events) if e["type"] == "run_start")
    model_load = [e for e in events[:start] if e["type"] == "activity"][-1]
    assert model_load["what"] == "load" and model_load["expect_s"] == 321  # tiny-deberta is built, not fetched
    state = json.loads((crashed_run / CHECKPOINTS_DIR / LATEST / TRAINER_STATE_FILE).read_text(),
                       parse_constant=lambda c: pytest.fail(f"non-strict JSON token {c}"))
    assert state["step"] == 2 and "eval_seconds" in state


@pytest.mark.e2e
def test_disk_full_on_a_checkpoint_fails_the_run_and_keeps_the_previous_one(tmp_path):
    out = tmp_path / "run"
    res = run_train(*SMALL, "--out", str(out), env=train_env(GOEMO_FAULT="diskfull@4"))
    assert res.returncode == 1
    assert "No space left on device" in _one_line(res.stderr)
    events = read_events(out / EVENTS_FILE)
    assert [e["type"] for e in events[-2:]] == ["alert", "run_end"]
    assert events[-2]["code"] == "disk_full" and events[-1]["status"] == "failed"
    assert max(e["step"] for e in events if e["type"] == "step") == 4
    ckpts = out / CHECKPOINTS_DIR
    assert sorted(p.name for p in ckpts.iterdir()) == [LATEST]  # no latest.tmp, no latest.old
    assert validate_latest(ckpts / LATEST)["step"] == 2


# -- in process: errors during setup, and the allowances ----------------------------------------------------
class _Fake:
    is_main_process = True


@pytest.mark.parametrize("error, code, traceback_expected", [
    (OSError(28, "No space left on device"), "disk_full", False),
    (CheckpointStateError("x/trainer_state.json: missing key 'step'"), "checkpoint", False),
    (RuntimeError("a bug"), "exception", True),
])
def test_an_error_during_setup_ends_the_run_in_events(tmp_path, monkeypatch, capsys, error, code, traceback_expected):
    def setup(run):
        run.accelerator = _Fake()
        run.events = EventWriter(run.out / EVENTS_FILE)
        run.emit("activity", what="load", expect_s=600)
        raise error

    monkeypatch.setattr(TrainingRun, "setup", setup)
    monkeypatch.setattr(run_module, "_install_signal_handlers", lambda run: None)  # leave pytest's handlers alone
    prepared = Prepared(RunConfig(model="tiny-deberta"), {}, [], ModelSource("m", None, "m", "head"), None)
    assert run_module.run_training(prepared, tmp_path, resume=True) == 1
    events = read_events(tmp_path / EVENTS_FILE)
    assert [e["type"] for e in events] == ["activity", "alert", "run_end"]
    assert events[1]["code"] == code and events[2]["status"] == "failed" and str(error) in events[2]["reason"]
    stderr = capsys.readouterr().err
    assert ("Traceback" in stderr) == traceback_expected
    if not traceback_expected:
        assert _one_line(stderr).startswith("goemo-train: error: ")


def test_startup_grace_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(ENV_STARTUP_GRACE, "900")
    assert timing.startup_grace_s() == 900
    for bad in ("", "soon", "-1", "nan"):
        monkeypatch.setenv(ENV_STARTUP_GRACE, bad)
        assert timing.startup_grace_s() == timing.DEFAULT_STARTUP_GRACE_S == 600


def test_model_activity_says_download_only_for_uncached_hub_ids(tmp_path):
    assert timing.model_activity(ModelSource("tiny-deberta", None, "x", "head")) == "load"
    assert timing.model_activity(ModelSource("local", str(tmp_path), str(tmp_path), "head")) == "load"
    assert timing.model_activity(ModelSource("org/not-cached", "org/not-cached", "org/not-cached", "head")) \
        == "download"


def test_first_eval_allowance_grows_with_the_dev_set():
    assert timing.expect_s(0, timing.eval_guess_s(100)) == 30.0  # never below 30 s
    assert timing.expect_s(0, timing.eval_guess_s(5426)) == pytest.approx(5426 / timing.EVAL_ROWS_PER_S_GUESS,
                                                                         abs=0.1)
    assert timing.expect_s(4.0, timing.eval_guess_s(5426)) == 30.0  # once timed: 3x the last eval, floor 30 s
    assert timing.expect_s(20.0, timing.eval_guess_s(5426)) == 60.0

