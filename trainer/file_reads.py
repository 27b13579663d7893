"""Reading a whole file, where every way it can fail is one line naming the file and what was expected.

A missing file, a folder, a file this user may not read, bytes that are not UTF-8, JSON or TOML that does not
parse, values nested too deeply for the parser and a number with too many digits each become
``error("<path>: <what went wrong>; expected <what>")``, raised ``from None`` so the user sees no traceback.
Each caller passes its own error class (its callers catch that class) and its own ``what``.

Reads only: durable writes are ``trainer/durable.py``'s, and user data files that need a byte cap and a
regular-file check (a FIFO would block) are ``trainer/input_files.py``'s, which words its OSErrors through
``unreadable`` and hands its bytes to ``decode_utf8`` / ``parse_toml`` here.
Stdlib only: the cockpit reads presets and checkpoint states through it, without torch.
"""

from __future__ import annotations

import codecs
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

__all__ = ["decode_utf8", "int_limit_message", "parse_json", "parse_toml", "read_bytes", "read_json", "read_text",
           "read_toml", "unreadable"]


def int_limit_message(exc: BaseException) -> str | None:
    """For Python's cap on digits in an integer (a ValueError "Exceeds the limit"), a short reason; else None."""
    if isinstance(exc, ValueError) and "integer string conversion" in str(exc):
        return f"a number with more than {sys.get_int_max_str_digits()} digits"
    return None


def unreadable(path: str | Path, exc: OSError, what: str) -> str:
    """The one line for an OSError met while opening or reading ``path``."""
    if isinstance(exc, IsADirectoryError):
        return f"{path}: expected {what}, found a folder"  # input_files' words for a folder, found by stat
    if isinstance(exc, FileNotFoundError):
        problem = "file not found"
    elif isinstance(exc, PermissionError):
        problem = "permission denied"
    else:  # a symlink loop, a name too long, a path through a file, an I/O error
        problem = f"cannot read it ({exc.strerror or exc})"
    return f"{path}: {problem}; expected {what}"


def read_bytes(path: str | Path, what: str, error: type[Exception] = ValueError) -> bytes:
    """The bytes of ``path``, or ``error`` with one line naming it and ``what`` was expected."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise error(unreadable(path, exc, what)) from None


def decode_utf8(raw: bytes, path: str | Path, what: str, error: type[Exception] = ValueError) -> str:
    """``raw`` as UTF-8 text, a byte-order mark dropped (Windows editors write one); ``error`` otherwise."""
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[bom:].decode("utf-8")  # the mark stripped by hand, not by utf-8-sig: the offset below stays right
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text ({exc.reason} at byte {bom + exc.start}); expected {what}") from None


def parse_json(text: str, path: str | Path, what: str, error: type[Exception] = ValueError) -> Any:
    """The JSON value ``text`` holds (read from ``path``), or ``error`` with one line saying why not."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"{exc.msg.removesuffix(' starting at')} at line {exc.lineno} column {exc.colno}"
        if not text.strip():
            detail = "the file is empty"
        elif exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            detail = f"{where}; truncated?"  # it ends mid-value: a file cut short by a crash or a full disk
        else:
            detail = where
        raise error(f"{path}: not valid JSON ({detail}); expected {what}") from None
    except RecursionError:
        raise error(f"{path}: values nested too deeply to read; expected {what}") from None
    except ValueError as exc:  # json lets Python's cap on an integer's digits through as a bare ValueError
        raise error(f"{path}: {int_limit_message(exc) or f'not valid JSON ({exc})'}; expected {what}") from None


def parse_toml(text: str, path: str | Path, what: str, error: type[Exception] = ValueError) -> dict[str, Any]:
    """The table TOML ``text`` holds (read from ``path``), or ``error`` with one line saying why not."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: invalid TOML ({exc}); expected {what}") from None
    except RecursionError:  # tomllib lets this and the next through bare: a traceback otherwise
        raise error(f"{path}: values nested too deeply to read; expected {what}") from None
    except ValueError as exc:
        raise error(f"{path}: {int_limit_message(exc) or f'invalid TOML ({exc})'}; expected {what}") from None


def read_text(path: str | Path, what: str, error: type[Exception] = ValueError) -> str:
    """The UTF-8 text of ``path`` (a byte-order mark dropped), or ``error`` with one line."""
    return decode_utf8(read_bytes(path, what, error), path, what, error)


def read_json(path: str | Path, what: str, error: type[Exception] = ValueError) -> Any:
    """The JSON value in ``path`` (often a file another process wrote), or ``error`` with one line."""
    return parse_json(read_text(path, what, error), path, what, error)


def read_toml(path: str | Path, what: str, error: type[Exception] = ValueError) -> dict[str, Any]:
    """The TOML table in ``path``, or ``error`` with one line."""
    return parse_toml(read_text(path, what, error), path, what, error)
