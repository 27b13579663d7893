"""How values are read out of events: finite numbers, integral integers, strings, thresholds, score maps.

Events come from files that other processes (and older versions) wrote, so an optional value of the wrong
kind reads as missing (None, or a default), never as an exception: views show "–", the supervisor skips the
score. A value the event cannot mean anything without (a run's id, a step's number) is read with the
``required_*`` readers, which raise `BadEvent`: the whole event is then skipped and counted.
"""

from __future__ import annotations

import math
from typing import Any


class BadEvent(ValueError):
    """An event that names a known type but lacks, or garbles, a value its meaning rests on."""


def number(value: Any) -> float | None:
    """A finite float, or None (null, NaN, infinities, strings, booleans, ints too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def integer(value: Any) -> int | None:
    """An integer from an int or an integral float, or None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    value = number(value)
    return int(value) if value is not None and value == int(value) else None


def text(value: Any, default: str = "") -> str:
    """A string, or the default."""
    return value if isinstance(value, str) else default


def optional_text(value: Any) -> str | None:
    """A non-empty string, or None."""
    return value if isinstance(value, str) and value else None


def threshold(value: Any) -> float | None:
    """A usable decision threshold (strictly between 0 and 1), or None."""
    value = number(value)
    return value if value is not None and 0.0 < value < 1.0 else None


def scores(value: Any) -> dict[str, float]:
    """An eval's ``{threshold string: score}`` object, finite numbers only."""
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in ((k, number(v)) for k, v in value.items()) if v is not None}


def strings(value: Any) -> tuple[str, ...]:
    """A list's items as strings (numbers included, as older writers wrote run ids), () when not a list."""
    return tuple(str(item) for item in value) if isinstance(value, list) else ()


def objects(value: Any) -> tuple[dict[str, Any], ...]:
    """The objects of a list of rows, () when it is not a list."""
    return tuple(row for row in value if isinstance(row, dict)) if isinstance(value, list) else ()


def required_integer(event: dict[str, Any], key: str) -> int:
    value = integer(event.get(key))
    if value is None:
        raise BadEvent(f"{key}: expected an integer, got {event.get(key)!r}")
    return value


def required_number(event: dict[str, Any], key: str) -> float:
    value = number(event.get(key))
    if value is None:
        raise BadEvent(f"{key}: expected a finite number, got {event.get(key)!r}")
    return value


def required_id(event: dict[str, Any], key: str = "run") -> str:
    """A run id (or another name an event is about): a non-empty string."""
    value = event.get(key)
    if not isinstance(value, str) or not value:
        raise BadEvent(f"{key}: expected a non-empty string, got {value!r}")
    return value


def required_text(event: dict[str, Any], key: str) -> str:
    """A value shown as words (a status, an alert's message): any JSON scalar, as its string."""
    value = event.get(key)
    if isinstance(value, (dict, list)) or value is None:
        raise BadEvent(f"{key}: expected a string, got {value!r}")
    return str(value)
