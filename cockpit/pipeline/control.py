"""The control channel from views to the supervisor: one JSON file per command.

Stdlib only. A view calls `send_command(pipeline_dir, cmd, run=None)`, which writes one
file atomically (temp file, fsync, rename, fsync of the folder) into `<pipeline_dir>/control/`.
The supervisor calls `check_control_dir(pipeline_dir)` and `discard_pending(pipeline_dir)` when
it starts, then `take_commands(pipeline_dir)`, which reads, deletes and returns the pending
commands in the order they were sent.

The folder is the only authority check: it is created with mode 0700, and a `control/` that is
a symbolic link, is not a folder, is owned by someone else or is writable by group or others is
refused (ControlError, one line). Every file operation goes through a descriptor of the checked
folder (opened with O_NOFOLLOW), so nothing outside the pipeline folder is ever read or deleted.
Inside it, files not owned by the current user, links, and anything that does not parse as a
known command are deleted and ignored.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

from trainer.contract import CONTROL_DIR, TMP_SUFFIX

__all__ = ["CONTROL_DIR", "COMMANDS", "RUN_COMMANDS", "ControlError", "control_dir", "check_control_dir",
           "send_command", "take_commands", "discard_pending"]

COMMANDS = frozenset({"stop_run", "restart_run", "stop_pipeline"})
RUN_COMMANDS = frozenset({"stop_run", "restart_run"})
COMMAND_SUFFIX = ".json"
_EXPECTED = "expected a folder owned by you, mode 0700"

_sequence = itertools.count()


class ControlError(ValueError):
    """A command that cannot be sent (unknown name, a run command without a run), or an unsafe
    control folder; the message is one line."""


def control_dir(pipeline_dir: str | os.PathLike[str]) -> Path:
    """The folder commands for this pipeline are written to."""
    return Path(pipeline_dir) / CONTROL_DIR


def _folder_problem(info: os.stat_result) -> str | None:
    """Why a control folder with this (l)stat is unsafe, or None."""
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a folder"
    uid = os.getuid()
    if info.st_uid != uid:
        return f"is owned by uid {info.st_uid}, not by you (uid {uid})"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o})"
    return None


def _refusal(folder: Path, problem: str) -> ControlError:
    return ControlError(f"{folder}: {problem} ({_EXPECTED})")


def check_control_dir(pipeline_dir: str | os.PathLike[str]) -> None:
    """Raise ControlError (one line) when `<pipeline_dir>/control` exists and is unsafe.

    A missing folder is fine (the first command creates it). The supervisor calls this at start-up.
    """
    folder = control_dir(pipeline_dir)
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ControlError(f"{folder}: cannot be read ({exc.strerror or exc})") from None
    problem = _folder_problem(info)
    if problem:
        raise _refusal(folder, problem)


def _open_folder(folder: Path) -> int:
    """A descriptor of the control folder, never through a link, checked on the opened folder itself.

    Raises FileNotFoundError when it is missing and ControlError when it is unsafe.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            try:
                problem = _folder_problem(os.lstat(folder)) or "changed while being opened"
            except OSError:
                problem = "changed while being opened"
            raise _refusal(folder, problem) from None
        raise ControlError(f"{folder}: cannot be opened ({exc.strerror or exc})") from None
    try:
        problem = _folder_problem(os.fstat(fd))
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror or exc})"
    if problem:
        os.close(fd)
        raise _refusal(folder, problem)
    return fd


def _open_folder_quietly(pipeline_dir: str | os.PathLike[str]) -> int | None:
    """Like _open_folder, but None for a missing or unsafe folder (the supervisor refused those at start)."""
    try:
        return _open_folder(control_dir(pipeline_dir))
    except (OSError, ControlError):
        return None


def _validate(cmd: Any, run: Any) -> str | None:
    """Why a command is not valid, or None when it is."""
    if cmd not in COMMANDS:
        return f"unknown command {cmd!r}, expected one of {sorted(COMMANDS)}"
    if cmd in RUN_COMMANDS and not (isinstance(run, str) and run):
        return f"command {cmd!r} needs a run id"
    if run is not None and not isinstance(run, str):
        return f"run must be a string, got {type(run).__name__}"
    return None


def _fsync_quietly(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError:
        pass


def _unlink(name: str, dir_fd: int) -> bool:
    try:
        os.unlink(name, dir_fd=dir_fd)
        return True
    except OSError:
        return False


def send_command(pipeline_dir: str | os.PathLike[str], cmd: str, run: str | None = None) -> Path:
    """Write one command for the supervisor; returns the path of the command file.

    Raises ControlError for an unknown command, a run command without a run, or an unsafe
    control folder (a link, someone else's, or writable by group or others).
    """
    problem = _validate(cmd, run)
    if problem:
        raise ControlError(problem)
    folder = control_dir(pipeline_dir)
    try:
        os.mkdir(folder, 0o700)
        created = True
    except FileExistsError:
        created = False
    dir_fd = _open_folder(folder)
    try:
        if created:
            os.fchmod(dir_fd, 0o700)  # mkdir's mode is filtered by the umask; make it explicit
        t_ns = time.time_ns()
        # Names sort in sending order: nanosecond time, then pid and a per-process counter.
        name = f"{t_ns:020d}-{os.getpid()}-{next(_sequence):06d}{COMMAND_SUFFIX}"
        payload = {"v": 1, "t": t_ns / 1e9, "cmd": cmd, "run": run, "pid": os.getpid()}
        tmp = f".{name}{TMP_SUFFIX}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(payload, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            _unlink(tmp, dir_fd)
            raise
        # The rename is durable once the folder is synced (durable.fsync_dir, on the checked descriptor).
        _fsync_quietly(dir_fd)
    finally:
        os.close(dir_fd)
    return folder / name


def _pending_names(dir_fd: int) -> list[str]:
    """Command file names in sending order; temp files of writes in progress are left out."""
    try:
        return sorted(n for n in os.listdir(dir_fd) if n.endswith(COMMAND_SUFFIX) and not n.startswith("."))
    except OSError:
        return []


def _read_command(name: str, dir_fd: int, uid: int) -> dict[str, Any] | None:
    """The command in one file, or None when it is not a regular file of ours or does not parse."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_uid != uid:
        return None
    try:
        # O_NOFOLLOW: a link swapped in after the stat above is refused, not followed;
        # O_NONBLOCK: a FIFO swapped in cannot block the supervisor (no effect on regular files).
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as fh:
            opened = os.fstat(fh.fileno())
            if not stat.S_ISREG(opened.st_mode) or opened.st_uid != uid:
                return None
            payload = json.loads(fh.read().decode("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or _validate(payload.get("cmd"), payload.get("run")):
        return None
    payload.setdefault("run", None)
    return payload


def take_commands(pipeline_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read, delete and return pending commands, oldest first.

    Each command is a dict with at least `cmd`, `run` (None for stop_pipeline) and `t`.
    Never raises: a missing or unsafe control folder gives [] and is left untouched.
    """
    dir_fd = _open_folder_quietly(pipeline_dir)
    if dir_fd is None:
        return []
    try:
        uid = os.getuid()
        commands: list[dict[str, Any]] = []
        for name in _pending_names(dir_fd):
            command = _read_command(name, dir_fd, uid)
            _unlink(name, dir_fd)
            if command is not None:
                commands.append(command)
        return commands
    finally:
        os.close(dir_fd)


def discard_pending(pipeline_dir: str | os.PathLike[str]) -> int:
    """Delete the commands left in the control folder (from before a --resume) unread; returns how many.

    Temp files of a view's write in progress are left alone. A missing or unsafe folder gives 0 and is
    left untouched.
    """
    dir_fd = _open_folder_quietly(pipeline_dir)
    if dir_fd is None:
        return 0
    try:
        removed = sum(_unlink(name, dir_fd) for name in _pending_names(dir_fd))
        if removed:
            _fsync_quietly(dir_fd)
        return removed
    finally:
        os.close(dir_fd)
