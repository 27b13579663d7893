"""What a run's exit says in pipeline.jsonl's run_exit reason, when the run itself said nothing."""

from __future__ import annotations

import signal
from pathlib import Path

from cockpit.pipeline.reaping import describe_exit, exit_reason
from cockpit.pipeline.restarts import EXIT_NOT_FOUND
from trainer.contract import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_TERMINATED, RunPaths


def test_exit_codes_in_words() -> None:
    assert describe_exit(EXIT_FAILED) == "failed"
    assert describe_exit(EXIT_INTERRUPTED) == "interrupted"
    assert describe_exit(EXIT_TERMINATED) == "terminated"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert "[slurm] python" in describe_exit(EXIT_NOT_FOUND)
    assert describe_exit(42) == "exit code 42"


def test_bad_input_quotes_the_runs_one_line(tmp_path: Path) -> None:
    run = RunPaths(tmp_path)
    assert exit_reason(run, EXIT_BAD_INPUT) == "bad input"  # no stderr file: the code's own words
    run.stderr.write_text("loading\ngoemo-train: error: run.toml: lr: expected a number > 0\n")
    assert exit_reason(run, EXIT_BAD_INPUT) == "bad input: run.toml: lr: expected a number > 0"
    assert exit_reason(run, EXIT_FAILED) == "failed"  # only bad input reads the file
