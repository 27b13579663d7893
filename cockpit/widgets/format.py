"""Number and time formatting shared by the widgets (plain strings, no styling)."""

from __future__ import annotations

DASH = "–"


def fmt_float(value: float | None, digits: int = 4) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def fmt_delta(value: float | None, digits: int = 4) -> str:
    return DASH if value is None else f"{value:+.{digits}f}"


def fmt_duration(seconds: float | None) -> str:
    """Compact duration: 45s, 12m05s, 3h07m, 2d04h."""
    if seconds is None or seconds != seconds:
        return DASH
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def fmt_ago(now: float, t: float | None) -> str:
    """Age to the second below a minute, then to the minute (so it does not repaint every second)."""
    if t is None:
        return DASH
    age = int(max(now - t, 0.0))
    if age < 60:
        return f"{age}s ago"
    return f"{age // 60}m ago" if age < 3600 else f"{fmt_duration(age)} ago"


def fmt_si(value: float | None) -> str:
    """Short engineering notation for learning rates and grad norms."""
    if value is None:
        return DASH
    if value == 0 or 1e-2 <= abs(value) < 1e4:
        return f"{value:.3g}"
    return f"{value:.1e}"
