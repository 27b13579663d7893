"""What a notification says: which events a user asked to hear about (``notify_on``) and the short,
phone-sized title and body for each, with the stall's main-thread frames and the final scores read from
the pipeline folder. Sending lives in ``notify.py``.
"""

from __future__ import annotations

import json
import re
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cockpit.records import Alert, BadEvent, PhaseEnd, PipelineEnd, Record, RunDone, RunEnd, Stall, decode
from cockpit.tail import read_text_tail
from trainer.contract import (NOTIFY_NOT_LEARNING, PIPELINE_ORIGIN, PRESET_FILE, SUMMARY_FILE, TUNED_KEY, PHASE_NAMES, PipelinePaths,
                              f1_macro_key, threshold_key)
from trainer.contract import Event

NOTIFY_CODE = "notify"  # the code of the alerts about notifications themselves
SILENT_ALERT_CODES = (NOTIFY_CODE, "tracker")  # never notify about a failing outlet: that would loop
ALERT_LEVELS = ("warn", "error")
STACK_FRAMES = 5  # innermost frames of the main thread a stall message quotes
TOP_RUNS = 3

# apprise's NotifyType values, named here so this module needs no apprise
INFO, SUCCESS, WARNING, FAILURE = "info", "success", "warning", "failure"

_THREAD_HEADER = re.compile(r"^(Current thread|Thread) 0x[0-9a-fA-F]+ \(most recent call first\):\s*$"
                            r"|^Stack \(most recent call first\):\s*$")
_FRAME = re.compile(r'^\s+File "(?P<file>.*)", line (?P<line>\d+|\?\?\?) in (?P<func>.+?)\s*$')
_STACKS_SECTION = "== stacks"


@dataclass(frozen=True)
class Context:
    """What the supervisor thread knew when the event arrived, handed to the sender thread with it."""

    pipeline: str
    host: str
    max_restarts: int | None = None
    exit_reason: str | None = None  # the run's last run_exit reason (for a failed run_done)


@dataclass(frozen=True)
class Notification:
    """One message: ``kind`` is the notify_on name it answers, ``level`` an apprise NotifyType value."""

    kind: str
    title: str
    body: str
    level: str = INFO
    made_at: float = 0.0


def classify(origin: str, record: Record, notify_on: frozenset[str]) -> str | None:
    """The ``notify_on`` name this event's record answers, or None. Cheap: called for every event.

    One event gives at most one message: a failed run_done is ``failed`` before ``run_done``, a
    trainer's non-finite abort is ``nonfinite_abort`` before ``alert``, and the supervisor's
    ``run_failed`` alert is left to the ``failed`` message when both are asked for.
    """
    if isinstance(record, (Stall, PipelineEnd, PhaseEnd)):
        kind = Event.STALL if isinstance(record, Stall) else Event.PIPELINE_END if isinstance(record, PipelineEnd) \
            else Event.PHASE_END
        return kind if kind in notify_on else None
    if isinstance(record, RunDone):
        if record.status == "failed" and "failed" in notify_on:
            return "failed"
        return Event.RUN_DONE if Event.RUN_DONE in notify_on else None
    if not isinstance(record, Alert):
        return None
    from_pipeline = origin == PIPELINE_ORIGIN
    if from_pipeline and record.code == "run_failed" and "failed" in notify_on:
        return None
    if not from_pipeline and record.level == "error" and record.code == "nonfinite" and "nonfinite_abort" in notify_on:
        return "nonfinite_abort"
    if from_pipeline and record.code == NOTIFY_NOT_LEARNING and NOTIFY_NOT_LEARNING in notify_on:
        return NOTIFY_NOT_LEARNING
    if Event.ALERT in notify_on and record.level in ALERT_LEVELS and record.code not in SILENT_ALERT_CODES:
        return Event.ALERT
    return None


def build(kind: str, origin: str, record: Record, ctx: Context, pipeline_dir: Path,
          primary: float) -> Notification:
    """The message for one classified record; reads the stall dump or summary.json when it needs them."""
    made_at = record.t or time.time()
    where = f"{ctx.pipeline} on {ctx.host}"
    run = getattr(record, "run", None) or (origin if origin != PIPELINE_ORIGIN else "pipeline")
    if isinstance(record, Stall):
        title, lines, level = f"goemo {run} stalled", [where, *_stall_lines(record, ctx, pipeline_dir)], WARNING
    elif isinstance(record, PipelineEnd):
        title = f"goemo pipeline {record.status}"
        exit_code = "?" if record.exit_code is None else record.exit_code
        lines = [f"{where}: {record.status} (exit {exit_code})", *_end_lines(pipeline_dir, primary)]
        level = SUCCESS if record.status == "completed" else FAILURE
    elif isinstance(record, RunDone) and kind == "failed":
        attempts = "?" if record.attempts is None else record.attempts
        reason = f": {ctx.exit_reason}" if ctx.exit_reason else ""
        title, lines, level = f"goemo {run} failed", [where, f"{run} failed for good after {attempts} attempt(s)"
                                                             f"{reason}"], FAILURE
    elif isinstance(record, RunDone):
        attempts = "?" if record.attempts is None else record.attempts
        title = f"goemo {run} {record.status}"
        lines = [where, f"{run} {record.status} after {attempts} attempt(s)", *_best_line(pipeline_dir, run)]
        level = SUCCESS if record.status == "completed" else WARNING
    elif isinstance(record, PhaseEnd):
        title = f"goemo phase {record.phase} ({PHASE_NAMES.get(record.phase, '?')}) done"
        ranking = list(record.ranking or ())[:TOP_RUNS]
        lines = [where, *([f"ranking: {', '.join(ranking)}"] if ranking else [])]
        level = INFO
    elif isinstance(record, Alert) and kind == NOTIFY_NOT_LEARNING:
        title = f"goemo {run} is not learning"
        lines, level = [where, record.message], WARNING
    elif isinstance(record, Alert) and kind == "nonfinite_abort":
        title = f"goemo {run} aborted: non-finite loss"
        lines, level = [where, f"{run}: {record.message}"], FAILURE
    elif isinstance(record, Alert):
        title = f"goemo {run} {record.level}: {record.code}"
        lines, level = [where, record.message], FAILURE if record.level == "error" else WARNING
    else:
        raise ValueError(f"{kind}: no message for a {type(record).__name__}")
    return Notification(kind, title, "\n".join(line for line in lines if line), level, made_at)


def context_max_restarts(pipeline_dir: Path) -> int | None:
    """max_restarts from the pipeline's preset.toml, for folders whose pipeline_start lacks it."""
    try:
        with open(pipeline_dir / PRESET_FILE, "rb") as fh:
            value = tomllib.load(fh).get("pipeline", {}).get("max_restarts")
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return value if isinstance(value, int) else None


def _seconds(value: Any) -> str:
    try:
        s = float(value)
    except (TypeError, ValueError):
        return "? s"
    return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"


def _stall_lines(stall: Stall, ctx: Context, pipeline_dir: Path) -> list[str]:
    what = f"silent {_seconds(stall.silent_s)}"
    if stall.allowed_s is not None:
        what += f" (allowed {_seconds(stall.allowed_s)})"
    max_restarts = ctx.max_restarts if ctx.max_restarts is not None else context_max_restarts(pipeline_dir)
    if stall.action == "fail":
        what += "; no restarts left: the run fails"
    elif max_restarts is not None:
        what += f"; restart {stall.attempt} of {max_restarts}"
    else:
        what += "; restarting"
    lines = [f"{stall.run} attempt {stall.attempt}: {what}"]
    dump = stall.dump
    frames: list[str] = []
    if dump:
        try:
            frames = main_thread_frames((pipeline_dir / str(dump)).read_text(encoding="utf-8", errors="replace"))
        except OSError:
            frames = []
    if frames:
        lines.append("main thread, innermost first:")
        lines += [f"  {frame}" for frame in frames]
    elif dump:
        lines.append("no main-thread stack in the dump")
    if dump:
        lines.append(f"dump: {dump}")
    return lines


def _thread_blocks(text: str) -> list[tuple[bool, list[tuple[str, str, str]]]]:
    """faulthandler's blocks as (is the current thread, frames innermost first as (file, line, func))."""
    blocks: list[tuple[bool, list[tuple[str, str, str]]]] = []
    for line in text.splitlines():
        if _THREAD_HEADER.match(line):
            blocks.append((line.startswith(("Current thread", "Stack")), []))
            continue
        frame = _FRAME.match(line)
        if frame and blocks:
            blocks[-1][1].append((frame["file"], frame["line"], frame["func"]))
    return blocks


def _started_by_threading(frames: list[tuple[str, str, str]]) -> bool:
    file, _, func = frames[-1]
    return func in ("_bootstrap", "_bootstrap_inner") and Path(file).name == "threading.py"


def main_thread_frames(dump: str, n: int = STACK_FRAMES) -> list[str]:
    """The main thread's ``n`` innermost frames as ``func (file:line)`` from a stall dump.

    faulthandler (all_threads=True) lists the newest thread first, so the main thread is usually the
    last block, and it is marked "Current thread" when the signal landed on it. Threads started by
    ``threading`` end in ``_bootstrap``; the main thread's outermost frame is ``<module>`` or runpy's.
    Only the dump's stacks section is read (its stderr tail may repeat the same stacks).
    """
    start = dump.find(_STACKS_SECTION)
    if start >= 0:
        end = dump.find("\n== ", start + len(_STACKS_SECTION))
        dump = dump[start:end if end >= 0 else None]
    blocks = [b for b in _thread_blocks(dump) if b[1]]
    if not blocks:
        return []
    mains = [b for b in blocks if not _started_by_threading(b[1])] or blocks
    chosen = next((b for b in mains if b[0]), mains[-1]) if len(mains) > 1 else mains[0]
    return [f"{func} ({Path(file).name}:{line})" for file, line, func in chosen[1][:n]]


def _read_summary(pipeline_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((pipeline_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _f1(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "n/a"


def _end_lines(pipeline_dir: Path, primary: float) -> list[str]:
    summary = _read_summary(pipeline_dir)
    if summary is None:
        return [f"no readable {SUMMARY_FILE}"]
    at = threshold_key(summary.get("primary_threshold") or primary)
    key = f1_macro_key(float(at))
    lines = []
    final = summary.get("final")
    if isinstance(final, dict) and isinstance(final.get("test"), dict):
        test = final["test"]
        lines.append(f"final test macro-F1 {_f1(test.get(key))} @{at}, {_f1(test.get(TUNED_KEY))} tuned "
                     f"({final.get('config') or final.get('run', '?')})")
    else:
        lines.append("no final model")
    board = [row for row in summary.get("leaderboard") or [] if isinstance(row, dict)]
    scored = [row for row in board if isinstance(row.get(key), (int, float))][:TOP_RUNS]
    if scored:
        lines.append(f"top {len(scored)} (dev macro-F1 @{at}):")
        lines += [f"{i}. {row.get('run')} {_f1(row.get(key))}" for i, row in enumerate(scored, start=1)]
    failed = [str(row.get("run")) for row in board if row.get("status") == "failed"]
    if failed:
        lines.append(f"failed: {', '.join(failed)}")
    return lines


def _best_line(pipeline_dir: Path, run: str) -> list[str]:
    """The run's best dev score from its run_end (the tail of its events file: never the whole file)."""
    events = PipelinePaths(pipeline_dir).run(run).events
    for line in reversed(read_text_tail(events, max_lines=20, max_bytes=1 << 16)):
        try:
            record = decode(run, json.loads(line))
        except (ValueError, BadEvent):
            continue
        if isinstance(record, RunEnd):
            if record.best_value is not None:
                return [f"best {record.best_metric or 'score'} {_f1(record.best_value)} at step {record.best_step}"]
            return []
    return []
