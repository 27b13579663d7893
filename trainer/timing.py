"""How long the trainer tells the watchdog each piece of work may take (``activity`` events' ``expect_s``):
guesses before the work was ever timed, then a multiple of the last time it took."""

from __future__ import annotations

import math
import os
from pathlib import Path

from trainer.contract import ENV_STARTUP_GRACE
from trainer.model_source import ModelSource

__all__ = ["DEFAULT_STARTUP_GRACE_S", "EVAL_ROWS_PER_S_GUESS", "eval_guess_s", "expect_s", "model_activity",
           "startup_grace_s"]

DEFAULT_STARTUP_GRACE_S = 600.0
EVAL_ROWS_PER_S_GUESS = 10.0  # conservative: a large model on a slow device, before any eval was timed


def startup_grace_s() -> float:
    """Seconds the watchdog allows for model load or download: $GOEMO_STARTUP_GRACE_S, default 600."""
    try:
        value = float(os.environ.get(ENV_STARTUP_GRACE, ""))
    except ValueError:
        return DEFAULT_STARTUP_GRACE_S
    return value if math.isfinite(value) and value > 0 else DEFAULT_STARTUP_GRACE_S


def model_activity(source: ModelSource) -> str:
    """``download`` for a hub id whose files are not in the local cache yet, else ``load``."""
    if source.path is None or Path(source.path).expanduser().exists():
        return "load"
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(source.path, "config.json")
    except Exception:  # an id the hub client rejects: loading will say what is wrong
        return "download"
    return "load" if isinstance(cached, str) else "download"


def expect_s(last_seconds: float, guess_s: float) -> float:
    """What an ``activity`` announces: 3x the last time this work took, or the guess before it was
    ever timed; never below 30 s."""
    return round(max(30.0, 3 * last_seconds if last_seconds > 0 else guess_s), 1)


def eval_guess_s(rows: int) -> float:
    """The first evaluation's allowance, sized to the rows it scores."""
    return rows / EVAL_ROWS_PER_S_GUESS
