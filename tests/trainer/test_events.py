import json
import subprocess
import sys

from trainer.events import EventReader, EventWriter, make_event, missing_keys, read_events


def test_round_trip_and_envelope(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as w:
        w.emit("checkpoint", step=3, path="checkpoints/latest")
        w.emit("alert", level="warn", code="nonfinite", message="x")
    events = read_events(path)
    assert [e["type"] for e in events] == ["checkpoint", "alert"]
    assert all(e["v"] == 1 and isinstance(e["t"], float) for e in events)
    assert missing_keys(events[0]) == []


def test_non_finite_floats_become_null_and_lines_are_strict_json(tmp_path):
    path = tmp_path / "e.jsonl"
    with EventWriter(path) as w:
        w.emit("step", loss=float("nan"), grad_norm=float("inf"), nested={"a": [float("-inf"), 1.0]})
    line = path.read_text().strip()
    json.loads(line, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))  # no NaN tokens
    event = json.loads(line)
    assert event["loss"] is None and event["grad_norm"] is None and event["nested"]["a"] == [None, 1.0]


def test_reader_skips_garbage_and_waits_for_torn_line(tmp_path):
    path = tmp_path / "e.jsonl"
    good = json.dumps(make_event("activity", what="eval", expect_s=5))
    path.write_text(good + "\nnot json at all\n" + good[:20])
    reader = EventReader(path)
    first = reader.read_new()
    assert len(first) == 1 and reader.bad_lines == 1
    with open(path, "a") as fh:
        fh.write(good[20:] + "\n")
    assert [e["type"] for e in reader.read_new()] == ["activity"]
    assert reader.read_new() == []


def test_reader_restarts_when_file_is_rewritten(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text(json.dumps(make_event("phase_start", phase=1)) + "\n" + json.dumps(make_event("phase_end", phase=1)) + "\n")
    reader = EventReader(path)
    assert len(reader.read_new()) == 2
    path.write_text(json.dumps(make_event("phase_start", phase=2)) + "\n")
    assert [e["phase"] for e in reader.read_new()] == [2]


def test_missing_keys_names_what_the_contract_requires():
    assert "grad_norm" in missing_keys({"v": 1, "t": 0.0, "type": "step", "step": 1})


def test_importing_events_does_not_import_torch():
    code = "import sys, trainer.events; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_writer_after_a_torn_last_line_starts_a_line_of_its_own(tmp_path):
    path = tmp_path / "e.jsonl"
    with EventWriter(path) as w:
        w.emit("checkpoint", step=1, path="x")
    with open(path, "a") as fh:
        fh.write('{"v": 1, "t": 2.0, "type": "st')  # a writer killed mid-line
    with EventWriter(path) as w:
        w.emit("checkpoint", step=2, path="x")
    events = read_events(path)
    assert [e["step"] for e in events] == [1, 2]
    assert path.read_text().count("\n") == 3
