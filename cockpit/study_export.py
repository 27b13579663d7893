"""The search phase's best trial as a preset snippet: a ``[[configs]]`` block to paste into a preset, written to
``<pipeline>/best_config.toml`` (the cockpit's `c` on the study screen). The config is the one the trial trained
(`cockpit.search.trials.trial_config` over the pipeline's saved preset.toml), named after its trial (``s_017``).
No Textual; never writes outside the pipeline folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w
from pydantic import ValidationError

from cockpit.pipeline.presets import Preset
from cockpit.pipeline.search_phase import trial_config_name
from cockpit.search.trials import SEARCH_CONFIG, trial_config
from cockpit.snapshots import StudyView
from trainer.contract import PipelinePaths
from trainer.file_reads import read_toml

BEST_CONFIG_FILE = "best_config.toml"


class ExportError(ValueError):
    """Why the best config cannot be written, in one line."""


def best_config_table(preset: Preset, view: StudyView) -> dict[str, Any]:
    """The ``[[configs]]`` entry of the study's best trial (name, loss, loss_params, settings)."""
    if view.best_trial is None:
        raise ExportError("the study has no complete trial yet: no best config to copy")
    config = trial_config(preset, dict(view.best_params))
    # A trial that names a preset config keeps that name; one sampled from [defaults] is named after its trial.
    name = trial_config_name(view.best_trial) if config.name == SEARCH_CONFIG else config.name
    table: dict[str, Any] = {"name": name, "loss": config.loss}
    if config.loss_params:
        table["loss_params"] = dict(config.loss_params)
    if config.settings:
        table["settings"] = dict(config.settings)
    return table


def write_best_config(pipeline_dir: Path, view: StudyView) -> Path:
    """Write the best trial's ``[[configs]]`` block to ``<pipeline>/best_config.toml`` and return its path;
    ExportError (one line) when the saved preset cannot be read or no trial is complete."""
    preset_path = PipelinePaths(pipeline_dir).preset
    try:
        preset = Preset.model_validate(read_toml(preset_path, "the pipeline's preset", ExportError))
    except ValidationError as exc:
        raise ExportError(f"{preset_path}: not a preset this cockpit reads ({exc.error_count()} errors)") from None
    if preset.search_space() is None:
        raise ExportError(f"{preset_path}: no [search] table, so no trial's config can be rebuilt")
    table = best_config_table(preset, view)
    value = "" if view.best_value is None else f", objective {view.best_value:.4f}"
    text = (f"# The search phase's best trial: trial {view.best_trial} ({view.best_run}{value}).\n"
            f"# Paste into a preset's configs.\n\n" + tomli_w.dumps({"configs": [table]}))
    path = Path(pipeline_dir) / BEST_CONFIG_FILE
    path.write_text(text, encoding="utf-8")
    return path
