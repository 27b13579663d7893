"""DataTables fed from snapshots: runs, leaderboard, oversampling, data sources, per-label F1.

`SnapshotTable.set_rows` takes (row key, raw values) pairs; it formats them, keeps the
cursor on the same row key once the user has put it somewhere (until then it stays on the
top row, so a live ranking shows its leader whatever order the rows arrived in), updates
cells in place when the rows are the same, and sorts by any column (header click or `o`)
on the raw values rather than on the formatted text.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from cockpit.snapshots import (SECONDARY_THRESHOLD, TUNED_CV_LABEL, LeaderRow, OversampleRow, RunView, SourceRow,
                               TrialRow, dropped_text, f1_at, ranking_label, train_rows_text)
from trainer.contract import DEFAULT_PRIMARY_THRESHOLD, DEFAULT_SELECT_BY
from trainer.contract import TUNED_CV_FIELD
from cockpit.widgets.format import DASH, fmt_delta, fmt_duration, fmt_float

Row = tuple[str, tuple[Any, ...]]


def _right(text: str) -> Text:
    return Text(text, justify="right")


def _width(cell: Any) -> int:
    return cell.cell_len if isinstance(cell, Text) else cell_len(str(cell))


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (1, 0)
    return (0, value.lower() if isinstance(value, str) else value)


class SnapshotTable(DataTable):
    """A DataTable showing rows of raw values, re-sortable by column."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "cycle_sort", "Sort", id="table.sort", tooltip="Sort by the next column (again: reverse)"),
    ]

    DEFAULT_CSS = """
    SnapshotTable {
        height: 1fr;
        border: round $primary 40%;
        border-title-color: $text;
    }
    SnapshotTable:focus { border: round $primary; }
    """

    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = ()
    """(column key, header label) pairs; a label may hold ``{f1}`` / ``{micro}``, filled in by `set_primary`."""

    OPTIONAL_COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = ()
    """Columns after COLUMNS that `set_columns` adds only when some row has a value for them."""

    def __init__(self, title: str = "", *, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self.border_title = self.title_text = title  # title_text: what a subclass adds to
        self._rows: tuple[Row, ...] = ()
        self._shown: list[Row] = []
        self._widths: list[int] = []
        self._labels: tuple[str, ...] = ()
        self.columns_shown: tuple[tuple[str, str], ...] = self.COLUMNS
        self.sort_column: int | None = None
        self.sort_reverse = False
        self._primary = DEFAULT_PRIMARY_THRESHOLD
        self._follow_cursor = False  # set once the cursor is moved by anything but a redraw
        self._redrawing = False
        self.set_primary(DEFAULT_PRIMARY_THRESHOLD)

    def on_mount(self) -> None:
        self._render_rows()

    def set_primary(self, primary: float) -> None:
        """Header labels at this primary threshold (``F1@0.3``); redraws the header when they change."""
        self._primary = primary
        labels = tuple(label.format(f1=f1_at(primary), micro=f1_at(primary, "µF1"))
                       for _, label in self.columns_shown)
        if labels != self._labels:
            self._labels = labels
            self._widths = []
            if self.is_mounted:
                self._render_rows()

    def set_columns(self, optional: int) -> None:
        """Show COLUMNS and the first `optional` of OPTIONAL_COLUMNS; rows then carry that many values."""
        self.use_columns(self.COLUMNS + self.OPTIONAL_COLUMNS[:optional])

    def use_columns(self, columns: tuple[tuple[str, str], ...]) -> None:
        """Show these (key, label) columns; rows then carry one value per column."""
        if columns != self.columns_shown:
            self.columns_shown = columns
            if self.sort_column is not None and self.sort_column >= len(columns):
                self.sort_column, self.sort_reverse = None, False
            self._rows = ()  # the rows set next have the new width
            self.set_primary(self._primary)

    def set_rows(self, rows: Sequence[Row]) -> None:
        """Show these (row key, values) pairs; a key seen before in the same call is dropped."""
        seen: set[str] = set()
        unique = []
        for key, values in rows:
            if key not in seen:  # DataTable refuses a duplicate row key
                seen.add(key)
                unique.append((key, values))
        rows = tuple(unique)
        if rows != self._rows:
            self._rows = rows
            if self.is_mounted:
                self._render_rows()

    def sort_by(self, column: int) -> None:
        """Sort by a column; the same column again reverses the order."""
        if self.sort_column == column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, False
        self._widths = []  # rebuild, for the header arrow
        self._render_rows()

    def _render_rows(self) -> None:
        rows = list(self._rows)
        if self.sort_column is not None:
            col = self.sort_column
            rows.sort(key=lambda r: _sort_key(r[1][col]), reverse=self.sort_reverse)
        cells = [self.format_row(values) for _, values in rows]
        labels = [label + (("" if i != self.sort_column else " ▼" if self.sort_reverse else " ▲"))
                  for i, label in enumerate(self._labels)]
        widths = [max([cell_len(label)] + [_width(row[i]) for row in cells]) for i, label in enumerate(labels)]
        keys = [key for key, _ in rows]
        if keys == [key for key, _ in self._shown] and widths == self._widths:
            for (key, values), new, (_, old) in zip(rows, cells, self._shown):
                if values != old:
                    for (col_key, _), cell, old_cell in zip(self.columns_shown, new, self.format_row(old)):
                        if cell != old_cell:
                            self.update_cell(key, col_key, cell)
        else:
            # Explicit column widths: DataTable's auto widths settle only on idle, and a frame
            # drawn before that keeps truncated cells in its line cache.
            current = self.cursor_key if self._follow_cursor else None
            self._redrawing = True
            try:
                self.clear(columns=True)
                for (col_key, _), label, width in zip(self.columns_shown, labels, widths):
                    self.add_column(label, key=col_key, width=width)
                for key, row in zip(keys, cells):
                    self.add_row(*row, key=key)
                if current in keys:
                    self.move_cursor(row=keys.index(current), animate=False)
            finally:
                self._redrawing = False
            self._widths = widths
        self._shown = rows

    def watch_cursor_coordinate(self, old_coordinate: Coordinate, new_coordinate: Coordinate) -> None:
        # A move by a key, a click or select_key pins the cursor to its row from then on; the
        # clear-and-refill of a redraw does not (otherwise whichever row happened to be on top
        # of an early, partial ranking would keep the cursor after the leader arrives).
        super().watch_cursor_coordinate(old_coordinate, new_coordinate)
        if not self._redrawing and old_coordinate != new_coordinate:
            self._follow_cursor = True

    @property
    def cursor_key(self) -> str | None:
        """Row key under the cursor, or None for an empty table."""
        if not self._shown or not 0 <= self.cursor_row < len(self._shown):
            return None
        return self._shown[self.cursor_row][0]

    def select_key(self, key: str | None) -> None:
        keys = [k for k, _ in self._shown]
        if key in keys:
            self._follow_cursor = True
            self.move_cursor(row=keys.index(key), animate=False)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.sort_by(event.column_index)

    def action_cycle_sort(self) -> None:
        if self.sort_column is None:
            self.sort_column, self.sort_reverse = 0, False
        elif not self.sort_reverse:
            self.sort_reverse = True
        else:
            self.sort_column, self.sort_reverse = (self.sort_column + 1) % len(self.columns_shown), False
        self._widths = []
        self._render_rows()


def _state_text(run: RunView) -> str:
    """A run's state cell: why Slurm keeps it waiting, or that early stopping ended it on a plateau."""
    if run.pending_reason:
        return f"pending: {run.pending_reason}"
    if run.plateau_since is not None and run.status == "completed":
        return f"plateau since step {run.plateau_since}"
    return run.status


class RunsTable(SnapshotTable):
    COLUMNS = (("run", "run"), ("state", "state"), ("step", "step"), ("epoch", "epoch"), ("sps", "samples/s"),
               ("eta", "ETA"), ("loss", "loss"), ("f1", "best {f1}"))

    def show(self, runs: Sequence[RunView], primary: float = DEFAULT_PRIMARY_THRESHOLD) -> None:
        self.set_primary(primary)
        self.set_rows([(r.run, (r.run, _state_text(r),
                                (r.step, r.total_steps or 0), r.epoch, r.samples_per_s, r.eta_s,
                                r.loss, r.best_dev.f1_primary if r.best_dev else None)) for r in runs])

    def format_row(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        run, status, (step, total), epoch, sps, eta, loss, f1 = values
        return (run, status, _right(f"{step}/{total}" if total else str(step)), _right(f"{epoch:.2f}"),
                _right(fmt_float(sps, 1)), _right(fmt_duration(eta)), _right(fmt_float(loss)), _right(fmt_float(f1)))


class LeaderboardTable(SnapshotTable):
    """The pipeline's ranking; ``#`` is the supervisor's rank, and the border title names the score behind it
    (the header arrows stay the user's own sort). "tuned" and "tuned cv" are short, as the headless table and
    compare say them, so the wide grid's cell still shows every column.

    When a phase runs several seeds (``seeds = k``) the rows are configs, best first by the selection rule: the
    mean over seeds, then n with the selection score's sd and the 95 % interval of its mean, and the pooled paired
    Δs, first, where a narrow cell still shows them; ``e`` unfolds each config's seed runs under its row."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "toggle_seeds", "Seeds", id="leaderboard.seeds",
                tooltip="Show or hide each config's seed runs under its row (seeds = k)"),
    ]
    COLUMNS = (("rank", "#"), ("run", "run"), ("f1", "{f1}"), ("f1_05", f1_at(SECONDARY_THRESHOLD)),
               ("micro", "{micro}"), ("tuned", "tuned"), (TUNED_CV_FIELD, TUNED_CV_LABEL), ("delta", "Δ base"),
               ("target", "target"), ("status", "status"), ("test", "test {f1}"))
    # summary.json's paired Δ against the leader (≈: a tie), shown once the supervisor has computed one.
    OPTIONAL_COLUMNS = (("vs_leader", "Δ leader [95%]"),)
    GROUPED_COLUMNS = (("rank", "#"), ("run", "config"), ("f1", "{f1}"), ("seeds", "n ± sd [95%]"),
                       ("vs_leader", "Δ leader [95%]"), ("vs_baseline", "Δ base [95%]"),
                       (TUNED_CV_FIELD, TUNED_CV_LABEL), ("tuned", "tuned"), ("status", "status"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unfold_seeds = False
        self._grouped = False
        self._last: tuple[Sequence[LeaderRow], float, str, Sequence[LeaderRow]] = ((), DEFAULT_PRIMARY_THRESHOLD,
                                                                                   DEFAULT_SELECT_BY, ())

    def show(self, rows: Sequence[LeaderRow], primary: float = DEFAULT_PRIMARY_THRESHOLD,
             select_by: str = DEFAULT_SELECT_BY, groups: Sequence[LeaderRow] = ()) -> None:
        self._last = (rows, primary, select_by, groups)
        self._grouped = bool(groups)
        if groups:
            self.use_columns(self.GROUPED_COLUMNS)
        else:
            self.set_columns(len(self.OPTIONAL_COLUMNS) if any(r.vs_leader for r in rows) else 0)
        self.set_primary(primary)
        ranked = f"ranked by dev {ranking_label(select_by, primary)}"
        grouped = "configs over seeds · e: seeds" if groups else ""
        self.border_title = " · ".join(t for t in (self.title_text, ranked, grouped) if t)
        if not groups:
            width = len(self.columns_shown)
            self.set_rows([(r.run, (i, r.run, r.f1_primary, r.f1_05, r.micro_primary, r.tuned, r.tuned_cv, r.delta,
                                    r.meets_target, r.status, r.test_f1, r.vs_leader)[:width])
                           for i, r in enumerate(rows, 1)])
            return
        by_run = {r.run: r for r in rows}
        table = []
        for i, group in enumerate(groups, 1):
            table.append((f"config:{group.run}", self._grouped_values(i, group.run, group)))
            if self.unfold_seeds:
                table.extend((run, self._grouped_values(None, f"  ↳ {run}", by_run[run]))
                             for run in group.members if run in by_run)
        self.set_rows(table)

    @staticmethod
    def _grouped_values(rank: int | None, name: str, r: LeaderRow) -> tuple[Any, ...]:
        """A config's row (means over seeds) or one of its seed runs (that run's own numbers)."""
        seeds = f"{r.seeds_text} {r.spread}".strip()
        baseline = r.vs_baseline if r.n is not None else fmt_delta(r.delta)
        return (rank, name, r.f1_primary, seeds, r.vs_leader, baseline, r.tuned_cv, r.tuned, r.status)

    def action_toggle_seeds(self) -> None:
        self.unfold_seeds = not self.unfold_seeds
        self.show(*self._last)

    def format_row(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        if self._grouped:
            rank, name, f1, seeds, vs_leader, baseline, tuned_cv, tuned, status = values
            return (_right(DASH if rank is None else str(rank)), name, _right(fmt_float(f1)), _right(seeds or DASH),
                    _right(vs_leader or DASH), _right(baseline or DASH), _right(fmt_float(tuned_cv)),
                    _right(fmt_float(tuned)), status)
        rank, run, f1, f1_05, micro, tuned, tuned_cv, delta, target, status, test, *vs_leader = values
        met = DASH if target is None or f1 is None else "✔ met" if target else "✘"
        return (_right(str(rank)), run, _right(fmt_float(f1)), _right(fmt_float(f1_05)), _right(fmt_float(micro)),
                _right(fmt_float(tuned)), _right(fmt_float(tuned_cv)), _right(fmt_delta(delta)), met, status,
                _right(fmt_float(test))) + tuple(_right(text or DASH) for text in vs_leader)


class OversamplingTable(SnapshotTable):
    COLUMNS = (("label", "label"), ("before", "before"), ("after", "after"), ("factor", "factor"),
               ("weight", "weight"))
    # Train rows able to show the label (multi-source trainers); a short header, as the wide grid cell is narrow.
    OPTIONAL_COLUMNS = (("observed", "obs."),)

    def show(self, rows: Sequence[OversampleRow]) -> None:
        self.set_columns(len(self.OPTIONAL_COLUMNS) if any(r.observed is not None for r in rows) else 0)
        width = len(self.columns_shown)
        self.set_rows([(r.label, (r.label, r.before, r.after, r.factor, r.weight, r.observed)[:width]) for r in rows])

    def format_row(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        label, before, after, factor, weight, *observed = values
        return (label, _right(str(before)), _right(str(after)), _right(DASH if factor is None else f"×{factor:.2f}"),
                _right(fmt_float(weight, 3))) + tuple(_right(DASH if n is None else str(n)) for n in observed)


class SourcesTable(SnapshotTable):
    """The training data sources: rows per split, labels observed, rows dropped, score on each one's dev split."""

    # The dev score sits before `dropped`, the one free-text column, so it stays in view at 80 columns.
    COLUMNS = (("source", "source"), ("kind", "kind"), ("train", "train rows"), ("dev", "dev"),
               ("observed", "observed"), ("f1", "dev {f1}"), ("dropped", "dropped"))

    def show(self, rows: Sequence[SourceRow], primary: float = DEFAULT_PRIMARY_THRESHOLD) -> None:
        self.set_primary(primary)
        # Sort values: train rows by rows after oversampling, observed by label count.
        self.set_rows([(r.name, (r.name, r.kind, (r.train_after, r.train_before), r.dev,
                                 (len(r.observed), r.observed_text), r.dev_f1, dropped_text(r.dropped)))
                       for r in rows])

    def format_row(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        name, kind, (after, before), dev, (_, observed), f1, dropped = values
        return (name, kind, _right(train_rows_text(before, after)), _right(DASH if dev is None else str(dev)),
                _right(observed), _right(fmt_float(f1)), dropped)


class PerClassTable(SnapshotTable):
    COLUMNS = (("label", "label"), ("precision", "precision"), ("recall", "recall"), ("f1", "{f1}"),
               ("support", "support"))

    def show(self, run: RunView | None, primary: float = DEFAULT_PRIMARY_THRESHOLD) -> None:
        self.set_primary(primary)
        scores = run.per_class if run else ()
        self.set_rows([(c.label, (c.label, c.precision, c.recall, c.f1, c.support)) for c in scores])

    def format_row(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        label, precision, recall, f1, support = values
        return (label, _right(fmt_float(precision, 3)), _right(fmt_float(recall, 3)), _right(fmt_float(f1, 3)),
                _right(DASH if support is None else str(support)))


class FinalLabelsTable(SnapshotTable):
    """The final model on test, per label: the dev-tuned threshold, precision, recall, F1 with its 95 %
    bootstrap interval, and support (the final test eval's ``per_label``)."""

    COLUMNS = (("label", "label"), ("threshold", "threshold"), ("precision", "precision"), ("recall", "recall"),
               ("f1", "F1 [95% interval]"), ("support", "support"))

    def show(self, run: RunView | None, primary: float = DEFAULT_PRIMARY_THRESHOLD) -> None:
        self.set_primary(primary)
        rows = run.final_labels if run else ()
        self.set_rows([(r.label, (r.label, r.threshold, r.precision, r.recall, (r.f1, r.f1_low, r.f1_high),
                                  r.support)) for r in rows])

    def format_row(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        label, threshold, precision, recall, (f1, low, high), support = values
        interval = f" [{fmt_float(low, 2)}, {fmt_float(high, 2)}]" if low is not None and high is not None else ""
        return (label, _right(fmt_float(threshold, 2)), _right(fmt_float(precision, 3)),
                _right(fmt_float(recall, 3)), _right(f"{fmt_float(f1, 3)}{interval}"),
                _right(DASH if support is None else str(support)))


class TrialsTable(SnapshotTable):
    """The search phase's trials: number, run, state, objective, pruned step, sampled parameters (last: free text).
    A running trial shows its latest report to the pruner, with that eval's step."""

    COLUMNS = (("trial", "#"), ("run", "run"), ("state", "state"), ("value", "value"), ("step", "step"),
               ("params", "params"))

    def show(self, rows: Sequence[TrialRow]) -> None:
        self.set_rows([(str(r.trial), (r.trial, r.run, r.state, r.value, r.step, r.params)) for r in rows])

    def format_row(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        trial, run, state, value, step, params = values
        return (_right(str(trial)), run, state, _right(fmt_float(value)), _right(DASH if step is None else str(step)),
                params)
