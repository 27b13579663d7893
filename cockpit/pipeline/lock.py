"""One owner per pipeline folder: a supervisor holds an exclusive ``flock`` on the folder's lock file
for its whole life. The kernel drops the lock when the process dies, so a crashed supervisor never
leaves a stale lock behind; views read the folder without taking it."""

from __future__ import annotations

import fcntl
import json
import os
import time

from trainer.contract import PipelinePaths


class PipelineLocked(RuntimeError):
    """Another supervisor owns the folder: one line saying who, and how to watch instead."""


def _holder_line(paths: PipelinePaths) -> str:
    try:
        info = json.loads(paths.lock.read_text(encoding="utf-8"))
        pid, started = int(info["pid"]), time.strftime("%H:%M", time.localtime(float(info["started"])))
        who = f"pid {pid} (started {started})"
    except (OSError, ValueError, KeyError, TypeError):
        who = "another supervisor"
    return (f"{paths.root} is supervised by {who}; attach with goemo-cockpit --attach {paths.root}")


class PipelineLock:
    """``with PipelineLock(paths):`` owns the folder, or raises PipelineLocked at once."""

    def __init__(self, paths: PipelinePaths) -> None:
        self.paths = paths
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise PipelineLocked(_holder_line(self.paths)) from None
        # Who holds it, for the one line a second supervisor prints (the lock itself is the flock).
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "started": time.time()}).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "PipelineLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def check_unlocked(paths: PipelinePaths) -> None:
    """Raise PipelineLocked when a supervisor owns the folder (probes without keeping the lock)."""
    if not paths.lock.exists():
        return
    try:
        fd = os.open(paths.lock, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise PipelineLocked(_holder_line(paths)) from None
    finally:
        os.close(fd)
