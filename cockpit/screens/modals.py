"""Small modal screens: confirm, stack dump viewer, attach to another pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Log

from cockpit.tail import read_text_tail
from cockpit.widgets.pipeline_list import PipelineList


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; dismisses with True for yes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes", tooltip="Confirm"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no", tooltip="Cancel"),
    ]

    def __init__(self, question: str, *, yes: str = "Yes") -> None:
        super().__init__()
        self.question, self.yes = question, yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box"):
            yield Label(self.question, classes="modal-question")
            with Horizontal(classes="modal-buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="yes")
                yield Button("Cancel (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class DumpScreen(ModalScreen[None]):
    """Shows a stall's stack dump (`stall-<n>.txt`), read by a thread worker."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,d", "dismiss", "Close", id="dump.close", tooltip="Back to the dashboard"),
    ]

    class Read(Message):
        def __init__(self, lines: list[str]) -> None:
            super().__init__()
            self.lines = lines

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box modal-wide"):
            yield Label(f"stack dump: {self.path.parent.name}/{self.path.name} (escape closes)", classes="modal-title")
            yield Log(id="dump-text", highlight=False)

    def on_mount(self) -> None:
        self.read_dump()

    @work(thread=True, exclusive=True, exit_on_error=False, group="dump", name="read-dump")
    def read_dump(self) -> None:
        self.post_message(self.Read(read_text_tail(self.path, max_lines=2000) or [f"(missing: {self.path})"]))

    def on_dump_screen_read(self, message: Read) -> None:
        log = self.query_one(Log)
        log.clear()
        log.write_lines(message.lines)
        log.scroll_home(animate=False)


class AttachScreen(ModalScreen[Path | None]):
    """Choose another pipeline folder under runs_dir; dismisses with its path."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="attach.cancel", tooltip="Stay on this pipeline"),
    ]

    def __init__(self, runs_dir: Path) -> None:
        super().__init__()
        self.runs_dir = runs_dir

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box"):
            yield Label("Attach to a pipeline (enter to choose, escape to cancel)", classes="modal-title")
            yield PipelineList(self.runs_dir)

    def on_pipeline_list_chosen(self, message: PipelineList.Chosen) -> None:
        self.dismiss(message.path)

    def action_cancel(self) -> None:
        self.dismiss(None)
