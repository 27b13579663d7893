"""How values are read out of events: finite numbers, integral integers, strings, thresholds, score maps.

Events come from files that other processes (and older versions) wrote, so a value of the wrong kind reads
as missing (None, or a default), never as an exception: views show "–", the supervisor skips the score.
"""

from __future__ import annotations

import math
from typing import Any


def number(value: Any) -> float | None:
    """A finite float, or None (null, NaN, infinities, strings, booleans)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def integer(value: Any) -> int | None:
    """An integer from an int or an integral float, or None."""
    value = number(value)
    return int(value) if value is not None and value == int(value) else None


def text(value: Any, default: str = "") -> str:
    """A string, or the default."""
    return value if isinstance(value, str) else default


def threshold(value: Any) -> float | None:
    """A usable decision threshold (strictly between 0 and 1), or None."""
    value = number(value)
    return value if value is not None and 0.0 < value < 1.0 else None


def scores(value: Any) -> dict[str, float]:
    """An eval's ``{threshold string: score}`` object, finite numbers only."""
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in ((k, number(v)) for k, v in value.items()) if v is not None}
