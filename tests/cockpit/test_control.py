"""The control channel: one atomic JSON file per command, taken in order by the supervisor."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from cockpit.pipeline import control
from cockpit.pipeline.control import (CONTROL_DIR, ControlError, check_control_dir, discard_pending, send_command,
                                      take_commands)
from trainer import contract


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


def test_control_dir_name_comes_from_the_contract() -> None:
    assert CONTROL_DIR == contract.CONTROL_DIR


def _plant_outside(tmp_path: Path) -> Path:
    """A folder outside the pipeline holding a valid-looking command, as an attacker would link to."""
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o700)
    (outside / "00000000000000000001-1-000000.json").write_text(
        json.dumps({"cmd": "stop_pipeline", "run": None, "t": 0.0}))
    return outside


def test_a_symlinked_control_folder_is_refused_and_never_followed(tmp_path: Path) -> None:
    pipeline = tmp_path / "runs" / "X"
    pipeline.mkdir(parents=True)
    outside = _plant_outside(tmp_path)
    os.symlink(outside, pipeline / CONTROL_DIR)
    with pytest.raises(ControlError) as err:
        check_control_dir(pipeline)
    message = str(err.value)
    assert message == f"{pipeline / CONTROL_DIR}: is a symbolic link (expected a folder owned by you, mode 0700)"
    assert "\n" not in message
    with pytest.raises(ControlError, match="symbolic link"):
        send_command(pipeline, "stop_pipeline")
    assert take_commands(pipeline) == []
    assert discard_pending(pipeline) == 0
    assert os.listdir(outside) == ["00000000000000000001-1-000000.json"]  # nothing written, read or deleted


@pytest.mark.parametrize("mode", [0o770, 0o702, 0o777])
def test_a_control_folder_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    send_command(tmp_path, "stop_run", "p1-a")
    folder = tmp_path / CONTROL_DIR
    os.chmod(folder, mode)
    with pytest.raises(ControlError, match=f"writable by group or others \\(mode {mode:04o}\\)"):
        check_control_dir(tmp_path)
    with pytest.raises(ControlError):
        send_command(tmp_path, "stop_pipeline")
    assert take_commands(tmp_path) == [] and discard_pending(tmp_path) == 0
    assert len(os.listdir(folder)) == 1  # left untouched
    os.chmod(folder, 0o700)
    assert [c["cmd"] for c in take_commands(tmp_path)] == ["stop_run"]


def test_a_control_folder_owned_by_someone_else_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    send_command(tmp_path, "stop_run", "p1-a")
    folder = tmp_path / CONTROL_DIR
    if os.getuid() == 0:
        os.chown(folder, 4242, -1)
    else:  # cannot give a folder away: pretend to be someone else instead
        me = os.getuid()
        monkeypatch.setattr(control.os, "getuid", lambda: me + 1)
    with pytest.raises(ControlError, match="is owned by uid .*, not by you"):
        check_control_dir(tmp_path)
    with pytest.raises(ControlError):
        send_command(tmp_path, "stop_pipeline")
    assert take_commands(tmp_path) == [] and discard_pending(tmp_path) == 0
    assert len(os.listdir(folder)) == 1


def test_a_control_file_instead_of_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / CONTROL_DIR).write_text("not a folder")
    with pytest.raises(ControlError, match="is not a folder"):
        check_control_dir(tmp_path)
    with pytest.raises(ControlError, match="is not a folder"):
        send_command(tmp_path, "stop_pipeline")
    assert take_commands(tmp_path) == [] and discard_pending(tmp_path) == 0
    assert (tmp_path / CONTROL_DIR).read_text() == "not a folder"


def test_a_missing_or_private_control_folder_passes_the_check(tmp_path: Path) -> None:
    check_control_dir(tmp_path)
    assert not (tmp_path / CONTROL_DIR).exists()  # the check creates nothing
    send_command(tmp_path, "stop_pipeline")
    check_control_dir(tmp_path)


def test_discard_pending_drops_commands_from_before_a_resume(tmp_path: Path) -> None:
    assert discard_pending(tmp_path) == 0  # no folder yet
    send_command(tmp_path, "stop_pipeline")
    send_command(tmp_path, "stop_run", "p1-a")
    folder = tmp_path / CONTROL_DIR
    (folder / "00000000000000000001-1-000000.json").write_text("{not json")
    (folder / ".00000000000000000002-1-000000.json.tmp").write_text("{}")  # a view's write in progress
    assert discard_pending(tmp_path) == 3
    assert os.listdir(folder) == [".00000000000000000002-1-000000.json.tmp"]
    assert take_commands(tmp_path) == []
    send_command(tmp_path, "restart_run", "p1-a")  # commands sent after the start still arrive
    assert [c["cmd"] for c in take_commands(tmp_path)] == ["restart_run"]


def test_the_folder_is_synced_after_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[tuple[str, list[str]]] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            synced.append(("dir", sorted(os.listdir(fd))))
        else:
            synced.append(("file", []))
        real_fsync(fd)

    monkeypatch.setattr(control.os, "fsync", spy)
    path = send_command(tmp_path, "stop_pipeline")
    assert synced == [("file", []), ("dir", [path.name])]  # the data first, then the folder with the final name
