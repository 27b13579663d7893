"""Compare: pipelines side by side (final test, dev F1 per config, per-label test F1, mean ± std over seeds).

Opened from the dashboard (`c`) over the followed pipeline and every other pipeline folder under the
runs folder, or by `goemo-cockpit compare DIR...` as an app of its own. The folders are read by a
thread worker; the screen draws `cockpit.compare.comparison_tables`, the same tables `--headless` prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Sequence

from rich.cells import cell_len
from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from cockpit.compare import CompareError, Comparison, TextTable, compare_pipelines, comparison_tables, \
    pipelines_to_compare

TABLE_IDS = ("compare-pipelines", "compare-configs", "compare-labels", "compare-seeds",
             "compare-runs")  # comparison_tables' order


def compare_line(comparison: Comparison, runs_dir: Path | None) -> str:
    """One line: how many pipelines, where from, the reference for deltas, and the comparison's notes."""
    first = comparison.pipelines[0]
    where = f" (the followed one, then those in {runs_dir.name})" if runs_dir is not None else ""
    parts = [f"{len(comparison.pipelines)} pipelines{where}", f"Δ against {first.label} {first.name}",
             *comparison.notes]
    return " · ".join(parts)


class CompareScreen(Screen[None]):
    """Pipelines side by side; escape goes back (or quits when it is the app's only screen)."""

    CSS_PATH = "compare.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="compare.back", tooltip="Back to the dashboard"),
    ]

    class Loaded(Message):
        """The folders were read and compared."""

        def __init__(self, comparison: Comparison) -> None:
            super().__init__()
            self.comparison = comparison

    class Failed(Message):
        """The folders could not be compared: one line saying why."""

        def __init__(self, reason: str) -> None:
            super().__init__()
            self.reason = reason

    def __init__(self, *, dirs: Sequence[Path] = (), runs_dir: Path | None = None,
                 comparison: Comparison | None = None) -> None:
        """dirs first, then every other pipeline folder under runs_dir; or a comparison already made."""
        super().__init__()
        self.dirs, self.runs_dir = tuple(dirs), runs_dir
        self.comparison: Comparison | None = None
        self._given = comparison

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("reading pipeline folders…", id="compare-line")
        yield DataTable(id=TABLE_IDS[0], cursor_type="row", zebra_stripes=True)
        with TabbedContent(id="compare-tabs"):
            with TabPane("Dev by config", id="tab-compare-configs"):
                yield DataTable(id=TABLE_IDS[1], cursor_type="row", zebra_stripes=True)
            with TabPane("Per-label test F1", id="tab-compare-labels"):
                yield DataTable(id=TABLE_IDS[2], cursor_type="row", zebra_stripes=True)
            with TabPane("Seeds", id="tab-compare-seeds"):
                yield DataTable(id=TABLE_IDS[3], cursor_type="row", zebra_stripes=True)
            with TabPane("Two runs per label", id="tab-compare-runs"):
                yield DataTable(id=TABLE_IDS[4], cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "compare"
        if self._given is not None:
            self.show(self._given)
        else:
            self.compare_folders()

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare", name="compare")
    def compare_folders(self) -> None:
        folders = pipelines_to_compare(self.dirs, self.runs_dir)
        try:
            comparison = compare_pipelines(folders)
        except CompareError as exc:
            self.post_message(self.Failed(str(exc)))
            return
        self.post_message(self.Loaded(comparison))

    def on_compare_screen_loaded(self, message: Loaded) -> None:
        self.show(message.comparison)

    def on_compare_screen_failed(self, message: Failed) -> None:
        self.query_one("#compare-line", Static).update(message.reason)

    def show(self, comparison: Comparison) -> None:
        self.comparison = comparison
        self.query_one("#compare-line", Static).update(compare_line(comparison, self.runs_dir))
        for table_id, spec in zip(TABLE_IDS, comparison_tables(comparison)):
            self._fill(self.query_one(f"#{table_id}", DataTable), spec)
        self.query_one(f"#{TABLE_IDS[0]}", DataTable).focus()

    @staticmethod
    def _fill(table: DataTable, spec: TextTable) -> None:
        table.clear(columns=True)
        table.border_title = spec.title
        table.border_subtitle = "" if spec.rows else spec.empty
        for i, (header, numeric) in enumerate(zip(spec.columns, spec.numeric)):
            table.add_column(Text(header, justify="right" if numeric else "left"), key=str(i),
                             width=max([cell_len(header)] + [cell_len(row[i]) for row in spec.rows]))
        for row in spec.rows:
            table.add_row(*(Text(cell, justify="right") if numeric else cell
                            for cell, numeric in zip(row, spec.numeric)))

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
        else:
            self.app.exit()


class CompareApp(App[None]):
    """`goemo-cockpit compare DIR...`: the compare screen on its own."""

    TITLE = "goemo-cockpit"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="compare_app.quit", tooltip="Close the comparison"),
    ]

    def __init__(self, comparison: Comparison) -> None:
        super().__init__()
        self.comparison = comparison

    def get_default_screen(self) -> Screen[None]:
        return CompareScreen(comparison=self.comparison)
