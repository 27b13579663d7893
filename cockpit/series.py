"""A run's curves as the view model keeps them: `Series`, mutable and downsampled, cut into the frozen
`SeriesView` that widgets draw."""

from __future__ import annotations

from cockpit.snapshots import SeriesView

SERIES_CAP = 2000


class Series:
    """An (x, y) series that keeps every `stride`-th point and doubles the stride when full."""

    __slots__ = ("cap", "stride", "seen", "xs", "ys", "last")

    def __init__(self, cap: int = SERIES_CAP) -> None:
        self.cap, self.stride, self.seen = cap, 1, 0
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.last: tuple[float, float] | None = None

    def add(self, x: float, y: float) -> None:
        self.last = (x, y)
        if self.seen % self.stride == 0:
            self.xs.append(x)
            self.ys.append(y)
            if len(self.xs) > self.cap:
                del self.xs[1::2], self.ys[1::2]
                self.stride *= 2
        self.seen += 1

    def truncate_after(self, x: float) -> None:
        """Drop points past x (a run resumed from an earlier checkpoint)."""
        while self.xs and self.xs[-1] > x:
            self.xs.pop()
            self.ys.pop()
        if self.last is not None and self.last[0] > x:
            self.last = (self.xs[-1], self.ys[-1]) if self.xs else None

    def view(self) -> SeriesView:
        xs, ys = tuple(self.xs), tuple(self.ys)
        if self.last is not None and (not xs or xs[-1] != self.last[0]):
            xs, ys = xs + (self.last[0],), ys + (self.last[1],)
        return SeriesView(xs, ys)
