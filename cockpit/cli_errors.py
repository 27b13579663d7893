"""Command-line errors in one line, for the subcommands that parse their own arguments (export, compare).

argparse's own ``error`` prints the usage and exits; the house rule is one line naming what was expected
and exit 2 (``EXIT_BAD_INPUT``), so the parser raises instead and the command prints through ``fail``.
"""

from __future__ import annotations

import argparse
import sys

from trainer.contract import EXIT_BAD_INPUT


class BadArguments(Exception):
    """A command-line error, said in one line."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise BadArguments (the command says them in one line) instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BadArguments(message)


def fail(prog: str, message: str, code: int = EXIT_BAD_INPUT) -> int:
    """Print ``PROG: error: message`` on stderr and return the exit code (bad input unless told otherwise)."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code
