"""LineChart: several series in one braille plot, coloured from the theme's component classes."""

from __future__ import annotations

from typing import ClassVar, Sequence

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from cockpit.snapshots import SeriesView
from cockpit.widgets.braille import braille_grid, data_range
from cockpit.widgets.format import fmt_si

AXIS_WIDTH = 9


class LineChart(Widget):
    """A braille line chart of up to three series sharing one y axis, with a legend row.

    Drawn through the line API from segments cached per data and size: a chart is redrawn
    a few times a second while runs train, and building rich Text for it costs more.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "line-chart--series-0", "line-chart--series-1", "line-chart--series-2", "line-chart--axis",
    }

    DEFAULT_CSS = """
    LineChart {
        height: 1fr;
        min-height: 4;
        border: round $primary 40%;
        border-title-color: $text;
        padding: 0 1 0 0;
    }
    LineChart > .line-chart--series-0 { color: $text-muted; }
    LineChart > .line-chart--series-1 { color: $accent; }
    LineChart > .line-chart--series-2 { color: $success; }
    LineChart > .line-chart--axis { color: $text-muted; }
    """

    def __init__(self, title: str = "", *, colour_offset: int = 0, empty_text: str = "no data yet",
                 x_label: str = "step", name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        """colour_offset: the series-N component class the first series takes (a lone F1 curve: 2); x_label: what
        x counts, in the legend row ("trial" for a study's best-so-far curve)."""
        super().__init__(name=name, id=id, classes=classes)
        self.x_label = x_label
        self.border_title = title
        self.colour_offset = colour_offset
        self.empty_text = empty_text
        self._series: tuple[SeriesView, ...] = ()
        self._legend: tuple[str, ...] = ()
        self._strips: list[Strip] | None = None
        self._strips_size: tuple[int, int] = (0, 0)

    def plot(self, series: Sequence[SeriesView], legend: Sequence[str] = (), *, title: str | None = None) -> None:
        """Show these series (x = x_label, a step unless told); redraws only when something changed."""
        series, legend = tuple(series), tuple(legend)
        if title is not None and title != self.border_title:
            self.border_title = title
        if series != self._series or legend != self._legend:
            self._series, self._legend, self._strips = series, legend, None
            self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips = None  # theme or CSS changed: colours must be looked up again

    def render_line(self, y: int) -> Strip:
        size = (self.content_size.width, self.content_size.height)
        if self._strips is None or self._strips_size != size:
            self._strips, self._strips_size = self._draw(*size), size
        return self._strips[y] if y < len(self._strips) else Strip.blank(size[0], self.rich_style)

    def _draw(self, width: int, height: int) -> list[Strip]:
        base = self.rich_style
        axis = self.get_component_rich_style("line-chart--axis")
        styles = [self.get_component_rich_style(f"line-chart--series-{(i + self.colour_offset) % 3}")
                  for i in range(3)]
        points = [(s.xs, s.ys) for s in self._series]
        bounds = data_range(points)
        if bounds is None or width <= AXIS_WIDTH + 2 or height < 2:
            return [_strip([Segment(self.empty_text[:width], axis)], width, base)]
        plot_h, plot_w = height - 1, width - AXIS_WIDTH
        x0, x1, y0, y1 = bounds
        strips = []
        for r, row in enumerate(braille_grid(points, plot_w, plot_h, bounds)):
            label = fmt_si(y1) if r == 0 else fmt_si(y0) if r == plot_h - 1 else ""
            segments = [Segment(f"{label:>{AXIS_WIDTH - 1}} "[:AXIS_WIDTH], axis)]
            run_owner, chars = row[0][1], []
            for ch, owner in row:
                if owner != run_owner:
                    segments.append(Segment("".join(chars), styles[run_owner % 3] if run_owner >= 0 else axis))
                    run_owner, chars = owner, []
                chars.append(ch)
            segments.append(Segment("".join(chars), styles[run_owner % 3] if run_owner >= 0 else axis))
            strips.append(_strip(segments, width, base))
        legend = [Segment(" " * AXIS_WIDTH + f"{self.x_label} {x0:.0f}–{x1:.0f}  ", axis)]
        for i, name in enumerate(self._legend):
            legend += [Segment("━ ", styles[i % 3]), Segment(f"{name}  ", axis)]
        strips.append(_strip(legend, width, base))
        return strips


def _strip(segments: list[Segment], width: int, base: Style) -> Strip:
    return Strip(segments).adjust_cell_length(width, base)
