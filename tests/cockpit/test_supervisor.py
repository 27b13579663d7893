"""The supervisor's own behaviour with a torch-free stand-in trainer: scheduling with several slots,
abort, the folder lock, leftover trainers, stale control commands, duplicates and disk faults."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cockpit.pipeline import launcher
from cockpit.pipeline.control import send_command
from cockpit.pipeline.lock import PipelineLock, PipelineLocked
from cockpit.pipeline.slots import Slot
from cockpit.pipeline.presets import load_preset
from cockpit.pipeline.supervisor import PipelineIOError, Supervisor
from trainer.contract import (EXIT_ABORTED, EXIT_OK, PipelinePaths, contract_violation)
from trainer.events import read_events

FAKE = Path(__file__).with_name("fake_trainer.py")
PRESET = """
name = "fake"
[pipeline]
phases = [1]
max_restarts = {restarts}
on_run_failure = "{on_failure}"
cpu_slots = 2
stall_floor_s = 30
term_grace_s = 5
[defaults]
model = "tiny-deberta"
device = "cpu"
[[configs]]
name = "bce"
loss = "bce"
[[configs]]
name = "asl"
loss = "asl"
[[configs]]
name = "focal"
loss = "focal"
"""
CPU2 = [Slot("cpu0", "cpu", (), 1), Slot("cpu1", "cpu", (), 1)]


@pytest.fixture(autouse=True)
def fake_trainer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launcher, "trainer_command", lambda slot, args, **_: [sys.executable, str(FAKE), *args])


def make(tmp_path: Path, behaviours: dict[str, str], restarts: int = 0, on_failure: str = "continue",
         configs: list[str] | None = None, phases: list[int] | None = None) -> Supervisor:
    os.environ["FAKE_TRAINER"] = json.dumps(behaviours)
    path = tmp_path / "fake.toml"
    path.write_text(PRESET.format(restarts=restarts, on_failure=on_failure))
    preset, _ = load_preset(str(path))
    pdir = tmp_path / "runs" / "p"
    pdir.mkdir(parents=True, exist_ok=True)
    return Supervisor(pdir, preset, phases or [1], configs or ["bce", "asl", "focal"], poll_s=0.05, slots=CPU2)


def pipeline_events(sup: Supervisor) -> list[dict]:
    return read_events(PipelinePaths(sup.dir).events)


def test_abort_with_two_slots_ends_the_other_runs_without_a_key_error(tmp_path: Path) -> None:
    sup = make(tmp_path, {"bce": "fail", "asl": "slow", "focal": "slow"}, on_failure="abort")
    assert sup.run() == EXIT_ABORTED
    events = pipeline_events(sup)
    assert events[-1]["type"] == "pipeline_end" and events[-1]["status"] == "aborted"
    done = {e["run"]: e["status"] for e in events if e["type"] == "run_done"}
    assert done == {"p1-bce": "failed"}
    # asl was running beside it and was ended; focal never launched.
    launched = {e["run"] for e in events if e["type"] == "run_launch"}
    assert launched == {"p1-bce", "p1-asl"}
    assert sup.records["p1-asl"].status == "queued" and not sup.active


def test_two_slots_run_side_by_side_and_every_event_is_in_the_contract(tmp_path: Path) -> None:
    sup = make(tmp_path, {"bce": "ok", "asl": "ok", "focal": "ok"}, phases=[1, 2])
    assert sup.run() == EXIT_OK
    paths = PipelinePaths(sup.dir)
    for file in [paths.events, *paths.run_event_files()]:
        for event in read_events(file):
            assert contract_violation(event) is None, (file, event)
    summary = json.loads(paths.summary.read_text())
    # asl and bce tie: the selection rule keeps the simpler loss first (cockpit.records.selection_place)
    assert [r["run"] for r in summary["leaderboard"]] == ["p1-focal", "p1-bce", "p1-asl"]
    # Readable like the rest of the folder (mkstemp alone would leave it 0600).
    assert paths.summary.stat().st_mode & 0o777 == sup.dir.stat().st_mode & 0o666


def test_a_second_supervisor_on_a_locked_folder_is_refused_with_one_line(tmp_path: Path) -> None:
    sup = make(tmp_path, {})
    with PipelineLock(PipelinePaths(sup.dir)):
        with pytest.raises(PipelineLocked) as info:
            sup.run()
    line = str(info.value)
    assert f"is supervised by pid {os.getpid()}" in line and "--attach" in line and "\n" not in line
    assert not PipelinePaths(sup.dir).events.exists()  # nothing started


def test_cli_resume_on_a_locked_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cockpit.cli import main

    sup = make(tmp_path, {"bce": "ok"}, configs=["bce"])
    (sup.dir / "preset.toml").write_text((tmp_path / "fake.toml").read_text())
    assert sup.run() == EXIT_OK
    before = PipelinePaths(sup.dir).events.read_text()
    with PipelineLock(PipelinePaths(sup.dir)):
        code = main(["--headless", "--resume", str(sup.dir)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is supervised by pid" in err[0]
    assert PipelinePaths(sup.dir).events.read_text() == before


def test_duplicate_configs_run_once(tmp_path: Path) -> None:
    sup = make(tmp_path, {"bce": "ok"}, configs=["bce", "bce"])
    assert sup.run() == EXIT_OK
    assert [e["run"] for e in pipeline_events(sup) if e["type"] == "run_launch"] == ["p1-bce"]


def test_stale_control_commands_are_discarded_when_a_supervisor_starts(tmp_path: Path) -> None:
    sup = make(tmp_path, {"bce": "ok"}, configs=["bce"])
    send_command(sup.dir, "stop_pipeline")
    assert sup.run() == EXIT_OK
    alerts = [e["message"] for e in pipeline_events(sup) if e["type"] == "alert"]
    assert any("discarded 1 control command" in m for m in alerts)


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)


def test_leftover_trainers_are_recognised_by_pid_and_start_time(tmp_path: Path) -> None:
    sup = make(tmp_path, {"bce": "ok"}, configs=["bce"])
    ours, stranger = _sleeper(), _sleeper()
    try:
        history = [
            {"v": 1, "t": time.time(), "type": "run_launch", "run": "p1-bce", "device": "cpu0", "pid": ours.pid,
             "attempt": 1, "proc_start": launcher.process_start_time(ours.pid)},
            # Same pid scheme, but the start time says this pid now names another process.
            {"v": 1, "t": time.time(), "type": "run_launch", "run": "p1-asl", "device": "cpu1", "pid": stranger.pid,
             "attempt": 1, "proc_start": launcher.process_start_time(stranger.pid) - 100},
        ]
        PipelinePaths(sup.dir).events.write_text("".join(json.dumps(e) + "\n" for e in history))
        assert sup.run() == EXIT_OK
        assert ours.wait(timeout=10) == -signal.SIGTERM
        assert stranger.poll() is None  # never touched
        orphans = [e for e in pipeline_events(sup) if e["type"] == "alert" and e["code"] == "orphan"]
        assert [e["run"] for e in orphans] == ["p1-bce"]
    finally:
        for proc in (ours, stranger):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_disk_full_ends_the_runs_writes_pipeline_end_and_raises_one_line(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    sup = make(tmp_path, {"bce": "slow", "asl": "slow"}, configs=["bce", "asl"])
    calls = {"n": 0}
    real = sup.publisher.write_summary

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 1:  # the first summary is written at start; then the disk "fills"
            raise OSError(errno.ENOSPC, "No space left on device", str(PipelinePaths(sup.dir).summary))
        return real(*args, **kwargs)

    monkeypatch.setattr(sup.publisher, "write_summary", failing)
    monkeypatch.setattr(sup.reaper, "apply_all", _fail_after_launch(sup.reaper.apply_all, failing))
    with pytest.raises(PipelineIOError) as info:
        sup.run()
    assert "ENOSPC" in str(info.value) and "--resume" in str(info.value) and "\n" not in str(info.value)
    events = pipeline_events(sup)
    assert events[-1]["type"] == "pipeline_end" and events[-1]["status"] == "failed"
    assert not sup.active
    assert not list(sup.dir.glob(".*.tmp"))


def _fail_after_launch(apply_all, failing):
    """Call the failing summary write once both runs are up (the scheduler writes it after each exit)."""
    def wrapped(exits):
        apply_all(exits)
        failing()
    return wrapped


class RecordingOutlet:
    """An outlet that keeps what it is handed and reports one failure, as a dead tracker would."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.closed: list[float] = []
        self.failed = False

    def on_event(self, source: str, event: dict) -> None:
        self.seen.append((source, event["type"]))

    def drain_alerts(self) -> list[dict]:
        if self.failed or not any(t == "run_start" for _, t in self.seen):
            return []
        self.failed = True
        return [{"level": "warn", "code": "tracker", "message": "mlflow: dropped for p1-bce", "run": "p1-bce"}]

    def close(self, timeout_s: float) -> None:
        self.closed.append(timeout_s)


class BrokenOutlet(RecordingOutlet):
    def on_event(self, source: str, event: dict) -> None:
        raise RuntimeError("a bug in an outlet")


def test_outlets_see_every_event_and_their_failures_land_in_pipeline_jsonl(tmp_path: Path) -> None:
    sup = make(tmp_path, {"bce": "ok"}, configs=["bce"])
    outlet, broken = RecordingOutlet(), BrokenOutlet()
    sup.outlets = [broken, outlet]  # a broken outlet harms neither the pipeline nor the others
    assert sup.run() == EXIT_OK
    events = pipeline_events(sup)
    pipeline_types = [t for s, t in outlet.seen if s == "pipeline"]
    run_types = [t for s, t in outlet.seen if s == "p1-bce"]
    assert pipeline_types[0] == "pipeline_start" and "pipeline_end" in pipeline_types
    assert run_types == [e["type"] for e in read_events(PipelinePaths(sup.dir).run("p1-bce").events)]
    alert = next(e for e in events if e["type"] == "alert" and e["code"] == "tracker")
    assert alert["run"] == "p1-bce" and alert["message"] == "mlflow: dropped for p1-bce"
    assert outlet.closed  # flushed at the end, with the preset's notify_timeout_s
    assert 9 < outlet.closed[0] <= sup.settings.notify_timeout_s
    assert broken not in sup.outlets  # switched off at its first failure


def test_a_run_not_learning_is_stopped_under_on_not_learning_stop_and_the_pipeline_goes_on(tmp_path: Path) -> None:
    sup = make(tmp_path, {"focal": "stuck"}, configs=["bce", "focal"])
    sup.settings.on_not_learning = "stop"
    assert sup.run() == 0
    events = pipeline_events(sup)
    alerts = [e for e in events if e["type"] == "alert" and e["code"] == "not_learning"]
    assert [a["run"] for a in alerts] == ["p1-focal"] and "near chance" in alerts[0]["message"]
    assert "stopping it" in alerts[0]["message"] and "head_lr" in alerts[0]["message"]
    done = {e["run"]: e["status"] for e in events if e["type"] == "run_done"}
    assert done == {"p1-bce": "completed", "p1-focal": "stopped"}
    stuck = [e for e in read_events(PipelinePaths(sup.dir).run("p1-focal").events) if e["type"] == "eval"]
    assert len(stuck) < 20  # stopped at its second eval (or soon after), not after 300
    exit_ = next(e for e in events if e["type"] == "run_exit" and e["run"] == "p1-focal")
    assert exit_["reason"].startswith("not learning")
    # The policy working is no failure: the pipeline goes on and ends completed.
    assert events[-1]["type"] == "pipeline_end" and events[-1]["status"] == "completed"


def test_under_on_not_learning_alert_the_run_is_only_named(tmp_path: Path) -> None:
    sup = make(tmp_path, {"focal": "stuck"}, configs=["focal"])
    assert sup.settings.on_not_learning == "alert"  # the default
    assert sup.run() == 0
    events = pipeline_events(sup)
    alerts = [e for e in events if e["type"] == "alert" and e["code"] == "not_learning"]
    assert len(alerts) == 1 and "stopping it" not in alerts[0]["message"]
    assert [e["status"] for e in events if e["type"] == "run_done"] == ["completed"]
