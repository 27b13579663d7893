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

from cockpit.tail import read_text_tail
from trainer.contract import (PIPELINE_SOURCE, PRESET_FILE, SUMMARY_FILE, TUNED_KEY, PHASE_NAMES, PipelinePaths,
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


def classify(source: str, event: dict[str, Any], notify_on: frozenset[str]) -> str | None:
    """The ``notify_on`` name this event answers, or None. Cheap: called for every event.

    One event gives at most one message: a failed run_done is ``failed`` before ``run_done``, a
    trainer's non-finite abort is ``nonfinite_abort`` before ``alert``, and the supervisor's
    ``run_failed`` alert is left to the ``failed`` message when both are asked for.
    """
    kind = event.get("type")
    if source == PIPELINE_SOURCE:
        if kind in (Event.STALL, Event.PIPELINE_END, Event.PHASE_END):
            return kind if kind in notify_on else None
        if kind == Event.RUN_DONE:
            if event.get("status") == "failed" and "failed" in notify_on:
                return "failed"
            return Event.RUN_DONE if Event.RUN_DONE in notify_on else None
        if kind == Event.ALERT and event.get("code") == "run_failed" and "failed" in notify_on:
            return None
    elif (kind == Event.ALERT and event.get("level") == "error" and event.get("code") == "nonfinite"
          and "nonfinite_abort" in notify_on):
        return "nonfinite_abort"
    if (kind == Event.ALERT and Event.ALERT in notify_on and event.get("level") in ALERT_LEVELS
            and event.get("code") not in SILENT_ALERT_CODES):
        return Event.ALERT
    return None


def build(kind: str, source: str, event: dict[str, Any], ctx: Context, pipeline_dir: Path,
          primary: float) -> Notification:
    """The message for one classified event; reads the stall dump or summary.json when it needs them."""
    made_at = float(event.get("t") or time.time())
    where = f"{ctx.pipeline} on {ctx.host}"
    run = str(event.get("run") or (source if source != PIPELINE_SOURCE else "pipeline"))
    if kind == Event.STALL:
        title, lines, level = f"goemo {run} stalled", [where, *_stall_lines(event, ctx, pipeline_dir)], WARNING
    elif kind == Event.PIPELINE_END:
        status = event.get("status", "?")
        title = f"goemo pipeline {status}"
        lines = [f"{where}: {status} (exit {event.get('exit_code', '?')})", *_end_lines(pipeline_dir, primary)]
        level = SUCCESS if status == "completed" else FAILURE
    elif kind == "failed":
        attempts = event.get("attempts", "?")
        reason = f": {ctx.exit_reason}" if ctx.exit_reason else ""
        title, lines, level = f"goemo {run} failed", [where, f"{run} failed for good after {attempts} attempt(s)"
                                                             f"{reason}"], FAILURE
    elif kind == "nonfinite_abort":
        title = f"goemo {run} aborted: non-finite loss"
        lines, level = [where, f"{run}: {event.get('message', '')}"], FAILURE
    elif kind == Event.RUN_DONE:
        status = event.get("status", "?")
        title = f"goemo {run} {status}"
        lines = [where, f"{run} {status} after {event.get('attempts', '?')} attempt(s)",
                 *_best_line(pipeline_dir, run)]
        level = SUCCESS if status == "completed" else WARNING
    elif kind == Event.PHASE_END:
        phase = event.get("phase")
        title = f"goemo phase {phase} ({PHASE_NAMES.get(phase, '?')}) done"
        ranking = [str(r) for r in event.get("ranking") or []][:TOP_RUNS]
        lines = [where, *([f"ranking: {', '.join(ranking)}"] if ranking else [])]
        level = INFO
    else:  # alert
        level_name, code = event.get("level", "?"), event.get("code", "?")
        title = f"goemo {run} {level_name}: {code}"
        lines, level = [where, str(event.get("message", ""))], FAILURE if level_name == "error" else WARNING
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


def _stall_lines(event: dict[str, Any], ctx: Context, pipeline_dir: Path) -> list[str]:
    attempt = event.get("attempt")
    what = f"silent {_seconds(event.get('silent_s'))}"
    if event.get("allowed_s") is not None:
        what += f" (allowed {_seconds(event.get('allowed_s'))})"
    max_restarts = ctx.max_restarts if ctx.max_restarts is not None else context_max_restarts(pipeline_dir)
    if event.get("action") == "fail":
        what += "; no restarts left: the run fails"
    elif isinstance(attempt, int) and max_restarts is not None:
        what += f"; restart {attempt} of {max_restarts}"
    else:
        what += "; restarting"
    lines = [f"{event.get('run', '?')} attempt {attempt}: {what}"]
    dump = event.get("dump")
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
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("type") == Event.RUN_END:
            best = event.get("best") or {}
            if isinstance(best, dict) and best.get("value") is not None:
                return [f"best {best.get('metric', 'score')} {_f1(best.get('value'))} at step {best.get('step')}"]
            return []
    return []
