"""Phase picker: the start screen. Choose phases and Phase-1 configs of a preset from the keyboard,
see the planned work and the devices, edit overrides, and launch a detached supervisor."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Header, Input, Label, OptionList, SelectionList, Static
from textual.widgets.option_list import Option

from cockpit.outlets.notify_urls import shown_override
from cockpit.pipeline.presets import PHASE_NAMES, Preset, PresetError, list_presets, load_preset, shell_setting
from cockpit.pipeline.start import BAD_INPUT_ERRORS

TRAIN_ROWS = 43410


def _rows(settings: dict, key: str = "max_train_samples") -> str:
    n = settings.get(key)
    return f"{n:,} rows" if n else f"all {TRAIN_ROWS:,} rows"


def planned_work(preset: Preset, phases: list[int], configs: list[str]) -> list[str]:
    """One line per selected phase: runs, rows and epochs (what the supervisor will launch)."""
    lines = []
    for phase in phases:
        if phase == 1:
            s = {**preset.defaults, **preset.phase1}
            k = preset.seeds(1)
            runs = f"{len(configs)} runs" if k == 1 else f"{len(configs)} configs × {k} seeds"
            lines.append(f"1 {PHASE_NAMES[1]:8} {runs} · {s.get('model', 'minilm')} · {_rows(s)} · "
                         f"{s.get('epochs', 1)} epoch(s)")
        elif phase == 2:
            lines.append(f"2 {PHASE_NAMES[2]:8} rank by dev F1@{preset.pipeline.primary_threshold:g} · "
                         f"ref {preset.pipeline.reference_f1:.4f} · target {preset.pipeline.target_f1:.2f}")
        elif phase == 3:
            s = {**preset.defaults, **preset.phase3}
            k = min(preset.pipeline.top_k, len(configs))
            seeds = f" × {preset.seeds(3)} seeds" if preset.seeds(3) > 1 else ""
            lines.append(f"3 {PHASE_NAMES[3]:8} top {k} runs{seeds} · {_rows(s)} · {s.get('epochs', 1)} epoch(s)")
        elif phase == 4:
            if preset.pipeline.final == "reuse":
                lines.append(f"4 {PHASE_NAMES[4]:8} export best run · thresholds on dev · test once")
            elif preset.pipeline.final == "seed_ensemble":
                s = {**preset.defaults, **preset.phase4}
                lines.append(f"4 {PHASE_NAMES[4]:8} retrain best × {preset.seeds(4)} seeds · {_rows(s)} · "
                             f"{s.get('epochs', 1)} epoch(s) · logits averaged · thresholds on dev · test once")
            else:
                s = {**preset.defaults, **preset.phase4}
                lines.append(f"4 {PHASE_NAMES[4]:8} retrain best · {_rows(s)} · {s.get('epochs', 1)} epoch(s) · "
                             f"thresholds on dev · test once")
    return lines


class OverrideScreen(ModalScreen[str | None]):
    """Asks for one ``key=value`` override."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="override.cancel", tooltip="Close without adding an override"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="override-dialog"):
            yield Label("Override (validated like --set), e.g. lr=2e-4 · pipeline.top_k=1 · phase1.epochs=2")
            yield Input(placeholder="key=value", id="override-input")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class PresetChoiceScreen(ModalScreen[str | None]):
    """Lists the shipped presets; enter picks one."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="preset_choice.cancel", tooltip="Keep the current preset"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="preset-dialog"):
            yield Label("Preset")
            yield OptionList(*[Option(f"{name:22} {desc}", id=name) for name, desc in list_presets()],
                             id="preset-options")

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class PhasePickerScreen(Screen[None]):
    """The preset's phases and configs as a keyboard-driven list; enter launches the pipeline."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "down", "Down", show=False, id="picker.down", tooltip="Next config"),
        Binding("k", "up", "Up", show=False, id="picker.up", tooltip="Previous config"),
        Binding("1", "toggle_phase(1)", "Phase 1", show=False, id="picker.phase1", tooltip="Toggle phase 1 (screen)"),
        Binding("2", "toggle_phase(2)", "Phase 2", show=False, id="picker.phase2", tooltip="Toggle phase 2 (analyse)"),
        Binding("3", "toggle_phase(3)", "Phase 3", show=False, id="picker.phase3", tooltip="Toggle phase 3 (extend)"),
        Binding("4", "toggle_phase(4)", "Phase 4", show=False, id="picker.phase4", tooltip="Toggle phase 4 (final)"),
        Binding("p", "switch_preset", "Preset", id="picker.preset", tooltip="Choose another preset"),
        Binding("o", "override", "Override", id="picker.override", tooltip="Add a key=value override (like --set)"),
        Binding("c", "clear_overrides", "Clear overrides", show=False, id="picker.clear",
                tooltip="Remove every override"),
        Binding("enter", "launch", "Launch", id="picker.launch", priority=True,
                tooltip="Start a detached supervisor for this selection and watch it"),
    ]

    DEFAULT_CSS = """
    PhasePickerScreen #picker-body { height: 1fr; }
    PhasePickerScreen #picker-configs { width: 1fr; min-width: 28; border: round $primary; }
    PhasePickerScreen #picker-side { width: 2fr; }
    PhasePickerScreen .picker-box { border: round $secondary; height: auto; padding: 0 1; }
    """

    preset_name: reactive[str] = reactive("quick")
    """The preset shown (a name or a TOML path)."""

    def __init__(self, preset: str = "quick", runs_dir: Path = Path("runs"), devices: list[str] | None = None) -> None:
        super().__init__()
        self.runs_dir = runs_dir
        self.devices = devices
        self.overrides: list[str] = []
        self.phases: set[int] = set()
        self.preset: Preset | None = None
        self.set_reactive(PhasePickerScreen.preset_name, preset)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="picker-body"):
            yield SelectionList[str](id="picker-configs")
            with Vertical(id="picker-side"):
                yield Static(id="picker-preset", classes="picker-box")
                yield Static(id="picker-phases", classes="picker-box")
                yield Static(id="picker-plan", classes="picker-box")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#picker-configs", SelectionList).border_title = "configs (space toggles)"
        self._load(self.preset_name)
        self.detect_devices()

    def _load(self, name: str, overrides: list[str] | None = None) -> bool:
        try:
            preset, _ = load_preset(name, overrides if overrides is not None else self.overrides)
        except PresetError as exc:
            self.notify(str(exc), title="preset", severity="error", timeout=10)
            return False
        self.preset, self.preset_name = preset, name
        if overrides is not None:
            self.overrides = overrides
        self.phases = set(preset.pipeline.phases)
        configs = self.query_one("#picker-configs", SelectionList)
        configs.clear_options()
        configs.add_options([(c.name, c.name, True)
                             for c in preset.configs])
        configs.highlighted = 0
        self._redraw()
        return True

    @work(thread=True, exclusive=True, exit_on_error=False, group="picker-devices", name="devices")
    def detect_devices(self) -> None:
        from cockpit.pipeline.slots import plan_slots

        try:
            slots = [s.name for s in plan_slots(self.preset)] if self.preset else []
        except PresetError as exc:
            slots = [f"unavailable: {exc}"]
        self.app.call_from_thread(self._devices_found, slots)

    def _devices_found(self, slots: list[str]) -> None:
        self.devices = slots
        self._redraw()

    @on(SelectionList.SelectedChanged)
    def _configs_changed(self) -> None:
        self._redraw()

    def selected_configs(self) -> list[str]:
        return list(self.query_one("#picker-configs", SelectionList).selected)

    def _redraw(self) -> None:
        if self.preset is None:
            return
        p = self.preset
        overrides = ", ".join(map(shown_override, self.overrides)) or "none (o adds one)"  # notify URLs masked
        devices = ", ".join(self.devices) if self.devices is not None else "looking…"
        self.query_one("#picker-preset", Static).update(Text.assemble(
            (p.name, "bold"), f" — {p.description}\noverrides: {overrides}\ndevices: {devices} · runs folder: "
                              f"{self.runs_dir}"))
        marks = "  ".join(f"{'■' if n in self.phases else '□'} {n} {PHASE_NAMES[n]}" for n in PHASE_NAMES)
        self.query_one("#picker-phases", Static).update(Text(f"phases (1–4 toggle)  {marks}"))
        plan = planned_work(p, sorted(self.phases), self.selected_configs()) or ["no phase selected"]
        self.query_one("#picker-plan", Static).update(Text("planned work (enter launches)\n" + "\n".join(plan)))

    def action_down(self) -> None:
        self.query_one("#picker-configs", SelectionList).action_cursor_down()

    def action_up(self) -> None:
        self.query_one("#picker-configs", SelectionList).action_cursor_up()

    def action_toggle_phase(self, phase: int) -> None:
        self.phases ^= {phase}
        self._redraw()

    def action_switch_preset(self) -> None:
        def chosen(name: str | None) -> None:
            if name and self._load(name, overrides=[]):
                self.detect_devices()

        self.app.push_screen(PresetChoiceScreen(), chosen)

    def action_override(self) -> None:
        def entered(item: str | None) -> None:
            if item and (setting := self._browser_refuses(item)):
                self.notify(f"{setting} runs shell commands: in a browser session it comes from the preset "
                            f"file only", title="override refused", severity="error", timeout=10)
            elif item:
                self._load(self.preset_name, overrides=[*self.overrides, item])

        self.app.push_screen(OverrideScreen(), entered)

    def _browser_refuses(self, item: str) -> str | None:
        """The shell-running setting an override sets, when this cockpit is a browser session (--web)."""
        return shell_setting(item) if self.app.is_web else None

    def action_clear_overrides(self) -> None:
        self._load(self.preset_name, overrides=[])

    def action_launch(self) -> None:
        from cockpit.pipeline.start import PipelineRequest, start_detached

        configs = self.selected_configs()
        if refused := next(filter(None, map(self._browser_refuses, self.overrides)), None):
            self.notify(f"{refused} runs shell commands: in a browser session it comes from the preset file only",
                        title="cannot launch", severity="error", timeout=10)
            return
        if not self.phases or (1 in self.phases and not configs):
            self.notify("select at least one phase (and one config for phase 1)", severity="warning")
            return
        try:
            pipeline_dir = start_detached(PipelineRequest(self.preset_name, self.runs_dir, sorted(self.phases),
                                                          configs, list(self.overrides)))
        except BAD_INPUT_ERRORS as exc:
            self.notify(str(exc), title="cannot launch", severity="error", timeout=10)
            return
        self.notify(f"supervisor started: {pipeline_dir}", title="launched")
        self.app.attach(pipeline_dir)  # type: ignore[attr-defined]
