"""GradHealthPanel: per run, a sparkline of log10 gradient norms and a health badge.

The badge is `RunView.health`, the trainer's own verdict (its grad_vanishing / grad_exploding alerts,
raised by the contract's GRAD_* rule); the panel draws norms and judges none.
"""

from __future__ import annotations

import math
from typing import ClassVar, Sequence

from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

from cockpit.snapshots import RunView
from cockpit.widgets.braille import spark_blocks

BADGE_WIDTH = 24


class GradHealthPanel(Widget):
    """One line per run: id, log-scale grad-norm sparkline, badge (healthy/vanishing/exploding/non-finite, or
    not learning: the supervisor's verdict on its dev evals, which outranks the gradients')."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "grad-health--run", "grad-health--spark", "grad-health--healthy", "grad-health--vanishing",
        "grad-health--exploding", "grad-health--nonfinite", "grad-health--not-learning",
    }

    DEFAULT_CSS = """
    GradHealthPanel {
        height: auto;
        min-height: 3;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        border: round $primary 40%;
        border-title-color: $text;
    }
    GradHealthPanel > .grad-health--run { color: $text; }
    GradHealthPanel > .grad-health--spark { color: $secondary; }
    GradHealthPanel > .grad-health--healthy { color: $success; }
    GradHealthPanel > .grad-health--vanishing { color: $warning; text-style: bold; }
    GradHealthPanel > .grad-health--exploding { color: $error; text-style: bold; }
    GradHealthPanel > .grad-health--nonfinite { color: $warning; }
    GradHealthPanel > .grad-health--not-learning { color: $error; text-style: bold; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.border_title = "grad health"
        self._rows: tuple[tuple[str, tuple[float, ...], str, str], ...] = ()

    def show(self, runs: Sequence[RunView]) -> None:
        """Show these runs (only those that have reported a gradient norm)."""
        rows = tuple(
            (r.run, tuple(math.log10(g) for g in r.grad_series.ys if g > 0), r.health.kind, r.health.text)
            for r in runs if r.grad_series.ys
        )
        if rows != self._rows:
            layout = len(rows) != len(self._rows)
            self._rows = rows
            self.refresh(layout=layout)

    def get_content_height(self, container, viewport, width: int) -> int:  # type: ignore[override]
        return max(len(self._rows), 1)

    def render(self) -> RenderResult:
        if not self._rows:
            return Text("no gradient norms yet", style=self.get_component_rich_style("grad-health--run"))
        width = self.content_size.width
        name_w = min(max(len(r[0]) for r in self._rows), 16)
        spark_w = max(width - name_w - BADGE_WIDTH - 2, 4)
        run_style = self.get_component_rich_style("grad-health--run")
        spark_style = self.get_component_rich_style("grad-health--spark")
        out = Text(no_wrap=True, overflow="ellipsis")
        for i, (run, values, kind, text) in enumerate(self._rows):
            if i:
                out.append("\n")
            out.append(f"{run[:name_w]:<{name_w}} ", style=run_style)
            out.append(f"{spark_blocks(values, spark_w):<{spark_w}} ", style=spark_style)
            out.append(text[:BADGE_WIDTH], style=self.get_component_rich_style(f"grad-health--{kind}"))
        return out
