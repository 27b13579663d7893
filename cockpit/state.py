"""Pipeline state rebuilt from events: runs, series, leaderboard, oversampling, stalls.

Plain classes, no Textual. `PipelineState.apply(source, event)` folds one event in (source
is "pipeline", "summary" or a run id, as `cockpit.tail` hands them over); `snapshot(now)`
returns a `PipelineView` made of frozen dataclasses and tuples only, so views never share
a mutable container with the thread that feeds the state. Series are downsampled by
stride doubling, which keeps memory and drawing cost flat however long a run is.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import replace
from typing import Any, Iterable

from cockpit.views import (
    Series, HealthBadge, ClassScore, EvalResult, Alert, StallAlert, OversampleRow, LeaderRow, FinalResult, RunView, PipelineView,
)
from trainer.events import missing_keys

PIPELINE_SOURCE = "pipeline"
SUMMARY_SOURCE = "summary"
PRESET_SOURCE = "preset"
PRIMARY = "0.2"
EMA_ALPHA = 0.1
GRAD_VANISHING_BELOW = 1e-6
GRAD_EXPLODING_ABOVE = 1e3
GRAD_ALERT_WINDOW = 50  # steps a grad_* alert keeps the badge
DEFAULT_MAX_RESTARTS = 2
TERMINAL = frozenset({"completed", "failed", "stopped"})
RUN_STATUSES = ("queued", "running", "stalled", "restarting", "completed", "failed", "stopped")


def _num(value: Any) -> float | None:
    """A finite float, or None (null, NaN, strings, booleans)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


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


def total_steps(config: Any, train_size_after: int | None, world_size: int = 1) -> int | None:
    """Optimizer steps a run will take: max_steps, else epochs x steps per epoch (the trainer's rule)."""
    max_steps = _num(_config_value(config, "max_steps"))
    if max_steps and max_steps > 0:
        return int(max_steps)
    epochs = _num(_config_value(config, "epochs"))
    batch = _num(_config_value(config, "batch_size"))
    accum = _num(_config_value(config, "grad_accum")) or 1
    if not (epochs and batch and train_size_after):
        return None
    per_epoch = max(1, math.ceil(train_size_after / batch) // max(world_size, 1) // int(accum))
    return int(math.ceil(epochs * per_epoch))


def _eval_result(event: dict[str, Any]) -> EvalResult:
    macro, micro = event.get("f1_macro") or {}, event.get("f1_micro") or {}
    tuned = event.get("tuned")
    return EvalResult(
        step=int(event.get("step") or 0), split=str(event.get("split")),
        f1_02=_num(macro.get(PRIMARY)), f1_05=_num(macro.get("0.5")), micro_02=_num(micro.get(PRIMARY)),
        tuned=_num(tuned.get("f1_macro")) if isinstance(tuned, dict) else None,
    )


def split_run_id(run: str) -> tuple[int | None, str]:
    """`p3-combined_07` -> (3, "combined_07"); ids without a phase prefix -> (None, run)."""
    head, sep, tail = run.partition("-")
    if sep and head[:1] == "p" and head[1:].isdigit():
        return int(head[1:]), tail
    return None, run


class RunState:
    """Everything known about one run; mutated only by PipelineState."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.phase, self.config_name = split_run_id(run)
        self.sup_status: str | None = None
        self.trainer_status: str | None = None
        self.launch_t = self.end_t = float("-inf")
        self.attempt = self.restarts = 0
        self.device, self.pid = "", None
        self.step, self.epoch = 0, 0.0
        self.samples_per_s = self.loss = self.lr = self.grad_norm = None
        self.nonfinite_skipped = self.nonfinite_alerts = 0
        self.ema: float | None = None
        self.config: dict[str, Any] = {}
        self.train_size_after: int | None = None
        self.world_size = 1
        self.reported_total: int | None = None  # run_start's total_steps, when the trainer says it
        self.rate_window: deque[tuple[float, int]] = deque(maxlen=20)
        self.loss_raw, self.loss_smooth, self.dev_f1 = Series(), Series(), Series()
        self.lr_series, self.grad_series = Series(), Series()
        self.grad_alert: tuple[str, int] | None = None
        self.per_class: tuple[ClassScore, ...] = ()
        self.best_dev: EvalResult | None = None
        self.test: EvalResult | None = None
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
        return sup

    def health(self) -> HealthBadge:
        norm = self.grad_norm
        if self.grad_alert and self.step - self.grad_alert[1] <= GRAD_ALERT_WINDOW:
            kind = self.grad_alert[0]
            return HealthBadge(kind, kind if norm is None else f"{kind} ‖g‖={norm:.1e}")
        if norm is not None and norm > GRAD_EXPLODING_ABOVE:
            return HealthBadge("exploding", f"exploding ‖g‖={norm:.1e}")
        if norm is not None and norm < GRAD_VANISHING_BELOW:
            return HealthBadge("vanishing", f"vanishing ‖g‖={norm:.1e}")
        skipped = max(self.nonfinite_skipped, self.nonfinite_alerts)
        if skipped:
            return HealthBadge("nonfinite", f"{skipped} non-finite skipped")
        return HealthBadge("healthy", "healthy")

    def total_steps(self) -> int | None:
        return self.reported_total or total_steps(self.config, self.train_size_after, self.world_size)

    def eta_s(self) -> float | None:
        total = self.total_steps()
        if total is None or self.status in TERMINAL or len(self.rate_window) < 2:
            return None
        (t0, s0), (t1, s1) = self.rate_window[0], self.rate_window[-1]
        if t1 <= t0 or s1 <= s0:
            return None
        return max(total - self.step, 0) / ((s1 - s0) / (t1 - t0))

    def view(self) -> RunView:
        return RunView(
            run=self.run, phase=self.phase, config=self.config_name, status=self.status,
            attempt=self.attempt, restarts=self.restarts, device=self.device, pid=self.pid,
            step=self.step, total_steps=self.total_steps(), epoch=self.epoch,
            samples_per_s=self.samples_per_s, eta_s=self.eta_s(), loss=self.loss, lr=self.lr,
            grad_norm=self.grad_norm, nonfinite_skipped=self.nonfinite_skipped, health=self.health(),
            loss_raw=self.loss_raw.view(), loss_smooth=self.loss_smooth.view(), dev_f1=self.dev_f1.view(),
            lr_series=self.lr_series.view(), grad_series=self.grad_series.view(), per_class=self.per_class,
            best_dev=self.best_dev, test=self.test, alerts=tuple(self.alerts),
            stall_dumps=tuple(self.stall_dumps), last_event_t=self.last_event_t,
        )


class PipelineState:
    """The state of one pipeline folder, folded from its events."""

    def __init__(self) -> None:
        self.pipeline = self.preset = ""
        self.status = "waiting"
        self.exit_code: int | None = None
        self.phase: int | None = None
        self.phase_name = ""
        self.phases: tuple[int, ...] = ()
        self.devices: tuple[str, ...] = ()
        self.max_restarts = DEFAULT_MAX_RESTARTS
        self.target_f1: float | None = None
        self.runs: dict[str, RunState] = {}
        self.oversampling: tuple[OversampleRow, ...] = ()
        self.oversampling_run: str | None = None
        self._oversampling_t = float("inf")
        self.stalls: list[StallAlert] = []
        self.alerts: deque[Alert] = deque(maxlen=200)
        self.summary: dict[str, Any] = {}
        self.ranking: tuple[str, ...] = ()
        self.skipped_events = 0
        self.last_event_t: float | None = None
        self._views: dict[str, tuple[int, RunView]] = {}

    def apply_batch(self, source: str, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            self.apply(source, event)

    def apply(self, source: str, event: dict[str, Any]) -> None:
        """Fold one event in; malformed events are counted in `skipped_events`, never raised."""
        try:
            kind = event["type"]
            if source == SUMMARY_SOURCE:
                if isinstance(event.get("data"), dict):
                    self.summary = event["data"]
                return
            if source == PRESET_SOURCE:
                self._preset(event.get("data"))
                return
            if missing_keys(event):
                self.skipped_events += 1
                return
            t = _num(event["t"])
            if t is not None and (self.last_event_t is None or t > self.last_event_t):
                self.last_event_t = t
            if source == PIPELINE_SOURCE:
                handler = getattr(self, f"_pipeline_{kind}", None)
                if handler is not None:
                    handler(event, t or 0.0)
                return
            run = self._run(source)
            run.last_event_t = t
            handler = getattr(self, f"_run_{kind}", None)
            if handler is not None:
                handler(run, event, t or 0.0)
            run.version += 1
        except (TypeError, ValueError, KeyError, AttributeError, IndexError, ZeroDivisionError):
            self.skipped_events += 1

    def _run(self, run_id: Any) -> RunState:
        run_id = str(run_id)
        run = self.runs.get(run_id)
        if run is None:
            run = self.runs[run_id] = RunState(run_id)
        return run

    def _touch(self, run_id: Any) -> RunState:
        run = self._run(run_id)
        run.version += 1
        return run

    def _preset(self, preset: Any) -> None:
        """preset.toml, for what pipeline events do not repeat (restart limit, target)."""
        section = preset.get("pipeline") if isinstance(preset, dict) else None
        if isinstance(section, dict):
            self.max_restarts = int(section.get("max_restarts", self.max_restarts))
            self.target_f1 = _num(section.get("target_f1")) or self.target_f1

    # pipeline.jsonl

    def _pipeline_pipeline_start(self, e: dict[str, Any], t: float) -> None:
        self.pipeline, self.preset, self.status = str(e["pipeline"]), str(e["preset"]), "running"
        self.phases = tuple(int(p) for p in e.get("phases") or ())
        self.devices = tuple(str(d) for d in e.get("devices") or ())
        self.max_restarts = int(e.get("max_restarts", self.max_restarts))
        self.target_f1 = _num(e.get("target_f1")) or self.target_f1

    def _pipeline_phase_start(self, e: dict[str, Any], t: float) -> None:
        self.phase, self.phase_name = int(e["phase"]), str(e.get("name") or "")
        for run_id in e.get("runs") or ():
            run = self._touch(run_id)
            if run.sup_status is None:
                run.sup_status = "queued"

    def _pipeline_phase_end(self, e: dict[str, Any], t: float) -> None:
        if e.get("ranking"):
            self.ranking = tuple(str(r) for r in e["ranking"])

    def _pipeline_run_launch(self, e: dict[str, Any], t: float) -> None:
        run = self._touch(e["run"])
        run.sup_status, run.launch_t = "running", t
        run.attempt, run.device, run.pid = int(e["attempt"]), str(e["device"]), e.get("pid")

    def _pipeline_stall(self, e: dict[str, Any], t: float) -> None:
        run = self._touch(e["run"])
        run.sup_status = "stalled"
        dump = str(e.get("dump") or "")
        if dump:
            run.stall_dumps.append(dump)
        pending = "restart limit reached, run fails" if e.get("action") == "fail" else "restart pending"
        self.stalls.append(StallAlert(run.run, int(e["attempt"]), float(_num(e["silent_s"]) or 0.0), dump, t,
                                      f"stack dump saved, {pending}", True))

    def _resolve_stall(self, run_id: str, action: str) -> None:
        for i in range(len(self.stalls) - 1, -1, -1):
            if self.stalls[i].run == run_id and self.stalls[i].active:
                self.stalls[i] = replace(self.stalls[i], action=action, active=False)
                return

    def _pipeline_restart(self, e: dict[str, Any], t: float) -> None:
        run = self._touch(e["run"])
        run.sup_status = "restarting"
        run.restarts += 1
        k = int(e["attempt"]) - 1  # attempt is the new one: attempt 2 is restart 1
        self._resolve_stall(run.run, f"dump + restart {k} of {self.max_restarts} from step {e.get('from_step')}")

    def _pipeline_run_done(self, e: dict[str, Any], t: float) -> None:
        run = self._touch(e["run"])
        run.sup_status = str(e["status"])
        self._resolve_stall(run.run, f"dump + {run.sup_status}")

    def _pipeline_alert(self, e: dict[str, Any], t: float) -> None:
        alert = Alert(t, str(e.get("level", "info")), str(e.get("code", "")), str(e.get("message", "")),
                      e.get("run"))
        self.alerts.append(alert)
        if alert.run:
            self._touch(alert.run).alerts.append(alert)

    def _pipeline_pipeline_end(self, e: dict[str, Any], t: float) -> None:
        self.status, self.exit_code = str(e["status"]), e.get("exit_code")

    # <run>/events.jsonl

    def _run_run_start(self, run: RunState, e: dict[str, Any], t: float) -> None:
        run.config = e["config"] if isinstance(e["config"], dict) else {}
        run.trainer_status, run.pid = "running", e.get("pid", run.pid)
        run.world_size = int(e.get("world_size") or 1)
        reported = _num(e.get("total_steps"))
        run.reported_total = int(reported) if reported else None
        run.device = run.device or str(e.get("device") or "")
        resumed = _num(e.get("resumed_from_step"))
        if resumed is not None:
            for series in (run.loss_raw, run.loss_smooth, run.dev_f1, run.lr_series, run.grad_series):
                series.truncate_after(resumed)
            run.rate_window.clear()

    def _run_data(self, run: RunState, e: dict[str, Any], t: float) -> None:
        run.train_size_after = int(e["train_size_after"])
        if t < self._oversampling_t:  # the pipeline's first data event, whatever order files are read in
            self._oversampling_t = t
            rows = []
            for row in e["per_class"]:
                before, after = int(row["before"]), int(row["after"])
                rows.append(OversampleRow(str(row["label"]), before, after,
                                          after / before if before else None, _num(row.get("weight"))))
            self.oversampling, self.oversampling_run = tuple(rows), run.run

    def _run_step(self, run: RunState, e: dict[str, Any], t: float) -> None:
        step = int(e["step"])
        run.step, run.epoch = step, float(e["epoch"])
        run.samples_per_s, run.lr = _num(e["samples_per_s"]), _num(e["lr"])
        run.loss, run.grad_norm = _num(e["loss"]), _num(e["grad_norm"])
        run.nonfinite_skipped = int(e["nonfinite_skipped"] or 0)
        run.rate_window.append((t, step))
        if run.loss is not None:
            run.ema = run.loss if run.ema is None else run.ema + EMA_ALPHA * (run.loss - run.ema)
            run.loss_raw.add(step, run.loss)
            run.loss_smooth.add(step, run.ema)
        if run.lr is not None:
            run.lr_series.add(step, run.lr)
        if run.grad_norm is not None:
            run.grad_series.add(step, run.grad_norm)

    def _run_eval(self, run: RunState, e: dict[str, Any], t: float) -> None:
        result = _eval_result(e)
        if result.split == "test":
            run.test = result
            return
        if result.f1_02 is not None:
            run.dev_f1.add(result.step, result.f1_02)
            if run.best_dev is None or (run.best_dev.f1_02 or 0.0) <= result.f1_02:
                run.best_dev = result
        run.per_class = tuple(
            ClassScore(str(c["label"]), _num(c.get("precision")), _num(c.get("recall")), _num(c.get("f1")),
                       c.get("support")) for c in e["per_class"] or ())

    def _run_alert(self, run: RunState, e: dict[str, Any], t: float) -> None:
        alert = Alert(t, str(e["level"]), str(e["code"]), str(e["message"]), run.run)
        run.alerts.append(alert)
        self.alerts.append(alert)
        if alert.code in ("grad_vanishing", "grad_exploding"):
            run.grad_alert = (alert.code.removeprefix("grad_"), run.step)
        elif alert.code == "nonfinite":
            run.nonfinite_alerts += 1

    def _run_run_end(self, run: RunState, e: dict[str, Any], t: float) -> None:
        run.trainer_status, run.end_t = str(e["status"]), t

    # views

    def _baseline_f1(self) -> float | None:
        baseline = self.summary.get("baseline")
        if isinstance(baseline, dict) and _num(baseline.get(f"f1_macro@{PRIMARY}")) is not None:
            return _num(baseline.get(f"f1_macro@{PRIMARY}"))
        bce = next((r for r in self.runs.values() if r.config_name == "bce" and r.best_dev), None)
        return bce.best_dev.f1_02 if bce else None

    def leaderboard(self) -> tuple[LeaderRow, ...]:
        """The supervisor's ranking from summary.json, with live dev evals for runs not in it."""
        target = _num(self.summary.get("target_f1")) or self.target_f1
        baseline = self._baseline_f1()
        final = self.summary.get("final") if isinstance(self.summary.get("final"), dict) else None
        final_test = final.get("test") if final and isinstance(final.get("test"), dict) else {}
        rows: list[LeaderRow] = []
        for entry in self.summary.get("leaderboard") or ():
            if not isinstance(entry, dict) or "run" not in entry:
                continue
            run_id = str(entry["run"])
            live = self.runs.get(run_id)
            phase, config = split_run_id(run_id)
            test = _num(final_test.get(f"f1_macro@{PRIMARY}")) if final and final.get("run") == run_id else None
            if test is None and live and live.test:
                test = live.test.f1_02
            rows.append(LeaderRow(
                run_id, entry.get("phase", phase), str(entry.get("config") or config),
                _num(entry.get("f1_macro@0.2")), _num(entry.get("f1_macro@0.5")), _num(entry.get("f1_micro@0.2")),
                _num(entry.get("tuned_f1_macro")), _num(entry.get("delta_vs_baseline")), entry.get("meets_target"),
                live.status if live else str(entry.get("status") or "?"), test, "summary"))
        ranked = {row.run for row in rows}
        for run in self.runs.values():
            best = run.best_dev
            if run.run in ranked or best is None:
                continue
            f1 = best.f1_02
            rows.append(LeaderRow(
                run.run, run.phase, run.config_name, f1, best.f1_05, best.micro_02, best.tuned,
                None if f1 is None or baseline is None else f1 - baseline,
                None if f1 is None or target is None else f1 >= target,
                run.status, run.test.f1_02 if run.test else None, "live"))
        rows.sort(key=lambda r: -(r.f1_02 if r.f1_02 is not None else -1.0))
        return tuple(rows)

    def final_result(self) -> FinalResult | None:
        final = self.summary.get("final")
        if isinstance(final, dict) and isinstance(final.get("test"), dict):
            test = final["test"]
            return FinalResult(str(final.get("run", "")), str(final.get("config", "")),
                               _num(test.get("f1_macro@0.2")), _num(test.get("f1_macro@0.5")),
                               _num(test.get("f1_macro_tuned")), _num(test.get("f1_micro@0.2")))
        for run in self.runs.values():
            if run.test is not None:
                return FinalResult(run.run, run.config_name, run.test.f1_02, run.test.f1_05, run.test.tuned,
                                   run.test.micro_02)
        return None

    def run_view(self, run: RunState) -> RunView:
        cached = self._views.get(run.run)
        if cached is None or cached[0] != run.version:
            cached = self._views[run.run] = (run.version, run.view())
        return cached[1]

    def snapshot(self, now: float) -> PipelineView:
        """An immutable view of everything, for widgets; unchanged runs reuse their last view."""
        runs = sorted(self.runs.values(), key=lambda r: (r.phase if r.phase is not None else 99,))
        summary_target = _num(self.summary.get("target_f1"))
        return PipelineView(
            pipeline=self.pipeline or str(self.summary.get("pipeline", "")),
            preset=self.preset or str(self.summary.get("preset", "")), status=self.status,
            exit_code=self.exit_code, phase=self.phase, phase_name=self.phase_name, phases=self.phases,
            devices=self.devices, runs=tuple(self.run_view(r) for r in runs), oversampling=self.oversampling,
            oversampling_run=self.oversampling_run, stalls=tuple(self.stalls), alerts=tuple(self.alerts),
            leaderboard=self.leaderboard(), final=self.final_result(), baseline_f1=self._baseline_f1(),
            target_f1=summary_target if summary_target is not None else self.target_f1,
            reference_f1=_num(self.summary.get("reference_f1")), ranking=self.ranking,
            skipped_events=self.skipped_events, last_event_t=self.last_event_t, now=now,
        )
