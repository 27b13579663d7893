"""One run's state as the view model folds it: `RunState`, mutated only by `cockpit.state.PipelineState`, and
the step-count rule a run's progress bar and ETA use."""

from __future__ import annotations

from collections import deque
from typing import Any

from cockpit.records import EvalRecord, rank_key
from cockpit.records.values import number as _num
from cockpit.series import Series
from cockpit.snapshots import (SECONDARY_THRESHOLD, Alert, ClassScore, EvalResult, HealthBadge, LabelHistory,
                               LabelResult, RunView)
from trainer.contract import DEFAULT_SELECT_BY, GRAD_BADGE_STEPS, split_run_id, steps_per_epoch, total_steps

TERMINAL = frozenset({"completed", "failed", "stopped"})
RUN_STATUSES = ("queued", "running", "stalled", "restarting", "completed", "failed", "stopped")


def _config_value(config: Any, key: str) -> Any:
    """A config key at the top level or one section down (`[train] batch_size`)."""
    if not isinstance(config, dict):
        return None
    if key in config:
        return config[key]
    for value in config.values():
        if isinstance(value, dict) and key in value:
            return value[key]
    return None


def run_total_steps(config: Any, train_size_after: int | None, world_size: int = 1) -> int | None:
    """Optimizer steps a run will take, by the contract's step-count rule; None when the config lacks it."""
    max_steps = _num(_config_value(config, "max_steps"))
    epochs = _num(_config_value(config, "epochs"))
    batch = _num(_config_value(config, "batch_size"))
    accum = _num(_config_value(config, "grad_accum")) or 1
    if max_steps and max_steps > 0:
        return total_steps(int(max_steps), 0.0, 1)
    if not (epochs and batch and train_size_after):
        return None
    per_epoch = steps_per_epoch(train_size_after, int(batch), max(world_size, 1), int(accum))
    return total_steps(None, epochs, per_epoch)


def _eval_result(record: EvalRecord, primary: float) -> EvalResult:
    return EvalResult(step=record.step, split=record.split, f1_primary=record.f1(primary),
                      f1_05=record.f1(SECONDARY_THRESHOLD), micro_primary=record.micro_f1(primary),
                      tuned=record.tuned, tuned_cv=record.tuned_cv, final=record.final)


class RunState:
    """Everything known about one run; mutated only by PipelineState."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.phase, self.config_name = split_run_id(run)
        self.sup_status: str | None = None
        self.trainer_status: str | None = None
        self.launch_t = self.end_t = float("-inf")
        self.attempt = self.restarts = 0
        self.requeues = 0  # times Slurm started the job again on its own (preemption, requeue)
        # (t, host, gpus, gpu_error, cpu_pct, rss_mb) of the trainer's newest device event
        # (host, node) -> the newest device event from that node (a multi-node run has one per node)
        self.device_reports: dict[tuple[str, int], tuple[Any, ...]] = {}
        self.device: str = ""
        self.pid: int | None = None
        self.job_id: str | None = None  # a Slurm run's job (run_launch.job_id)
        self.pending_reason: str | None = None  # why Slurm keeps the job waiting, until it starts
        self.step, self.epoch = 0, 0.0
        self.samples_per_s = self.loss = self.lr = self.grad_norm = None
        self.nonfinite_skipped = self.nonfinite_alerts = 0
        self.not_learning = False  # the supervisor's not_learning alert names this run
        self.plateau_since: int | None = None  # from run_end: early stopping ended the run
        self.final_labels: tuple[LabelResult, ...] = ()  # the final test eval's per-label table
        self._labels: tuple[Any, LabelHistory | None] = (None, None)  # (evals key, label history)
        self.ema: float | None = None
        self.config: dict[str, Any] = {}
        self.train_size_after: int | None = None
        self.world_size = 1
        self.reported_total: int | None = None  # run_start's total_steps, when the trainer says it
        self.rate_window: deque[tuple[float, int]] = deque(maxlen=20)
        self.loss_raw, self.loss_smooth, self.dev_f1 = Series(), Series(), Series()
        self.lr_series, self.grad_series = Series(), Series()
        self.grad_alert: tuple[str, int] | None = None  # (vanishing|exploding, step of the trainer's alert)
        self.per_class: tuple[ClassScore, ...] = ()
        self.evals: list[EvalRecord] = []  # refolded when the primary threshold or select_by changes
        self.best_dev: EvalResult | None = None
        self.test: EvalResult | None = None
        self.last_eval: EvalResult | None = None
        self.alerts: deque[Alert] = deque(maxlen=50)
        self.stall_dumps: list[str] = []
        self.last_event_t: float | None = None
        self.version = 0

    @property
    def status(self) -> str:
        sup = self.sup_status
        if sup is None:
            return self.trainer_status or "queued"
        # The trainer's run_end can land before the supervisor's run_done.
        if sup == "running" and self.trainer_status in TERMINAL and self.end_t >= self.launch_t:
            return self.trainer_status
        if sup == "running" and self.requeues:
            return f"requeued ({self.requeues})"
        return sup

    def health(self) -> HealthBadge:
        """The supervisor's not_learning verdict holds the badge first (a run on the label prior has healthy
        gradients); then the trainer's: a grad_* alert holds it (vanishing while the norm stays under the
        contract's floor, exploding for GRAD_BADGE_STEPS steps); the cockpit judges no norm itself."""
        if self.not_learning:
            return HealthBadge("not-learning", "not learning")
        if self.grad_alert is not None:
            kind, at = self.grad_alert
            if kind != "exploding" or self.step - at <= GRAD_BADGE_STEPS:
                norm = self.grad_norm
                return HealthBadge(kind, kind if norm is None else f"{kind} ‖g‖={norm:.1e}")
        skipped = max(self.nonfinite_skipped, self.nonfinite_alerts)
        if skipped:
            return HealthBadge("nonfinite", f"{skipped} non-finite skipped")
        return HealthBadge("healthy", "healthy")

    def add_eval(self, record: EvalRecord, primary: float, select_by: str = DEFAULT_SELECT_BY) -> None:
        result = _eval_result(record, primary)
        self.last_eval = result
        if result.split == "test":
            self.test = result
            return
        if result.f1_primary is None:
            return
        if not result.final:  # the export re-scores the best weights at the best step: not a new point
            self.dev_f1.add(result.step, result.f1_primary)
        # Strictly better only, as the trainer keeps its best checkpoint: on a tie the earlier eval stays.
        if self.best_dev is None or rank_key(select_by, result.f1_primary, result.tuned_cv) > \
                rank_key(select_by, self.best_dev.f1_primary, self.best_dev.tuned_cv):
            self.best_dev = result

    def refold_evals(self, primary: float, select_by: str = DEFAULT_SELECT_BY) -> None:
        """Read every eval again at a new primary threshold or under a new select_by."""
        self.dev_f1, self.best_dev, self.test, self.last_eval = Series(), None, None, None
        for record in self.evals:
            self.add_eval(record, primary, select_by)
        self.version += 1

    def total_steps(self) -> int | None:
        if self.reported_total is not None:
            return self.reported_total
        return run_total_steps(self.config, self.train_size_after, self.world_size)

    def eta_s(self) -> float | None:
        total = self.total_steps()
        if total is None or self.status in TERMINAL or len(self.rate_window) < 2:
            return None
        (t0, s0), (t1, s1) = self.rate_window[0], self.rate_window[-1]
        if t1 <= t0 or s1 <= s0:
            return None
        return max(total - self.step, 0) / ((s1 - s0) / (t1 - t0))

    def label_history(self) -> LabelHistory | None:
        """Per-label F1 over the periodic dev evals (labels in the latest eval's order), or None before one.
        Cached until the evals change: a view is rebuilt at every step, the history only at an eval."""
        key = (len(self.evals), id(self.evals[-1]) if self.evals else None)
        if self._labels[0] != key:
            self._labels = (key, self._label_history())
        return self._labels[1]

    def _label_history(self) -> LabelHistory | None:
        evals = [e for e in self.evals if e.is_periodic_dev and e.per_class]
        if not evals:
            return None
        labels = tuple(row.label for row in evals[-1].per_class)
        by_eval = [{row.label: row for row in e.per_class} for e in evals]
        return LabelHistory(
            labels, tuple(e.step for e in evals),
            tuple(tuple(rows[label].f1 if label in rows else None for rows in by_eval) for label in labels),
            tuple(row.support for row in evals[-1].per_class),
            tuple(all(rows.get(label) is not None and rows[label].predicted == 0 for rows in by_eval)
                  for label in labels))

    def view(self) -> RunView:
        return RunView(
            run=self.run, phase=self.phase, config=self.config_name, status=self.status,
            attempt=self.attempt, restarts=self.restarts, device=self.device, pid=self.pid,
            step=self.step, total_steps=self.total_steps(), epoch=self.epoch,
            samples_per_s=self.samples_per_s, eta_s=self.eta_s(), loss=self.loss, lr=self.lr,
            grad_norm=self.grad_norm, nonfinite_skipped=self.nonfinite_skipped, health=self.health(),
            loss_raw=self.loss_raw.view(), loss_smooth=self.loss_smooth.view(), dev_f1=self.dev_f1.view(),
            lr_series=self.lr_series.view(), grad_series=self.grad_series.view(), per_class=self.per_class,
            best_dev=self.best_dev, test=self.test, last_eval=self.last_eval, alerts=tuple(self.alerts),
            stall_dumps=tuple(self.stall_dumps), last_event_t=self.last_event_t, job_id=self.job_id,
            pending_reason=self.pending_reason, plateau_since=self.plateau_since, labels=self.label_history(),
            final_labels=self.final_labels,
            learning=next((e.learning for e in reversed(self.evals) if e.is_periodic_dev and e.learning), None),
        )
