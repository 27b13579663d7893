"""Incremental reading of a pipeline folder's event files, in a thread that knows no UI.

`PipelineTail` discovers `pipeline.jsonl`, `summary.json`, `preset.toml`, `<run>/events.jsonl` and a
multi-node run's `<run>/devices-nodeN.jsonl` (run folders appear while a pipeline runs), reads new lines
through `trainer.events.EventReader` in 256 KiB chunks, and hands each chunk to a callback as
`(origin, events)`: origin is `"pipeline"`, `"summary"`, `"preset"` or the run id (a node's device file
is handed over as its run's). It sleeps briefly when nothing is new and stops when its exit event is set
(or a `should_stop` predicate says so).
"""

from __future__ import annotations

import json
import os
import tomllib
import threading
import time
from pathlib import Path
from typing import Any, Callable

from trainer.contract import PIPELINE_ORIGIN
from trainer.contract import EVENTS_FILE as RUN_EVENTS_FILE
from trainer.contract import NODE_DEVICES_PREFIX, PIPELINE_FILE, PRESET_FILE, SUMMARY_FILE
from trainer.events import EventReader

__all__ = ["PipelineTail", "replay", "find_pipelines", "read_text_tail", "CHUNK_BYTES", "PIPELINE_FILE",
           "SUMMARY_FILE", "PRESET_FILE", "RUN_EVENTS_FILE"]
# The origins of the whole files the tail hands over as one pseudo-event ({"type": origin, "data": ...}).
SUMMARY_ORIGIN = "summary"
PRESET_ORIGIN = "preset"
CHUNK_BYTES = 1 << 18  # 256 KiB: a 100k-event history replays in ~80 hand-overs, not ~330

BatchCallback = Callable[[str, list[dict[str, Any]]], None]


class PipelineTail(threading.Thread):
    """Follows one pipeline folder and hands new events to `on_batch`, one call per chunk.

    Run it as a thread (`start()`), or call `run()` from a thread you already own (a UI
    framework's worker); `poll()` and `drain()` do single passes for replays and tests.
    `on_caught_up` is called once, the first time every file has been read to its end.
    """

    def __init__(
        self,
        pipeline_dir: str | os.PathLike[str],
        on_batch: BatchCallback,
        *,
        on_caught_up: Callable[[], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        chunk_size: int = CHUNK_BYTES,
        idle_sleep: float = 0.25,
        rescan_s: float = 1.0,
    ) -> None:
        super().__init__(name=f"tail:{Path(pipeline_dir).name}", daemon=True)
        self.pipeline_dir = Path(pipeline_dir)
        self.on_batch = on_batch
        self.on_caught_up = on_caught_up
        self.should_stop = should_stop
        self.chunk_size = chunk_size
        self.idle_sleep = idle_sleep
        self.rescan_s = rescan_s
        self.exit_event = threading.Event()
        self.readers: dict[str, EventReader] = {}
        self._origins: dict[str, str] = {}  # reader key -> the origin handed over, where they differ
        self._last_scan = float("-inf")
        self._whole_file_keys: dict[str, tuple[int, int]] = {}

    def stop(self) -> None:
        """Ask the loop to end; it returns within one idle sleep."""
        self.exit_event.set()

    @property
    def stopping(self) -> bool:
        return self.exit_event.is_set() or bool(self.should_stop and self.should_stop())

    @property
    def bad_lines(self) -> int:
        """Lines skipped so far because they did not parse, over all files."""
        return sum(reader.bad_lines for reader in self.readers.values())

    def run(self) -> None:
        caught_up = False
        while not self.stopping:
            if self.poll():
                continue
            if not caught_up:
                caught_up = True
                if self.on_caught_up is not None:
                    self.on_caught_up()
            self.exit_event.wait(self.idle_sleep)

    def poll(self) -> int:
        """One pass: rescan if due, then read one chunk of each file. Returns bytes consumed."""
        now = time.monotonic()
        if now - self._last_scan >= self.rescan_s:
            self._last_scan = now
            self.discover()
        consumed = self._poll_whole_file(SUMMARY_ORIGIN, SUMMARY_FILE, json.loads)
        consumed += self._poll_whole_file(PRESET_ORIGIN, PRESET_FILE, lambda data: tomllib.loads(data.decode()))
        for origin, reader in list(self.readers.items()):
            before = reader.offset
            events = reader.read_new(self.chunk_size)
            consumed += max(reader.offset - before, 0)
            if events:
                self.on_batch(self._origins.get(origin, origin), events)
        return consumed

    def drain(self) -> None:
        """Read every file to its current end (a replay)."""
        self._last_scan = float("-inf")
        while self.poll():
            pass

    def discover(self) -> None:
        """Add readers for event files that appeared since the last scan."""
        folder = self.pipeline_dir
        self._add(PIPELINE_ORIGIN, folder / PIPELINE_FILE)
        # A run folder given directly (no supervisor) is followed as one run.
        self._add(folder.name, folder / RUN_EVENTS_FILE)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            self._add(entry.name, Path(entry.path) / RUN_EVENTS_FILE)
            if entry.name in self.readers:
                self._add_node_devices(entry.name, Path(entry.path))

    def _add_node_devices(self, run: str, folder: Path) -> None:
        """The device files of a multi-node run's other nodes, read as the run's own events."""
        try:
            names = [n for n in os.listdir(folder) if n.startswith(NODE_DEVICES_PREFIX) and n.endswith(".jsonl")]
        except OSError:
            return
        for name in names:
            key = f"{run}/{name}"
            if key not in self.readers:
                self._add(key, folder / name)
                self._origins[key] = run

    def _add(self, origin: str, path: Path) -> None:
        if origin not in self.readers and path.is_file():
            self.readers[origin] = EventReader(path, chunk_size=self.chunk_size)

    def _poll_whole_file(self, origin: str, name: str, parse: Callable[[bytes], Any]) -> int:
        """Hand over summary.json or preset.toml as one `summary`/`preset` event whenever it changes."""
        path = self.pipeline_dir / name
        try:
            info = path.stat()
        except OSError:
            return 0
        key = (info.st_mtime_ns, info.st_size)
        if key == self._whole_file_keys.get(origin):
            return 0
        try:
            data = parse(path.read_bytes())
        except (OSError, ValueError, UnicodeDecodeError):  # TOMLDecodeError is a ValueError
            return 0  # being replaced; the next pass sees the new file
        self._whole_file_keys[origin] = key
        if isinstance(data, dict):
            self.on_batch(origin, [{"v": 1, "t": info.st_mtime, "type": origin, "data": data}])
        return info.st_size


def replay(pipeline_dir: str | os.PathLike[str], on_batch: BatchCallback) -> PipelineTail:
    """Read a whole folder once, synchronously; returns the tail (for `bad_lines`)."""
    tail = PipelineTail(pipeline_dir, on_batch)
    tail.drain()
    return tail


def find_pipelines(runs_dir: str | os.PathLike[str]) -> list[Path]:
    """Pipeline folders under runs_dir (those holding pipeline.jsonl), newest id first."""
    try:
        entries = list(os.scandir(runs_dir))
    except OSError:
        return []
    found = [Path(e.path) for e in entries if e.is_dir() and (Path(e.path) / PIPELINE_FILE).is_file()]
    return sorted(found, key=lambda p: p.name, reverse=True)


def read_text_tail(path: str | os.PathLike[str], max_lines: int = 200, max_bytes: int = 1 << 18) -> list[str]:
    """The last lines of a text file (stderr logs, stall dumps); [] when it is missing."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(size - max_bytes, 0))
            data = fh.read()
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]  # the first line was cut by the seek
    return lines[-max_lines:]
