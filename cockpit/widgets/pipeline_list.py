"""PipelineList: the pipeline folders under a runs folder, listed by a thread worker."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from cockpit.tail import find_pipelines


class PipelineList(OptionList):
    """Options are pipeline folders, newest first; `Chosen` carries the selected path."""

    DEFAULT_CSS = """
    PipelineList {
        height: auto;
        max-height: 1fr;
        border: round $primary 40%;
    }
    """

    class Chosen(Message):
        """The user picked a pipeline folder."""

        def __init__(self, path: Path) -> None:
            super().__init__()
            self.path = path

    class Loaded(Message):
        def __init__(self, paths: list[Path]) -> None:
            super().__init__()
            self.paths = paths

    def __init__(self, runs_dir: Path, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.runs_dir = runs_dir
        self.paths: list[Path] = []
        self.border_title = f"pipelines in {runs_dir}"

    def on_mount(self) -> None:
        self.load_pipelines()

    @work(thread=True, exclusive=True, exit_on_error=False, group="pipeline-list", name="list-pipelines")
    def load_pipelines(self) -> None:
        self.post_message(self.Loaded(find_pipelines(self.runs_dir)))

    def on_pipeline_list_loaded(self, message: Loaded) -> None:
        message.stop()
        self.paths = message.paths
        self.clear_options()
        if not self.paths:
            self.add_option(Option(f"no pipeline folders under {self.runs_dir}", disabled=True))
            return
        self.add_options([Option(path.name, id=str(i)) for i, path in enumerate(self.paths)])
        self.highlighted = 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None:
            self.post_message(self.Chosen(self.paths[int(event.option.id)]))
