"""One training job end to end, as `goemo-train` runs it: the loop (trainer.loop) or an export of another run's
best weights, or an ensemble of several runs' (trainer.ensemble), with signals turned into a clean stop and
errors into an alert, run_end ``failed`` and an exit code. Apart from the loop so that the loop and the
ensemble need not import each other."""

from __future__ import annotations

import errno
import faulthandler
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import torch

from trainer.contract import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, CheckpointStateError
from trainer.data import DataError
from trainer.ensemble import export_ensemble
from trainer.loop import TrainingRun
from trainer.model_source import ModelError
from trainer.preflight import Prepared

__all__ = ["KNOWN_ERRORS", "first_line", "run_training"]

# Errors with a message that says it all: one line on stderr, no traceback.
KNOWN_ERRORS = (OSError, CheckpointStateError, DataError, ModelError)


def first_line(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _install_signal_handlers(run: TrainingRun) -> None:
    def request_stop(signum: int, _frame: Any) -> None:
        run.stop_signal = signum  # acted on at the next step boundary, after a checkpoint

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return "disk_full" if exc.errno == errno.ENOSPC else "io_error"
    if isinstance(exc, CheckpointStateError):
        return "checkpoint"
    return "data" if isinstance(exc, DataError) else "model"


def run_training(prepared: Prepared, out_dir: Path, resume: bool = False, export_from: Path | None = None,
                 config_text: str | None = None, ensemble_from: list[Path] | None = None) -> int:
    """Run one training job end to end (or only the export of another run's best weights, or of the
    average of several runs' best weights); returns the exit code.

    ``config_text`` is written to run.toml: at once for a fresh run, only after the checkpoint loaded
    on resume (so a refused resume leaves the folder as it was). Errors during setup, training or
    export end the run with an ``alert`` and run_end ``failed`` (exit 1) and leave the checkpoints
    resumable; known errors print one line on stderr, others their traceback.
    """
    run = TrainingRun(prepared, out_dir, resume, export_from, config_text, trains=not ensemble_from)
    _install_signal_handlers(run)
    try:
        run.setup()
        if run.stop_signal is not None:
            run.finish("stopped", f"signal {signal.Signals(run.stop_signal).name} during setup")
            return EXIT_INTERRUPTED if run.stop_signal == signal.SIGINT else EXIT_TERMINATED
        if ensemble_from:  # no training: the members' best weights, averaged (trainer.ensemble)
            status, reason = "completed", f"averaged the best weights of {', '.join(m.name for m in ensemble_from)}"
            if run.accelerator.is_main_process:
                export_ensemble(run.evaluator(), ensemble_from)
        elif export_from is not None:  # no training: export() loads (and requires) that run's best weights
            status, reason = "completed", f"exported the best weights of {export_from.name}"
        else:
            status, reason = run.train()
        if status == "completed" and not ensemble_from and (prepared.config.export or export_from is not None):
            run.export(run.total_steps)
    except torch.cuda.OutOfMemoryError as exc:
        run.fail("oom", str(exc).splitlines()[0], "out of memory")
        print(f"goemo-train: error: out of memory ({str(exc).splitlines()[0]})", file=sys.stderr)
        return EXIT_FAILED
    except KNOWN_ERRORS as exc:
        message = first_line(exc)
        run.fail(_error_code(exc), message, message)
        print(f"goemo-train: error: {message}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # a bug: keep the traceback (stderr.log), still end the run in events.jsonl
        message = first_line(exc)
        run.fail("exception", message, message)
        traceback.print_exc()
        return EXIT_FAILED
    run.finish(status, reason)
    if status == "stopped":
        return EXIT_INTERRUPTED if run.stop_signal == signal.SIGINT else EXIT_TERMINATED
    return EXIT_OK if status == "completed" else EXIT_FAILED
