"""What views draw: immutable snapshots of the pipeline state (frozen dataclasses and tuples). The mutable,
downsampled series they are cut from live in `cockpit.series`. No Textual, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

# A label's scores and an alert read the same in a record and on screen: the views show the records' own.
from cockpit.records import Alert, ClassScore  # noqa: F401 - widgets import what they draw from here
from cockpit.records.evals import LabelResult, Learning  # noqa: F401
from trainer.contract import DEFAULT_PRIMARY_THRESHOLD, DEFAULT_SELECT_BY, threshold_key
from trainer.contract import SELECT_TUNED_CV
from trainer.devices import GpuSample

SECONDARY_THRESHOLD = 0.5  # the fixed threshold shown beside the preset's primary one
DROP_REASON_SHORT = {"duplicate": "dup", "unmapped_only": "unmapped"}  # the trainer's keys, as tables say them


def f1_at(threshold: float, prefix: str = "F1") -> str:
    """The label of a score at a threshold: ``F1@0.3``, ``µF1@0.3``."""
    return f"{prefix}@{threshold_key(threshold)}"


TUNED_CV_LABEL = "tuned cv"  # how views name TUNED_CV_KEY: dev thresholds tuned on one half, scored on the other


def ranking_label(select_by: str, primary: float) -> str:
    """What ranks runs, as views say it: ``F1@0.2`` for select_by "f1@primary", ``tuned cv`` for "tuned_cv"."""
    return TUNED_CV_LABEL if select_by == SELECT_TUNED_CV else f1_at(primary)


def dropped_text(dropped: tuple[tuple[str, int], ...]) -> str:
    """``52 placeholder, 3 dup``: the reasons that dropped rows, zeros left out; ``none`` when nothing was."""
    parts = [f"{n} {DROP_REASON_SHORT.get(reason, reason)}" for reason, n in dropped if n]
    return ", ".join(parts) or "none"


def train_rows_text(before: int | None, after: int | None) -> str:
    """``6100→6800``: a source's train rows before and after oversampling."""
    if before is None or after is None:
        return "–" if before is None and after is None else str(before if after is None else after)
    return f"{before}→{after}"


@dataclass(frozen=True)
class SeriesView:
    xs: tuple[float, ...] = ()
    ys: tuple[float, ...] = ()

    @property
    def last(self) -> float | None:
        return self.ys[-1] if self.ys else None


@dataclass(frozen=True)
class HealthBadge:
    kind: str  # healthy | vanishing | exploding | nonfinite
    text: str


@dataclass(frozen=True)
class EvalResult:
    """One eval event: macro-F1 at the primary threshold and at 0.5, micro-F1 at the primary, tuned."""

    step: int
    split: str
    f1_primary: float | None
    f1_05: float | None
    micro_primary: float | None
    tuned: float | None
    tuned_cv: float | None = None  # cross-fitted tuned macro-F1 (dev evals of newer trainers only)
    final: bool = False  # the export's re-evaluation of the best weights, not a point on the curve


@dataclass(frozen=True)
class StallAlert:
    run: str
    attempt: int
    silent_s: float
    dump: str  # relative to the pipeline folder
    t: float
    action: str
    active: bool


@dataclass(frozen=True)
class OversampleRow:
    label: str
    before: int
    after: int
    factor: float | None
    weight: float | None
    observed: int | None = None  # train rows whose source can produce the label; None from older trainers


@dataclass(frozen=True)
class SourceRow:
    """One training data source of the pipeline (its first data event) and how well a run scores on its dev split."""

    name: str
    kind: str
    path: str
    train_before: int | None  # this source's train rows before oversampling
    train_after: int | None
    dev: int | None  # this source's own split sizes
    test: int | None
    observed: tuple[str, ...]  # labels this source's map can produce
    labels: int | None  # labels of the taxonomy: what `observed` is out of
    dropped: tuple[tuple[str, int], ...]  # (reason, rows) pairs as the trainer lists them
    dev_f1: float | None = None  # latest macro-F1 at the primary threshold on this source's dev split
    dev_f1_run: str | None = None  # the run that scored it

    @property
    def observed_text(self) -> str:
        """``7/28``: labels observed out of the taxonomy's."""
        return f"{len(self.observed)}/{self.labels}" if self.labels else str(len(self.observed))


@dataclass(frozen=True)
class LeaderRow:
    run: str
    phase: int | None
    config: str
    f1_primary: float | None
    f1_05: float | None
    micro_primary: float | None
    tuned: float | None
    tuned_cv: float | None  # TUNED_CV_KEY; None from older summaries and trainers
    delta: float | None
    meets_target: bool | None
    status: str
    test_f1: float | None
    source: str  # "summary" or "live"
    vs_leader: str = ""  # summary.json's paired Δ against the leader: "≈ -0.004 [-0.015, +0.007]"; "" unknown
    # A seed group's row (a preset's seeds = k): the numbers above are means over its finished seeds.
    n: int | None = None  # seeds with a score
    planned: int | None = None  # seeds planned
    spread: str = ""  # "± 0.011 [0.385, 0.439]": the selection score's sd over seeds and 95 % interval of the mean
    members: tuple[str, ...] = ()  # the seed runs, unfolded under the group's row on request
    vs_baseline: str = ""  # the pooled paired Δ against phase 1's bce group

    @property
    def seeds_text(self) -> str:
        """``n=3`` or, while seeds are missing, ``n=2/3``."""
        if self.n is None:
            return ""
        return f"n={self.n}" if self.planned in (None, self.n) else f"n={self.n}/{self.planned}"


@dataclass(frozen=True)
class FinalResult:
    run: str
    config: str
    test_f1_primary: float | None
    test_f1_05: float | None
    test_tuned: float | None
    test_micro_primary: float | None
    mode: str = ""  # "retrain", "reuse", "ensemble" or "seed_ensemble"; "" from older summaries (only retrained)
    members: tuple[str, ...] = ()  # an ensemble's member runs, in the record's order
    test_tuned_interval: tuple[float, float] | None = None  # 95 % bootstrap interval over the test rows

    @property
    def tuned_text(self) -> str:
        """``0.5254 [0.512, 0.538]``: the tuned test macro-F1 with its interval, where the trainer gave one."""
        value = "–" if self.test_tuned is None else f"{self.test_tuned:.4f}"
        low_high = self.test_tuned_interval
        return value if low_high is None else f"{value} [{low_high[0]:.3f}, {low_high[1]:.3f}]"

    @property
    def model_text(self) -> str:
        """What the final model is: ``asl``, ``ensemble of p3-bce + p3-combined_07``, or ``bce, seed ensemble of
        p4-bce-s42 + p4-bce-s43``."""
        if self.mode == "ensemble" and self.members:
            return "ensemble of " + " + ".join(self.members)
        if self.mode == "seed_ensemble" and self.members:
            return f"{self.config}, seed ensemble of " + " + ".join(self.members)
        return self.config


@dataclass(frozen=True)
class LabelHistory:
    """Per-label F1 (at the primary threshold) at each periodic dev eval of a run: the heatmap's cells."""

    labels: tuple[str, ...]
    steps: tuple[int, ...]
    f1: tuple[tuple[float | None, ...], ...]
    """One row per label, one value per eval (None: that eval did not score the label)."""
    support: tuple[int | None, ...]
    """Dev rows with the label, from the latest eval."""
    never_predicted: tuple[bool, ...]
    """No eval so far predicted the label for a single row (False where the trainer does not say)."""


@dataclass(frozen=True)
class RunView:
    run: str
    phase: int | None
    config: str
    status: str
    attempt: int
    restarts: int
    device: str
    pid: int | None
    step: int
    total_steps: int | None
    epoch: float
    samples_per_s: float | None
    eta_s: float | None
    loss: float | None
    lr: float | None
    grad_norm: float | None
    nonfinite_skipped: int
    health: HealthBadge
    loss_raw: SeriesView
    loss_smooth: SeriesView
    dev_f1: SeriesView
    lr_series: SeriesView
    grad_series: SeriesView
    per_class: tuple[ClassScore, ...]
    best_dev: EvalResult | None
    test: EvalResult | None
    last_eval: EvalResult | None
    alerts: tuple[Alert, ...]
    stall_dumps: tuple[str, ...]
    last_event_t: float | None
    job_id: str | None = None  # a Slurm run's job id (its pid is on a node: None)
    pending_reason: str | None = None  # why Slurm keeps the job waiting (Resources, Priority, …), until it starts
    plateau_since: int | None = None  # early_stop_patience ended the run: its score was flat since this step
    labels: LabelHistory | None = None  # per-label F1 at each dev eval: which emotions it has learned, and when
    final_labels: tuple[LabelResult, ...] = ()  # the final test eval's per-label table (tuned thresholds, intervals)
    learning: Learning | None = None  # the latest dev eval's learning figures (macro AUC, labels predicted, gap)


@dataclass(frozen=True)
class HostDevices:
    """The devices of one host where runs of this pipeline run (from their trainers' ``device`` events)."""

    host: str
    runs: tuple[str, ...]
    gpus: tuple[GpuSample, ...]  # as the trainer sampled them; pids and runs are empty (they are that host's)
    gpu_error: str | None
    cpu_pct: float | None  # of the runs' processes on that host, summed (% of one core)
    rss_mb: float | None
    t: float  # the newest report


@dataclass(frozen=True)
class PipelineView:
    pipeline: str
    preset: str
    status: str
    exit_code: int | None
    phase: int | None
    phase_name: str
    phases: tuple[int, ...]
    devices: tuple[str, ...]
    runs: tuple[RunView, ...]
    oversampling: tuple[OversampleRow, ...]
    oversampling_run: str | None
    stalls: tuple[StallAlert, ...]
    alerts: tuple[Alert, ...]
    leaderboard: tuple[LeaderRow, ...]
    final: FinalResult | None
    baseline_f1: float | None
    target_f1: float | None
    reference_f1: float | None
    ranking: tuple[str, ...]
    skipped_events: int
    last_event_t: float | None
    now: float
    primary: float = DEFAULT_PRIMARY_THRESHOLD  # the threshold every "F1@t" label and value refers to
    sources: tuple[SourceRow, ...] = ()  # empty for data events of older trainers, which list no sources
    taxonomy: str = ""  # the label space of the pipeline's first data event; "" from older trainers
    select_by: str = DEFAULT_SELECT_BY  # what ranks the leaderboard (summary.json, else preset.toml)
    hosts: tuple[HostDevices, ...] = ()  # other hosts' devices, from the live runs' device events
    groups: tuple[LeaderRow, ...] = ()  # the leaderboard by config when a phase runs several seeds; else empty
    decisions: tuple[str, ...] = ()  # summary.json's selection decisions, in words
    study: StudyView | None = None  # the search phase's study; None when the pipeline has none

    @property
    def ranking_label(self) -> str:
        """``F1@0.2`` or ``tuned cv``: the dev score the leaderboard is ranked by."""
        return ranking_label(self.select_by, self.primary)

    def run(self, run_id: str | None) -> RunView | None:
        return next((r for r in self.runs if r.run == run_id), None)

    @property
    def active_stalls(self) -> tuple[StallAlert, ...]:
        return tuple(s for s in self.stalls if s.active)


@dataclass(frozen=True)
class TrialRow:
    """One trial of the search phase's study, as the trials table shows it."""
    trial: int
    run: str
    params: str  # ``lr=3e-05 gamma=2``: the sampled parameters, by name
    state: str  # running | complete | pruned | failed
    value: float | None  # complete: the run's best dev score; pruned: its last reported; running: its latest report
    step: int | None  # pruned: where the pruner stopped it; running: its latest reported eval's step
    retry_of: int | None = None


@dataclass(frozen=True)
class StudyView:
    """The search phase's Optuna study (issue 21), folded from search_trial / search_report / search_end."""
    trials: tuple[TrialRow, ...]
    best_so_far: SeriesView  # x: trial number of each finished trial; y: the best complete trial's value by then
    importances: tuple[tuple[str, float], ...]  # most important first; () below two complete trials
    best_trial: int | None
    best_run: str | None
    best_params: tuple[tuple[str, object], ...]
    best_value: float | None
    complete: int
    pruned: int
    failed: int
    running: int
    ended: bool = False
    reason: str = ""  # why the study ended ("n_trials", "timeout", "failures", "interrupted"); "" while it runs
