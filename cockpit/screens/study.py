"""The search phase's study (issue 21 §3): every trial, the best objective so far, parameter importances and the
best trial's config. `c` writes that config as a ``[[configs]]`` block to ``<pipeline>/best_config.toml``.

Opened from the dashboard with `t`; draws the app's snapshot (`PipelineView.study`) and never reads files
itself, except the saved preset.toml when `c` rebuilds the best trial's config.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from cockpit.snapshots import PipelineView, StudyView
from cockpit.study_state import param_text
from cockpit.widgets import LineChart
from cockpit.widgets.format import fmt_float
from cockpit.widgets.tables import TrialsTable

NO_STUDY = "no search phase in this pipeline"
BAR_CELLS = 16


def study_line(study: StudyView) -> str:
    """One line: whether the study runs or why it ended, trials by state (those with any), the best trial."""
    counts = ", ".join(f"{n} {state}" for n, state in ((study.complete, "complete"), (study.pruned, "pruned"),
                                                       (study.failed, "failed"), (study.running, "running")) if n)
    best = (f"best trial {study.best_trial} ({study.best_run}) {fmt_float(study.best_value)}"
            if study.best_trial is not None else "no complete trial yet")
    status = f"study ended ({study.reason})" if study.ended else "study searching"
    return f"{status}: {counts or 'no trial yet'} · {best}"


def importance_bars(importances: tuple[tuple[str, float], ...]) -> str:
    """One line per parameter: name, a bar of BAR_CELLS cells for its share, the share."""
    if not importances:
        return "needs two complete trials"
    width = max(len(name) for name, _ in importances)
    lines = []
    for name, share in importances:
        eighths = round(max(0.0, min(1.0, share)) * BAR_CELLS * 8)
        bar = "█" * (eighths // 8) + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[eighths % 8]
        lines.append(f"{name:<{width}} {bar:<{BAR_CELLS}} {share:.2f}")
    return "\n".join(lines)


def best_config_text(study: StudyView) -> str:
    """The best trial and its parameters, one per line."""
    if study.best_trial is None:
        return "no complete trial yet"
    head = f"trial {study.best_trial} · {study.best_run} · {fmt_float(study.best_value)}"
    return "\n".join([head, *(f"{name} = {param_text(value)}" for name, value in study.best_params)])


class StudyScreen(Screen[None]):
    """The search phase's trials and what they found."""

    CSS_PATH = "study.tcss"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", id="study.back", tooltip="Back to the dashboard"),
        Binding("c", "copy_best", "Copy best config", id="study.copy_best",
                tooltip="Write the best trial's config as a [[configs]] block to <pipeline>/best_config.toml"),
    ]

    def __init__(self, pipeline_dir: Path | None) -> None:
        super().__init__()
        self.pipeline_dir = pipeline_dir
        self._study: StudyView | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(NO_STUDY, id="study-line")
        yield TrialsTable("trials", id="trials")
        with Horizontal(id="study-lower"):
            yield LineChart("best so far", colour_offset=2, empty_text="no finished trial yet", x_label="trial",
                            id="best-so-far")
            with Vertical(id="study-side"):
                yield Static("", id="importances")
                yield Static("", id="best-config")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#importances", Static).border_title = "importances"
        self.query_one("#best-config", Static).border_title = "best config (c: copy)"
        self.watch(self.app, "snapshot", self._on_snapshot)
        self.query_one(TrialsTable).focus()

    def _on_snapshot(self, snap: PipelineView | None) -> None:
        study = snap.study if snap is not None else None
        if study is None or study == self._study:
            return
        self._study = study
        self.query_one("#study-line", Static).update(study_line(study))
        self.query_one(TrialsTable).show(study.trials)
        self.query_one("#best-so-far", LineChart).plot((study.best_so_far,), ("best objective",))
        self.query_one("#importances", Static).update(importance_bars(study.importances))
        self.query_one("#best-config", Static).update(best_config_text(study))

    def action_copy_best(self) -> None:
        from cockpit.study_export import ExportError, write_best_config  # the preset model: only when asked

        if self._study is None or self.pipeline_dir is None:
            self.notify(NO_STUDY, severity="warning")
            return
        try:
            path = write_best_config(self.pipeline_dir, self._study)
        except (ExportError, OSError) as exc:
            self.notify(str(exc), title="best config not written", severity="error")
            return
        self.notify(f"wrote {path}", title="best config")
