"""Which launcher runs a pipeline's trainers: the one module that knows both (local processes and Slurm jobs),
so neither launcher module imports the other's factory."""

from __future__ import annotations

from typing import Callable

from cockpit.pipeline.launcher import Launcher, LocalLauncher
from cockpit.pipeline.slurm import SlurmLauncher
from cockpit.pipeline.presets import Preset


def make_launcher(preset: Preset, pipeline: str,
                  on_alert: Callable[[str, str, str], None] | None = None) -> Launcher:
    """The launcher a preset asks for (``[pipeline] launcher``); one factory for the CLI and the tests.
    ``on_alert(level, code, message)`` hears what the launcher has to say (Slurm not answering)."""
    if preset.pipeline.launcher == "slurm":
        return SlurmLauncher(preset.slurm, pipeline, on_alert)
    return LocalLauncher()
