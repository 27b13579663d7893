"""The ``[search]`` table of a preset: the space an Optuna study samples, its sampler and pruner, how many trials,
and what one sampled point means for a run (its loss, the loss's parameters, run-config keys).

Validated strictly, as the rest of a preset: pydantic reads each parameter's table, and `SearchSpace.problem`
checks what needs the preset too (names, ranges against the run config's own rules, the grid). Every problem is
one line naming the key. No Optuna here: a trial is anything with Optuna's ``suggest_*`` methods (`Suggester`).

Conditional parameters: a loss parameter (ASL's ``gamma_neg``, Combined's ``ratio``) is suggested only in a trial
whose loss takes it, after the loss is chosen, so Optuna's define-by-run space never holds a parameter the trial
does not use, and TPE models each loss's parameters from the trials that trained that loss.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Protocol, Sequence, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_serializer, model_validator

from trainer.config import RunConfig
from trainer.contract import SEARCH_JOURNAL_FILE, SEARCH_SQLITE_FILE, SELECT_BY
from trainer.loss_names import LOSS_PARAMS, PARAM_RULES

SEARCH_TABLE = "search"  # the preset's table
SEARCH_EXTRA = "search"  # the pip extra that brings Optuna: pip install 'goemo-cockpit[search]'
SAMPLERS = ("tpe", "grid", "random")
PRUNERS = ("median", "hyperband", "none")
STORAGES = ("journal", "sqlite")
SPEC_KINDS = ("uniform", "log_uniform", "int", "choice")
# Parameters that are not run-config keys: a preset config by name (its loss, loss parameters and settings, as
# phase 1 runs it), the loss by name, and a run's training seed.
CONFIG_PARAM = "config"
LOSS_PARAM = "loss"
SEED_PARAM = "seed"
# Run-config keys a search may vary: how one run trains. Not data, model or budget keys (max_train_samples,
# model, max_steps): trials compared on different data or models say nothing about their hyperparameters.
RUN_KEYS = ("lr", "head_lr", "weight_decay", "warmup_ratio", "scheduler", "batch_size", "grad_accum", "dropout",
            "epochs", "max_grad_norm", "oversampling", "oversampling_factor", "class_weights", "max_length",
            "pooling", "label_masks")
LOSS_PARAM_NAMES = tuple(sorted({name for names in LOSS_PARAMS.values() for name in names}))
MAX_TRIALS = 10_000

Scalar = Union[bool, int, float, str]


class Suggester(Protocol):
    """What the space asks of a trial: Optuna's ``Trial`` (and ``FixedTrial``) suggest methods."""

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float: ...

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


class ParamSpec(BaseModel):
    """One parameter as the preset writes it: ``{ uniform = [0, 0.3] }``, ``{ log_uniform = [1e-5, 1e-3] }``,
    ``{ int = [1, 4] }`` or ``{ choice = [16, 32] }``; ``step`` optionally with uniform or int. Ranges include
    both ends."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    kind: Literal[SPEC_KINDS]
    low: int | float | None = None
    high: int | float | None = None
    step: int | float | None = None
    choices: tuple[Scalar, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _from_table(cls, value: Any) -> Any:
        if isinstance(value, dict) and "kind" in value:  # already read (a model_dump validated again)
            return value
        return _read_table(value)

    @model_serializer
    def _to_table(self) -> dict[str, Any]:
        """The table the preset wrote, so a dumped preset reads back the same."""
        body = list(self.choices) if self.kind == "choice" else [self.low, self.high]
        return {self.kind: body, **({"step": self.step} if self.step is not None else {})}

    @property
    def is_choice(self) -> bool:
        return self.kind == "choice"

    def candidates(self) -> tuple[Any, ...]:
        """The values to check against a key's rule: every choice, or both ends of the range."""
        return self.choices if self.is_choice else (self.low, self.high)

    def suggest(self, name: str, trial: Suggester) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), step=int(self.step or 1))
        return trial.suggest_float(name, float(self.low), float(self.high), step=self.step,
                                   log=self.kind == "log_uniform")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _read_table(value: Any) -> dict[str, Any]:
    """A parameter's TOML table as ParamSpec's fields; ValueError says what was expected, in one line."""
    if not isinstance(value, dict):
        raise ValueError("expected a table such as { uniform = [0, 0.3] } or { choice = [16, 32] }")
    unknown = sorted(set(value) - {*SPEC_KINDS, "step"})
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (expected one of {', '.join(SPEC_KINDS)}, and optionally step)")
    kinds = [k for k in SPEC_KINDS if k in value]
    if len(kinds) != 1:
        raise ValueError(f"expected exactly one of {', '.join(SPEC_KINDS)}")
    kind, body, step = kinds[0], value[kinds[0]], value.get("step")
    if kind == "choice":
        if step is not None:
            raise ValueError("'step' goes with uniform or int, not with choice")
        if not isinstance(body, list) or not body:
            raise ValueError("empty choice list: expected at least one value, e.g. { choice = [16, 32] }")
        if any(isinstance(c, (dict, list)) or (isinstance(c, float) and not math.isfinite(c)) for c in body):
            raise ValueError("expected choices that are strings, finite numbers or booleans")
        if len({(type(c), c) for c in body}) != len(body):
            raise ValueError("a choice is listed twice")
        return {"kind": kind, "choices": tuple(body)}
    if not isinstance(body, list) or len(body) != 2 or not all(_is_number(x) for x in body):
        raise ValueError(f"expected {kind} = [low, high], two finite numbers")
    low, high = body
    if kind == "int" and not all(isinstance(x, int) for x in body):
        raise ValueError("expected int = [low, high], two integers")
    if low >= high:
        raise ValueError("empty range: expected low < high")
    if kind == "log_uniform" and low <= 0:
        raise ValueError("a log range must stay above zero: expected 0 < low < high")
    if step is not None:
        if kind == "log_uniform":
            raise ValueError("'step' goes with uniform or int, not with a log range")
        if not _is_number(step) or step <= 0 or (kind == "int" and not isinstance(step, int)):
            raise ValueError(f"expected a positive {'integer' if kind == 'int' else 'number'} for 'step'")
    return {"kind": kind, "low": low, "high": high, "step": step}


class SearchSettings(BaseModel):
    """``[search]``: the search phase's Optuna study. Its space is ``[search.params]``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    params: dict[str, ParamSpec] = Field(min_length=1, description="parameter name -> its range or choices")
    sampler: Literal[SAMPLERS] = Field("tpe", description="tpe (Bayesian), grid (every combination of choices, "
                                                          "e.g. the preset's own configs) or random")
    pruner: Literal[PRUNERS] = Field("median", description="median: stop a trial whose dev score is below the "
                                                           "median of earlier trials at the same step; hyperband; none")
    n_trials: int | None = Field(None, ge=1, le=MAX_TRIALS, description="finished trials (complete or pruned) the "
                                                                         "study ends at; grid: the grid's size")
    timeout_s: float | None = Field(None, gt=0, description="no new trial after this many seconds of the study "
                                                            "(summed over --resume); running trials finish")
    parallel: int = Field(1, ge=1, description="trials running at once (each on a slot)")
    objective: Literal[SELECT_BY] | None = Field(None, description="what a trial maximises: f1@primary or tuned_cv "
                                                                   "(default: the pipeline's select_by)")
    seed: int = Field(42, ge=0, le=2**32 - 1, description="the sampler's seed (a trial's training seed is the "
                                                          "run's own)")
    storage: Literal[STORAGES] = Field("journal", description=f"journal: {SEARCH_JOURNAL_FILE} (safe on NFS); "
                                                              f"sqlite: {SEARCH_SQLITE_FILE}, for local disks")
    startup_trials: int = Field(10, ge=0, description="tpe: random trials before it models the space")
    prune_after_trials: int = Field(5, ge=0, description="median: no pruning until this many trials completed")
    prune_warmup_steps: int = Field(0, ge=0, description="no pruning before this step (hyperband: its minimum "
                                                         "resource, at least 1)")


@dataclass(frozen=True)
class LossChoice:
    """A loss and its parameters as a trial starts from them: a preset config's, or ``[defaults]``'s."""

    loss: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialSettings:
    """What one sampled point means for its run."""

    config: str | None
    """The preset config the trial runs (the ``config`` parameter), or None: ``[defaults]`` with the overrides."""
    loss: str
    loss_params: dict[str, Any]
    overrides: dict[str, Any]
    """Run-config keys (RUN_KEYS) the trial sets."""
    seed: int | None
    """The run's training seed (the ``seed`` parameter), or None: the config's own."""


def _numeric(annotation: Any) -> str | None:
    """"float" or "int" for a run key that takes such numbers, else None (a Literal, a bool, a string)."""
    kinds = {a for a in get_args(annotation) or (annotation,) if a is not type(None)}
    return "float" if float in kinds else "int" if int in kinds else None


@dataclass(frozen=True)
class SearchSpace:
    """A preset's ``[search]`` with what it refers to: the preset's configs by name, ``[defaults]``'s loss, and the
    pipeline's select_by (the objective unless ``objective`` says otherwise)."""

    settings: SearchSettings
    configs: Mapping[str, LossChoice]
    base: LossChoice
    select_by: str

    @property
    def params(self) -> dict[str, ParamSpec]:
        return self.settings.params

    @property
    def objective(self) -> str:
        return self.settings.objective or self.select_by

    def losses(self) -> tuple[str, ...]:
        """Every loss a trial can train."""
        if LOSS_PARAM in self.params:
            return tuple(str(c) for c in self.params[LOSS_PARAM].candidates())
        if CONFIG_PARAM in self.params:
            return tuple(dict.fromkeys(self.configs[str(c)].loss for c in self.params[CONFIG_PARAM].candidates()
                                       if str(c) in self.configs))
        return (self.base.loss,)

    def grid(self) -> dict[str, list[Any]]:
        """The grid sampler's space: each parameter's choices."""
        return {name: list(spec.choices) for name, spec in self.params.items()}

    def grid_size(self) -> int:
        return math.prod(len(spec.choices) for spec in self.params.values())

    def n_trials(self) -> int | None:
        """Finished trials the study ends at: ``n_trials``, else the grid's size (grid), else None (timeout only)."""
        if self.settings.n_trials is not None:
            return self.settings.n_trials
        return self.grid_size() if self.settings.sampler == "grid" else None

    def suggest(self, trial: Suggester) -> dict[str, Any]:
        """Sample one point: the config, the loss and the seed first, then run keys, then the parameters of the
        trial's loss only."""
        order = [CONFIG_PARAM, LOSS_PARAM, SEED_PARAM, *(n for n in self.params if n in RUN_KEYS)]
        params = {name: self.params[name].suggest(name, trial) for name in order if name in self.params}
        loss = self._loss_of(params)
        for name, spec in self.params.items():
            if name in LOSS_PARAM_NAMES and name in LOSS_PARAMS.get(loss, ()):
                params[name] = spec.suggest(name, trial)
        return params

    def _loss_of(self, params: Mapping[str, Any]) -> str:
        if LOSS_PARAM in params:
            return str(params[LOSS_PARAM])
        return self._start(params).loss

    def _start(self, params: Mapping[str, Any]) -> LossChoice:
        config = params.get(CONFIG_PARAM)
        return self.configs[str(config)] if config is not None else self.base

    def trial_settings(self, params: Mapping[str, Any]) -> TrialSettings:
        """A sampled point (``suggest``'s result, or a finished trial's params) as its run's settings. The loss's
        parameters start from the config's (or ``[defaults]``'s, for the same loss) and take the sampled ones."""
        start = self._start(params)
        loss = self._loss_of(params)
        loss_params = dict(start.params) if loss == start.loss else {}
        loss_params.update({k: v for k, v in params.items() if k in LOSS_PARAMS.get(loss, ())})
        config = params.get(CONFIG_PARAM)
        seed = params.get(SEED_PARAM)
        return TrialSettings(None if config is None else str(config), loss, loss_params,
                             {k: v for k, v in params.items() if k in RUN_KEYS}, None if seed is None else int(seed))

    def problem(self) -> tuple[str, str] | None:
        """(key under ``search``, what was expected) for the first problem of this space, or None."""
        known = (*RUN_KEYS, *LOSS_PARAM_NAMES, LOSS_PARAM, CONFIG_PARAM, SEED_PARAM)
        for name in self.params:
            if name not in known:
                return (f"params.{name}", f"unknown parameter (expected a run key: {', '.join(RUN_KEYS)}; a loss "
                                          f"parameter: {', '.join(LOSS_PARAM_NAMES)}; or {LOSS_PARAM}, "
                                          f"{CONFIG_PARAM}, {SEED_PARAM})")
        return self._names_problem() or self._values_problem() or self._sampler_problem()

    def _names_problem(self) -> tuple[str, str] | None:
        params = self.params
        if LOSS_PARAM in params and CONFIG_PARAM in params:
            return f"params.{LOSS_PARAM}", f"search either '{LOSS_PARAM}' or '{CONFIG_PARAM}' (a config names " \
                                           "its loss), not both"
        for name, universe in ((CONFIG_PARAM, tuple(self.configs)), (LOSS_PARAM, tuple(LOSS_PARAMS))):
            spec = params.get(name)
            if spec is None:
                continue
            if not spec.is_choice:
                return f"params.{name}", f"expected {{ choice = [...] }} of: {', '.join(universe)}"
            wrong = [c for c in spec.choices if c not in universe]
            if wrong:
                return f"params.{name}", f"unknown {name} {wrong[0]!r} (expected one of: {', '.join(universe)})"
        seed = params.get(SEED_PARAM)
        if seed is not None and not (seed.is_choice and all(isinstance(c, int) and not isinstance(c, bool)
                                                            and 0 <= c < 2**32 for c in seed.choices)):
            return f"params.{SEED_PARAM}", "expected { choice = [42, 43, ...] }: training seeds, integers from 0 " \
                                           "to 2**32 - 1"
        losses = self.losses()
        for name in params:
            if name in LOSS_PARAM_NAMES and not any(name in LOSS_PARAMS[loss] for loss in losses):
                return f"params.{name}", f"no loss of this search takes '{name}' (it trains {', '.join(losses)})"
        return None

    def _values_problem(self) -> tuple[str, str] | None:
        """Each end of a range and each choice must be a value the run config (or the loss) accepts."""
        for name, spec in self.params.items():
            if name in RUN_KEYS:
                numeric = _numeric(RunConfig.model_fields[name].annotation)
                if not spec.is_choice and (numeric is None or (numeric == "int" and spec.kind != "int")):
                    expected = "{ int = [a, b] } or { choice = [...] }" if numeric == "int" else "{ choice = [...] }"
                    takes = "integers" if numeric == "int" else "one of a set of values"
                    return f"params.{name}", f"expected {expected}: '{name}' takes {takes}"
                for value in spec.candidates():
                    try:
                        RunConfig.model_validate({name: value})
                    except ValidationError as exc:
                        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
                        return f"params.{name}", f"{value!r} is not a valid '{name}': {message[:1].lower()}{message[1:]}"
            elif name in LOSS_PARAM_NAMES:
                rule = PARAM_RULES[name]
                if not spec.is_choice and rule.kind != "number":
                    return f"params.{name}", f"expected {{ choice = [...] }}: '{name}' takes {rule.expected()}"
                wrong = [v for v in spec.candidates() if not rule.accepts(v)]
                if wrong:
                    return f"params.{name}", f"expected {rule.expected()} (got {wrong[0]!r})"
        return None

    def _sampler_problem(self) -> tuple[str, str] | None:
        settings = self.settings
        if settings.sampler == "grid":
            for name, spec in self.params.items():
                if not spec.is_choice:
                    return f"params.{name}", "the grid sampler takes choices only: write { choice = [...] } with " \
                                             "the grid's points"
                if name in LOSS_PARAM_NAMES and not all(name in LOSS_PARAMS[loss] for loss in self.losses()):
                    return f"params.{name}", f"with the grid sampler every loss of the search must take '{name}' " \
                                             f"(else the grid repeats runs): name whole configs with " \
                                             f"'{CONFIG_PARAM}', or search one loss"
            if settings.n_trials is not None and settings.n_trials > self.grid_size():
                return "n_trials", f"the grid has {self.grid_size()} points: expected at most {self.grid_size()} " \
                                   "trials (or leave n_trials out)"
        elif settings.n_trials is None and settings.timeout_s is None:
            return "n_trials", f"expected a number of trials, or timeout_s: a {settings.sampler} study needs an end"
        return None


def search_line(text: str | None, key: str) -> int | None:
    """The line of a ``[search]`` key (``params.lr``, ``n_trials``) in a preset's text: the first line that sets
    the key's last part after the first ``[search`` table header."""
    if not text:
        return None
    name = key.split(".")[-1]
    inside, header = False, None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("["):
            inside = stripped.startswith(f"[{SEARCH_TABLE}]") or stripped.startswith(f"[{SEARCH_TABLE}.")
            header = header or (number if inside else None)
            continue
        if inside and (stripped.startswith(f"{name} ") or stripped.startswith(f"{name}=")):
            return number
    return header  # a key the table leaves out (n_trials): the table's own line


def search_problem_line(source: str, text: str | None, key: str, message: str) -> str:
    """``preset.toml:31: key 'search.params.lr': <what was expected>``."""
    line = search_line(text, key)
    return f"{source}{f':{line}' if line else ''}: key '{SEARCH_TABLE}.{key}': {message}"


def search_validation_line(source: str, text: str | None, exc: ValidationError) -> str:
    """A pydantic error inside ``[search]`` as one line naming the key (the preset's own formatter would look
    for the key's line from the top of the file, where ``[defaults]`` sets ``lr`` too)."""
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"][1:]]
    key = ".".join(loc) or SEARCH_TABLE
    if err["type"] == "extra_forbidden":
        keys = ", ".join(SearchSettings.model_fields)
        return search_problem_line(source, text, key, f"unknown key (expected one of: {keys})")
    if loc == ["params"] and err["type"] in ("missing", "too_short"):
        return search_problem_line(source, text, key, "expected a [search.params] table with at least one "
                                                      "parameter, e.g. lr = { log_uniform = [1e-5, 1e-3] }")
    message = err["msg"].removeprefix("Value error, ")
    return search_problem_line(source, text, key, f"{message[:1].lower()}{message[1:]} (got {err.get('input')!r})")


def optuna_installed() -> bool:
    return importlib.util.find_spec("optuna") is not None


def optuna_missing_line(source: str) -> str | None:
    """One line when the search phase cannot run here: Optuna is not installed."""
    if optuna_installed():
        return None
    return (f"{source}: key '{SEARCH_TABLE}': the search phase runs an Optuna study, and optuna is not installed: "
            f"pip install 'goemo-cockpit[{SEARCH_EXTRA}]'")
