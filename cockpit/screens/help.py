"""Help: every key binding of the cockpit, with its id (for keymaps) and what it does."""

from __future__ import annotations

from typing import ClassVar, Iterable

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label


def binding_rows(owners: Iterable[tuple[str, type]]) -> list[tuple[str, str, str, str, str]]:
    """(where, key, id, description, tooltip) for every binding the given classes declare."""
    rows = []
    for where, owner in owners:
        for binding in Binding.make_bindings(getattr(owner, "BINDINGS", [])):
            key = binding.key_display or binding.key.replace("question_mark", "?")
            rows.append((where, key, binding.id or "", binding.description, binding.tooltip))
    return rows


class HelpScreen(ModalScreen[None]):
    """Lists the bindings of the app, its screens and its tables; escape, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close", id="help.close", tooltip="Close the help"),
    ]

    def __init__(self, owners: Iterable[tuple[str, type]]) -> None:
        super().__init__()
        self.rows = binding_rows(owners)

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box modal-wide"):
            yield Label("Keys (ctrl+p opens the command palette; remap keys by id with App.set_keymap)",
                        classes="modal-title")
            yield DataTable(id="help-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("where", "key", "id", "does", "details")
        table.add_rows(self.rows)
