"""`goemo-cockpit export`: a pipeline folder as four tables (CSV or Parquet; a fifth, the final model per label,
when the trainer wrote it), or replayed into a tracker.

The tables are the leaderboard, every run's per-step curves, per-label dev/test scores and the
oversampling table. They are read from the folder's files only, through the same `PipelineState` the
TUI and the headless console fold events into, so a live pipeline exports too: a torn last line is
left for later, and runs still going show their status and the steps so far.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import io
import json
import math
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from cockpit.cli_errors import BadArguments, OneLineParser, fail
from cockpit.records import EvalRecord, RunHistory, StepRecord, decode_run
from cockpit.state import PRESET_ORIGIN, SUMMARY_ORIGIN, PipelineState
from cockpit.tail import PipelineTail
from cockpit.outlets.trackers.base import CALL_TIMEOUT_S, MAX_CALL_TIMEOUT_S
from cockpit.snapshots import SECONDARY_THRESHOLD, PipelineView
from trainer.contract import (EXIT_FAILED, EXIT_OK, PIPELINE_ORIGIN, TABLES_DIR, TRACKERS, TUNED_CV_KEY, TUNED_DEV_KEY,
                              TUNED_KEY, PipelinePaths, f1_macro_key, f1_micro_key, is_pipeline_dir)
from trainer.durable import write_atomic

PROG = "goemo-cockpit export"
TABLE_FORMATS = ("csv", "parquet")
FORMATS = TABLE_FORMATS + TRACKERS


class PipelineFolderError(ValueError):
    """A folder that is not a pipeline folder: one line naming it and what was expected."""


@dataclass(frozen=True)
class PipelineRecord:
    """A pipeline folder read once: the views' snapshot, each run's events in file order, the saved preset."""

    path: Path
    view: PipelineView
    runs: Mapping[str, RunHistory]
    """Each run's events.jsonl as records, in file order (every attempt's)."""
    preset: Mapping[str, Any] | None
    bad_lines: int  # event lines skipped, over every file: lines that did not parse, events the contract refuses
    problem: str | None = None  # why the folder cannot be trusted (a file that cannot be read), in one line

    @property
    def readable(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class Table:
    """One exported table: column names, their types ("string", "int64" or "float64": Parquet's column types)
    and raw values (None when unknown)."""

    name: str
    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def column(self, name: str) -> tuple[Any, ...]:
        i = self.columns.index(name)
        return tuple(row[i] for row in self.rows)


def read_pipeline(pipeline_dir: str | Path) -> PipelineRecord:
    """Read every file of a pipeline folder once (live or finished); PipelineFolderError when it is not one."""
    path = Path(pipeline_dir)
    if not is_pipeline_dir(path):
        raise PipelineFolderError(f"{path}: not a pipeline folder (expected {PipelinePaths(path).events.name})")
    state = PipelineState()
    events: dict[str, list[dict[str, Any]]] = {}
    preset: list[Mapping[str, Any]] = []
    seen: set[str] = set()  # sources that handed over at least one event

    def fold(origin: str, batch: list[dict[str, Any]]) -> None:
        seen.add(origin)
        state.apply_batch(origin, batch)
        if origin == PRESET_ORIGIN:
            preset[:] = [batch[-1]["data"]]
        elif origin not in (PIPELINE_ORIGIN, SUMMARY_ORIGIN):
            events.setdefault(origin, []).extend(batch)

    tail = PipelineTail(path, fold)
    problem = None
    try:
        tail.drain()
    except OSError as exc:  # an events file that exists but cannot be opened or read
        problem = f"{exc.filename or path}: cannot read it ({exc.strerror or exc}); expected a readable file"
    problem = problem or _unreadable(path, tail, PIPELINE_ORIGIN in seen, bool(preset), SUMMARY_ORIGIN in seen)
    return PipelineRecord(path, state.snapshot(time.time()), {run: decode_run(e, run) for run, e in events.items()},
                          preset[0] if preset else None, tail.bad_lines + state.skipped_events, problem)


def _unreadable(path: Path, tail: PipelineTail, has_events: bool, has_preset: bool,
                has_summary: bool) -> str | None:
    """Why a folder read without an OSError still cannot be trusted: a pipeline.jsonl with bytes but not one
    event, or a preset.toml or summary.json that is there but does not parse (the tail skips those quietly,
    as a live reader must); None when it is fine."""
    paths = PipelinePaths(path)
    reader = tail.readers.get(PIPELINE_ORIGIN)
    if not has_events and reader is not None and reader.bad_lines:
        return (f"{paths.events}: {reader.bad_lines} bad line{'s' if reader.bad_lines != 1 else ''} and not one "
                "event; expected one JSON event per line")
    for present, file, parse, kind in ((has_preset, paths.preset, lambda b: tomllib.loads(b.decode()), "TOML"),
                                       (has_summary, paths.summary, json.loads, "JSON")):
        if present or not file.exists():
            continue
        try:
            data = parse(file.read_bytes())
        except OSError as exc:
            return f"{file}: cannot read it ({exc.strerror or exc}); expected a readable file"
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # TOMLDecodeError is a ValueError
            return f"{file}: not valid {kind} ({' '.join(str(exc).split())[:200]}); expected valid {kind}"
        if not isinstance(data, dict):
            return f"{file}: a {type(data).__name__}; expected a {kind} object"
    return None




def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def leaderboard_table(record: PipelineRecord) -> Table:
    """The dashboard's leaderboard (summary.json first, live dev evals for the rest), best first by the
    pipeline's select_by, with the loss each run trained with and the final run's test numbers."""
    view, primary = record.view, record.view.primary
    final = view.final
    columns = ("run", "phase", "config", "loss", f1_macro_key(primary), f1_macro_key(SECONDARY_THRESHOLD),
               f1_micro_key(primary), TUNED_DEV_KEY, TUNED_CV_KEY, "status", "test_" + f1_macro_key(primary),
               "test_" + f1_macro_key(SECONDARY_THRESHOLD), "test_" + TUNED_KEY, "test_" + f1_micro_key(primary))
    types = ("string", "int64", "string", "string", "float64", "float64", "float64", "float64", "float64", "string",
             "float64", "float64", "float64", "float64")
    rows = []
    for row in view.leaderboard:
        loss = _str(_history(record, row.run).config().get("loss"))
        if final is not None and final.run == row.run:
            test = (final.test_f1_primary, final.test_f1_05, final.test_tuned, final.test_micro_primary)
        else:
            test = (None, None, None, None)
        rows.append((row.run, row.phase, row.config, loss, row.f1_primary, row.f1_05, row.micro_primary, row.tuned,
                     row.tuned_cv, row.status) + test)
    return Table("leaderboard", columns, types, tuple(rows))


def _run_order(record: PipelineRecord) -> list[str]:
    """Runs as the dashboard lists them (by phase, in launch order), then runs only their folders know."""
    shown = [run.run for run in record.view.runs]
    return shown + sorted(run for run in record.runs if run not in shown)


def _history(record: PipelineRecord, run: str) -> RunHistory:
    return record.runs.get(run) or RunHistory(())


def run_curve_rows(run: str, history: RunHistory, primary: float) -> list[tuple[Any, ...]]:
    """One row per optimizer step of a run's history; a resumed attempt replaces the steps after its checkpoint,
    and a dev eval's macro-F1 at the primary threshold lands on the row of its step."""
    rows: dict[int, list[Any]] = {}
    for record in history.curve():
        if isinstance(record, StepRecord):
            f1 = rows[record.step][-1] if record.step in rows else None
            rows[record.step] = [run, record.step, record.epoch, record.loss, record.lr, record.grad_norm,
                                 record.samples_per_s, f1]
        else:
            row = rows.setdefault(record.step, [run, record.step, record.epoch, None, None, None, None, None])
            row[-1] = record.f1(primary)
    return [tuple(rows[step]) for step in sorted(rows)]


def curves_table(record: PipelineRecord) -> Table:
    """Per-step curves of every run: loss, lr, grad norm, throughput, and dev F1 at eval steps."""
    primary = record.view.primary
    columns = ("run", "step", "epoch", "loss", "lr", "grad_norm", "samples_per_s", "dev_" + f1_macro_key(primary))
    types = ("string", "int64", "float64", "float64", "float64", "float64", "float64", "float64")
    rows = [row for run in _run_order(record) for row in run_curve_rows(run, _history(record, run), primary)]
    return Table("curves", columns, types, tuple(rows))


def _label_rows(run: str, evaluation: EvalRecord) -> list[tuple[Any, ...]]:
    return [(run, evaluation.split, evaluation.step, score.label, score.precision, score.recall, score.f1, score.support)
            for score in evaluation.per_class]


def per_label_table(record: PipelineRecord) -> Table:
    """Per-label precision, recall, F1 (at the primary threshold) and support of every run's label evals
    (`RunHistory.label_evals`)."""
    columns = ("run", "split", "step", "label", "precision", "recall", "f1", "support")
    types = ("string", "string", "int64", "string", "float64", "float64", "float64", "int64")
    rows = [row for run in _run_order(record) for evaluation in _history(record, run).label_evals()
            for row in _label_rows(run, evaluation)]
    return Table("per_label", columns, types, tuple(rows))


def oversampling_table(record: PipelineRecord) -> Table:
    """Train rows per label before and after oversampling, the loss weight, and the rows able to observe the
    label (multi-source trainers only: the column is left out when no label has it)."""
    labels = record.view.oversampling
    columns: tuple[str, ...] = ("label", "before", "after", "weight")
    types: tuple[str, ...] = ("string", "int64", "int64", "float64")
    observed = any(row.observed is not None for row in labels)
    if observed:
        columns, types = columns + ("observed",), types + ("int64",)
    rows = tuple((r.label, r.before, r.after, r.weight) + ((r.observed,) if observed else ()) for r in labels)
    return Table("oversampling", columns, types, rows)


def final_labels_table(record: PipelineRecord) -> Table | None:
    """The final model on test, per label: the dev-tuned threshold, precision, recall, F1 with its 95 % bootstrap
    interval, and support; None when the final run's trainer wrote no per-label table."""
    final = record.view.final
    evals = _history(record, final.run).final_evals("test") if final is not None else []
    rows = evals[-1].per_label if evals else ()
    if not rows:
        return None
    columns = ("label", "threshold", "precision", "recall", "f1", "f1_low", "f1_high", "support")
    types = ("string", "float64", "float64", "float64", "float64", "float64", "float64", "int64")
    return Table("final_per_label", columns, types, tuple(
        (r.label, r.threshold, r.precision, r.recall, r.f1, r.f1_low, r.f1_high, r.support) for r in rows))


def pipeline_tables(record: PipelineRecord) -> tuple[Table, ...]:
    """The tables of `goemo-cockpit export`, in the order they are written: four, and the final model's
    per-label table when the pipeline has one."""
    final = final_labels_table(record)
    return (leaderboard_table(record), curves_table(record), per_label_table(record), oversampling_table(record),
            *((final,) if final is not None else ()))


def csv_bytes(table: Table) -> bytes:
    """A header line, then one line per row; None is an empty cell."""
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows(["" if value is None else value for value in row] for row in table.rows)
    return text.getvalue().encode("utf-8")


def parquet_bytes(table: Table) -> bytes:
    """The table as one Parquet file, typed column by column (nulls where a value is unknown)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64()}
    arrays = [pa.array(list(values), type=types[kind])
              for values, kind in zip(zip(*table.rows) if table.rows else [()] * len(table.columns), table.types)]
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_arrays(arrays, names=list(table.columns)), buffer)
    return buffer.getvalue()


def write_tables(tables: Sequence[Table], out: Path, fmt: str) -> list[Path]:
    """Write each table to `out/<name>.<fmt>` (atomically, so a reader never sees half a file)."""
    encode = csv_bytes if fmt == "csv" else parquet_bytes
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables:
        path = out / f"{table.name}.{fmt}"
        write_atomic(path, encode(table))
        written.append(path)
    return written


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="Write a pipeline folder's leaderboard, curves, per-label scores and "
                     "oversampling table as CSV or Parquet files, or replay its runs into a tracker.")
    parser.add_argument("pipeline_dir", type=Path, help="a pipeline folder, e.g. runs/20261126-221500-quick")
    parser.add_argument("--to", required=True, metavar="FORMAT", help=f"one of {', '.join(FORMATS)}")
    parser.add_argument("--out", type=Path, help=f"where the table files go (default: PIPELINE_DIR/{TABLES_DIR})")
    parser.add_argument("--tracker-timeout", type=float, metavar="SECONDS", default=None,
                        help=f"trackers only: how long one tracker call may take before the export gives up with "
                             f"exit 1 (default {CALL_TIMEOUT_S:g}, as live forwarding)")
    return parser


def skipped(bad_lines: int) -> str:
    """What the one output line says about lines that were skipped: nothing when none were."""
    return f"; {bad_lines} bad line{'s' if bad_lines != 1 else ''} skipped" if bad_lines else ""


def _replay_to_tracker(pipeline_dir: Path, tracker: str, timeout_s: float) -> int:
    try:
        from cockpit.outlets.trackers import REPLAY_TAG, TrackerError, replay as replay_to_tracker
    except ImportError as exc:
        return fail(PROG, f"--to {tracker}: tracker replay unavailable ({exc})")
    try:
        report = replay_to_tracker(pipeline_dir, tracker, call_timeout_s=timeout_s)
    except ValueError as exc:
        return fail(PROG, str(exc))
    except TrackerError as exc:  # the tracker itself failed or stopped answering part-way: not the input, exit 1
        return fail(PROG, str(exc), EXIT_FAILED)
    print(f"{pipeline_dir}: {report.runs} runs replayed to {tracker}, tagged {REPLAY_TAG} = {report.replayed_at}"
          f"{skipped(report.bad_lines)}")
    return EXIT_OK


def main_export(argv: list[str]) -> int:
    """`goemo-cockpit export PIPELINE_DIR --to FORMAT [--out DIR]`: 0 when written, 2 on bad input (one line)."""
    try:
        args = build_parser().parse_args(argv)
    except BadArguments as exc:
        return fail(PROG, str(exc))
    fmt = args.to.lower()
    if fmt not in FORMATS:
        return fail(PROG, f"--to: unknown format '{args.to}' (expected one of {', '.join(FORMATS)})")
    pipeline_dir: Path = args.pipeline_dir
    if not is_pipeline_dir(pipeline_dir):
        return fail(PROG, f"{pipeline_dir}: not a pipeline folder (expected {PipelinePaths(pipeline_dir).events.name})")
    if fmt in TRACKERS:
        if args.out is not None:
            return fail(PROG, f"--out applies to {' and '.join(TABLE_FORMATS)} only; {fmt} writes to its own store")
        timeout_s = CALL_TIMEOUT_S if args.tracker_timeout is None else args.tracker_timeout
        if not (math.isfinite(timeout_s) and 0 < timeout_s <= MAX_CALL_TIMEOUT_S):
            return fail(PROG, f"--tracker-timeout: expected seconds in (0, {MAX_CALL_TIMEOUT_S:g}], got {timeout_s:g}")
        return _replay_to_tracker(pipeline_dir, fmt, timeout_s)
    if args.tracker_timeout is not None:
        return fail(PROG, f"--tracker-timeout applies to {', '.join(TRACKERS)} only; {fmt} writes files")
    if fmt == "parquet":
        try:
            importlib.import_module("pyarrow.parquet")
        except ImportError:
            return fail(PROG, "--to parquet needs pyarrow (pip install pyarrow), or use --to csv")
    out: Path = args.out if args.out is not None else pipeline_dir / TABLES_DIR
    record = read_pipeline(pipeline_dir)
    if record.problem is not None:  # empty or half tables from a folder that cannot be read would look like data
        return fail(PROG, record.problem)
    tables = pipeline_tables(record)
    try:
        written = write_tables(tables, out, fmt)
    except OSError as exc:
        return fail(PROG, f"{exc.filename or out}: cannot write there ({exc.strerror or exc}); "
                          "expected a writable folder")
    counts = ", ".join(f"{path.name} ({len(table.rows)} rows)" for path, table in zip(written, tables))
    print(f"{out}: {counts}{skipped(record.bad_lines)}")
    return EXIT_OK
