"""Pipeline presets: a typed schema (pydantic), loading from a name or a TOML path, ``--set`` overrides,
and the RunConfig of every planned run. Bad input becomes one line naming the file and key."""

from __future__ import annotations

import os
import re

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cockpit.search.space import (SEARCH_TABLE, LossChoice, SearchSettings, SearchSpace, optuna_missing_line,
                                  search_problem_line, search_validation_line)
from trainer.config import ConfigError, RunConfig, parse_override, read_toml_text, set_dotted, validate_config
from trainer.contract import (DEFAULT_NOTIFY_ON, DEFAULT_PRIMARY_THRESHOLD, ENSEMBLE_SHARED_KEYS, ENV_NOTIFY, FINAL_RUN,
                              PHASE_NAMES, SEARCH_PHASE, run_id)
from trainer.contract import NOTIFY_EVENTS, SELECT_BY

RUN_PHASES = (1, 3, 4)  # the phases that launch runs (2 only ranks)
SEEDS_KEY = "seeds"  # [pipeline] seeds, or a phase table's own: runs per config
MAX_SEEDS = 10


class PresetError(ValueError):
    """A bad preset, override or selection: one line naming the file and key."""


class LossConfig(BaseModel):
    """One Phase-1 candidate: a loss and its parameters (plus optional per-config run keys)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_]*$")
    loss: str
    loss_params: dict[str, Any] = Field(default_factory=dict)
    fault: str | None = Field(None, description="GOEMO_FAULT for this config's runs, e.g. 'hang@5'")
    settings: dict[str, Any] = Field(default_factory=dict, description="extra run config keys")


class SlurmSettings(BaseModel):
    """``[slurm]``: how each run becomes a batch job (``[pipeline] launcher = "slurm"``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    partition: str | None = Field(None, description="sbatch --partition (default: the cluster's default)")
    account: str | None = Field(None, description="sbatch --account")
    gpus_per_run: int = Field(0, ge=0, description="GPUs per run (--gpus); 0: a CPU run")
    cpus_per_run: int = Field(2, ge=1, description="--cpus-per-task; also the run's torch threads")
    mem: str | None = Field(None, description="sbatch --mem, e.g. '32G'")
    time: str | None = Field(None, description="sbatch --time, e.g. '4:00:00'; the trainer gets SIGTERM 90 s before")
    extra: list[str] = Field(default_factory=list, description="more sbatch options, e.g. ['--qos=high']")
    setup: str = Field("", description="shell lines run before the trainer, e.g. 'module load cuda/12.4'")
    max_concurrent_jobs: int = Field(5, ge=1, description="jobs of this pipeline queued or running at once")
    nodes: int = Field(1, ge=1, description="nodes per run; above 1, srun starts one launcher per node")
    processes_per_node: int = Field(1, ge=1, description="CPU runs over several nodes: torchrun processes per node")
    python: str | None = Field(None, description="the Python that runs goemo-train on the nodes (default: this one)")

    @field_validator("partition", "account", "mem", "time", "python")
    @classmethod
    def _one_word(cls, value: str | None) -> str | None:
        # Each becomes an #SBATCH option or the exec line: a newline would end the #SBATCH block early
        # (sbatch then ignores every later option) and inject a shell line.
        if value is not None and (not value or any(c.isspace() or not c.isprintable() for c in value)):
            raise ValueError(f"{value!r}: expected one word, without spaces or newlines")
        return value

    @field_validator("extra")
    @classmethod
    def _sbatch_options(cls, value: list[str]) -> list[str]:
        # Each item is one #SBATCH line: one option such as '--qos=high', nothing a shell would read.
        for item in value:
            if not item.startswith("-") or any(c.isspace() or not c.isprintable() for c in item):
                raise ValueError(f"{item!r}: expected one sbatch option per item, e.g. '--qos=high' "
                                 "(no spaces or newlines)")
        return value

    @field_validator("setup")
    @classmethod
    def _shell_lines(cls, value: str) -> str:
        # Shell lines by design (module load, source a venv), run after the #SBATCH block; only bytes no
        # script can hold are refused (a NUL ends the line bash reads; a CR makes every command 'not found').
        if "\0" in value or "\r" in value:
            raise ValueError("expected shell lines without NUL or carriage-return characters")
        return value


class PipelineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    phases: list[int] = Field(default_factory=lambda: [1, 2, 3, 4])
    primary_threshold: float = Field(DEFAULT_PRIMARY_THRESHOLD, gt=0, lt=1)
    reference_f1: float = Field(0.4218, ge=0, le=1)
    target_f1: float = Field(0.50, ge=0, le=1)
    top_k: int = Field(2, ge=1)
    final: Literal["retrain", "reuse", "ensemble", "seed_ensemble"] = Field(
        "retrain", description="retrain: a p4-final run with [phase4] keys; reuse: export the best run as it is; "
                               "ensemble: average the probabilities of the top_k runs, each at its best checkpoint; "
                               "seed_ensemble: the best config with phase 4's seeds (k >= 2), logits averaged")
    onnx: Literal["auto", "off"] = Field(
        "auto", description="auto: when the onnx extra is installed, final/ also gets its ONNX and int8 copies "
                            "(goemo-export-onnx, scored per backend); off: only the safetensors")
    seeds: int = Field(1, ge=1, le=MAX_SEEDS, description="seeds per config run (a phase table's own 'seeds' wins): "
                                                          "k > 1 runs each config k times, p1-bce-s42, p1-bce-s43, "
                                                          "..., and the leaderboard ranks the configs by their mean")
    select_by: Literal[SELECT_BY] = Field(
        "f1@primary", description="ranks runs in phases 2-4, picks each run's best checkpoint and the final run: "
                                  "dev macro-F1 at the primary threshold, or tuned_cv (thresholds tuned on one "
                                  "half of dev, scored on the other)")
    launcher: Literal["local", "slurm"] = Field(
        "local", description="local: runs on this machine's GPUs or CPU slots; slurm: each run a batch job ([slurm])")
    cpu_slots: int = Field(1, ge=1)
    cpu_processes: int = Field(1, ge=1, description="training processes per CPU run (torchrun, gloo); the slot's "
                                                    "cores are split between them")
    gpus: Literal["auto", "none"] | list[int] = "auto"
    ddp: bool = Field(False, description="each run on all GPUs through accelerate launch")
    max_restarts: int = Field(2, ge=0)
    on_run_failure: Literal["continue", "abort"] = "continue"
    stall_floor_s: float = Field(120.0, gt=0)
    stall_factor: float = Field(10.0, gt=0)
    startup_grace_s: float = Field(180.0, gt=0, description="silence allowed before a run's first event")
    term_grace_s: float = Field(20.0, gt=0, description="SIGTERM to SIGKILL when ending a run")
    notify: list[str] = Field(default_factory=list, description="apprise URLs (plus $GOEMO_NOTIFY), e.g. ntfy://topic; "
                                                               "never saved in the pipeline folder")
    notify_from: str | None = Field(None, description="a TOML file whose [pipeline] notify URLs are added at each "
                                                      "start and --resume; a pipeline folder's saved preset names its "
                                                      "preset here instead of saving the URLs")
    notify_on: list[Literal[NOTIFY_EVENTS]] = (
        Field(default_factory=lambda: list(DEFAULT_NOTIFY_ON), description="which events send a notification"))
    notify_timeout_s: float = Field(10.0, gt=0, le=600, description="a send that takes longer is given up (and "
                                                                     "alerted); at most 600 s")
    on_not_learning: Literal["alert", "stop", "off"] = Field(
        "alert", description="a run whose dev evals show it is not learning (discrimination near chance, or "
                             "predictions at the label prior): alert, or alert and stop it to free its slot")
    not_learning_after_evals: int = Field(2, ge=1, description="judge a run once it has had this many dev evals ...")
    not_learning_after_fraction: float = Field(0.3, gt=0, le=1, description="... or this fraction of its steps")
    gpu_underused_pct: float = Field(30.0, ge=0, le=100, description="alert (gpu_underused) when a training run's "
                                                                     "GPU utilisation stays below this ...")
    gpu_underused_window_s: float = Field(120.0, gt=0, description="... for this long; 0 % turns the alert off")

    @field_validator("phases")
    @classmethod
    def _phases(cls, value: list[int]) -> list[int]:
        if not value or any(p not in PHASE_NAMES and p != SEARCH_PHASE for p in value):
            raise ValueError(f"a non-empty list of phase numbers from 1 to 4 ({SEARCH_PHASE}: the search phase)")
        return sorted(set(value))


class Preset(BaseModel):
    """A whole pipeline: settings, run-config keys per phase, and the Phase-1 candidates."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(description="names the pipeline folder: letters, digits, '.', '_' and '-' only")
    description: str = ""
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    defaults: dict[str, Any] = Field(default_factory=dict)
    phase1: dict[str, Any] = Field(default_factory=dict)
    phase3: dict[str, Any] = Field(default_factory=dict)
    phase4: dict[str, Any] = Field(default_factory=dict)
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)
    configs: list[LossConfig] = Field(min_length=1)
    search: SearchSettings | None = Field(None, description="the search phase's Optuna study (docs/presets.md, "
                                                            "'Search')")

    @field_validator("name")
    @classmethod
    def _folder_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value):
            raise ValueError("expected a name for the pipeline folder: letters, digits, '.', '_' and '-' "
                             "(no '/' or spaces), starting with a letter or digit")
        return value

    @field_validator("configs")
    @classmethod
    def _unique(cls, value: list[LossConfig]) -> list[LossConfig]:
        names = [c.name for c in value]
        if len(names) != len(set(names)):
            raise ValueError(f"config names must be unique (got {names})")
        return value

    def config(self, name: str) -> LossConfig:
        return next(c for c in self.configs if c.name == name)

    def search_space(self) -> SearchSpace | None:
        """``[search]`` with the configs, ``[defaults]``' loss and the select_by it refers to; None without one."""
        if self.search is None:
            return None
        params = self.defaults.get("loss_params")
        base = LossChoice(str(self.defaults.get("loss", RunConfig.model_fields["loss"].default)),
                          dict(params) if isinstance(params, dict) else {})
        return SearchSpace(self.search, {c.name: LossChoice(c.loss, dict(c.loss_params)) for c in self.configs},
                           base, self.pipeline.select_by)

    def _phase_table(self, phase: int) -> dict[str, Any]:
        return {1: self.phase1, 3: self.phase3, 4: self.phase4}.get(phase, {})

    def seeds(self, phase: int) -> int:
        """How many seeds each config runs with in a phase: the phase table's 'seeds', else the pipeline's."""
        return int(self._phase_table(phase).get(SEEDS_KEY, self.pipeline.seeds))

    def run_seeds(self, phase: int, config: LossConfig) -> list[int | None]:
        """The seeds of a config's runs in a phase: [None] (one run, the config's own seed, no suffix in its id),
        or k seeds counting up from the config's own (42, 43, 44)."""
        k = self.seeds(phase)
        if k == 1:
            return [None]
        base = self.run_config(phase, config, run_id(phase, config.name)).seed
        return [base + i for i in range(k)]

    def same_training(self, phase_a: int, phase_b: int, config: LossConfig, seed: int | None) -> bool:
        """Whether two phases train a config identically: every resolved key but the run id and what only
        evaluates (a seed ensemble re-scores its members on phase 4's dev and test anyway)."""
        ignore = {"run", "max_eval_samples", "eval_every_steps", "export"}
        a, b = (self.run_config(p, config, run_id(p, config.name, seed), seed).model_dump() for p in (phase_a, phase_b))
        return {k: v for k, v in a.items() if k not in ignore} == {k: v for k, v in b.items() if k not in ignore}

    def run_config(self, phase: int, config: LossConfig, run_id: str, seed: int | None = None) -> RunConfig:
        """The resolved RunConfig for one run: defaults < phase keys < config keys. A run of a seed group
        trains with its own ``seed``, and is evaluated on the rows the config's own seed picks (``eval_seed``),
        as every other seed of the group is: seeds differ in training only, and their evals pair row by row."""
        phase_keys = {k: v for k, v in self._phase_table(phase).items() if k != SEEDS_KEY}
        primary = self.pipeline.primary_threshold
        data = {**self.defaults, **phase_keys, **config.settings, "loss": config.loss,
                "loss_params": dict(config.loss_params), "run": run_id, "primary_threshold": primary,
                "select_by": self.pipeline.select_by}
        if seed is not None:
            data["eval_seed"] = data.get("eval_seed", data.get("seed", RunConfig.model_fields["seed"].default))
            data["seed"] = seed
        # Every eval must report the primary threshold, whatever else the preset asks for.
        thresholds = data.get("thresholds", RunConfig.model_fields["thresholds"].default_factory())
        if isinstance(thresholds, list) and all(isinstance(t, (int, float)) for t in thresholds):
            data["thresholds"] = sorted({float(t) for t in thresholds} | {primary})
        return validate_config(data, f"preset {self.name} [{('phase' + str(phase)) if phase_keys else 'defaults'}]")

    def planned_run_configs(self) -> list[RunConfig]:
        """The RunConfig of every run this preset can launch (each config in phases 1, 3 and 4)."""
        return [self.run_config(p, c, FINAL_RUN if p == 4 else run_id(p, c.name))
                for c in self.configs for p in RUN_PHASES]

    def run_devices(self) -> set[str]:
        """The ``device`` values of every run this preset can launch."""
        return {c.device for c in self.planned_run_configs()}


def preset_dir() -> Path:
    """The shipped presets: ``cockpit/presets`` in an installed wheel, ``presets/`` in a source tree."""
    installed = Path(str(resources.files("cockpit"))) / "presets"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[2] / "presets"


def list_presets() -> list[tuple[str, str]]:
    """(name, one-line description) of every shipped preset."""
    out = []
    for path in sorted(preset_dir().glob("*.toml")):
        try:
            _, data = read_toml_text(path)
            out.append((path.stem, str(data.get("description", "")).strip().splitlines()[0]))
        except (ConfigError, IndexError):
            out.append((path.stem, "(unreadable)"))
    return out


def resolve_preset_path(name_or_path: str) -> Path:
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix == ".toml" or candidate.exists() or "/" in name_or_path:
        if not candidate.is_file():
            raise PresetError(f"{name_or_path}: preset file not found")
        return candidate
    shipped = preset_dir() / f"{name_or_path}.toml"
    if not shipped.exists():
        names = ", ".join(n for n, _ in list_presets())
        raise PresetError(f"unknown preset {name_or_path!r} (expected one of: {names}, or a path to a .toml file)")
    return shipped


def _pydantic_line(source: str, exc: ValidationError, text: str | None) -> str:
    err = exc.errors()[0]
    if err["loc"][:1] == (SEARCH_TABLE,):
        return search_validation_line(source, text, exc)
    key = ".".join(str(p) for p in err["loc"])
    where = source
    if text is not None and err["loc"]:
        line = _line_of_key(text, str(err["loc"][-1]) if not isinstance(err["loc"][-1], int) else str(err["loc"][0]))
        if line:
            where = f"{source}:{line}"
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown key '{key}'"
    msg = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    if tuple(err["loc"][:2]) == ("pipeline", "notify"):  # URLs hold tokens: never on stderr in full
        from cockpit.outlets.notify_urls import mask_url

        got = [mask_url(str(u)) for u in got] if isinstance(got, list) else mask_url(str(got))
    return f"{where}: key '{key}': {msg[:1].lower() + msg[1:]} (got {got!r})"


def _line_of_key(text: str, key: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith(f"{key} ") or stripped.startswith(f"{key}=") or stripped == f"[{key}]":
            return number
    return None


def load_preset(name_or_path: str, overrides: list[str] = ()) -> tuple[Preset, dict[str, Any]]:
    """Load, override and validate a preset; also check every run config it implies.

    Overrides are ``key=value`` with dotted keys into the preset (``pipeline.top_k=1``,
    ``phase1.max_train_samples=2000``); a key without a table (``lr=1e-4``) goes to
    ``defaults``. Returns the preset and the raw dict to save as ``preset.toml``.
    """
    path = resolve_preset_path(name_or_path)
    try:
        text, data = read_toml_text(path)
    except ConfigError as exc:
        raise PresetError(str(exc)) from None
    source = str(path)
    try:
        for item in overrides:
            key, value = parse_override(item)
            top = key.split(".", 1)[0]
            set_dotted(data, key if top in Preset.model_fields else f"defaults.{key}", value)
    except ConfigError as exc:
        raise PresetError(str(exc)) from None
    if overrides:
        source, text = f"{path} (with --set)", None
    try:
        preset = Preset.model_validate(data)
    except ValidationError as exc:
        raise PresetError(_pydantic_line(source, exc, text)) from None
    _check_outlets(preset, source)
    space = preset.search_space()
    if space is not None:
        problem = space.problem()
        line = search_problem_line(source, text, *problem) if problem else optuna_missing_line(source)
        if line:
            raise PresetError(line)
    for phase in RUN_PHASES:  # a phase table's 'seeds' is the pipeline's key, not a run config key
        seeds = preset._phase_table(phase).get(SEEDS_KEY, 1)
        if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
            line = _line_of_key(text, SEEDS_KEY) if text else None
            raise PresetError(f"{source}{f':{line}' if line else ''}: key 'phase{phase}.{SEEDS_KEY}': expected the "
                              f"seeds per config, an integer from 1 to {MAX_SEEDS} (got {seeds!r})")
    if preset.pipeline.final == "seed_ensemble" and preset.seeds(4) < 2:
        raise PresetError(f"{source}: key 'pipeline.final': 'seed_ensemble' averages the best config trained with "
                          f"several seeds: set [phase4] seeds (or [pipeline] seeds) to 2 or more (got "
                          f"{preset.seeds(4)})")
    try:
        _check_ensemble_members(preset, source)
        for config in preset.configs:
            for phase in RUN_PHASES:
                _check_inputs(preset.run_config(phase, config, run_id(phase, config.name)), source)
            if config.fault:
                from trainer.faults import FaultSpecError, parse_faults

                try:
                    parse_faults(config.fault)
                except FaultSpecError as exc:
                    raise PresetError(f"{source}: config '{config.name}': {exc}") from None
    except ConfigError as exc:
        raise PresetError(f"{exc}".replace("preset ", f"{source}: preset ", 1)) from None
    return preset, data


def _check_outlets(preset: Preset, source: str) -> None:
    """Notification URLs and trackers are checked before anything starts, not at the first stall."""
    if preset.pipeline.notify or os.environ.get(ENV_NOTIFY):
        from cockpit.outlets.notify_urls import check_notify_urls, notify_urls

        problem = check_notify_urls(list(preset.pipeline.notify))
        if problem:
            raise PresetError(f"{source}: key 'pipeline.notify': {problem}")
        problem = check_notify_urls(notify_urls([]))
        if problem:
            raise PresetError(f"environment variable {ENV_NOTIFY}: {problem}")


def _check_ensemble_members(preset: Preset, source: str) -> None:
    """``final = "ensemble"`` averages Phase 3's (else Phase 1's) runs of the top configs: all of them must
    share the keys the members share, or p4-final refuses them after every other phase has trained."""
    if preset.pipeline.final != "ensemble":
        return
    runs = [(run_id(p, c.name), preset.run_config(p, c, run_id(p, c.name))) for c in preset.configs for p in (1, 3)]
    first_run, first = runs[0]
    differing = []
    for key in ENSEMBLE_SHARED_KEYS:
        other = next(((run, config) for run, config in runs if getattr(config, key) != getattr(first, key)), None)
        if other is not None:
            differing.append(f"'{key}' is {getattr(first, key)!r} in {first_run} but {getattr(other[1], key)!r} "
                             f"in {other[0]}")
    if differing:
        raise PresetError(f"{source}: pipeline.final = 'ensemble' averages runs that must share "
                          f"{', '.join(ENSEMBLE_SHARED_KEYS)} (per config and per phase): {'; '.join(differing)}")


def check_phase_selection(phases: list[int], where: str) -> None:
    """Phase 2 ranks the runs Phase 1 trains in the same pipeline: without Phase 1 it has nothing to rank,
    and the pipeline would end "completed" with an empty leaderboard."""
    if 2 in phases and 1 not in phases:
        raise PresetError(f"{where}: phase 2 ranks phase 1's runs, so it needs phase 1 in the same pipeline "
                          "(e.g. phases 1,2)")


_checked_sources: set[str] = set()


def _check_inputs(config: RunConfig, source: str) -> None:
    """Model names and data folders must exist before anything starts (the trainer would only find out later)."""
    from trainer.model_source import ModelError, resolve_model

    try:
        resolve_model(config.model, config.pooling)
    except ModelError as exc:
        raise PresetError(f"{source}: {exc}") from None
    if config.report_to != "none":
        from cockpit.outlets.trackers import resolve_report_to

        try:
            resolve_report_to(config.report_to)  # a listed tracker whose library is missing names its extra
        except ValueError as exc:
            raise PresetError(f"{source}: {exc}") from None
    if config.source == "hub" and config.source not in _checked_sources:
        from trainer.data import DataError, check_hub_source

        try:
            check_hub_source()
        except DataError as exc:
            raise PresetError(f"{source}: {exc}") from None
        _checked_sources.add(config.source)
    if config.sources is not None:
        key = repr([s.model_dump() for s in config.sources])
        if key not in _checked_sources:
            from trainer.data import DataError
            from trainer.sources import load_sources

            try:
                load_sources(config)  # reads every file and map: a bad row or key is named here, exit 2
            except DataError as exc:
                raise PresetError(f"{source}: {exc}") from None
            _checked_sources.add(key)
    elif config.source not in ("embedded", "hub") and config.source not in _checked_sources:
        from trainer.data import DataError, load_splits

        try:
            load_splits(config.source)  # validates every row: a bad one is named by file and line
        except DataError as exc:
            raise PresetError(f"{source}: {exc}") from None
        _checked_sources.add(config.source)


@dataclass(frozen=True)
class PlannedRun:
    """One run the pipeline will launch."""

    run_id: str
    phase: int
    config: str
    seed: int | None = None  # a run of a seed group (seeds = k); None: the config's own seed


def phase1_plan(preset: Preset, selected: list[str] | None = None) -> list[PlannedRun]:
    """Phase 1's runs: the selected configs (each once, in the order given), else all of the preset's."""
    names = list(dict.fromkeys(selected or [c.name for c in preset.configs]))
    unknown = [n for n in names if n not in {c.name for c in preset.configs}]
    if unknown:
        raise PresetError(f"unknown config {unknown[0]!r} (preset {preset.name} has: "
                          f"{', '.join(c.name for c in preset.configs)})")
    return seed_runs(preset, 1, names)


def seed_runs(preset: Preset, phase: int, configs: list[str]) -> list[PlannedRun]:
    """A phase's runs of the given configs: each config once, or once per seed (``seeds = k``), seeds together."""
    return [PlannedRun(run_id(phase, name, seed), phase, name, seed)
            for name in configs for seed in preset.run_seeds(phase, preset.config(name))]


# Settings whose values become shell lines or pick what runs them: a browser session (--web) may not set
# them; they come from the preset file, which only the owner writes.
SHELL_SETTINGS = ("pipeline.launcher", "slurm.setup", "slurm.python", "slurm.extra")


def shell_setting(item: str) -> str | None:
    """The shell-running setting a ``key=value`` override would set (also through a parent table such as
    ``slurm={...}``), or None."""
    key = item.split("=", 1)[0].strip().strip(".")
    top = key.split(".", 1)[0]
    key = key if top in Preset.model_fields else f"defaults.{key}"
    for setting in SHELL_SETTINGS:
        if key == setting or setting.startswith(key + ".") or key.startswith(setting + "."):
            return setting
    return None
