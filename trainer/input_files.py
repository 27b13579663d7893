"""The one way user-given data files are read: source tables and label maps, each a regular file with a byte cap.

A path can name something that is not a file: a FIFO blocks its reader forever, and ``/dev/zero`` (directly or
through a symlink called ``x.csv``) never ends. Every source reader and label-map loader reads through
``read_input_file``, which refuses anything but a regular file (after resolving symlinks) before opening it
and stops reading at a cap, so a bad path is one line, never a hang or an out-of-memory kill. A reader that
streams (goemo-predict's --input) opens through ``open_regular_file``: the same refusals, no cap.
Stdlib only: the cockpit checks sources before anything starts.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from trainer.file_reads import unreadable

# The caps are environment settings, not run-config keys: they guard the machine, not the experiment, and a
# run's config (and so its hash and resume check) must not change when someone raises them.
ENV_MAX_SOURCE_BYTES = "GOEMO_MAX_SOURCE_BYTES"
ENV_MAX_LABEL_MAP_BYTES = "GOEMO_MAX_LABEL_MAP_BYTES"
# 2 GiB: ten times the largest public emotion corpus we know of, yet a read that must still fit in memory
# (a file is read whole, then decoded: about three times its size at the peak).
DEFAULT_MAX_SOURCE_BYTES = 2 << 30
# 1 MiB: a label map is a few dozen short lines; anything this large is the wrong file.
DEFAULT_MAX_LABEL_MAP_BYTES = 1 << 20

_NOT_A_FILE = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
_CHUNK = 1 << 20


class InputFileError(ValueError):
    """A path that is not a readable regular file within the cap: one line naming it and what was expected."""


def max_bytes(env: str, default: int) -> int:
    """The byte cap a setting names: the environment variable ``env`` (a positive integer), else ``default``."""
    raw = os.environ.get(env, "").strip().replace("_", "")
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise InputFileError(f"{env}={os.environ[env]!r}: expected a positive number of bytes (default {default})")
    return int(raw)


def max_source_bytes() -> int:
    """The most bytes read from one source file (a table, ISEAR, MELD, SemEval or GoEmotions split file)."""
    return max_bytes(ENV_MAX_SOURCE_BYTES, DEFAULT_MAX_SOURCE_BYTES)


def max_label_map_bytes() -> int:
    """The most bytes read from one label map file."""
    return max_bytes(ENV_MAX_LABEL_MAP_BYTES, DEFAULT_MAX_LABEL_MAP_BYTES)


def _what_it_is(mode: int) -> str | None:
    return next((name for is_kind, name in _NOT_A_FILE if is_kind(mode)), None if stat.S_ISREG(mode) else "not a file")


def _too_large(path: Path, size: str, cap: int, env: str) -> InputFileError:
    return InputFileError(f"{path}: {size} bytes, over the limit of {cap} (set {env} to read larger files)")


def read_input_file(path: str | Path, expected: str, cap: int, env: str) -> bytes:
    """The bytes of the regular file ``path`` (symlinks followed), at most ``cap`` of them.

    Anything else (missing, a folder, a FIFO, a device, a socket, unreadable, larger than ``cap``, whose
    setting is ``env``) is an InputFileError saying what was ``expected``. The type is checked with stat
    before the file is opened, and again on the open descriptor, opened non-blocking, so a path swapped for
    a FIFO in between cannot block either.
    """
    path = Path(path)
    try:
        kind = _what_it_is(os.stat(path).st_mode)
        if kind is None:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
            return _read_capped(fd, path, expected, cap, env)
    except OSError as exc:
        raise InputFileError(unreadable(path, exc, expected)) from None
    raise InputFileError(f"{path}: expected {expected}, found {kind}")


def open_regular_file(path: str | Path, expected: str) -> BinaryIO:
    """``path`` opened for binary reading if it is a regular file (symlinks followed), for a reader that streams.

    The same refusals as ``read_input_file`` (missing, a folder, a FIFO, a device, a socket, unreadable, each an
    InputFileError saying what was ``expected``) without the cap: a streaming reader holds only what it has read.
    """
    path = Path(path)
    try:
        kind = _what_it_is(os.stat(path).st_mode)
        if kind is None:
            fh = os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)), "rb")
            kind = _what_it_is(os.fstat(fh.fileno()).st_mode)  # swapped for a FIFO since the stat
            if kind is None:
                return fh
            fh.close()
    except OSError as exc:
        raise InputFileError(unreadable(path, exc, expected)) from None
    raise InputFileError(f"{path}: expected {expected}, found {kind}")


def _read_capped(fd: int, path: Path, expected: str, cap: int, env: str) -> bytes:
    with os.fdopen(fd, "rb", buffering=0) as fh:
        info = os.fstat(fd)
        kind = _what_it_is(info.st_mode)
        if kind is not None:
            raise InputFileError(f"{path}: expected {expected}, found {kind}")
        if info.st_size > cap:
            raise _too_large(path, str(info.st_size), cap, env)
        # One read of the stated size, then more for a file that grew or states no size (/proc): never past cap.
        parts = [fh.read(info.st_size + 1) if info.st_size else b""]
        total = len(parts[0])
        while total <= cap:
            chunk = fh.read(min(_CHUNK, cap + 1 - total))
            if not chunk:
                break
            parts.append(chunk)
            total += len(chunk)
        if total > cap:
            raise _too_large(path, f"more than {cap}", cap, env)
        return parts[0] if len(parts) == 1 else b"".join(parts)
