"""The tail thread: discovery of late run folders, chunked hand-over, summary, stopping."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import fake_pipeline as fp
from cockpit.tail import CHUNK_BYTES, PipelineTail, find_pipelines, read_text_tail


class Collector:
    def __init__(self) -> None:
        self.batches: list[tuple[str, list[dict]]] = []
        self.lock = threading.Lock()

    def __call__(self, source: str, events: list[dict]) -> None:
        with self.lock:
            self.batches.append((source, events))

    def sources(self) -> set[str]:
        with self.lock:
            return {s for s, _ in self.batches}

    def count(self, source: str) -> int:
        with self.lock:
            return sum(len(e) for s, e in self.batches if s == source)


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_follows_new_run_folders_and_appended_lines(tmp_path: Path) -> None:
    folder = tmp_path / "pipe"
    fp.append(folder / "pipeline.jsonl", "pipeline_start", fp.T0, pipeline="pipe", preset="smoke")
    got, caught_up = Collector(), threading.Event()
    tail = PipelineTail(folder, got, on_caught_up=caught_up.set, idle_sleep=0.02, rescan_s=0.05)
    tail.start()
    try:
        wait_for(caught_up.is_set)
        assert got.sources() == {"pipeline"}
        fp.append(folder / "p1-late" / "events.jsonl", "alert", fp.T0, level="info", code="x", message="hi")
        wait_for(lambda: got.count("p1-late") == 1)
        fp.append(folder / "p1-late" / "events.jsonl", "alert", fp.T0, level="info", code="y", message="again")
        wait_for(lambda: got.count("p1-late") == 2)
    finally:
        tail.stop()
        tail.join(timeout=2)
    assert not tail.is_alive()


def test_big_files_are_handed_over_one_chunk_at_a_time(tmp_path: Path) -> None:
    fp.write_bulk_run(tmp_path, "p1-big", 5000)
    size = (tmp_path / "p1-big" / "events.jsonl").stat().st_size
    got = Collector()
    PipelineTail(tmp_path, got).drain()
    assert got.count("p1-big") == 5000
    assert len(got.batches) >= size // CHUNK_BYTES  # one callback per chunk, not per line


def test_summary_is_delivered_when_it_changes(finished_pipeline: Path) -> None:
    got = Collector()
    tail = PipelineTail(finished_pipeline, got)
    tail.drain()
    tail.drain()
    assert got.count("summary") == 1
    summary = json.loads((finished_pipeline / "summary.json").read_text())
    summary["status"] = "aborted"
    (finished_pipeline / "summary.json").write_text(json.dumps(summary))
    tail.drain()
    assert got.count("summary") == 2
    assert got.batches[-1][1][0]["data"]["status"] == "aborted"


def test_missing_folder_is_quiet_and_stop_is_prompt(tmp_path: Path) -> None:
    got = Collector()
    stop = threading.Event()
    tail = PipelineTail(tmp_path / "nope", got, should_stop=stop.is_set, idle_sleep=0.05)
    tail.start()
    time.sleep(0.1)
    stop.set()
    tail.join(timeout=1)
    assert not tail.is_alive() and got.batches == []


def test_find_pipelines_newest_first_and_read_text_tail(tmp_path: Path) -> None:
    for name in ("20260101-000000-a", "20260102-000000-b"):
        fp.append(tmp_path / name / "pipeline.jsonl", "pipeline_start", fp.T0, pipeline=name, preset="x")
    (tmp_path / "not-a-pipeline").mkdir()
    assert [p.name for p in find_pipelines(tmp_path)] == ["20260102-000000-b", "20260101-000000-a"]
    assert find_pipelines(tmp_path / "missing") == []
    log = tmp_path / "stderr.log"
    log.write_text("".join(f"line {i}\n" for i in range(1000)))
    assert read_text_tail(log, max_lines=3) == ["line 997", "line 998", "line 999"]
    assert read_text_tail(log, max_lines=5, max_bytes=30)[-1] == "line 999"
    assert read_text_tail(tmp_path / "absent.log") == []
