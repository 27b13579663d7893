"""The typed run config: TOML file, then flag and ``--set key=value`` overrides, validated by pydantic."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from trainer.contract import DEFAULT_ENSEMBLE_RULE, ENSEMBLE_RULES, TRACKERS
from trainer.contract import SELECT_BY
from trainer.file_reads import int_limit_message, parse_toml, read_text
from trainer.loss_names import loss_params_problem


class ConfigError(ValueError):
    """A user error in a config: the message is one line naming the source, key and what was expected."""


_TOML_FILE = "a UTF-8 TOML file"  # what a config or preset path must hold, in its read errors


SOURCE_KINDS = ("goemotions", "semeval2018-ec", "isear", "meld", "table")
# A source weight above this is a typo, not a plan: weight x rows train rows are drawn (1e300 overflowed).
MAX_SOURCE_WEIGHT = 100.0


class SourceSpec(BaseModel):
    """One training-data source: a kind, where its files are, and how much of it to use.

    ``goemotions`` reads the embedded copy (or ``path``: 'hub' or a folder, as ``source`` did); the other
    kinds read the user's own licensed files in their native formats (trainer/source_readers.py).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: Literal["goemotions", "semeval2018-ec", "isear", "meld", "table"]
    path: str | None = Field(None, description="file or folder; goemotions: 'embedded' (default), 'hub' or a folder")
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                             description="shown in events and views (default: the kind)")
    weight: float = Field(1.0, gt=0, le=MAX_SOURCE_WEIGHT,
                          description="sampling weight: train rows are drawn weight x as often (at most 100)")
    max_train_samples: int | None = Field(None, ge=0, description="seeded subset of this source's train rows")
    label_map: str | None = Field(None, description="a TOML label map overriding the shipped one")
    text: str | None = Field(None, description="table: the text column (default 'text')")
    labels: str | None = Field(None, description="table: the labels column (default 'labels')")
    split_seed: int = Field(0, ge=0, description="seed of the 80/10/10 split of a source without one")

    @field_validator("name")
    @classmethod
    def _goemotions_name_is_the_goemotions_source(cls, value: str | None, info: ValidationInfo) -> str | None:
        # views and events read the name "goemotions" as the data that selects and tests
        kind = info.data.get("kind")
        if value == "goemotions" and kind not in (None, "goemotions"):
            raise ValueError(f"the name 'goemotions' belongs to the goemotions source (expected another name "
                             f"for this {kind!r} source)")
        return value

    @model_validator(mode="after")
    def _keys_fit_kind(self) -> "SourceSpec":
        if self.kind != "goemotions" and not self.path:
            raise ValueError(f"source kind {self.kind!r} needs a 'path' to your own copy of its files "
                             f"(their licences forbid shipping them)")
        if self.kind != "table" and (self.text is not None or self.labels is not None):
            raise ValueError(f"'text' and 'labels' name columns of a table source, not of {self.kind!r}")
        if self.kind == "goemotions" and self.label_map is not None:
            raise ValueError("a goemotions source has our own labels and takes no 'label_map'")
        return self

    @property
    def display_name(self) -> str:
        return self.name or self.kind


class RunConfig(BaseModel):
    """Everything one training run needs. Unknown keys are errors, not silently ignored."""

    # allow_inf_nan=False: `epochs = inf` or `lr = nan` (both valid TOML) are errors, not endless or NaN runs.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    run: str = Field("run", description="run id shown in events and views")
    # data
    source: str = Field("embedded", description="'embedded', 'hub', or a folder with train/dev/test .tsv/.csv/.jsonl")
    max_train_samples: int | None = Field(None, ge=0, description="seeded subset of train; 0 or unset: all rows")
    sources: list[SourceSpec] | None = Field(
        None, description="several sources mapped onto our labels; unset: [{kind = 'goemotions', path = source}]")
    taxonomy: Literal["goemotions", "ekman", "sentiment"] = Field(
        "goemotions", description="the 28 labels, or the paper's Ekman or sentiment groupings of them")
    label_masks: bool = Field(True, description="losses ignore labels a row's source cannot know (false: "
                                                "they count as negatives; for ablations)")
    max_eval_samples: int | None = Field(None, ge=0, description="seeded subset of dev and test; 0 or unset: all")
    oversampling: Literal["below_median", "none"] = "below_median"
    oversampling_factor: float = Field(1.5, ge=1.0)
    class_weights: Literal["balanced", "none"] = "balanced"
    max_length: int = Field(128, ge=8, le=4096)
    # model
    model: str = Field("minilm", description="'minilm', 'tiny-deberta', a hub id or a local path")
    pooling: Literal["auto", "mean", "head"] = "auto"
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    gradient_checkpointing: bool = False
    compile: bool = Field(False, description="torch.compile the model (dynamic shapes) before training; off: "
                                             "eager, bit-exact with runs made before the key existed")
    # loss
    loss: str = "bce"
    loss_params: dict[str, Any] = Field(default_factory=dict)
    # optimisation
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1)
    batch_size: int = Field(32, ge=1, description="training rows per micro-batch (unused when max_tokens_per_batch "
                                                  "is set); evaluation uses eval_batch_size")
    max_tokens_per_batch: int = Field(
        0, ge=0, description="token-budget batches: rows of similar length, as many as keep rows x padded length "
                             "within this (a longer row alone); batch_size is then unused for training, and lr is "
                             "not scaled (run_start's rows_per_batch says the mean). 0: rows of batch_size")
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(5e-5, gt=0)
    head_lr: float | None = Field(None, gt=0, description="learning rate of the new classifier head (default: lr)")
    weight_decay: float = Field(0.01, ge=0)
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    max_grad_norm: float = Field(1.0, ge=0, description="0 disables clipping")
    precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    accelerate_config: str | None = Field(
        None, description="an accelerate config file (YAML) the pipeline passes to `accelerate launch --config_file` "
                          "(DeepSpeed, FSDP, several machines); goemo-train itself ignores it")
    torch_threads: int | None = Field(None, ge=1)
    seed: int = Field(42, ge=0, le=2**32 - 1, description="numpy's global seeding takes 0 .. 2**32 - 1")
    threshold_bagging: int = Field(0, ge=0, le=1000,
                                   description="the final thresholds: the mean of the per-label thresholds tuned on "
                                               "this many bootstrap resamples of dev (0: tuned once on dev); less "
                                               "noise in rare labels' thresholds (docs/results.md, 'Thresholds')")
    eval_seed: int | None = Field(None, ge=0, le=2**32 - 1,
                                  description="seeds the dev and test subsets (max_eval_samples) and tuned_cv's "
                                              "splits; unset: seed. The runs of a preset's seeds = k share one, so "
                                              "every seed of a config is scored on the same rows (paired comparisons)")
    # evaluation and checkpoints
    eval_every_steps: int = Field(0, ge=0, description="0: evaluate at each epoch end only")
    eval_batch_size: int = Field(128, ge=1)
    thresholds: list[float] = Field(default_factory=lambda: [0.2, 0.5])
    primary_threshold: float = Field(0.2, gt=0, lt=1)
    select_by: Literal[SELECT_BY] = Field(
        "f1@primary", description="the dev score that picks the best checkpoint: macro-F1 at the primary threshold, "
                                  "or tuned_cv (thresholds tuned on one half of dev, scored on the other)")
    early_stop_patience: int = Field(0, ge=0, description="end the run (completed) after this many dev evals "
                                                          "without a rise beyond early_stop_min_delta; 0: never")
    early_stop_min_delta: float = Field(0.0, ge=0, description="how much the selection score must rise over its "
                                                               "best to count (a stand-in for its noise)")
    checkpoint_every_steps: int = Field(200, ge=0, description="0: only at epoch end and on SIGTERM")
    device_every_s: float = Field(10.0, ge=0, description="a 'device' event (GPUs, CPU, RSS of the node the run "
                                                          "runs on) this often; 0: none")
    max_nonfinite_in_row: int = Field(20, ge=1)
    export: bool = Field(False, description="at the end: best weights, dev/test probabilities, tuned thresholds")
    ensemble_rule: Literal[tuple(ENSEMBLE_RULES)] = Field(
        DEFAULT_ENSEMBLE_RULE, description="how an ensemble final (goemo-train --ensemble-from) combines its members: "
                                           "mean_prob (the mean of their probabilities) or mean_logit (the sigmoid "
                                           "of the mean of their logits, for seeds of one config)")
    # trackers: Hugging Face's report_to names and semantics ("all": every installed one; "none": none)
    report_to: Literal["all", "none"] | list[Literal["tensorboard", "mlflow", "trackio", "wandb"]] = Field(
        "none", description="trackers the supervisor forwards this run's events to (it never slows the trainer)")

    @model_validator(mode="after")
    def _known_loss(self) -> "RunConfig":
        problem = loss_params_problem(self.loss, self.loss_params)  # names and values, torch-free
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _one_way_to_name_data(self) -> "RunConfig":
        if self.sources is None:
            return self
        if self.source != "embedded":
            raise ValueError("set either 'source' or 'sources', not both (a goemotions source takes 'path')")
        if not self.sources:
            raise ValueError("key 'sources': expected at least one source")
        if sum(s.kind == "goemotions" for s in self.sources) > 1:
            raise ValueError("key 'sources': at most one goemotions source")
        names = [s.display_name for s in self.sources]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"key 'sources': the name {twice[0]!r} is used twice (give each a distinct 'name')")
        return self

    @property
    def evaluation_seed(self) -> int:
        """What seeds the eval subsets and tuned_cv's splits: eval_seed, else seed."""
        return self.seed if self.eval_seed is None else self.eval_seed

    def resolved_sources(self) -> list[SourceSpec]:
        """The sources of this run; the one-source ``source = ...`` of older configs is a goemotions source."""
        return list(self.sources) if self.sources is not None else [SourceSpec(kind="goemotions", path=self.source)]

    @field_validator("report_to", mode="before")
    @classmethod
    def _report_to_as_hugging_face_takes_it(cls, value: Any) -> Any:
        """'all', 'none', one tracker's name or a list of names; ["all"] and ["none"] mean 'all' and 'none'."""
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"expected 'all', 'none', a tracker's name or a list of them (got {value!r})")
        unknown = [n for n in names if n not in (*TRACKERS, "all", "none")]
        if unknown:
            raise ValueError(f"unknown tracker {unknown[0]!r} (expected 'all', 'none', or one or a list of "
                             f"{', '.join(TRACKERS)})")
        if len(names) == 1 and names[0] in ("all", "none"):
            return names[0]
        if "all" in names or "none" in names:
            raise ValueError(f"'all' and 'none' stand alone, not in a list with trackers (got {value!r})")
        return names

    @field_validator("thresholds")
    @classmethod
    def _thresholds_in_range(cls, value: list[float]) -> list[float]:
        if not value or any(not 0 < t < 1 for t in value):
            raise ValueError("a non-empty list of numbers strictly between 0 and 1")
        return value


def _describe_error(source: str, exc: ValidationError) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "?"
    if err["type"] == "extra_forbidden":
        in_source = err["loc"][0] == "sources" and len(err["loc"]) == 3
        valid = ", ".join(sorted((SourceSpec if in_source else RunConfig).model_fields))
        return f"{source}: unknown key '{key}' (valid keys: {valid})"
    if err["type"] == "value_error" and not err["loc"]:
        return f"{source}: {err['ctx']['error']}"
    if err["type"] == "value_error":
        return f"{source}: key '{key}': {err['ctx']['error']}"
    got = err.get("input")
    msg = err["msg"]  # only its first letter lowered: the rest may be a pattern such as [A-Za-z0-9]
    return f"{source}: key '{key}': {msg[:1].lower() + msg[1:]} (got {got!r})"


def parse_override(item: str, source: str = "--set") -> tuple[str, Any]:
    """Split ``key=value`` and read the value as TOML (so 3, 1e-4, true, [0.2, 0.5] are typed), else a string."""
    if "=" not in item:
        raise ConfigError(f"{source} {item!r}: expected key=value")
    key, raw = (s.strip() for s in item.split("=", 1))
    if not key:
        raise ConfigError(f"{source} {item!r}: expected key=value")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    except (ValueError, RecursionError) as exc:  # tomllib lets these through bare: a traceback otherwise
        raise ConfigError(f"{source} {key}: {int_limit_message(exc) or 'a value nested too deeply to read'} "
                          f"(expected key=value)") from None
    return key, value


def set_dotted(data: dict[str, Any], key: str, value: Any, source: str = "--set") -> None:
    """Set ``a.b.c`` in nested tables, in place; a number indexes a list (``sources.1.path=data/isear.csv``)."""
    parts = key.split(".")
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{source} {key}: '{part}' is not an index of '{parts[i - 1]}' "
                                  f"(expected 0..{len(node) - 1})")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"{source} {key}: '{parts[i - 1]}' is not a table")
        if last:
            node[part] = value
        else:
            node = node.setdefault(part, {})


def apply_overrides(data: dict[str, Any], overrides: list[tuple[str, Any]]) -> dict[str, Any]:
    """Apply dotted-key overrides (``loss_params.ratio=0.5``) to a plain dict, returning a new one."""
    import copy

    out = copy.deepcopy(data)
    for key, value in overrides:
        set_dotted(out, key, value)
    return out


def validate_config(data: dict[str, Any], source: str) -> RunConfig:
    """Validate a plain dict into a RunConfig, turning pydantic's report into one line."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe_error(source, exc)) from None


def read_toml_text(path: str | Path) -> tuple[str, dict[str, Any]]:
    """Read a TOML file as (text, data), turning every way it can be unreadable into a one-line ConfigError.

    The text (a UTF-8 byte-order mark dropped) is returned too, so callers can point at the line of a key.
    """
    text = read_text(path, _TOML_FILE, ConfigError)
    return text, parse_toml(text, path, _TOML_FILE, ConfigError)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, turning a missing, unreadable, non-UTF-8 or malformed file into a one-line ConfigError."""
    return read_toml_text(path)[1]


def load_config(path: str | Path | None, overrides: list[tuple[str, Any]] = ()) -> RunConfig:
    """Load a run config from TOML (or defaults when path is None) and apply overrides."""
    data = read_toml(path) if path is not None else {}
    source = str(path) if path is not None else "config"
    if overrides:
        data = apply_overrides(data, list(overrides))
        source = f"{source} (with overrides)"
    return validate_config(data, source)


def config_to_toml(config: RunConfig) -> str:
    """Render a resolved config as TOML (None values are omitted: TOML has no null)."""
    import tomli_w

    data = config.model_dump(exclude_none=True)
    return tomli_w.dumps(data)
