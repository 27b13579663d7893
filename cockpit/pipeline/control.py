"""The control channel from views to the supervisor: one JSON file per command.

Stdlib only. A view calls `send_command(pipeline_dir, cmd, run=None)`, which writes one
file atomically (temp file + rename) into `<pipeline_dir>/control/`. The supervisor calls
`take_commands(pipeline_dir)`, which reads, deletes and returns the pending commands in
the order they were sent. Files not owned by the current user, links, and anything that
does not parse as a known command are deleted and ignored: the folder is the only
authority check, so it is created with mode 0700.
"""

from __future__ import annotations

import itertools
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

CONTROL_DIR = "control"
COMMANDS = frozenset({"stop_run", "restart_run", "stop_pipeline"})
RUN_COMMANDS = frozenset({"stop_run", "restart_run"})

_sequence = itertools.count()


class ControlError(ValueError):
    """A command that cannot be sent (unknown name, or a run command without a run)."""


def control_dir(pipeline_dir: str | os.PathLike[str]) -> Path:
    """The folder commands for this pipeline are written to."""
    return Path(pipeline_dir) / CONTROL_DIR


def _ensure_dir(path: Path) -> None:
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        return
    # mkdir's mode is filtered by the umask; make the permission explicit.
    os.chmod(path, 0o700)


def _validate(cmd: Any, run: Any) -> str | None:
    """Why a command is not valid, or None when it is."""
    if cmd not in COMMANDS:
        return f"unknown command {cmd!r}, expected one of {sorted(COMMANDS)}"
    if cmd in RUN_COMMANDS and not (isinstance(run, str) and run):
        return f"command {cmd!r} needs a run id"
    if run is not None and not isinstance(run, str):
        return f"run must be a string, got {type(run).__name__}"
    return None


def send_command(pipeline_dir: str | os.PathLike[str], cmd: str, run: str | None = None) -> Path:
    """Write one command for the supervisor; returns the path of the command file.

    Raises ControlError for an unknown command or a run command without a run.
    """
    problem = _validate(cmd, run)
    if problem:
        raise ControlError(problem)
    folder = control_dir(pipeline_dir)
    _ensure_dir(folder)
    t_ns = time.time_ns()
    # Names sort in sending order: nanosecond time, then pid and a per-process counter.
    name = f"{t_ns:020d}-{os.getpid()}-{next(_sequence):06d}.json"
    payload = {"v": 1, "t": t_ns / 1e9, "cmd": cmd, "run": run, "pid": os.getpid()}
    tmp = folder / f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(payload, fh)
        fh.flush()
        os.fsync(fh.fileno())
    final = folder / name
    os.replace(tmp, final)
    return final


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def take_commands(pipeline_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read, delete and return pending commands, oldest first.

    Each command is a dict with at least `cmd`, `run` (None for stop_pipeline) and `t`.
    Never raises for a missing folder or bad files.
    """
    folder = control_dir(pipeline_dir)
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".json") and not n.startswith("."))
    except OSError:
        return []
    uid = os.getuid()
    commands: list[dict[str, Any]] = []
    for name in names:
        path = folder / name
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or info.st_uid != uid:
            _unlink(path)
            continue
        try:
            # O_NOFOLLOW: a link swapped in after the lstat above is refused, not followed.
            with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), encoding="utf-8") as fh:
                payload = json.load(fh)
        except (OSError, ValueError):
            _unlink(path)
            continue
        _unlink(path)
        if not isinstance(payload, dict) or _validate(payload.get("cmd"), payload.get("run")):
            continue
        payload.setdefault("run", None)
        commands.append(payload)
    return commands
