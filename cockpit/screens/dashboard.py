"""Dashboard: runs, loss and F1 curves, grad health, stalls, leaderboard, oversampling, data sources, GPUs.

Below 140 columns the panels fold into tabs; at 140 and more they share one grid. The
screen draws app snapshots (`CockpitApp.snapshot`, `telemetry`, `selected_run`) and never
reads files itself. The data sources table shows only when the trainer lists its sources
(older event files do not): in the oversampling tab, renamed "Data", or under the grid.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from cockpit.snapshots import SECONDARY_THRESHOLD, PipelineView, RunView, SeriesView, f1_at
from trainer.devices import TelemetrySnapshot
from cockpit.widgets import (AlertsLog, GpuPanel, GradHealthPanel, LeaderboardTable, LineChart, OversamplingTable,
                             RunsTable, SourcesTable, StallBanner)
from cockpit.widgets.format import fmt_ago, fmt_float
from trainer.contract import DEFAULT_PRIMARY_THRESHOLD, PIPELINE_FILE

WIDE_COLUMNS = 140
DATA_TAB = "tab-oversampling"
DATA_TAB_LABELS = ("Oversampling", "Data")  # without, with a sources table above the oversampling one


def pipeline_line(snap: PipelineView) -> str:
    """One line: preset, phase, status, run counts, age of the last event."""
    if not snap.pipeline and not snap.runs:
        return f"waiting for {PIPELINE_FILE}…"
    last_phase = max(snap.phases or (snap.phase or 0,))
    phase = f"phase {snap.phase}/{last_phase} {snap.phase_name}" if snap.phase else "phase –"
    status = snap.status if snap.exit_code is None else f"{snap.status} (exit {snap.exit_code})"
    counts = Counter(r.status for r in snap.runs)
    runs = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    parts = [status, phase, runs or "no runs yet", f"preset {snap.preset or '?'}",
             f"last event {fmt_ago(snap.now, snap.last_event_t)}"]
    if snap.skipped_events:
        parts.append(f"{snap.skipped_events} bad events skipped")
    return " · ".join(parts)


def final_line(snap: PipelineView) -> str:
    final = snap.final
    target = f" · target {snap.target_f1:.2f}" if snap.target_f1 is not None else ""
    reference = f" · reference {snap.reference_f1:.4f}" if snap.reference_f1 is not None else ""
    if final is None:
        return f"final test: not yet{target}{reference}"
    return (f"final {final.run} ({final.model_text}), test: "
            f"{f1_at(snap.primary)} {fmt_float(final.test_f1_primary)} · "
            f"{f1_at(SECONDARY_THRESHOLD, '')} {fmt_float(final.test_f1_05)} · tuned {final.tuned_text} · "
            f"{f1_at(snap.primary, 'µF1')} {fmt_float(final.test_micro_primary)}{target}")


def dev_f1_title(snap: PipelineView | None) -> str:
    return "dev " + f1_at(snap.primary if snap is not None else DEFAULT_PRIMARY_THRESHOLD)


class DashboardScreen(Screen[None]):
    """The main view of one pipeline folder."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_run_detail", "Run detail", id="dashboard.run_detail",
                tooltip="Per-label F1, learning rate, stderr and stall dumps of the selected run"),
        Binding("c", "compare", "Compare", id="dashboard.compare", show=False,
                tooltip="This pipeline beside the others in the runs folder: dev F1 per config, final test, "
                        "per-label deltas, mean ± std over seeds"),
        # In the footer only when the pipeline has a search phase (check_action).
        Binding("t", "study", "Trials", id="dashboard.study",
                tooltip="The search phase's study: trials, best so far, importances, the best config"),
    ]

    wide: reactive[bool] = reactive(False, init=False)
    """True at WIDE_COLUMNS and more: a panel grid instead of tabs."""

    def __init__(self) -> None:
        super().__init__()
        self.set_reactive(DashboardScreen.wide, self.app.size.width >= WIDE_COLUMNS)
        self._texts: dict[Static, str] = {}
        self._has_study = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="pipeline-line")
        yield StallBanner(id="stall-banner")
        if self.wide:
            with Grid(id="dashboard-grid"):
                yield RunsTable("runs", id="runs")
                with Vertical(id="system-cell"):
                    yield GpuPanel(id="gpu")
                    yield AlertsLog(id="alerts")
                yield LineChart("loss", id="loss-chart")
                yield LineChart(dev_f1_title(self.app_snapshot), colour_offset=2, id="f1-chart")
                yield GradHealthPanel(id="grad-health")
                with Vertical(id="leaderboard-cell"):
                    yield LeaderboardTable("leaderboard", id="leaderboard")
                    yield Static("", id="final-line")
                yield OversamplingTable("oversampling", id="oversampling")
            # Under the grid at full width: a grid cell is too narrow for seven columns.
            yield SourcesTable("data sources", id="sources")
        else:
            with TabbedContent(id="dashboard-tabs"):
                with TabPane("Runs", id="tab-runs"):
                    yield RunsTable("runs", id="runs")
                    yield GradHealthPanel(id="grad-health")
                with TabPane("Curves", id="tab-curves"):
                    yield LineChart("loss", id="loss-chart")
                    yield LineChart(dev_f1_title(self.app_snapshot), colour_offset=2, id="f1-chart")
                with TabPane("Leaderboard", id="tab-leaderboard"):
                    yield LeaderboardTable("leaderboard", id="leaderboard")
                    yield Static("", id="final-line")
                with TabPane(DATA_TAB_LABELS[0], id=DATA_TAB):
                    yield SourcesTable("data sources", id="sources")
                    yield OversamplingTable("oversampling", id="oversampling")
                with TabPane("System", id="tab-system"):
                    yield GpuPanel(id="gpu")
                    yield AlertsLog(id="alerts")
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "snapshot", self._on_snapshot)
        self.watch(self.app, "telemetry", self._on_telemetry)
        self.watch(self.app, "selected_run", self._on_selected_run, init=False)
        self.query_one(RunsTable).focus()

    def on_resize(self, event: Any) -> None:
        self.wide = event.size.width >= WIDE_COLUMNS

    async def watch_wide(self) -> None:
        self._texts.clear()
        await self.recompose()
        self.query_one(RunsTable).focus()
        self._on_snapshot(self.app_snapshot)
        self._on_telemetry(getattr(self.app, "telemetry", None))

    def on_screen_resume(self) -> None:
        self._on_snapshot(self.app_snapshot)

    @property
    def app_snapshot(self) -> PipelineView | None:
        return getattr(self.app, "snapshot", None)

    def _selected(self, snap: PipelineView) -> RunView | None:
        return snap.run(getattr(self.app, "selected_run", None))

    def _on_snapshot(self, snap: PipelineView | None) -> None:
        if snap is None or not self.is_current:
            return
        self._set_text("#pipeline-line", pipeline_line(snap), layout=False)  # always one line
        if (snap.study is not None) != self._has_study:
            self._has_study = snap.study is not None
            self.refresh_bindings()
        self.query_one(StallBanner).show(snap.stalls)
        runs = self.query_one(RunsTable)
        runs.show(snap.runs, snap.primary)
        runs.select_key(getattr(self.app, "selected_run", None))
        self.query_one(GradHealthPanel).show(snap.runs)
        self.query_one(GpuPanel).show_hosts(snap.hosts, snap.now)
        self.query_one(LeaderboardTable).show(snap.leaderboard, snap.primary, snap.select_by, snap.groups)
        self._set_text("#final-line", final_line(snap))
        oversampling = self.query_one(OversamplingTable)
        oversampling.show(snap.oversampling)
        self.set_class(any(row.observed is not None for row in snap.oversampling), "-observed-counts")
        if snap.oversampling_run:
            oversampling.border_title = f"oversampling (from {snap.oversampling_run})"
        self._show_sources(snap)
        self.query_one(AlertsLog).show(snap.alerts, snap.now)
        self._show_curves(snap, self._selected(snap))

    def _show_sources(self, snap: PipelineView) -> None:
        sources = self.query_one(SourcesTable)
        sources.display = bool(snap.sources)
        if not self.wide:
            tab = self.query_one("#dashboard-tabs", TabbedContent).get_tab(DATA_TAB)
            label = DATA_TAB_LABELS[bool(snap.sources)]
            if tab.label_text != label:
                tab.label = label
        if not snap.sources:
            return
        sources.show(snap.sources, snap.primary)
        taxonomy = f", taxonomy {snap.taxonomy}" if snap.taxonomy else ""
        sources.border_title = f"data sources (from {snap.oversampling_run}{taxonomy})"
        scored_by = sorted({s.dev_f1_run for s in snap.sources if s.dev_f1_run})
        sources.border_subtitle = f"dev {f1_at(snap.primary)} of {', '.join(scored_by)}" if scored_by else ""

    def _set_text(self, selector: str, text: str, layout: bool = True) -> None:
        """Update a Static only when its text changes (a layout pass repaints the whole screen)."""
        static = self.query_one(selector, Static)
        if self._texts.get(static) != text:
            self._texts[static] = text
            static.update(text, layout=layout)

    def _show_curves(self, snap: PipelineView, run: RunView | None) -> None:
        name = run.run if run else "no run selected"
        loss, f1 = self.query_one("#loss-chart", LineChart), self.query_one("#f1-chart", LineChart)
        loss.plot((run.loss_raw, run.loss_smooth) if run else (), ("raw", "EMA"), title=f"loss · {name}")
        label = dev_f1_title(snap)
        best = run.best_dev if run else None
        # The best eval (the one select_by picked, as the trainer keeps its checkpoint) as a point of its own.
        marker = (SeriesView((float(best.step),), (best.f1_primary,)),) if best and best.f1_primary is not None else ()
        f1.plot(((run.dev_f1,) + marker) if run else (), (label,) + ((f"best @{best.step}",) if marker else ()),
                title=f"{label} · {name}")

    def _on_telemetry(self, telemetry: TelemetrySnapshot | None) -> None:
        self.query_one(GpuPanel).show(telemetry)

    def _on_selected_run(self, run_id: str | None) -> None:
        snap = self.app_snapshot
        if snap is not None and self.is_current:
            self._show_curves(snap, snap.run(run_id))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if isinstance(event.data_table, RunsTable) and event.row_key.value:
            self.app.selected_run = event.row_key.value  # type: ignore[attr-defined]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if isinstance(event.data_table, (RunsTable, LeaderboardTable)) and event.row_key.value \
                and not event.row_key.value.startswith("config:"):  # a config's row over seeds is no run
            self.app.open_run_detail(event.row_key.value)  # type: ignore[attr-defined]

    def action_open_run_detail(self) -> None:
        self.app.open_run_detail(getattr(self.app, "selected_run", None))  # type: ignore[attr-defined]

    def action_compare(self) -> None:
        from cockpit.screens.compare import CompareScreen

        followed = getattr(self.app, "pipeline_dir", None)
        self.app.push_screen(CompareScreen(dirs=[followed] if followed is not None else [],
                                           runs_dir=getattr(self.app, "runs_dir", None)))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self._has_study if action == "study" else True

    def action_study(self) -> None:
        from cockpit.screens.study import StudyScreen

        self.app.push_screen(StudyScreen(getattr(self.app, "pipeline_dir", None)))
