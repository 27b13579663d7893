"""`goemo-cockpit export`: four tables of a pipeline folder as CSV or Parquet, tracker dispatch, bad input."""

from __future__ import annotations

import csv
import json
import sys
import types
from collections import Counter
from pathlib import Path

import pytest

import fake_pipeline as fp
from cockpit.export import main_export, read_pipeline
from trainer.contract import EVENTS_FILE, PIPELINE_FILE, SUMMARY_FILE, TABLES_DIR

TABLES = ("leaderboard", "curves", "per_label", "oversampling")
LEADERBOARD_HEADER = ["run", "phase", "config", "loss", "f1_macro@0.2", "f1_macro@0.5", "f1_micro@0.2",
                      "tuned_f1_macro", "tuned_cv_f1_macro", "status", "test_f1_macro@0.2", "test_f1_macro@0.5",
                      "test_f1_macro_tuned", "test_f1_micro@0.2"]
LEADERBOARD = [  # dev evals without tuned scores: both tuned columns are empty
    ["p4-final", "4", "final", "asl", "0.504", "0.444", "0.584", "", "", "completed", "0.512", "0.452", "0.542",
     "0.592"],
    ["p3-asl", "3", "asl", "asl", "0.4958", "0.4358", "0.5758", "", "", "completed", "", "", "", ""],
    ["p1-asl", "1", "asl", "asl", "0.4427", "0.3827", "0.5227", "", "", "completed", "", "", "", ""],
    ["p1-bce", "1", "bce", "bce", "0.3721", "0.3121", "0.4521", "", "", "completed", "", "", "", ""],
    ["p1-combined_07", "1", "combined_07", "combined", "", "", "", "", "", "failed", "", "", "", ""],
]


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def run_events(folder: Path, run: str) -> list[dict]:
    return [json.loads(line) for line in (folder / run / EVENTS_FILE).read_text().splitlines() if line.strip()]


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("goemo-cockpit export: error: ")
    return lines[0]


def test_csv_export_writes_four_tables_into_the_pipeline_folder(finished_pipeline: Path, capsys) -> None:
    assert main_export([str(finished_pipeline), "--to", "csv"]) == 0
    out = finished_pipeline / TABLES_DIR
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.csv" for name in TABLES)
    assert capsys.readouterr().out.strip() == (f"{out}: leaderboard.csv (5 rows), curves.csv (354 rows), "
                                               "per_label.csv (168 rows), oversampling.csv (28 rows)")

    leaderboard = read_csv(out / "leaderboard.csv")
    assert leaderboard == [LEADERBOARD_HEADER] + LEADERBOARD

    curves = read_csv(out / "curves.csv")
    assert curves[0] == ["run", "step", "epoch", "loss", "lr", "grad_norm", "samples_per_s", "dev_f1_macro@0.2"]
    assert Counter(row[0] for row in curves[1:]) == {"p1-bce": 80, "p1-asl": 80, "p1-combined_07": 34, "p3-asl": 80,
                                                      "p4-final": 80}
    by_key = {(row[0], int(row[1])): row for row in curves[1:]}
    assert by_key["p1-bce", 20] == ["p1-bce", "20", "0.25", "0.45097", "0.00037654", "1.334326", "32.05", "0.2544"]
    assert by_key["p1-bce", 21][-1] == ""  # dev F1 only on eval steps
    assert by_key["p1-combined_07", 31][3] == ""  # a non-finite loss is an empty cell
    # p1-asl was restarted from its step-20 checkpoint: steps 21-25 are the second attempt's, once each.
    asl = [int(row[1]) for row in curves[1:] if row[0] == "p1-asl"]
    assert asl == list(range(1, 81))
    last_step_21 = [e for e in run_events(finished_pipeline, "p1-asl") if e["type"] == "step" and e["step"] == 21][-1]
    assert by_key["p1-asl", 21][3] == str(last_step_21["loss"])
    assert by_key["p1-asl", 20][-1] == "0.4154"  # the first attempt's eval at the checkpoint step stays

    per_label = read_csv(out / "per_label.csv")
    assert per_label[0] == ["run", "split", "step", "label", "precision", "recall", "f1", "support"]
    assert Counter((row[0], row[1], row[2]) for row in per_label[1:]) == {
        ("p1-bce", "dev", "80"): 28, ("p1-asl", "dev", "80"): 28, ("p1-combined_07", "dev", "20"): 28,
        ("p3-asl", "dev", "80"): 28, ("p4-final", "dev", "80"): 28, ("p4-final", "test", "80"): 28}
    test = [row for row in per_label[1:] if row[1] == "test"]
    assert test[0] == ["p4-final", "test", "80", "admiration", "0.8611", "0.7811", "0.8111", "200"]
    final_test = [e for e in run_events(finished_pipeline, "p4-final") if e["type"] == "eval" and e.get("final")][-1]
    assert [row[3:] for row in test] == [[c["label"], str(c["precision"]), str(c["recall"]), str(c["f1"]),
                                          str(c["support"])] for c in final_test["per_class"]]

    oversampling = read_csv(out / "oversampling.csv")
    assert oversampling[0] == ["label", "before", "after", "weight"]
    assert [row[0] for row in oversampling[1:]] == fp.LABELS
    assert oversampling[1] == ["admiration", "247", "247", "1.121"]
    assert oversampling[-1] == ["neutral", "3", "12", "11.0"]


def test_the_tables_folder_is_not_taken_for_a_run(finished_pipeline: Path) -> None:
    before = read_pipeline(finished_pipeline)
    assert main_export([str(finished_pipeline), "--to", "csv"]) == 0
    after = read_pipeline(finished_pipeline)
    assert sorted(after.runs) == sorted(before.runs) == sorted(r.run for r in before.view.runs)
    assert after.view.leaderboard == before.view.leaderboard


def test_parquet_export_is_typed_and_matches_the_csv(finished_pipeline: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "exported"
    assert main_export([str(finished_pipeline), "--to", "parquet", "--out", str(out)]) == 0
    assert main_export([str(finished_pipeline), "--to", "csv", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.{ext}" for n in TABLES for ext in ("csv", "parquet"))

    leaderboard = pq.read_table(out / "leaderboard.parquet")
    assert leaderboard.column_names == LEADERBOARD_HEADER
    assert leaderboard.schema.field("phase").type == pa.int64()
    assert leaderboard.schema.field("f1_macro@0.2").type == pa.float64()
    assert leaderboard.schema.field("tuned_f1_macro").type == pa.float64()  # all null, still typed
    assert leaderboard.to_pylist()[0] == {
        "run": "p4-final", "phase": 4, "config": "final", "loss": "asl", "f1_macro@0.2": 0.504, "f1_macro@0.5": 0.444,
        "f1_micro@0.2": 0.584, "tuned_f1_macro": None, "tuned_cv_f1_macro": None, "status": "completed",
        "test_f1_macro@0.2": 0.512, "test_f1_macro@0.5": 0.452, "test_f1_macro_tuned": 0.542,
        "test_f1_micro@0.2": 0.592}
    for name in TABLES:
        table = pq.read_table(out / f"{name}.parquet")
        rows = read_csv(out / f"{name}.csv")
        assert table.column_names == rows[0]
        as_text = [["" if v is None else str(v) for v in row.values()] for row in table.to_pylist()]
        assert as_text == rows[1:], name


def test_the_leaderboard_has_tuned_cv_and_follows_select_by(runs_dir: Path, tmp_path: Path) -> None:
    folder = fp.write_fake_pipeline(runs_dir, dev_tuned=True, select_by="tuned_cv")
    summary = json.loads((folder / SUMMARY_FILE).read_text())
    assert main_export([str(folder), "--to", "csv", "--out", str(tmp_path / "t")]) == 0
    header, *rows = read_csv(tmp_path / "t" / "leaderboard.csv")
    assert header == LEADERBOARD_HEADER
    by_run = {row[0]: dict(zip(header, row)) for row in rows}
    for entry in summary["leaderboard"]:
        want = entry["tuned_cv_f1_macro"]
        assert by_run[entry["run"]]["tuned_cv_f1_macro"] == ("" if want is None else str(want)), entry["run"]
    # Best first by tuned cv: p4-final (live) before the summary's rows, the failed run without a score last.
    cv = [float(text) for text in (by_run[row[0]]["tuned_cv_f1_macro"] for row in rows) if text]
    assert cv == sorted(cv, reverse=True) and rows[0][0] == "p4-final" and rows[-1][0] == "p1-combined_07"


def test_oversampling_has_an_observed_column_for_multi_source_trainers(runs_dir: Path, tmp_path: Path) -> None:
    folder = fp.write_fake_pipeline(runs_dir, sources=fp.three_sources())
    assert main_export([str(folder), "--to", "csv", "--out", str(tmp_path / "t")]) == 0
    rows = read_csv(tmp_path / "t" / "oversampling.csv")
    assert rows[0] == ["label", "before", "after", "weight", "observed"]
    sources = fp.three_sources()
    assert rows[1] == ["admiration", "247", "247", "1.121", str(fp.observed_rows("admiration", sources))]
    # Per-source evals are never the run's dev scores: the per-label rows are the same as a single-source folder's.
    per_label = read_csv(tmp_path / "t" / "per_label.csv")
    assert Counter(row[1] for row in per_label[1:]) == {"dev": 140, "test": 28}


def test_a_live_folder_exports_what_is_there(live_pipeline: Path, tmp_path: Path) -> None:
    # Torn last lines, as a writer mid-line leaves them.
    with open(live_pipeline / "p3-asl" / EVENTS_FILE, "a") as fh:
        fh.write('{"v":1,"t":1,"type":"st')
    with open(live_pipeline / PIPELINE_FILE, "a") as fh:
        fh.write('{"v":1,"t":1,"type":"run_')
    out = tmp_path / "live"
    assert main_export([str(live_pipeline), "--to", "csv", "--out", str(out)]) == 0
    leaderboard = {row[0]: row for row in read_csv(out / "leaderboard.csv")[1:]}
    status = LEADERBOARD_HEADER.index("status")
    assert leaderboard["p3-asl"][status] == "running"
    assert leaderboard["p3-asl"][status + 1:] == ["", "", "", ""]
    assert "p4-final" not in leaderboard
    curves = read_csv(out / "curves.csv")[1:]
    assert [int(row[1]) for row in curves if row[0] == "p3-asl"] == list(range(1, 31))
    per_label = read_csv(out / "per_label.csv")[1:]
    assert {row[1] for row in per_label} == {"dev"}
    assert {(row[0], row[2]) for row in per_label if row[0] == "p3-asl"} == {("p3-asl", "20")}


def test_not_a_pipeline_folder_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "empty", tmp_path / "missing"):
        assert main_export([str(folder), "--to", "csv"]) == 2
        line = one_error_line(capsys)
        assert str(folder) in line and PIPELINE_FILE in line
    assert not (tmp_path / "empty" / TABLES_DIR).exists()


def test_unknown_format_and_missing_arguments_are_one_line(finished_pipeline: Path, capsys) -> None:
    assert main_export([str(finished_pipeline), "--to", "xlsx"]) == 2
    line = one_error_line(capsys)
    assert "'xlsx'" in line and "csv, parquet, tensorboard, mlflow, trackio, wandb" in line
    assert main_export([str(finished_pipeline)]) == 2
    assert "--to" in one_error_line(capsys)
    assert main_export(["--to", "csv"]) == 2
    assert "pipeline_dir" in one_error_line(capsys)
    assert not (finished_pipeline / TABLES_DIR).exists()


def test_an_unwritable_out_is_one_line_and_exit_2(finished_pipeline: Path, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for out in (blocker, blocker / "below"):
        assert main_export([str(finished_pipeline), "--to", "csv", "--out", str(out)]) == 2
        line = one_error_line(capsys)
        assert str(blocker) in line and "cannot write" in line
    assert blocker.read_text() == "not a folder"


def test_parquet_without_pyarrow_says_so(finished_pipeline: Path, monkeypatch, capsys) -> None:
    for name in ("pyarrow", "pyarrow.parquet"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it now raises ImportError
    assert main_export([str(finished_pipeline), "--to", "parquet"]) == 2
    assert "pyarrow" in one_error_line(capsys)
    assert not (finished_pipeline / TABLES_DIR).exists()


def damage(folder: Path, case: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make one file of a pipeline folder unreadable; returns the file's name, which the error line must give."""
    if case == "garbage pipeline.jsonl":
        (folder / PIPELINE_FILE).write_bytes(b"\x00\x9f binary junk\n" * 3)
        return PIPELINE_FILE
    if case == "pipeline.jsonl that cannot be opened":
        from trainer.events import EventReader

        read_new = EventReader.read_new

        def refuse(self: EventReader, max_bytes: int | None = None) -> list[dict]:
            if self.path.name == PIPELINE_FILE:
                raise PermissionError(13, "Permission denied", str(self.path))
            return read_new(self, max_bytes)

        monkeypatch.setattr(EventReader, "read_new", refuse)
        return PIPELINE_FILE
    (folder / "preset.toml").write_text("[pipeline\nname = 'quick'\n")
    return "preset.toml"


@pytest.mark.parametrize("case", ["garbage pipeline.jsonl", "pipeline.jsonl that cannot be opened",
                                  "preset.toml that does not parse"])
def test_an_unreadable_pipeline_file_is_one_line_and_exit_2_not_empty_tables(
        live_pipeline: Path, case: str, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    name = damage(live_pipeline, case, monkeypatch)
    assert main_export([str(live_pipeline), "--to", "csv"]) == 2
    line = one_error_line(capsys)
    assert f"{live_pipeline / name}: " in line and "expected" in line, line
    if case.startswith("garbage"):
        assert line.endswith(f"{PIPELINE_FILE}: 3 bad lines and not one event; expected one JSON event per line")
    assert not (live_pipeline / TABLES_DIR).exists()
    assert read_pipeline(live_pipeline).problem == line.removeprefix("goemo-cockpit export: error: ")


def test_bad_lines_are_skipped_and_counted_in_the_one_line(finished_pipeline: Path, tmp_path: Path, capsys) -> None:
    with open(finished_pipeline / PIPELINE_FILE, "ab") as fh:
        fh.write(b"{not json\n")
    with open(finished_pipeline / "p1-bce" / EVENTS_FILE, "ab") as fh:
        fh.write(b"[1, 2]\n\xff\xfe\n")
    assert main_export([str(finished_pipeline), "--to", "csv", "--out", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"{tmp_path / 't'}: leaderboard.csv (5 rows)") and out.endswith("; 3 bad lines skipped")


def test_tracker_timeout_is_checked_and_for_trackers_only(finished_pipeline: Path, capsys) -> None:
    for value in ("0", "-1", "nan", "inf", "1e9"):
        assert main_export([str(finished_pipeline), "--to", "mlflow", "--tracker-timeout", value]) == 2
        assert "--tracker-timeout: expected seconds in (0, 86400]" in one_error_line(capsys)
    assert main_export([str(finished_pipeline), "--to", "csv", "--tracker-timeout", "5"]) == 2
    assert "--tracker-timeout applies to tensorboard, mlflow, trackio, wandb only" in one_error_line(capsys)


def test_tracker_names_go_to_cockpit_trackers_replay(finished_pipeline: Path, monkeypatch, capsys) -> None:
    calls = []

    import cockpit.outlets.trackers

    def replay(pipeline_dir: Path, to: str, *, call_timeout_s: float) -> cockpit.outlets.trackers.ReplayReport:
        calls.append((Path(pipeline_dir), to))
        assert call_timeout_s == 30
        if to == "wandb":
            raise ValueError("wandb: not installed (pip install wandb)")
        if to == "trackio":
            raise cockpit.outlets.trackers.TrackerError("trackio: run p1-bce: database is locked")
        return cockpit.outlets.trackers.ReplayReport(to, 5, 0, "2026-11-27T09:00:00+00:00")

    monkeypatch.setattr(cockpit.outlets.trackers, "replay", replay)
    assert main_export([str(finished_pipeline), "--to", "tensorboard"]) == 0
    assert capsys.readouterr().out.strip() == (f"{finished_pipeline}: 5 runs replayed to tensorboard, tagged "
                                               "goemo.replay = 2026-11-27T09:00:00+00:00")
    assert main_export([str(finished_pipeline), "--to", "wandb"]) == 2
    assert one_error_line(capsys) == "goemo-cockpit export: error: wandb: not installed (pip install wandb)"
    # A tracker that fails part-way is no input error: exit 1, one line.
    assert main_export([str(finished_pipeline), "--to", "trackio"]) == 1
    assert one_error_line(capsys) == "goemo-cockpit export: error: trackio: run p1-bce: database is locked"
    calls.pop()
    assert calls == [(finished_pipeline, "tensorboard"), (finished_pipeline, "wandb")]
    # --out is for table files; trackers keep their own stores.
    assert main_export([str(finished_pipeline), "--to", "mlflow", "--out", "x"]) == 2
    assert "--out" in one_error_line(capsys)
    assert len(calls) == 2


def test_export_and_compare_import_no_textual_torch_or_pyarrow() -> None:
    import subprocess

    code = ("import sys; import cockpit.export, cockpit.compare; "
            "bad = sorted({m.split('.')[0] for m in sys.modules} & {'textual', 'torch', 'pyarrow'}); "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_final_per_label_table_is_written_when_the_trainer_gave_one(finished_pipeline: Path, tmp_path: Path) -> None:
    fp.append_final_labels(finished_pipeline)
    assert main_export([str(finished_pipeline), "--to", "csv", "--out", str(tmp_path / "t")]) == 0
    with open(tmp_path / "t" / "final_per_label.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 28 and list(rows[0]) == ["label", "threshold", "precision", "recall", "f1", "f1_low",
                                                  "f1_high", "support"]
    assert all(float(r["f1_low"]) <= float(r["f1"]) <= float(r["f1_high"]) for r in rows)
