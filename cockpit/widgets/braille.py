"""Line plots drawn with Unicode braille dots (2x4 per cell): pure functions, no Textual.

`braille_grid` turns series of (xs, ys) into rows of (character, owner) cells, where owner
is the index of the series drawn last in that cell (-1 for blank), so a widget can colour
each series from its theme. Each pixel column keeps only its min/max, so drawing costs
O(points + width x height) whatever the series length.
"""

from __future__ import annotations

from typing import Sequence

BLANK = "\u2800"
_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))  # [pixel row % 4][pixel col % 2]

Points = tuple[Sequence[float], Sequence[float]]


def data_range(series: Sequence[Points], pad: float = 0.05) -> tuple[float, float, float, float] | None:
    """(x0, x1, y0, y1) covering every point, y padded; None when there are no points."""
    xs = [x for s in series for x in s[0]]
    ys = [y for s in series for y in s[1]]
    if not xs:
        return None
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        half = abs(y0) * 0.1 or 0.5
        y0, y1 = y0 - half, y1 + half
    span = (y1 - y0) * pad
    # Non-negative data (learning rates, F1) keeps a floor at zero rather than a padded negative.
    return x0, x1, (y0 - span if y0 - span >= 0 or y0 < 0 else 0.0), y1 + span


def _line(p0: tuple[int, int], p1: tuple[int, int]) -> list[tuple[int, int]]:
    """Pixels of a straight segment (Bresenham)."""
    (x0, y0), (x1, y1) = p0, p1
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
    err, out = dx + dy, []
    while True:
        out.append((x0, y0))
        if x0 == x1 and y0 == y1:
            return out
        e2 = 2 * err
        if e2 >= dy:
            err, x0 = err + dy, x0 + sx
        if e2 <= dx:
            err, y0 = err + dx, y0 + sy


def braille_grid(series: Sequence[Points], width: int, height: int,
                 bounds: tuple[float, float, float, float]) -> list[list[tuple[str, int]]]:
    """Rows of (braille character, owning series index or -1), `height` rows of `width` cells."""
    bits = [[0] * width for _ in range(height)]
    owner = [[-1] * width for _ in range(height)]
    if width <= 0 or height <= 0:
        return []
    x0, x1, y0, y1 = bounds
    pw, ph = width * 2, height * 4
    sx, sy = (pw - 1) / ((x1 - x0) or 1.0), (ph - 1) / ((y1 - y0) or 1.0)

    def dot(px: int, py: int, index: int) -> None:
        if 0 <= px < pw and 0 <= py < ph:
            row, col = py >> 2, px >> 1
            bits[row][col] |= _DOTS[py & 3][px & 1]
            owner[row][col] = index

    for index, (xs, ys) in enumerate(series):
        columns: dict[int, list[int]] = {}  # px -> [first, last, lo, hi]
        for x, y in zip(xs, ys):
            px = min(max(int((x - x0) * sx + 0.5), 0), pw - 1)
            py = min(max(int((y1 - y) * sy + 0.5), 0), ph - 1)
            col = columns.get(px)
            if col is None:
                columns[px] = [py, py, py, py]
            else:
                col[1], col[2], col[3] = py, min(col[2], py), max(col[3], py)
        previous: tuple[int, int] | None = None
        for px in sorted(columns):
            first, last, lo, hi = columns[px]
            if previous is not None:
                for qx, qy in _line(previous, (px, first)):
                    dot(qx, qy, index)
            for py in range(lo, hi + 1):
                dot(px, py, index)
            previous = (px, last)
    return [[(chr(0x2800 + bits[r][c]), owner[r][c]) for c in range(width)] for r in range(height)]


SPARK_BLOCKS = " ▁▂▃▄▅▆▇█"


def spark_blocks(values: Sequence[float], width: int) -> str:
    """A one-line sparkline of `values` resampled to `width` cells (bucket means)."""
    if not values or width <= 0:
        return ""
    n = len(values)
    buckets = [values[i * n // width:max((i + 1) * n // width, i * n // width + 1)] for i in range(min(width, n))]
    means = [sum(b) / len(b) for b in buckets]
    lo, hi = min(means), max(means)
    scale = (len(SPARK_BLOCKS) - 2) / ((hi - lo) or 1.0)
    return "".join(SPARK_BLOCKS[1 + int((m - lo) * scale)] for m in means)
