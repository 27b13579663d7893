"""The event schema shared by the trainer, the supervisor and the views.

Stdlib only: the cockpit imports this module and must stay free of torch.
Every line of an events file is one JSON object with ``v``, ``t`` and ``type``;
lines are written whole and flushed so a reader never sees a half event except
for a torn last line, which it skips until the rest arrives.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from trainer.contract import (ALL_EVENTS, PIPELINE_EVENTS, SCHEMA_VERSION, TRAINER_EVENTS,
                              contract_violation, missing_keys, threshold_key)

# The schema itself lives in trainer.contract; these names stay importable from here.
__all__ = ["ALL_EVENTS", "PIPELINE_EVENTS", "SCHEMA_VERSION", "TRAINER_EVENTS", "contract_violation", "missing_keys",
           "threshold_key", "make_event", "EventWriter", "EventReader", "read_events"]


def _finite(value: Any) -> Any:
    """Replace NaN/inf by None, recursively: strict JSON has no spelling for them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def make_event(type_: str, **fields: Any) -> dict[str, Any]:
    """Build one event dict with the envelope keys filled in."""
    return {"v": SCHEMA_VERSION, "t": time.time(), "type": type_, **_finite(fields)}


class EventWriter:
    """Appends events to a JSONL file, one whole line per write, flushed at once."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")
        self._lock = threading.Lock()  # the device reporter's thread writes too
        if self._torn_last_line():
            # A writer killed mid-line left a line without its newline: end it, so our first
            # event starts a line of its own instead of being glued to the torn one.
            self._fh.write("\n")
            self._fh.flush()

    def _torn_last_line(self) -> bool:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                if fh.tell() == 0:
                    return False
                fh.seek(-1, os.SEEK_END)
                return fh.read(1) != b"\n"
        except OSError:
            return False

    def emit(self, type_: str, **fields: Any) -> dict[str, Any]:
        event = make_event(type_, **fields)
        # One write call per line keeps lines whole even when a reader tails concurrently.
        line = json.dumps(event, allow_nan=False, separators=(",", ":")) + "\n"
        with self._lock:
            self._fh.write(line)
            self._fh.flush()
        return event

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.close()

    def __enter__(self) -> "EventWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class EventReader:
    """Incremental reader of a JSONL events file.

    ``read_new()`` returns the events appended since the last call. A trailing line
    without its newline is held back until it is complete; a line that does not
    parse is skipped and counted in ``bad_lines``. A file that shrinks (rewritten)
    is read again from the start.
    """

    path: Path
    offset: int = 0
    bad_lines: int = 0
    chunk_size: int = 1 << 16
    _partial: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def read_new(self, max_bytes: int | None = None) -> list[dict[str, Any]]:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self.offset:
            self.offset, self._partial = 0, b""
        if size == self.offset:
            return []
        want = size - self.offset if max_bytes is None else min(size - self.offset, max_bytes)
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read(want)
        self.offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        return list(self._parse(lines))

    def _parse(self, lines: list[bytes]) -> Iterator[dict[str, Any]]:
        for raw in lines:
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
            except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: JSON nested too deep
                self.bad_lines += 1
                continue
            if isinstance(event, dict) and "type" in event:
                yield event
            else:
                self.bad_lines += 1


def read_events(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All complete, parseable events of a file (a torn last line and garbage are skipped)."""
    return read_events_counted(path)[0]


def read_events_counted(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], int]:
    """``read_events`` and the number of lines it skipped (garbage, or a torn last line)."""
    reader = EventReader(Path(path))
    events = reader.read_new()
    if reader._partial.strip():
        # A last line with no newline is complete if it parses (a writer that died after the brace).
        events.extend(reader._parse([reader._partial]))
    return events, reader.bad_lines
