"""Which emotions has a run learned, and when: one row per label, one cell per dev eval, coloured by the
label's F1 at the primary threshold; each label's dev support, and a mark on labels never predicted.

Drawn with rich Text, two characters per cell, newest evals kept when the width runs out. Its height is one
line per label (plus the header and the legend), so a screen holds it in a VerticalScroll at 80×24.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

from cockpit.snapshots import LabelHistory

NAME_W, SUPPORT_W, CELL_W, VALUE_W = 14, 5, 2, 6
# F1 bins, low to high, and their colours: grey (nothing) through red and orange to green.
BINS = ((0.05, "grey30"), (0.15, "red3"), (0.30, "dark_orange3"), (0.45, "gold3"), (0.60, "yellow3"),
        (0.75, "green3"), (1.01, "spring_green1"))
NEVER = "∅"  # the label has never been predicted for a single dev row


def f1_colour(f1: float | None) -> str:
    if f1 is None:
        return "grey15"
    return next(colour for upper, colour in BINS if f1 < upper)


class LabelHeatmap(Widget):
    """Per-label F1 over a run's dev evals (`LabelHistory`)."""

    DEFAULT_CSS = """
    LabelHeatmap {
        height: auto;
        text-wrap: nowrap;
        border: round $primary 40%;
        border-title-color: $text;
    }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.border_title = "per-label F1 over dev evals"
        self._history: LabelHistory | None = None

    def show(self, history: LabelHistory | None) -> None:
        if history != self._history:
            layout = (history is None) != (self._history is None) or (
                history is not None and self._history is not None and len(history.labels) != len(self._history.labels))
            self._history = history
            self.refresh(layout=layout)

    def get_content_height(self, container, viewport, width: int) -> int:  # type: ignore[override]
        return len(self._history.labels) + 2 if self._history else 1

    def render(self) -> RenderResult:
        history = self._history
        if history is None:
            return Text("no dev eval with per-label scores yet", style="dim")
        width = self.content_size.width
        cells = max((width - NAME_W - SUPPORT_W - 2 - VALUE_W) // CELL_W, 1)
        shown = history.steps[-cells:]
        first = len(history.steps) - len(shown)
        out = Text(no_wrap=True, overflow="ellipsis")
        span = f"steps {shown[0]}–{shown[-1]}" if len(shown) > 1 else f"step {shown[0]}"
        earlier = f" ({first} earlier evals off screen)" if first else ""
        out.append(f"{'label':<{NAME_W}}{'dev':>{SUPPORT_W}}  {span}{earlier}\n", style="bold")
        for label, row, support, never in zip(history.labels, history.f1, history.support, history.never_predicted):
            out.append(f"{label[:NAME_W]:<{NAME_W}}", style="bold" if never else "")
            out.append(f"{'–' if support is None else support:>{SUPPORT_W}}")
            out.append(f"{NEVER if never else ' '} ", style="bold red" if never else "")
            for value in row[first:]:
                out.append("█" * CELL_W if value is not None else "·" * CELL_W, style=f1_colour(value))
            last = row[-1]
            out.append(f" {'–' if last is None else f'{last:.2f}':>{VALUE_W - 1}}\n")
        legend = Text("F1 ")
        for upper, colour in BINS:
            legend.append("█", style=colour)
        legend.append(f" 0 → 1   {NEVER} never predicted")
        out.append_text(legend)
        return out
