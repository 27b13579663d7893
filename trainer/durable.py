"""Durable writes: files and folders that other processes read appear whole or not at all.

Stdlib only, like the contract (the cockpit imports it and must stay free of torch). The contract
names the files and the ``.tmp``/``.old`` suffixes; this module writes them: temp file, fsync, rename,
fsync the folder, and a folder swap that keeps one complete copy at every moment.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, TextIO

from trainer.contract import OLD_SUFFIX, TMP_SUFFIX


def folder_file_mode(folder: Path) -> int:
    """The mode a new file gets in ``folder``: the folder's own read/write bits, without execute."""
    try:
        return os.stat(folder).st_mode & 0o666
    except OSError:
        return 0o644


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file that other processes read: temp file, fsync, rename, fsync the folder.

    Readers see the old file or the new one, never half of one; a failed write (disk full)
    removes its temp file and leaves the old copy in place. The file gets the folder's mode
    (``mkstemp`` would make it 0600).
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with _replacing(Path(path), "wb") as fh:
        fh.write(payload)


@contextmanager
def writing_atomic(path: Path, newline: str | None = None) -> Iterator[TextIO]:
    """A UTF-8 text file written in pieces (a stream of results) that appears at ``path`` whole, or not at all.

    The pieces go to a temp file beside ``path``; a clean exit from the block fsyncs it and renames it into
    place, as ``write_atomic`` does; an exception (a bad input row, Ctrl-C) removes it and leaves ``path`` as it was.
    ``newline`` is ``open``'s (``""`` for the csv module).
    """
    with _replacing(Path(path), "w", encoding="utf-8", newline=newline) as fh:
        yield fh


@contextmanager
def _replacing(path: Path, mode: str, **options: Any) -> Iterator[Any]:
    """A temp file beside ``path``, opened with ``mode``; a clean exit fsyncs it and renames it into place, an
    exception removes it and leaves ``path`` as it was. One mechanism for write_atomic and writing_atomic."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, mode, **options) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, folder_file_mode(path.parent))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def swap_folder(tmp: Path, final: Path) -> None:
    """Replace the folder ``final`` by the complete folder ``tmp`` so that one complete copy exists at every moment.

    A rename cannot replace a non-empty folder, so ``final`` first moves aside to ``final.old``.
    ``final.old`` is only deleted while ``final`` exists: after a kill between the two renames it is the
    one copy left (readers fall back to it), and the next swap keeps it until ``tmp`` is in place.
    """
    old = final.with_name(final.name + OLD_SUFFIX)
    fsync_dir(tmp)
    if final.exists():
        if old.exists():
            shutil.rmtree(old)  # final is complete, so the older copy can go
        os.replace(final, old)
        fsync_dir(final.parent)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)  # a leftover is harmless: final exists and readers prefer it


def write_json_atomic(path: Path, data: Any) -> None:
    """Strict JSON (no NaN), written atomically."""
    write_atomic(path, json.dumps(data, indent=1, allow_nan=False) + "\n")
