"""The file contract between goemo-train, the supervisor and the views: one home for shared knowledge.

Stdlib only: the cockpit imports this module and must stay free of torch. Every name of a
file or folder in a run folder or a pipeline folder, the run-id scheme, metric keys, exit
codes, the checkpoint-state reader, the step-count rule, the gradient-health rule and the
table of event types with their required keys are defined here once; ``trainer/durable.py``
writes the files durably.
``docs/contract.md`` is the human-readable twin (tests/test_contract_doc.py holds it to this module).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from trainer.file_reads import read_json

SCHEMA_VERSION = 1

# -- exit codes (goemo-train, goemo-cockpit --headless, goemo-predict) -------------------------
EXIT_OK = 0
EXIT_FAILED = 1  # a run failed for good (after its restarts), or an I/O fault ended the pipeline
EXIT_BAD_INPUT = 2  # bad input: one line on stderr, nothing started
EXIT_ABORTED = 3  # aborted by policy (on_run_failure = "abort")
EXIT_INTERRUPTED = 130  # SIGINT / Ctrl-C; checkpoints are on disk
EXIT_TERMINATED = 143  # SIGTERM, after a checkpoint


# -- environment the supervisor passes to goemo-train -------------------------------------------
ENV_ATTEMPT = "GOEMO_ATTEMPT"  # 1 for a run's first launch, 2 after one restart, ...
ENV_FAULT = "GOEMO_FAULT"  # fault drills, e.g. "hang@5,nan@3"
ENV_FAULT_ALWAYS = "GOEMO_FAULT_ALWAYS"  # "1": faults fire on every attempt, not the first only
ENV_STARTUP_GRACE = "GOEMO_STARTUP_GRACE_S"  # the watchdog's allowance for model load or download
ENV_NOTIFY = "GOEMO_NOTIFY"  # apprise URLs, separated by spaces or commas, added to the preset's `notify`


# -- run ids ------------------------------------------------------------------------------------
BASELINE_CONFIG = "bce"
FINAL_PHASE = 4
PHASE_NAMES = {1: "screen", 2: "analyse", 3: "extend", 4: "final"}
# The search phase (a preset's [search] study, issue 21) runs before phase 1 when selected ("--phases search,3,4").
SEARCH_PHASE = 0
SEARCH_PHASE_NAME = "search"


def run_id(phase: int, config: str, seed: int | None = None) -> str:
    """``p{phase}-{config}``: ``p1-bce``, ``p3-combined_07``. The final run is ``p4-final``. A config run with
    several seeds (a preset's ``seeds = k``) is one run per seed: ``p1-bce-s43`` (config names hold no '-')."""
    return f"p{phase}-{config}" + ("" if seed is None else f"-s{seed}")


FINAL_RUN = run_id(FINAL_PHASE, "final")
BASELINE_RUN = run_id(1, BASELINE_CONFIG)  # the pipeline's own BCE run, the ranking's baseline


_SEED_SUFFIX = re.compile(r"-s(\d+)$")


def split_run_id(run: str) -> tuple[int | None, str]:
    """``p3-combined_07`` -> (3, "combined_07"), ``p1-bce-s43`` -> (1, "bce"): the config, without the seed;
    ids without a phase prefix -> (None, run)."""
    head, sep, tail = run.partition("-")
    if sep and head[:1] == "p" and head[1:].isdigit():
        return int(head[1:]), _SEED_SUFFIX.sub("", tail)
    return None, run


# The search phase (issue 21): an Optuna study whose trials are runs of their own, s-000, s-001, ... A trial
# retried after a dead supervisor keeps its run (and folder, resumed from its checkpoint) under a new trial number.
SEARCH_RUN_PREFIX = "s-"
SEARCH_TRIAL_STATES = ("running", "complete", "pruned", "failed")  # search_trial's state


def search_run_id(trial: int) -> str:
    """``s-017``: the run of the study's trial 17 (three digits at least, so ids sort as their trials do)."""
    return f"{SEARCH_RUN_PREFIX}{trial:03d}"


def run_seed(run: str) -> int | None:
    """The seed a run id names (``p1-bce-s43`` -> 43), or None: a config run with a single seed."""
    match = _SEED_SUFFIX.search(run)
    return int(match.group(1)) if match and split_run_id(run)[0] is not None else None


# A run id as a folder name: one path component that starts with a letter or digit (so not '.' or '..').
# Names read from files (ensemble.json's members) must match it: they cannot lead outside their folder.
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def is_run_id(name: object) -> bool:
    """Whether ``name`` is a run id that is safe as a folder name (``p3-combined_07``, not ``../x``)."""
    return isinstance(name, str) and RUN_ID_PATTERN.fullmatch(name) is not None


# -- event types --------------------------------------------------------------------------------
class Event(StrEnum):
    """Every event type a run folder's events.jsonl or a pipeline folder's pipeline.jsonl holds.

    A member is its string: ``Event.EVAL == "eval"``, it hashes as ``"eval"`` (so the tables below answer
    lookups by the plain strings read back from JSON) and ``json.dumps`` writes the plain string. Code
    outside this module and cockpit/records/ names event types only through these members
    (tests/test_contract_literals.py holds it), so a type is renamed or grepped for in one place.
    The members are exactly the keys of TRAINER_EVENTS and PIPELINE_EVENTS ("alert" is in both).
    """

    # written by goemo-train into a run folder
    RUN_START = "run_start"
    DATA = "data"
    STEP = "step"
    ACTIVITY = "activity"
    EVAL = "eval"
    CHECKPOINT = "checkpoint"
    ALERT = "alert"
    RUN_END = "run_end"
    DEVICE = "device"
    # written by the supervisor into a pipeline folder
    PIPELINE_START = "pipeline_start"
    PHASE_START = "phase_start"
    RUN_LAUNCH = "run_launch"
    RUN_EXIT = "run_exit"
    STALL = "stall"
    RESTART = "restart"
    REQUEUE = "requeue"
    RUN_PENDING = "run_pending"
    RUN_DONE = "run_done"
    PHASE_END = "phase_end"
    PIPELINE_END = "pipeline_end"
    SEARCH_TRIAL = "search_trial"
    SEARCH_REPORT = "search_report"
    SEARCH_END = "search_end"


# -- metric keys --------------------------------------------------------------------------------
# The scores f1_summary computes and eval events carry (each a {threshold: value} map in an eval event,
# a plain number in a tuned summary); the leaderboard keys below are built from them.
F1_MACRO = "f1_macro"
F1_MICRO = "f1_micro"
F1_WEIGHTED = "f1_weighted"
# The eval event's field with the cross-fitted score ({"f1_macro": ...}); also the [pipeline] select_by
# word that ranks by it. Not TUNED_CV_KEY, the leaderboard key ("tuned_cv_f1_macro").
TUNED_CV_FIELD = "tuned_cv"
SELECT_F1_PRIMARY = "f1@primary"
SELECT_TUNED_CV = TUNED_CV_FIELD
DEFAULT_PRIMARY_THRESHOLD = 0.2
SECONDARY_THRESHOLD = 0.5  # every eval also reports F1 at 0.5, the usual default of other tools
TUNED_DEV_KEY = "tuned_f1_macro"  # leaderboard: dev thresholds tuned and scored on dev (optimistic)
TUNED_KEY = "f1_macro_tuned"  # final: thresholds tuned on dev, scored on the split
TUNED_INTERVAL_KEY = "f1_macro_tuned_interval"  # final test: [low, high], its 95 % bootstrap interval over test rows
# leaderboard: thresholds tuned on one stratified half of dev and scored on the other, then swapped (the
# mean); unlike TUNED_DEV_KEY it does not reward thresholds fitted to dev's own noise.
TUNED_CV_KEY = "tuned_cv_f1_macro"
# [pipeline] select_by: what ranks runs (phases 2-4), picks each run's best checkpoint and the final run.
SELECT_BY = (SELECT_F1_PRIMARY, SELECT_TUNED_CV)
DEFAULT_SELECT_BY = SELECT_F1_PRIMARY
# [pipeline] final: retrain the best config, reuse (export) the best run, average the top-k runs, or average the
# logits of the best config trained with several seeds (seed_ensemble).
FINAL_MODES = ("retrain", "reuse", "ensemble", "seed_ensemble")


def threshold_key(t: float) -> str:
    """The string a threshold is keyed by in events: 0.2 -> "0.2", 0.35000000000000003 -> "0.35"."""
    return f"{round(float(t), 6):g}"


def metric_key(metric: str, threshold: float) -> str:
    """``metric_key("f1_macro", 0.2)`` -> ``"f1_macro@0.2"``, the key summary.json and leaderboards use."""
    return f"{metric}@{threshold_key(threshold)}"


def f1_macro_key(threshold: float) -> str:
    return metric_key(F1_MACRO, threshold)


def f1_micro_key(threshold: float) -> str:
    return metric_key(F1_MICRO, threshold)


def selection_key(select_by: str, threshold: float) -> str:
    """The leaderboard key that ranks runs under ``select_by`` (``f1_macro@0.2`` or ``tuned_cv_f1_macro``)."""
    if select_by not in SELECT_BY:
        raise ValueError(f"select_by {select_by!r}: expected one of {', '.join(SELECT_BY)}")
    return TUNED_CV_KEY if select_by == SELECT_TUNED_CV else f1_macro_key(threshold)


def selection_scores(select_by: str, f1_primary: float | None,
                     cross_fitted: float | None) -> tuple[float | None, float | None]:
    """(value, tie-break) of one dev evaluation under select_by: the chosen score and the other one. The one
    ordering the trainer (best checkpoint) and the leaderboard (best eval of a run) both rank by."""
    return (cross_fitted, f1_primary) if select_by == SELECT_TUNED_CV else (f1_primary, cross_fitted)


def is_better(value: float, tie_break: float, best: dict[str, Any]) -> bool:
    """A new best checkpoint: a higher value, or the same value and a higher tie-break (macro-F1 at a
    fixed threshold ties often on a plateau; the later, better-tuning checkpoint should then win).
    A best recorded before tie-breaks existed counts as the lowest tie-break."""
    if best.get("value") is None:
        return True
    old_tie = best.get("tie_break")
    return (value, tie_break) > (best["value"], old_tie if isinstance(old_tie, (int, float)) else float("-inf"))


def best_metric_name(threshold: float, select_by: str = DEFAULT_SELECT_BY) -> str:
    """What ``run_end.best.metric`` names: the dev score that picked the run's best checkpoint."""
    return "dev_" + selection_key(select_by, threshold)


# -- file and folder names ----------------------------------------------------------------------
EVENTS_FILE = "events.jsonl"
PIPELINE_FILE = "pipeline.jsonl"
SUMMARY_FILE = "summary.json"
SUMMARY_FINAL_FILE = "summary.final.json"
PRESET_FILE = "preset.toml"
REPORT_FILE = "report.md"
RUN_CONFIG_FILE = "run.toml"
STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"
SLURM_SCRIPT_FILE = "slurm-job.sh"  # a Slurm run's batch script, in its run folder
SUPERVISOR_LOG_FILE = "supervisor.log"
LOCK_FILE = "supervisor.lock"
# A run folder's lock: its trainer holds an flock on it for its whole life (trainer/run_lock.py), so a
# second trainer on the same folder (a resubmitted job while the old one still runs) exits 2 at once.
RUN_LOCK_FILE = "trainer.lock"
ENV_SLURM_JOB_ID = "SLURM_JOB_ID"  # set by Slurm in a batch job: the lock's holder line names the job
CONTROL_DIR = "control"
FINAL_DIR = "final"
EXPORT_DIR = "export"
TABLES_DIR = "tables"  # runs/<id>/tables: what `goemo-cockpit export --to csv|parquet` writes by default
CHECKPOINTS_DIR = "checkpoints"
LATEST = "latest"
BEST = "best"
OLD_SUFFIX = ".old"
TMP_SUFFIX = ".tmp"
TRAINER_STATE_FILE = "trainer_state.json"
BEST_META_FILE = "best.json"
WEIGHTS_FILE = "model.safetensors"
THRESHOLDS_FILE = "thresholds.json"
MODEL_CARD_FILE = "model_card.md"
MODEL_META_FILE = "goemo_model.json"
# An ensemble model folder: ENSEMBLE_FILE (members, averaging rule, their single scores) beside
# THRESHOLDS_FILE, and one exported model folder per member under MEMBERS_DIR/<run id>.
ENSEMBLE_FILE = "ensemble.json"
MEMBERS_DIR = "members"
# How an ensemble combines its members (RunConfig.ensemble_rule; ensemble.json keeps the name in "ensemble_rule"
# and the sentence in "rule"): the mean of their probabilities, or the sigmoid of the mean of their logits, the
# rule for seeds of one config (issue 19: 0.5266 against 0.5146 on cpu-full's pair). trainer/ensemble_average.py
# computes both. An ensemble.json without "ensemble_rule" was written before the choice: the mean of probabilities.
ENSEMBLE_MEAN_PROB = "mean_prob"
ENSEMBLE_MEAN_LOGIT = "mean_logit"
ENSEMBLE_RULES = {ENSEMBLE_MEAN_PROB: "mean of the members' sigmoid probabilities",
                  ENSEMBLE_MEAN_LOGIT: "sigmoid of the mean of the members' logits"}
DEFAULT_ENSEMBLE_RULE = ENSEMBLE_MEAN_PROB
ENSEMBLE_RULE = ENSEMBLE_RULES[DEFAULT_ENSEMBLE_RULE]  # the sentence of a final record that names no rule
# Run-config keys every ensemble member must share: the members load into one model skeleton and share
# one tokenisation of dev and test (trainer/ensemble.py checks the runs, the preset check the preset).
ENSEMBLE_SHARED_KEYS = ("model", "pooling", "taxonomy", "max_length")
HEAD_WEIGHTS_FILE = "classifier_head.safetensors"
# The fast tokenizer transformers saves into a model folder: goemo-predict's ONNX backends read it with `tokenizers`.
FAST_TOKENIZER_FILE = "tokenizer.json"
# goemo-export-onnx (trainer/onnx_export.py): the graph (ids and mask in, sigmoid probabilities out) and its
# int8 copy beside each model's safetensors (each member's folder for an ensemble); ONNX_META_FILE in the
# exported folder itself records them, max_length, the opset and each backend's test macro-F1;
# INT8_THRESHOLDS_FILE holds thresholds tuned on dev for the int8 model when the shipped ones cost it F1.
ONNX_MODEL_FILE = "model.onnx"
ONNX_INT8_FILE = "model.int8.onnx"
ONNX_META_FILE = "onnx.json"
INT8_THRESHOLDS_FILE = "thresholds.int8.json"
# The search phase's Optuna study, in the pipeline folder: a journal file (safe on NFS; `optuna-dashboard` opens
# it), or SQLite for local disks ([search] storage = "sqlite").
SEARCH_JOURNAL_FILE = "search.journal"
SEARCH_SQLITE_FILE = "search.sqlite3"
PLOT_FILES = ("curves.png", "per_class_f1.png", "label_counts.png")
FINAL_LABELS_PLOT = "final_labels_f1.png"  # the final model's per-label F1 with intervals (newer trainers only)
PROBS_FILES = ("dev_probs.npy", "test_probs.npy", "dev_labels.npy", "test_labels.npy")
STALL_PREFIX = "stall-"
# A multi-node run's other nodes report their devices into files of their own beside the run's events,
# one per node (the main process's node writes into EVENTS_FILE): two hosts appending to one file on a
# shared filesystem (NFS) can interleave or lose lines.
NODE_DEVICES_PREFIX = "devices-node"


def node_devices_file(node_rank: int) -> str:
    """The device-events file of node ``node_rank`` (1, 2, …) of a multi-node run, in its run folder."""
    return f"{NODE_DEVICES_PREFIX}{node_rank}.jsonl"


# Trackers (report_to): Hugging Face's names; each one's local store inside the pipeline folder.
TRACKERS = ("tensorboard", "mlflow", "trackio", "wandb")
TENSORBOARD_DIR = "tb"  # runs/<id>/tb/<run-id>: `tensorboard --logdir runs/<id>/tb` shows the whole pipeline
MLFLOW_DIR = "mlruns"  # MLflow's local store, unless MLFLOW_TRACKING_URI says otherwise
TRACKIO_DIR = "trackio"  # trackio's local database, unless TRACKIO_DIR says otherwise
WANDB_DIR = "wandb"  # wandb's run folders (offline mode unless the user is logged in)
# Notifications (notify_on): what a user can ask to hear about.
# Topics named after an event type mean that event; "failed" and "nonfinite_abort" are picked out of alerts.
NOTIFY_FAILED = "failed"
NOTIFY_NONFINITE = "nonfinite_abort"
# The supervisor's judgements (cockpit/judgements/), as the codes of its alerts in pipeline.jsonl: a run whose dev
# evals rank at chance or sit on the label prior, and a run whose GPUs wait while it trains.
ALERT_NOT_LEARNING = "not_learning"
ALERT_GPU_UNDERUSED = "gpu_underused"
NOTIFY_NOT_LEARNING = ALERT_NOT_LEARNING  # picked out of alerts, like "failed"
# Plain strings (.value): they are a preset's Literal choices and its saved TOML values.
NOTIFY_EVENTS = (Event.STALL.value, NOTIFY_FAILED, NOTIFY_NONFINITE, NOTIFY_NOT_LEARNING, Event.PIPELINE_END.value,
                 Event.RUN_DONE.value, Event.PHASE_END.value, Event.ALERT.value)
DEFAULT_NOTIFY_ON = (Event.STALL.value, NOTIFY_FAILED, NOTIFY_NONFINITE, NOTIFY_NOT_LEARNING, Event.PIPELINE_END.value)
# Inside checkpoints/latest: no pickle anywhere (tensors as safetensors, the rest as JSON).
OPTIMIZER_FILE = "optimizer.safetensors"
SCHEDULER_FILE = "scheduler.json"
SCALER_FILE = "scaler.json"
RNG_FILE_PREFIX = "rng-"


def rng_file(rank: int) -> str:
    """RNG states of one process of a run: ``rng-<rank>.json``."""
    return f"{RNG_FILE_PREFIX}{rank}.json"


def stall_file(n: int) -> str:
    """Forensics of a run's n-th stall: ``stall-<n>.txt``."""
    return f"{STALL_PREFIX}{n}.txt"


@dataclass(frozen=True)
class RunPaths:
    """The files of one run folder (``runs/<pipeline>/<run-id>/``)."""

    root: Path

    @property
    def events(self) -> Path:
        return self.root / EVENTS_FILE

    @property
    def config(self) -> Path:
        return self.root / RUN_CONFIG_FILE

    @property
    def stdout(self) -> Path:
        return self.root / STDOUT_FILE

    @property
    def stderr(self) -> Path:
        return self.root / STDERR_FILE

    @property
    def lock(self) -> Path:
        return self.root / RUN_LOCK_FILE

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS_DIR

    @property
    def export(self) -> Path:
        return self.root / EXPORT_DIR

    @property
    def best_weights(self) -> Path:
        return self.checkpoints / BEST / WEIGHTS_FILE

    def stall(self, n: int) -> Path:
        return self.root / stall_file(n)

    def stall_dumps(self) -> list[Path]:
        return sorted(self.root.glob(f"{STALL_PREFIX}*.txt"))


@dataclass(frozen=True)
class PipelinePaths:
    """The files of one pipeline folder (``runs/<pipeline-id>/``)."""

    root: Path

    @property
    def events(self) -> Path:
        return self.root / PIPELINE_FILE

    @property
    def summary(self) -> Path:
        return self.root / SUMMARY_FILE

    @property
    def summary_final(self) -> Path:
        return self.root / SUMMARY_FINAL_FILE

    @property
    def preset(self) -> Path:
        return self.root / PRESET_FILE

    @property
    def report(self) -> Path:
        return self.root / REPORT_FILE

    @property
    def control(self) -> Path:
        return self.root / CONTROL_DIR

    @property
    def final(self) -> Path:
        return self.root / FINAL_DIR

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def supervisor_log(self) -> Path:
        return self.root / SUPERVISOR_LOG_FILE

    @property
    def search_journal(self) -> Path:
        return self.root / SEARCH_JOURNAL_FILE

    @property
    def search_sqlite(self) -> Path:
        return self.root / SEARCH_SQLITE_FILE

    def tracker_dir(self, tracker: str) -> Path:
        """Where a tracker's local store lives: ``tb/``, ``mlruns/``, ``trackio/`` or ``wandb/``."""
        return self.root / {"tensorboard": TENSORBOARD_DIR, "mlflow": MLFLOW_DIR, "trackio": TRACKIO_DIR,
                            "wandb": WANDB_DIR}[tracker]

    def run(self, run: str) -> RunPaths:
        return RunPaths(self.root / run)

    def run_event_files(self) -> list[Path]:
        return sorted(self.root.glob(f"*/{EVENTS_FILE}"))


def is_pipeline_dir(path: Path) -> bool:
    return (path / PIPELINE_FILE).is_file()


# -- checkpoint state ---------------------------------------------------------------------------
class CheckpointStateError(ValueError):
    """A trainer_state.json that cannot be read or lacks keys: one line naming the file."""


STATE_KEYS = ("step", "epoch", "seed", "total_steps", "steps_per_epoch", "best", "nonfinite_skipped")


def find_latest(checkpoints: Path) -> Path | None:
    """The newest complete ``latest`` checkpoint, or the previous one if a swap was interrupted."""
    for name in (LATEST, LATEST + OLD_SUFFIX):
        path = checkpoints / name
        if (path / TRAINER_STATE_FILE).is_file():
            return path
    return None


def find_best(checkpoints: Path) -> Path | None:
    """``best``, or ``best.old`` when a kill landed inside the swap."""
    for name in (BEST, BEST + OLD_SUFFIX):
        path = checkpoints / name
        if (path / WEIGHTS_FILE).is_file():
            return path
    return None


def read_checkpoint_state(checkpoint: Path) -> dict[str, Any]:
    """``trainer_state.json`` of a checkpoint, validated; CheckpointStateError when torn or changed."""
    path = checkpoint / TRAINER_STATE_FILE
    state = read_json(path, "the trainer state", CheckpointStateError)
    if not isinstance(state, dict):
        raise CheckpointStateError(f"{path}: expected a JSON object")
    missing = [k for k in STATE_KEYS if k not in state]
    if missing:
        raise CheckpointStateError(f"{path}: missing key '{missing[0]}' (expected {', '.join(STATE_KEYS)})")
    if not isinstance(state["step"], int) or isinstance(state["step"], bool) or state["step"] < 0:
        raise CheckpointStateError(f"{path}: key 'step' must be a non-negative integer (got {state['step']!r})")
    return state


def checkpoint_step(run_dir: Path) -> int:
    """The optimizer step a restart of this run resumes from (0 without a readable checkpoint)."""
    latest = find_latest(RunPaths(run_dir).checkpoints)
    if latest is None:
        return 0
    try:
        return int(read_checkpoint_state(latest)["step"])
    except CheckpointStateError:
        return 0


# -- the step-count rule ------------------------------------------------------------------------
def steps_per_epoch(train_rows: int, batch_size: int, world_size: int = 1, grad_accum: int = 1) -> int:
    """Optimizer steps per epoch of row batches: ``ceil(rows / batch_size)`` batches of the (oversampled) train
    set, counted by ``steps_for_batches``."""
    return steps_for_batches(math.ceil(train_rows / max(batch_size, 1)), world_size, grad_accum)


def steps_for_batches(batches: int, world_size: int = 1, grad_accum: int = 1) -> int:
    """Optimizer steps per epoch of ``batches`` micro-batches (row or token-budget ones): split over processes,
    then grouped by gradient accumulation, a remainder dropped; never below one."""
    return max(1, batches // max(world_size, 1) // max(grad_accum, 1))


def total_steps(max_steps: int | None, epochs: float, per_epoch: int) -> int:
    """``max_steps`` when set, else ``ceil(epochs × steps per epoch)``; never below one."""
    if max_steps:
        return int(max_steps)
    return max(1, math.ceil(epochs * per_epoch))


# -- gradient health (the trainer raises the alerts; the views show them) ------------------------
GRAD_VANISHING_BELOW = 1e-4  # pre-clip norm below this ...
GRAD_VANISHING_STEPS = 50  # ... for this many steps in a row raises grad_vanishing
GRAD_EXPLODING_FACTOR = 100.0  # a norm this many times the running median raises grad_exploding
GRAD_WINDOW = 100  # steps in the running median
GRAD_MIN_HISTORY = 10  # steps before grad_exploding can fire
GRAD_ALERT_CODES = ("grad_vanishing", "grad_exploding")
GRAD_BADGE_STEPS = GRAD_VANISHING_STEPS  # steps a grad_* alert keeps a view's badge (the alerts' cooldown)

# -- events -------------------------------------------------------------------------------------
# An event's origin: the file it came from. Supervisor events come from "pipeline" (pipeline.jsonl); a run's
# events from its run id (its events.jsonl). ("source" is a data source; "origin" is where an event came from.)
PIPELINE_ORIGIN = "pipeline"
ACTIVITIES = ("load", "download", "train", "eval", "checkpoint")
RUN_STATUSES = ("completed", "failed", "stopped")

# Required keys per event type (beyond v, t, type). Kept to what docs/contract.md promises, so views read
# folders written by older versions; newer keys (run_launch.proc_start, ...) are optional extras.
TRAINER_EVENTS: dict[str, tuple[str, ...]] = {
    Event.RUN_START: ("run", "config", "model", "n_params", "device", "world_size", "pid", "resumed_from_step"),
    Event.DATA: ("train_size_before", "train_size_after", "dev_size", "test_size", "per_class", "oversampling"),
    Event.STEP: ("step", "epoch", "loss", "lr", "grad_norm", "samples_per_s", "tokens_per_s", "step_time_s",
                 "nonfinite_skipped"),
    Event.ACTIVITY: ("what", "expect_s"),
    Event.EVAL: ("step", "epoch", "split", "loss", F1_MACRO, F1_MICRO, "per_class", "tuned"),
    Event.CHECKPOINT: ("step", "path"),
    Event.ALERT: ("level", "code", "message"),
    Event.RUN_END: ("status", "reason", "wall_s", "best"),
    # Every device_every_s from the trainer: the GPUs of the node it runs on and its processes' CPU/RSS.
    Event.DEVICE: ("host", "local_rank", "gpus", "cpu_pct", "rss_mb"),
}

PIPELINE_EVENTS: dict[str, tuple[str, ...]] = {
    Event.PIPELINE_START: ("pipeline", "preset"),
    Event.PHASE_START: ("phase",),
    Event.RUN_LAUNCH: ("run", "device", "pid", "attempt"),
    Event.RUN_EXIT: ("run", "code", "attempt"),
    Event.STALL: ("run", "attempt", "silent_s", "dump"),
    Event.RESTART: ("run", "attempt", "from_step"),
    Event.REQUEUE: ("run", "attempt", "restarts"),  # Slurm started the job again on its own (preemption, requeue)
    Event.RUN_PENDING: ("run", "attempt", "reason"),  # why Slurm keeps the job waiting (Resources, Priority, ...)
    Event.RUN_DONE: ("run", "status", "attempts"),
    Event.ALERT: ("level", "code", "message"),
    Event.PHASE_END: ("phase",),
    Event.PIPELINE_END: ("status", "exit_code"),
    # The search phase: a trial's state changes, each dev eval it reports to the pruner, the study's end.
    Event.SEARCH_TRIAL: ("trial", "run", "state", "params"),
    Event.SEARCH_REPORT: ("trial", "step", "value"),
    Event.SEARCH_END: ("trials", "best_trial", "best_value"),
}

ALL_EVENTS: dict[str, tuple[str, ...]] = {**TRAINER_EVENTS, **PIPELINE_EVENTS}
ENVELOPE = ("v", "t", "type")


def missing_keys(event: dict[str, Any], table: dict[str, tuple[str, ...]] = ALL_EVENTS) -> list[str]:
    """Keys the contract requires for this event's type that it lacks (empty for unknown types)."""
    required = ENVELOPE + table.get(event.get("type", ""), ())
    return [k for k in required if k not in event]


def contract_violation(event: Any, table: dict[str, tuple[str, ...]] = ALL_EVENTS) -> str | None:
    """Why an event breaks the contract (unknown type or a missing key), or None."""
    if not isinstance(event, dict):
        return "not a JSON object"
    kind = event.get("type")
    if kind not in table:
        return f"unknown event type {kind!r}"
    missing = missing_keys(event, table)
    return f"{kind}: missing key '{missing[0]}'" if missing else None
