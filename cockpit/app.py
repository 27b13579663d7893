"""The Textual cockpit: attach to a pipeline folder, watch it live, send control commands.

`make_app()` builds the app for the CLI and for tests alike. File reading happens in two
named thread workers: the tail (one message per 256 KiB chunk of events, with bounded
backlog) and telemetry (about once a second, newer samples replace queued ones). The UI
thread folds events into `PipelineState` and publishes an immutable snapshot about once a
second; screens draw snapshots only.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

from textual import on, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.worker import Worker, WorkerState, get_current_worker

from cockpit.pipeline.control import send_command
from cockpit.screens.dashboard import DashboardScreen
from cockpit.state import TERMINAL, PipelineState
from cockpit.snapshots import PipelineView
from cockpit.tail import PipelineTail
from trainer.devices import TelemetrySampler, TelemetrySnapshot

# Screens other than the dashboard are imported when first opened: start-up time is a feature.

TelemetryFn = Callable[[Mapping[int, str]], TelemetrySnapshot]
PIPELINE_ACTIONS = frozenset({"stop_run", "restart_run", "stop_pipeline", "show_dump", "open_run_detail"})
MAX_PENDING_CHUNKS = 64  # tail chunks queued for the UI before the tail thread waits
IDLE_REPUBLISH_S = 5.0  # without new events, ages on screen ("last event 2m ago") still move


def _commands_provider() -> type:
    """The palette provider, imported when the palette first opens."""
    from cockpit.screens.commands import CockpitCommands

    return CockpitCommands


class CockpitApp(App[None]):
    """Watches one pipeline folder (or offers a picker when none is given)."""

    CSS_PATH = "app.tcss"
    TITLE = "goemo-cockpit"
    COMMANDS = App.COMMANDS | {_commands_provider}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "leave", "Leave", id="cockpit.leave",
                tooltip="Close this view; the supervisor and its training runs keep going"),
        Binding("s", "stop_run", "Stop run", id="cockpit.stop_run",
                tooltip="Ask the supervisor to stop the selected run"),
        Binding("r", "restart_run", "Restart run", id="cockpit.restart_run",
                tooltip="Ask the supervisor to restart the selected run from its last checkpoint"),
        Binding("x", "stop_pipeline", "Stop pipeline", id="cockpit.stop_pipeline",
                tooltip="Stop every run and end the pipeline (asks for confirmation)"),
        Binding("d", "show_dump", "Stack dump", id="cockpit.stall_dump",
                tooltip="Open the stack dump of the latest stall"),
        Binding("a", "attach", "Attach", id="cockpit.attach",
                tooltip="Watch another pipeline folder from the runs folder"),
        Binding("question_mark", "help", "Help", id="cockpit.help", key_display="?",
                tooltip="List every key binding"),
    ]

    snapshot: reactive[PipelineView | None] = reactive(None, always_update=True, init=False)
    """The latest immutable view of the followed pipeline."""
    telemetry: reactive[TelemetrySnapshot | None] = reactive(None, always_update=True, init=False)
    """The latest GPU/CPU sample."""
    selected_run: reactive[str | None] = reactive(None, init=False)
    """The run that s / r / enter act on and whose curves are drawn."""

    class EventsRead(Message):
        """One chunk of events from one file of the followed folder."""

        def __init__(self, generation: int, origin: str, events: list[dict[str, Any]],
                     release: Callable[[], None]) -> None:
            super().__init__()
            self.generation, self.origin, self.events, self.release = generation, origin, events, release

    class TailCaughtUp(Message):
        """Every file of the folder has been read to its end once."""

        def __init__(self, generation: int) -> None:
            super().__init__()
            self.generation = generation

    class TelemetrySampled(Message):
        """A telemetry sample; a newer one replaces an older one still queued."""

        def __init__(self, telemetry: TelemetrySnapshot) -> None:
            super().__init__()
            self.telemetry = telemetry

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, CockpitApp.TelemetrySampled)

    class ControlSent(Message):
        """A control command was written for the supervisor."""

        def __init__(self, cmd: str, run: str | None) -> None:
            super().__init__()
            self.cmd, self.run = cmd, run

    def __init__(self, pipeline_dir: Path | None = None, runs_dir: Path = Path("runs"), preset: str = "quick", *,
                 now: Callable[[], float] = time.time, telemetry: TelemetryFn | None = None,
                 poll_interval: float = 0.25, refresh_interval: float = 1.0, telemetry_interval: float = 1.0) -> None:
        super().__init__()
        self.pipeline_dir = Path(pipeline_dir) if pipeline_dir is not None else None
        self.runs_dir, self.preset = Path(runs_dir), preset
        self.now = now
        self.telemetry_fn = telemetry
        self.poll_interval, self.refresh_interval, self.telemetry_interval = (
            poll_interval, refresh_interval, telemetry_interval)
        self.state = PipelineState()
        self.caught_up = False
        self._dirty = False
        self._stalls_seen = 0
        self._generation = 0  # one per attach: chunks still queued from a previous tail are dropped
        self._published_at = float("-inf")
        self._trainer_pids: Mapping[int, str] = {}  # replaced whole, read by the telemetry thread
        self._pending_telemetry: TelemetrySnapshot | None = None
        self._chunk_slots = threading.Semaphore(MAX_PENDING_CHUNKS)

    def on_mount(self) -> None:
        self.set_interval(self.refresh_interval, self.refresh_snapshot)
        self.sample_telemetry()
        if self.pipeline_dir is None:
            from cockpit.screens.phase_picker import PhasePickerScreen

            self.push_screen(PhasePickerScreen(self.preset, self.runs_dir))
        else:
            self.attach(self.pipeline_dir)

    def attach(self, pipeline_dir: Path) -> None:
        """Follow this pipeline folder from its first event (replacing any other)."""
        self.pipeline_dir = Path(pipeline_dir)
        self.state, self.caught_up, self._dirty, self._stalls_seen = PipelineState(), False, True, 0
        self._generation += 1
        self.selected_run = None
        self.sub_title = self.pipeline_dir.name
        self.follow_pipeline(self.pipeline_dir, self._generation)
        while len(self.screen_stack) > 2:
            self.pop_screen()
        if isinstance(self.screen, DashboardScreen):
            self.refresh_snapshot()
        elif len(self.screen_stack) > 1:
            self.switch_screen(DashboardScreen())
        else:
            self.push_screen(DashboardScreen())

    @work(thread=True, exclusive=True, exit_on_error=False, group="tail", name="tail")
    def follow_pipeline(self, pipeline_dir: Path, generation: int) -> None:
        worker = get_current_worker()
        slots = self._chunk_slots

        def hand_over(origin: str, events: list[dict[str, Any]]) -> None:
            while not slots.acquire(timeout=0.2):  # the UI is behind: wait, unless cancelled
                if worker.is_cancelled:
                    return
            if not self.post_message(self.EventsRead(generation, origin, events, slots.release)):
                slots.release()

        PipelineTail(pipeline_dir, hand_over, on_caught_up=lambda: self.post_message(self.TailCaughtUp(generation)),
                     should_stop=lambda: worker.is_cancelled, idle_sleep=self.poll_interval).run()

    @work(thread=True, exclusive=True, exit_on_error=False, group="telemetry", name="telemetry")
    def sample_telemetry(self) -> None:
        worker = get_current_worker()
        sampler = None if self.telemetry_fn else TelemetrySampler()
        sample = self.telemetry_fn or sampler.sample  # type: ignore[union-attr]
        try:
            while not worker.is_cancelled:
                self.post_message(self.TelemetrySampled(sample(self._trainer_pids)))
                deadline = time.monotonic() + self.telemetry_interval
                while not worker.is_cancelled and time.monotonic() < deadline:
                    time.sleep(0.1)
        finally:
            if sampler is not None:
                sampler.close()

    @work(thread=True, exit_on_error=False, group="control", name="control")
    def send_control(self, cmd: str, run: str | None = None) -> None:
        assert self.pipeline_dir is not None
        send_command(self.pipeline_dir, cmd, run)
        self.post_message(self.ControlSent(cmd, run))

    @on(EventsRead)
    def _fold_events(self, message: EventsRead) -> None:
        message.release()
        if message.generation == self._generation:
            self.state.apply_batch(message.origin, message.events)
            self._dirty = True

    @on(TailCaughtUp)
    def _caught_up(self, message: TailCaughtUp) -> None:
        if message.generation == self._generation:
            self.refresh_snapshot()
            self._stalls_seen = len(self.state.stalls)  # history is shown, not announced
            self.caught_up = True

    @on(TelemetrySampled)
    def _telemetry_sampled(self, message: TelemetrySampled) -> None:
        # Published on the next refresh tick with the snapshot: one repaint a second, not two.
        self._pending_telemetry = message.telemetry

    @on(ControlSent)
    def _control_sent(self, message: ControlSent) -> None:
        target = f" for {message.run}" if message.run else ""
        self.notify(f"sent {message.cmd}{target}; the supervisor acts on it within seconds", title="control")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place worker failures become visible."""
        if event.state == WorkerState.ERROR:
            self.notify(f"{event.worker.name or event.worker.group}: {event.worker.error}", title="worker failed",
                        severity="error", timeout=10)

    def refresh_snapshot(self) -> None:
        """Publish a new snapshot if events arrived since the last one (or ages on screen went stale)."""
        pending, self._pending_telemetry = self._pending_telemetry, None
        if pending is not None:
            self.telemetry = pending
        if not self._dirty and time.monotonic() - self._published_at < IDLE_REPUBLISH_S:
            return
        self._dirty, self._published_at = False, time.monotonic()
        snap = self.state.snapshot(self.now())
        self._trainer_pids = {r.pid: r.run for r in snap.runs
                              if isinstance(r.pid, int) and r.status not in TERMINAL and r.status != "queued"}
        # Provisional while the history replays: the run that is running once everything is read wins.
        if snap.runs and (self.selected_run is None or not self.caught_up):
            running = [r.run for r in snap.runs if r.status == "running"]
            self.selected_run = (running or [snap.runs[0].run])[0]
        self.snapshot = snap
        if self.caught_up:
            for stall in snap.stalls[self._stalls_seen:]:
                self.notify(f"{stall.run} stalled after {stall.silent_s:.0f}s of silence; press d for the stack dump",
                            title="stall", severity="error", timeout=15)
            self._stalls_seen = len(snap.stalls)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in PIPELINE_ACTIONS:
            if self.pipeline_dir is None:
                return False  # nothing to act on yet (the picker): hide these keys
            if isinstance(self.screen, ModalScreen):
                return None
        return True

    def open_run_detail(self, run_id: str | None) -> None:
        if run_id is None or self.pipeline_dir is None:
            self.notify("no run selected", severity="warning")
            return
        from cockpit.screens.run_detail import RunDetailScreen

        self.selected_run = run_id
        self.push_screen(RunDetailScreen(run_id, self.pipeline_dir))

    def open_dump(self, dump: str) -> None:
        from cockpit.screens.modals import DumpScreen

        if self.pipeline_dir is not None:
            self.push_screen(DumpScreen(self.pipeline_dir / dump))

    def action_open_run_detail(self) -> None:
        self.open_run_detail(self.selected_run)

    def _run_command(self, cmd: str) -> None:
        if self.selected_run is None:
            self.notify("no run selected", severity="warning")
            return
        self.send_control(cmd, self.selected_run)

    def action_stop_run(self) -> None:
        self._run_command("stop_run")

    def action_restart_run(self) -> None:
        self._run_command("restart_run")

    def action_stop_pipeline(self) -> None:
        from cockpit.screens.modals import ConfirmScreen

        name = self.pipeline_dir.name if self.pipeline_dir else "?"

        def answered(yes: bool | None) -> None:
            if yes:
                self.send_control("stop_pipeline")

        self.push_screen(ConfirmScreen(f"Stop pipeline {name}? Every run is stopped; --resume continues it later.",
                                       yes="Stop pipeline"), answered)

    def action_show_dump(self) -> None:
        snap = self.snapshot
        stalls = [s for s in (snap.stalls if snap else ()) if s.dump]
        mine = [s for s in stalls if s.run == self.selected_run]
        if not stalls:
            self.notify("no stall so far", severity="information")
            return
        self.open_dump((mine or stalls)[-1].dump)

    def action_attach(self) -> None:
        from cockpit.screens.modals import AttachScreen

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.attach(path)

        self.push_screen(AttachScreen(self.runs_dir), chosen)

    def action_help(self) -> None:
        from cockpit.screens.compare import CompareScreen
        from cockpit.screens.help import HelpScreen
        from cockpit.screens.modals import AttachScreen, ConfirmScreen, DumpScreen
        from cockpit.screens.run_detail import RunDetailScreen
        from cockpit.screens.study import StudyScreen
        from cockpit.widgets.tables import SnapshotTable

        from cockpit.screens.phase_picker import PhasePickerScreen

        self.push_screen(HelpScreen([("app", CockpitApp), ("textual", App), ("picker", PhasePickerScreen),
                                     ("dashboard", DashboardScreen),
                                     ("run detail", RunDetailScreen), ("compare", CompareScreen),
                                     ("study", StudyScreen),
                                     ("tables", SnapshotTable),
                                     ("confirm", ConfirmScreen), ("stack dump", DumpScreen),
                                     ("attach", AttachScreen), ("help", HelpScreen)]))

    def action_leave(self) -> None:
        snap = self.snapshot
        if self.pipeline_dir is not None and snap is not None and snap.status in ("running", "waiting"):
            message = (f"Training continues: pipeline {self.pipeline_dir.name} keeps running in the background. "
                       f"Re-attach with: goemo-cockpit --attach {self.pipeline_dir}")
        else:
            message = "Left the cockpit."
        self.exit(message=message)


def make_app(pipeline_dir: Path | None = None, runs_dir: Path = Path("runs"), preset: str = "quick", *,
             now: Callable[[], float] = time.time, telemetry: TelemetryFn | None = None,
             poll_interval: float = 0.25, refresh_interval: float = 1.0) -> CockpitApp:
    """The cockpit app, for `goemo-cockpit` and for tests (`run_test()`, snapshots).

    pipeline_dir: folder to attach to, or None for the phase picker (preset; launches go to runs_dir).
    now: the clock for ages shown on screen (tests freeze it).
    telemetry: a `pids -> TelemetrySnapshot` sampler (tests pass a fixed one); default NVML + psutil.
    """
    return CockpitApp(pipeline_dir, runs_dir, preset, now=now, telemetry=telemetry, poll_interval=poll_interval,
                      refresh_interval=refresh_interval)
