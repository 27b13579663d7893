"""Starting a pipeline: validate the whole request before anything is created, make the pipeline
folder, and start its supervisor in the foreground (``--headless``) or detached (the TUI's launches),
so that training outlives the terminal and the view."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from cockpit.pipeline.control import ControlError, check_control_dir
from cockpit.pipeline.lock import PipelineLocked, check_unlocked
from cockpit.pipeline.slots import plan_slots
from cockpit.pipeline.presets import (Preset, PresetError, check_phase_selection, load_preset, phase1_plan,
                                      resolve_preset_path)
from cockpit.records import PipelineStart, decode_all
from trainer.contract import (SEARCH_PHASE, SEARCH_PHASE_NAME, CheckpointStateError, PipelinePaths, RunPaths,
                              find_latest, is_pipeline_dir, read_checkpoint_state)
from trainer.contract import PIPELINE_ORIGIN
from trainer.durable import write_atomic
from trainer.events import read_events

# Everything that means "bad input, nothing started": one line, exit 2.
BAD_INPUT_ERRORS = (PresetError, PipelineLocked, ControlError)


@dataclass
class PipelineRequest:
    """What to run, as the user asked for it (CLI flags or the phase picker)."""

    preset: str = "quick"
    runs_dir: Path = Path("runs")
    phases: list[int] | None = None
    configs: list[str] | None = None
    overrides: list[str] = field(default_factory=list)
    resume: Path | None = None
    pipeline_dir: Path | None = None  # a folder the launcher already made (detached starts)


@dataclass
class PreparedPipeline:
    """A validated request: the preset, the selection and where it goes (``data``: preset.toml to save)."""

    preset: Preset
    phases: list[int]
    configs: list[str]
    pipeline_dir: Path | None
    data: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)  # one line each, for the console or supervisor.log


def parse_phases(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:  # "search" is the search phase (a preset's [search] study), run before phase 1
        phases = sorted({SEARCH_PHASE if p.strip() == SEARCH_PHASE_NAME else int(p) for p in text.split(",")
                         if p.strip()})
    except ValueError:
        phases = []
    if not phases or any(p not in (SEARCH_PHASE, 1, 2, 3, 4) for p in phases):
        raise PresetError(f"--phases {text!r}: expected comma-separated phases: {SEARCH_PHASE_NAME} or numbers "
                          "from 1 to 4")
    return phases


def parse_configs(text: str | None) -> list[str] | None:
    if not text:
        return None
    return list(dict.fromkeys(c.strip() for c in text.split(",") if c.strip())) or None


def _resume_selection(paths: PipelinePaths) -> tuple[list[int], list[str]]:
    records, _ = decode_all(PIPELINE_ORIGIN, read_events(paths.events))
    start = next((r for r in records if isinstance(r, PipelineStart)), None)
    if start is None or not start.phases or not start.configs:
        raise PresetError(f"{paths.events}: no pipeline_start with phases and configs (expected a pipeline folder)")
    return list(start.phases), list(start.configs)


def _check_checkpoints(paths: PipelinePaths) -> None:
    """Every run that a resume will continue must have a readable checkpoint state."""
    for events in paths.run_event_files():
        latest = find_latest(RunPaths(events.parent).checkpoints)
        if latest is not None:
            try:
                read_checkpoint_state(latest)
            except CheckpointStateError as exc:
                raise PresetError(f"{exc} (run {events.parent.name} cannot resume)") from None


def _check_runs_dir(runs_dir: Path) -> None:
    for folder in (runs_dir, *runs_dir.parents):
        if folder.exists():
            if not folder.is_dir():
                raise PresetError(f"--runs-dir {runs_dir}: {folder} is a file (expected a folder for pipelines)")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise PresetError(f"--runs-dir {runs_dir}: {folder} is not writable")
            return


def _check_launcher(preset: Preset) -> None:
    """Slurm: sbatch and scontrol are here and ``sbatch --test-only`` takes the first job script, before
    anything is created (an unknown partition, a bad time or mem, GPUs on a cluster without any)."""
    if preset.pipeline.launcher != "slurm":
        return
    from cockpit.pipeline.slurm import SlurmError, preflight

    try:
        preflight(preset.slurm, preset.name, plan_slots(preset)[0])
    except SlurmError as exc:
        raise PresetError(str(exc)) from None


def _with_notify_from(preset: Preset, preset_file: Path, resumed: bool) -> tuple[Preset, list[str]]:
    """The preset with the URLs of its ``notify_from`` file added. On --resume a file that is gone is a
    warning, not a refusal: the pipeline goes on, notifying the URLs it still has ($GOEMO_NOTIFY)."""
    settings = preset.pipeline
    if not settings.notify_from:
        return preset, []
    from cockpit.outlets.notify_urls import NotifyFileError, check_notify_urls, notify_file_urls

    path = Path(settings.notify_from).expanduser()
    path = path if path.is_absolute() else preset_file.parent / path
    try:
        urls = notify_file_urls(path)
    except NotifyFileError as exc:
        if not resumed:
            raise PresetError(f"{preset_file}: key 'pipeline.notify_from': {exc}") from None
        return preset, [f"{preset_file}: key 'pipeline.notify_from': {exc}; its notify URLs are not used"]
    problem = check_notify_urls(urls) if urls else None
    if problem:
        raise PresetError(f"{path}: key 'pipeline.notify': {problem}")
    merged = list(dict.fromkeys([*settings.notify, *urls]))
    return preset.model_copy(update={"pipeline": settings.model_copy(update={"notify": merged})}), []


def _data_to_save(data: dict[str, Any], preset_file: Path) -> dict[str, Any]:
    """preset.toml as the pipeline folder keeps it: notify URLs hold tokens and the file is world-readable,
    so they are left out and ``notify_from`` names the preset file that --resume reads them from again."""
    from cockpit.outlets.notify_urls import notify_source

    pipeline = dict(data.get("pipeline") or {})
    pipeline.pop("notify", None)
    source = notify_source(preset_file)
    if source is not None:
        pipeline["notify_from"] = source
    elif pipeline.get("notify_from"):  # set with --set: relative to the preset file, as when it was read
        named = Path(str(pipeline["notify_from"])).expanduser()
        pipeline["notify_from"] = str(named if named.is_absolute() else (preset_file.parent / named).resolve())
    return {**data, "pipeline": pipeline} if pipeline or "pipeline" in data else data


def prepare_pipeline(request: PipelineRequest) -> PreparedPipeline:
    """Validate everything a pipeline needs before anything is created; raises one of BAD_INPUT_ERRORS."""
    if request.resume is not None:
        paths = PipelinePaths(request.resume)
        if not request.resume.is_dir() or not paths.preset.is_file() or not is_pipeline_dir(request.resume):
            raise PresetError(f"{request.resume}: not a pipeline folder (expected {paths.preset.name} and "
                              f"{paths.events.name} written by goemo-cockpit)")
        check_unlocked(paths)
        check_control_dir(request.resume)
        preset, _ = load_preset(str(paths.preset))
        preset, warnings = _with_notify_from(preset, paths.preset, resumed=True)
        phases, configs = _resume_selection(paths)
        phase1_plan(preset, configs)
        _check_checkpoints(paths)
        plan_slots(preset)
        _check_launcher(preset)
        return PreparedPipeline(preset, phases, configs, request.resume, None, warnings)
    preset, data = load_preset(request.preset, request.overrides)
    preset_file = resolve_preset_path(request.preset)
    preset, warnings = _with_notify_from(preset, preset_file, resumed=False)
    data = _data_to_save(data, preset_file)
    phases = request.phases or preset.pipeline.phases
    where = f"--phases {','.join(map(str, phases))}" if request.phases else \
        f"{request.preset}: key 'pipeline.phases' = {phases}"
    check_phase_selection(phases, where)
    if SEARCH_PHASE in phases and preset.search is None:
        raise PresetError(f"{where}: the {SEARCH_PHASE_NAME} phase runs the preset's [search] study, and "
                          f"{request.preset} has no [search] table (docs/presets.md, 'Search')")
    configs = list(dict.fromkeys(request.configs or [c.name for c in preset.configs]))
    phase1_plan(preset, configs)  # unknown config names are bad input
    if request.pipeline_dir is None:
        _check_runs_dir(request.runs_dir)
    plan_slots(preset)
    _check_launcher(preset)
    return PreparedPipeline(preset, phases, configs, request.pipeline_dir, data, warnings)


def new_pipeline_dir(runs_dir: Path, preset_name: str) -> Path:
    """``runs/<YYYYmmdd-HHMMSS>-<preset>``; ids sort by start time."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        name = f"{stamp}-{preset_name}" + ("" if n == 1 else f"-{n}")
        try:
            (runs_dir / name).mkdir()
            return runs_dir / name
        except FileExistsError:
            continue
    raise PresetError(f"--runs-dir {runs_dir}: could not create a pipeline folder")


def save_preset(pipeline_dir: Path, data: dict[str, Any]) -> None:
    write_atomic(PipelinePaths(pipeline_dir).preset, tomli_w.dumps(data))


def materialise(prepared: PreparedPipeline, runs_dir: Path) -> Path:
    """The pipeline folder for a prepared request: made (with preset.toml) unless it exists."""
    pipeline_dir = prepared.pipeline_dir or new_pipeline_dir(runs_dir, prepared.preset.name)
    pipeline_dir.mkdir(parents=True, exist_ok=True)
    if prepared.data is not None:
        save_preset(pipeline_dir, prepared.data)
    return pipeline_dir


def start_detached(request: PipelineRequest) -> Path:
    """Validate, make the folder, and start a supervisor in its own session; returns its folder.

    Raises one of BAD_INPUT_ERRORS before anything is started.
    """
    from cockpit.outlets.notify_urls import notify_environment

    prepared = prepare_pipeline(request)
    env = dict(os.environ)
    if request.resume is not None:
        pipeline_dir = request.resume
        cmd = [sys.executable, "-m", "cockpit.cli", "--headless", "--resume", str(pipeline_dir)]
    else:
        pipeline_dir = new_pipeline_dir(request.runs_dir, prepared.preset.name)
        cmd = [sys.executable, "-m", "cockpit.cli", "--headless", "--preset", request.preset,
               "--pipeline-dir", str(pipeline_dir), "--runs-dir", str(request.runs_dir)]
        # notify URLs set by overrides go in the environment: the command line is public (ps)
        overrides, env = notify_environment(list(prepared.preset.pipeline.notify), request.overrides)
        cmd += [f"--set={o}" for o in overrides]
        if request.phases:
            cmd += ["--phases", ",".join(map(str, request.phases))]
        if request.configs:
            cmd += ["--configs", ",".join(request.configs)]
    log = open(PipelinePaths(pipeline_dir).supervisor_log, "ab")
    subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                     env=dict(env, PYTHONUNBUFFERED="1"))
    log.close()
    return pipeline_dir

