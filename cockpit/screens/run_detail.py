"""Run detail: per-label F1 over the dev evals (a heatmap) and of the last one, lr and loss curves, stderr tail,
stall dumps."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Log, OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option

from cockpit.snapshots import TUNED_CV_LABEL, PipelineView, RunView, f1_at
from cockpit.tail import read_text_tail
from cockpit.widgets import FinalLabelsTable, LabelHeatmap, LineChart, PerClassTable
from cockpit.widgets.format import fmt_duration, fmt_float, fmt_si
from trainer.contract import DEFAULT_PRIMARY_THRESHOLD, STDERR_FILE, RunPaths

STDERR_LINES = 200
STDERR_EVERY_S = 2.0


def learning_text(run: RunView) -> list[str]:
    """``AUC 0.82 · 21/28 labels``: the latest dev eval's learning figures, when the trainer reports them."""
    figures = run.learning
    if figures is None:
        return []
    labels = f"{figures.labels_predicted}/{figures.labels} labels" if figures.labels_predicted is not None else ""
    return [part for part in (f"AUC {fmt_float(figures.auc_macro, 2)}", labels) if part]


def run_line(run: RunView, primary: float = DEFAULT_PRIMARY_THRESHOLD) -> str:
    best = run.best_dev
    status = f"{run.status} (queued in Slurm: {run.pending_reason})" if run.pending_reason else run.status
    parts = [f"{run.run}: {status}", f"attempt {run.attempt}", f"device {run.device or '–'}"
             + (f" (job {run.job_id})" if run.job_id else ""),
             f"step {run.step}" + (f"/{run.total_steps}" if run.total_steps else ""), f"epoch {run.epoch:.2f}",
             f"ETA {fmt_duration(run.eta_s)}", f"lr {fmt_si(run.lr)}", f"grad {run.health.text}",
             *learning_text(run),
             f"best dev {f1_at(primary)} {fmt_float(best.f1_primary if best else None)}"
             + (f" @ step {best.step}" if best else "")
             + (f" ({TUNED_CV_LABEL} {fmt_float(best.tuned_cv)})" if best and best.tuned_cv is not None else "")]
    return " · ".join(parts)


class RunDetailScreen(Screen[None]):
    """Everything about one run; its stderr tail is re-read by a thread worker every 2 s."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", id="run_detail.back", tooltip="Back to the dashboard"),
    ]

    class StderrRead(Message):
        def __init__(self, lines: list[str]) -> None:
            super().__init__()
            self.lines = lines

    def __init__(self, run_id: str, pipeline_dir: Path) -> None:
        super().__init__()
        self.run_id, self.pipeline_dir = run_id, pipeline_dir
        self._dumps: tuple[str, ...] = ()
        self._stderr: list[str] = []
        self._line = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="run-line")
        with TabbedContent(id="run-tabs"):
            with TabPane("Labels over time", id="tab-labels"):
                with VerticalScroll(id="labels-scroll"):
                    yield LabelHeatmap(id="label-heatmap")
            with TabPane("Per-label F1", id="tab-per-class"):
                yield PerClassTable("per-label F1 (last dev eval)", id="per-class")
            with TabPane("Final per label", id="tab-final-labels"):
                yield FinalLabelsTable("the final model on test, per label (thresholds tuned on dev)",
                                       id="final-labels")
            with TabPane("Curves", id="tab-run-curves"):
                yield LineChart("learning rate", colour_offset=1, id="lr-chart")
                yield LineChart("loss", id="run-loss-chart")
            with TabPane("stderr", id="tab-stderr"):
                yield Log(id="stderr", highlight=False)
            with TabPane("Stall dumps", id="tab-dumps"):
                yield OptionList(id="dumps")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.run_id
        self.watch(self.app, "snapshot", self._on_snapshot)
        self.read_stderr()
        self.set_interval(STDERR_EVERY_S, self.read_stderr)

    def _on_snapshot(self, snap: PipelineView | None) -> None:
        run = snap.run(self.run_id) if snap else None
        if run is None:
            self.query_one("#run-line", Static).update(f"{self.run_id}: no events yet")
            return
        line = run_line(run, snap.primary)
        if line != self._line:
            self._line = line
            self.query_one("#run-line", Static).update(line, layout=False)
        self.query_one(PerClassTable).show(run, snap.primary)
        self.query_one(LabelHeatmap).show(run.labels)
        self.query_one(FinalLabelsTable).show(run, snap.primary)
        self.query_one("#lr-chart", LineChart).plot((run.lr_series,), ("lr",))
        self.query_one("#run-loss-chart", LineChart).plot((run.loss_raw, run.loss_smooth), ("raw", "EMA"))
        if run.stall_dumps != self._dumps:
            self._dumps = run.stall_dumps
            dumps = self.query_one("#dumps", OptionList)
            dumps.clear_options()
            dumps.add_options([Option(d, id=str(i)) for i, d in enumerate(self._dumps)] or
                              [Option("no stalls", disabled=True)])

    @work(thread=True, exclusive=True, exit_on_error=False, group="stderr", name="read-stderr")
    def read_stderr(self) -> None:
        self.post_message(self.StderrRead(read_text_tail(RunPaths(self.pipeline_dir / self.run_id).stderr,
                                                         STDERR_LINES)))

    def on_run_detail_screen_stderr_read(self, message: StderrRead) -> None:
        if message.lines == self._stderr:
            return
        self._stderr = message.lines
        log = self.query_one("#stderr", Log)
        log.clear()
        log.write_lines(message.lines or [f"({STDERR_FILE} is empty or missing)"])

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            self.app.open_dump(self._dumps[int(event.option.id)])  # type: ignore[attr-defined]
