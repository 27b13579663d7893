"""The control channel: one atomic JSON file per command, taken in order by the supervisor."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from cockpit.pipeline.control import CONTROL_DIR, ControlError, send_command, take_commands


def test_commands_round_trip_in_order(tmp_path: Path) -> None:
    send_command(tmp_path, "stop_run", "p1-bce")
    send_command(tmp_path, "restart_run", run="p1-asl")
    send_command(tmp_path, "stop_pipeline")
    taken = take_commands(tmp_path)
    assert [(c["cmd"], c["run"]) for c in taken] == [
        ("stop_run", "p1-bce"), ("restart_run", "p1-asl"), ("stop_pipeline", None)]
    assert all(isinstance(c["t"], float) for c in taken)
    assert take_commands(tmp_path) == []
    assert os.listdir(tmp_path / CONTROL_DIR) == []


def test_control_folder_is_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = send_command(tmp_path, "stop_pipeline")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / CONTROL_DIR).stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("cmd, run", [("reboot", None), ("stop_run", None), ("restart_run", ""), ("stop_run", 3)])
def test_bad_commands_are_refused(tmp_path: Path, cmd: str, run: object) -> None:
    with pytest.raises(ControlError):
        send_command(tmp_path, cmd, run)  # type: ignore[arg-type]
    assert not (tmp_path / CONTROL_DIR).exists() or os.listdir(tmp_path / CONTROL_DIR) == []


def test_malformed_foreign_and_linked_files_are_dropped(tmp_path: Path) -> None:
    send_command(tmp_path, "stop_run", "p1-a")
    folder = tmp_path / CONTROL_DIR
    (folder / "00000000000000000001-1-000000.json").write_text("{not json")
    (folder / "00000000000000000002-1-000000.json").write_text(json.dumps({"cmd": "format_disk"}))
    (folder / "00000000000000000003-1-000000.json").write_text(json.dumps([1, 2]))
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"cmd": "stop_pipeline", "run": None, "t": 0.0}))
    os.symlink(target, folder / "00000000000000000004-1-000000.json")
    (folder / ".pending.json.tmp").write_text("{}")  # a write in progress is left alone
    foreign = folder / "00000000000000000005-1-000000.json"
    foreign.write_text(json.dumps({"cmd": "stop_pipeline", "run": None, "t": 0.0}))
    if os.getuid() == 0:
        os.chown(foreign, 4242, -1)
    else:
        foreign.unlink()
    taken = take_commands(tmp_path)
    assert [(c["cmd"], c["run"]) for c in taken] == [("stop_run", "p1-a")]
    assert sorted(os.listdir(folder)) == [".pending.json.tmp"]
    assert target.exists()


def test_take_commands_without_folder(tmp_path: Path) -> None:
    assert take_commands(tmp_path / "nowhere") == []
