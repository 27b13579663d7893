"""The search phase: a preset's ``[search]`` study (cockpit/search/) driven by the supervisor.

Each trial is a run of this pipeline (``s-017``), launched on the same slots, watched by the same watchdog and
restarted by the same policy as any run; the trainer never knows it is in a study. The supervisor feeds every
periodic dev eval of a trial's run to the study (`observe`), and when Optuna's pruner says so the run is ended
through the control path (intent ``pruned``: SIGTERM, a checkpoint, ``run_done`` stopped) and told pruned at
that eval's step. A run done for good is told complete (its best dev eval under the objective) or failed.
`search_trial`, `search_report` and `search_end` go into pipeline.jsonl, so every view, the report and the
trackers read the study from there; parameter importances are computed here, on the supervisor's thread.

When the study ends, its best trials become configs of the preset (named after their trial, ``s_017``, unless a
trial only names one of the preset's own configs), and the phases after it take them: phase 1 screens them, or
phase 3 extends the first ``top_k``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from cockpit.pipeline.presets import LossConfig, PipelineSettings, PlannedRun, Preset
from cockpit.pipeline.reaping import INTENT_REASONS, RunReaper
from cockpit.pipeline.scheduler import RunRecord, Scheduler
from cockpit.records import EvalRecord, RunDone, RunExit, decode, read_run_history
from cockpit.records.search_events import SearchReport, SearchTrial
from trainer.config import RunConfig
from trainer.contract import SEARCH_PHASE, SEARCH_PHASE_NAME, Event

PRUNED = "pruned"  # the intent a pruned run is ended with (the restart policy stops it for good)


class Pipeline(Protocol):
    """What the search phase uses of the supervisor (cockpit/pipeline/supervisor.py) that drives it."""

    dir: Path
    preset: Preset
    settings: PipelineSettings
    records: dict[str, RunRecord]
    scheduler: Scheduler
    reaper: RunReaper
    interrupted: str | None
    configs: list[str]

    def emit(self, type_: str, **fields: Any) -> None: ...
    def alert(self, level: str, code: str, message: str, run: str | None = None) -> None: ...
    def tick(self) -> bool: ...
    def plan_run(self, plan: PlannedRun) -> RunRecord: ...


def trial_config_name(number: int) -> str:
    """A trial's config name, as preset config names are spelled (no '-'): ``s_017``."""
    return f"s_{number:03d}"


class SearchPhase:
    """One pipeline's search phase; the supervisor creates it when its phases include ``search``."""

    def __init__(self, sup: Pipeline) -> None:
        self.sup = sup
        space = sup.preset.search_space()
        if space is None:
            raise ValueError(f"preset {sup.preset.name} has no [search] table")
        self.space = space
        self.study: Any = None  # cockpit.search.study.SearchStudy (Optuna is imported only when a study runs)
        self.live: dict[str, int] = {}  # a trial run in flight -> its trial number
        self.to_prune: list[str] = []  # runs the pruner ended, for the supervisor's next control step
        self.pruned_at: dict[str, int] = {}  # a pruned run -> the step of the eval that pruned it
        self.pruned: set[str] = set()  # runs ended by the pruner: the policy working, not a failure

    # -- the phase ---------------------------------------------------------------------------------
    def run(self, history: list[Any]) -> None:
        """The phase; ``history``: the records of an earlier supervisor's pipeline.jsonl (empty on a first start)."""
        from cockpit.search.study import SearchStudy

        sup = self.sup
        self.study = SearchStudy(sup.dir, self.space)
        sup.emit(Event.PHASE_START, phase=SEARCH_PHASE, name=SEARCH_PHASE_NAME, runs=[])
        if history:
            self._settle(history)
            for lost in self.study.recover(max_retries=sup.settings.max_restarts):
                sup.alert("warn", "search", f"trial {lost.number} ({lost.run}) was running when the supervisor "
                                            f"stopped: {'retried' if lost.retried else 'failed for good'}", lost.run)
            self._known_trials()
        try:
            while not self.study.done() and not sup.interrupted and not sup.reaper.aborted:
                while self.study.can_ask():
                    self._launch(self.study.ask())
                sup.tick()
                self._tell_finished()
            if sup.interrupted:  # trials still running stay so in the journal: --resume retries them
                sup.reaper.apply_all(sup.scheduler.end_all("pipeline"))
                sup.scheduler.queue.clear()
            self._tell_finished()
            sup.emit(Event.SEARCH_END, **self.study.end_fields(None if not sup.interrupted else "interrupted"))
            self._take_best()
        finally:
            self.study.close()
        sup.emit(Event.PHASE_END, phase=SEARCH_PHASE)

    def _settle(self, history: list[Any]) -> None:
        """Trials whose run ended before the supervisor died, without the study hearing it (a kill between the
        run's run_done and the tell): told now as their run ended, so a pruned trial is not retried."""
        from cockpit.search.study import trial_fields

        ended: dict[str, tuple[str, str | None] | None] = {}  # run -> (run_done status, exit reason) or None
        reason: dict[str, str | None] = {}  # run -> its last run_exit's reason
        step: dict[str, int] = {}  # run -> its last reported step
        for record in history:
            if isinstance(record, SearchTrial) and record.state == "running":
                ended[record.run] = None  # launched (again): what came before belongs to an earlier trial
            elif isinstance(record, RunExit):
                reason[record.run] = record.reason
            elif isinstance(record, RunDone) and record.run in ended:
                ended[record.run] = (record.status, reason.get(record.run))
            elif isinstance(record, SearchReport) and record.run is not None:
                step[record.run] = record.step
        for row in self.study.trials_table():
            outcome = ended.get(row.run) if row.state == "running" else None
            if outcome is None:
                continue
            status, why = outcome
            if status == "stopped" and why == INTENT_REASONS[PRUNED]:
                self.study.settle(row.number, "pruned", step=step.get(row.run))
                self.pruned.add(row.run)
            elif status == "completed":
                self.study.settle(row.number, "complete", value=self._run_value(row.run))
            else:
                self.study.settle(row.number, "failed")
            self.sup.emit(Event.SEARCH_TRIAL, **trial_fields(self.study.row(row.number)))

    def _run_value(self, run: str) -> float | None:
        """A completed trial run's value: its best dev eval under the objective, read from its events."""
        from cockpit.search.trials import best_objective

        evals = read_run_history(self.sup.dir, run).dev_evals()
        return best_objective(evals, self.space.objective, self.sup.settings.primary_threshold)

    def _known_trials(self) -> None:
        """At --resume: the runs of the trials an earlier supervisor told, back on the leaderboard."""
        from cockpit.search.trials import trial_config

        for row in self.study.trials_table():
            if row.state != "running":
                config = self._register(row.number, row.params, trial_config(self.sup.preset, row.params))
                self.sup.plan_run(PlannedRun(row.run, SEARCH_PHASE, config.name))
            if row.state == "pruned":  # stopped by the pruner before the restart: the policy, not a failure
                self.pruned.add(row.run)

    def _launch(self, asked: Any) -> None:
        from cockpit.search.study import trial_fields
        from cockpit.search.trials import trial_config

        sup = self.sup
        config = self._register(asked.number, asked.params, trial_config(sup.preset, asked.params))
        record = sup.plan_run(PlannedRun(asked.run, SEARCH_PHASE, config.name))
        if record.status in ("completed", "failed", "stopped"):
            record.status = "queued"  # a retried trial: its run goes on from its checkpoint
        self.live[asked.run] = asked.number
        sup.emit(Event.SEARCH_TRIAL, **trial_fields(self.study.row(asked.number)))
        sup.scheduler.submit([record])

    def _register(self, number: int, params: dict[str, Any], config: LossConfig) -> LossConfig:
        """The trial's config as a config of the preset (phases after the search train it by name)."""
        own = {c.name: c for c in self.sup.preset.configs}
        if config.name in own and own[config.name] == config:
            return config  # the trial is one of the preset's configs as it stands (a grid over them)
        named = config.model_copy(update={"name": trial_config_name(number)})
        if named.name not in own:
            self.sup.preset.configs.append(named)
        return named

    def run_config(self, record: RunRecord) -> RunConfig | None:
        """A trial run's RunConfig (None for a run of another phase)."""
        if record.phase != SEARCH_PHASE or self.study is None:
            return None
        from cockpit.search.trials import trial_run_config

        number = self._number(record.run_id)
        return trial_run_config(self.sup.preset, self.study.row(number).params, record.run_id)

    def _number(self, run: str) -> int:
        if run in self.live:
            return self.live[run]
        rows = [row for row in self.study.trials_table() if row.run == run]
        return rows[-1].number

    # -- what the trial runs say -----------------------------------------------------------------
    def observe(self, origin: str, event: dict[str, Any]) -> None:
        """A trial run's periodic dev eval: report it to the study, and ask the pruner."""
        number = self.live.get(origin)
        if number is None or event.get("type") != Event.EVAL or origin in self.pruned_at:
            return
        from cockpit.search.trials import objective_value

        try:
            record = decode(origin, event)
        except ValueError:
            return  # a garbled eval reports nothing
        if not isinstance(record, EvalRecord) or record.step is None:
            return
        value = objective_value(record, self.space.objective, self.sup.settings.primary_threshold)
        if value is None:
            return
        self.study.report(number, record.step, value)
        self.sup.emit(Event.SEARCH_REPORT, trial=number, run=origin, step=record.step, value=value)
        if self.study.should_prune(number):
            self.pruned_at[origin] = record.step
            self.to_prune.append(origin)

    def take_prunes(self) -> list[str]:
        """Runs to end now as pruned (the supervisor's control step ends them; not from inside a read)."""
        runs, self.to_prune = self.to_prune, []
        self.pruned.update(runs)
        return runs

    def _tell_finished(self) -> None:
        from cockpit.search.study import trial_fields

        for run, number in list(self.live.items()):
            record = self.sup.records[run]
            if record.status not in ("completed", "failed", "stopped"):
                continue
            if run in self.pruned_at:
                self.study.tell_pruned(number, self.pruned_at[run])
            elif record.status == "completed":
                self.study.tell_complete(number, self._run_value(run))
            else:
                self.study.tell_failed(number)
            del self.live[run]
            self.sup.emit(Event.SEARCH_TRIAL, **trial_fields(self.study.row(number), self.study.importances()))

    def _take_best(self) -> None:
        """The phases after the search train its best trials: each complete trial, best first, as a config."""
        from cockpit.search.trials import trial_config

        rows = sorted((r for r in self.study.trials_table() if r.state == "complete" and r.value is not None),
                      key=lambda r: -r.value)
        names = []
        for row in rows:
            config = self._register(row.number, row.params, trial_config(self.sup.preset, row.params))
            if config.name not in names:
                names.append(config.name)
        if names:
            self.sup.configs = names
