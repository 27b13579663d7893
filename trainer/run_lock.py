"""One trainer per run folder: the trainer holds an exclusive ``flock`` on the folder's lock file for its
whole life, so that a second trainer on the same folder (a job submitted again while the first one still
runs) exits 2 at once instead of writing into the same events and checkpoints.

The approach of the supervisor's folder lock (cockpit/pipeline/lock.py), stdlib only because the trainer
never imports the cockpit: the kernel drops the lock when the process dies (a killed or cancelled trainer
leaves no stale lock), and the file also says who holds it, for the one line the second trainer prints.
On NFS, Linux emulates ``flock`` with POSIX byte-range locks, which the server arbitrates across nodes.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from trainer.contract import ENV_SLURM_JOB_ID, RUN_LOCK_FILE


class RunLocked(RuntimeError):
    """Another trainer owns the run folder (or it cannot be locked): one line naming the holder."""


def _holder_line(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
        who = f"pid {int(info['pid'])} on {info['host']}"
        if info.get("job_id"):
            who += f" (Slurm job {info['job_id']})"
        who += f", since {time.strftime('%H:%M:%S', time.localtime(float(info['started'])))}"
    except (OSError, ValueError, KeyError, TypeError):
        who = "another trainer"
    return f"{lock.parent}: already trained by {who}; one trainer per run folder"


class RunLock:
    """``RunLock(out).acquire()`` owns the run folder until the process ends, or raises RunLocked at once."""

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / RUN_LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        if self._fd is not None:  # already held by this process
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunLocked(f"{self.path}: cannot create the run's lock file ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLocked(_holder_line(self.path)) from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "job_id": os.environ.get(ENV_SLURM_JOB_ID),
                  "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def is_first_process() -> bool:
    """Whether this process is global rank 0 (or the only one): the one that locks, as it writes the events."""
    return os.environ.get("RANK", "0") in ("", "0")
