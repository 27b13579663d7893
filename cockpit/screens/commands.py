"""Command palette provider: the cockpit's actions, and one entry per run to select it."""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Iterator

from textual.command import DiscoveryHit, Hit, Hits, Provider

ACTIONS = (
    ("Stop selected run", "stop_run", "Ask the supervisor to stop the selected run"),
    ("Restart selected run", "restart_run", "Restart the selected run from its last checkpoint"),
    ("Stop pipeline…", "stop_pipeline", "Stop every run and end the pipeline (asks first)"),
    ("Show stall stack dump", "show_dump", "Open the stack dump of the latest stall"),
    ("Open run detail", "open_run_detail", "Per-label F1, learning rate, stderr and stall dumps of the selected run"),
    ("Attach to another pipeline…", "attach", "Choose a pipeline folder under the runs folder"),
    ("Help: keys", "help", "List every key binding"),
    ("Leave the cockpit (training continues)", "leave", "Close this view; the supervisor keeps running"),
)


class CockpitCommands(Provider):
    """Cockpit actions and `Select run <id>` entries for the palette."""

    def _commands(self) -> Iterator[tuple[str, Callable[[], Any], str]]:
        app: Any = self.app
        for text, action, help_text in ACTIONS:
            yield text, partial(app.run_action, action), help_text
        snapshot = getattr(app, "snapshot", None)
        for run in snapshot.runs if snapshot else ():
            yield (f"Select run {run.run}", partial(setattr, app, "selected_run", run.run),
                   f"{run.status}, step {run.step}")

    async def discover(self) -> Hits:
        for text, callback, help_text in self._commands():
            yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, callback, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_text)
