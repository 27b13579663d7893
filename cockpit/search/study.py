"""The search phase's Optuna study, in the pipeline folder: asked for trials and told their outcomes by the
supervisor. Optuna's own samplers (TPE, grid, random), pruners (median, hyperband) and journal file storage do
the work; this module maps them onto runs (``s-017``), dev evals and the pipeline's ``--resume``.

The supervisor's order (docs/architecture.md, "The search phase"): ``recover`` once at a resume; then while not
``done()``: ``ask`` while ``can_ask()`` and launch each trial's run; ``report`` each dev eval and stop the run when
``should_prune``; ``tell_complete`` / ``tell_pruned`` / ``tell_failed`` when the run is done for good.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.importance import FanovaImportanceEvaluator, get_param_importances
from optuna.pruners import BasePruner, HyperbandPruner, MedianPruner, NopPruner
from optuna.samplers import BaseSampler, GridSampler, RandomSampler, TPESampler
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, Trial, TrialState

from cockpit.search.space import SearchSettings, SearchSpace
from trainer.contract import SEARCH_TRIAL_STATES, PipelinePaths, search_run_id

# Trial user attributes (in the study's storage, so --resume and optuna-dashboard see them).
RUN_ATTR = "run"  # the trial's run id
RETRY_OF_ATTR = "retry_of"  # a retried trial: the number of the trial it retries
RETRIES_ATTR = "retries"  # how many times the run has been retried after a dead supervisor
PRUNED_STEP_ATTR = "pruned_step"  # the step a pruned trial was stopped at
ELAPSED_ATTR = "elapsed_s"  # study attribute: seconds spent on the study by earlier supervisors (timeout_s)
# A study that samples failing points (without n_trials to bound it) gives up after this many failed trials.
FAILURE_LIMIT = 10
STATE_WORDS = dict(zip((TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL),
                       SEARCH_TRIAL_STATES))


@dataclass(frozen=True)
class AskedTrial:
    """A trial to run: its number, its run id and the sampled params (`trials.trial_run_config` makes its config)."""

    number: int
    run: str
    params: dict[str, Any]
    retry_of: int | None = None


@dataclass(frozen=True)
class TrialRow:
    """One trial as the study holds it (a row of the study view and of ``export``)."""

    number: int
    run: str
    params: dict[str, Any]
    state: str
    """"running", "complete", "pruned" or "failed" (SEARCH_TRIAL_STATES)."""
    value: float | None
    pruned_step: int | None
    retry_of: int | None


@dataclass(frozen=True)
class BestTrial:
    number: int
    run: str
    params: dict[str, Any]
    value: float


@dataclass(frozen=True)
class Recovered:
    """A trial a dead supervisor left running: marked failed, and retried (re-enqueued, same run) or not."""

    number: int
    run: str
    retried: bool


def make_sampler(space: SearchSpace) -> BaseSampler:
    """Optuna's sampler for ``[search] sampler``, seeded by ``[search] seed``."""
    settings = space.settings
    if settings.sampler == "grid":
        return GridSampler(space.grid(), seed=settings.seed)
    if settings.sampler == "random":
        return RandomSampler(seed=settings.seed)
    return TPESampler(seed=settings.seed, n_startup_trials=settings.startup_trials)


def make_pruner(settings: SearchSettings) -> BasePruner:
    """Optuna's pruner for ``[search] pruner``."""
    if settings.pruner == "median":
        return MedianPruner(n_startup_trials=settings.prune_after_trials, n_warmup_steps=settings.prune_warmup_steps)
    if settings.pruner == "hyperband":
        return HyperbandPruner(min_resource=max(1, settings.prune_warmup_steps))
    return NopPruner()


def open_storage(paths: PipelinePaths, kind: str) -> BaseStorage:
    """The study's storage in the pipeline folder: Optuna's journal file (appends under a lock file, safe on NFS),
    or SQLite (``storage = "sqlite"``, local disks only)."""
    if kind == "sqlite":
        return RDBStorage(f"sqlite:///{paths.search_sqlite}")
    return JournalStorage(JournalFileBackend(str(paths.search_journal)))


def _run_of(trial: FrozenTrial) -> str:
    return str(trial.user_attrs.get(RUN_ATTR, search_run_id(trial.number)))


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class SearchStudy:
    """The study of one pipeline folder, created on the first start and loaded on ``--resume`` (the study is
    named after the pipeline folder). Maximises the objective (dev macro-F1 at the primary threshold, or
    tuned_cv)."""

    def __init__(self, pipeline_dir: Path, space: SearchSpace, clock: Callable[[], float] = time.monotonic) -> None:
        self.space = space
        self.settings = space.settings
        # Optuna logs every trial at INFO on stderr: the supervisor writes its own events instead.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(storage=open_storage(PipelinePaths(pipeline_dir), self.settings.storage),
                                         study_name=pipeline_dir.name, direction="maximize",
                                         sampler=make_sampler(space), pruner=make_pruner(self.settings),
                                         load_if_exists=True)
        self._live: dict[int, Trial] = {}
        self._clock = clock
        self._opened = clock()
        earlier = self.study.user_attrs.get(ELAPSED_ATTR, 0.0)
        self._elapsed_before = float(earlier) if isinstance(earlier, (int, float)) else 0.0

    # -- asking and telling ----------------------------------------------------------------------
    def ask(self) -> AskedTrial:
        """A new trial (or a queued retry, first): its params are sampled now, conditional ones included."""
        trial = self.study.ask()
        params = self.space.suggest(trial)
        attrs = trial.user_attrs
        run = str(attrs.get(RUN_ATTR) or search_run_id(trial.number))
        if RUN_ATTR not in attrs:
            trial.set_user_attr(RUN_ATTR, run)
        self._live[trial.number] = trial
        return AskedTrial(trial.number, run, params, _integer(attrs.get(RETRY_OF_ATTR)))

    def report(self, trial: int, step: int, value: float) -> None:
        """One dev eval of the trial's run: the objective's value at that optimizer step."""
        self._trial(trial).report(value, step)

    def should_prune(self, trial: int) -> bool:
        """The pruner's decision after the last report: stop the run (then ``tell_pruned``)."""
        return self._trial(trial).should_prune()

    def tell_complete(self, trial: int, value: float | None) -> str:
        """The run completed with this value (its best dev eval under the objective). Without a finite value the
        trial failed (the run never scored). Returns the trial's state word."""
        if value is None or not math.isfinite(value):
            return self.tell_failed(trial)
        self._tell(trial, values=value)
        return STATE_WORDS[TrialState.COMPLETE]

    def tell_pruned(self, trial: int, step: int | None) -> str:
        """The run was stopped at ``step`` because the pruner said so; its value is its last report."""
        if step is not None and trial in self._live:
            self._live[trial].set_user_attr(PRUNED_STEP_ATTR, step)
        self._tell(trial, state=TrialState.PRUNED)
        return STATE_WORDS[TrialState.PRUNED]

    def tell_failed(self, trial: int) -> str:
        """The run failed for good (after its restarts), or its sampled config was refused."""
        self._tell(trial, state=TrialState.FAIL)
        return STATE_WORDS[TrialState.FAIL]

    def _tell(self, trial: int, **outcome: Any) -> None:
        self._store(trial, **outcome)
        self._live.pop(trial, None)
        self._save_elapsed()

    def _store(self, trial: int, **outcome: Any) -> None:
        try:
            self.study.tell(trial, **outcome)
        except RuntimeError:
            # Optuna's GridSampler stops the study after its last point, and Study.stop raises outside optimize()
            # (optuna#4121, #5141; documented since #5153). The outcome is stored first, so the study goes on.
            if self.settings.sampler != "grid" or not self.study.trials[trial].state.is_finished():
                raise

    def _trial(self, number: int) -> Trial:
        try:
            return self._live[number]
        except KeyError:
            raise KeyError(f"trial {number} is not running in this study") from None

    def settle(self, number: int, state: str, value: float | None = None, step: int | None = None) -> str:
        """A trial a dead supervisor left running whose run had already ended (its run_done is in pipeline.jsonl,
        the tell never reached the study): tell it now as the run ended, before `recover` would retry it.
        ``state``: "complete" (with its value), "pruned" (at ``step``) or "failed"."""
        if state == STATE_WORDS[TrialState.PRUNED]:
            if step is not None:
                Trial(self.study, self.study.trials[number]._trial_id).set_user_attr(PRUNED_STEP_ATTR, step)
            return self.tell_pruned(number, step)
        if state == STATE_WORDS[TrialState.COMPLETE]:
            return self.tell_complete(number, value)
        return self.tell_failed(number)

    def recover(self, max_retries: int) -> list[Recovered]:
        """At ``--resume``: trials a dead supervisor left running are marked failed, and those with retries left
        (at most ``max_retries`` each, the restart budget) are queued again with the same params and run, so the
        next ``ask`` hands them out first and their run resumes from its checkpoint. Finished trials stay."""
        recovered = []
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if frozen.number in self._live:
                continue
            self._store(frozen.number, state=TrialState.FAIL)
            retries = _integer(frozen.user_attrs.get(RETRIES_ATTR)) or 0
            retried = bool(frozen.params) and retries < max_retries
            if retried:
                self.study.enqueue_trial(dict(frozen.params), user_attrs={
                    RUN_ATTR: _run_of(frozen), RETRY_OF_ATTR: frozen.number, RETRIES_ATTR: retries + 1})
            recovered.append(Recovered(frozen.number, _run_of(frozen), retried))
        return recovered

    # -- when it ends ----------------------------------------------------------------------------
    @property
    def n_trials(self) -> int | None:
        return self.space.n_trials()

    @property
    def running(self) -> int:
        """Trials asked by this supervisor and not yet told."""
        return len(self._live)

    def elapsed_s(self) -> float:
        """Seconds spent on the study, by this supervisor and earlier ones (what ``timeout_s`` counts)."""
        return self._elapsed_before + (self._clock() - self._opened)

    def _save_elapsed(self) -> None:
        self.study.set_user_attr(ELAPSED_ATTR, self.elapsed_s())

    def counts(self) -> dict[str, int]:
        """Trials by state word, and ``failed_for_good``: failed trials that no trial retries."""
        trials = self.study.get_trials(deepcopy=False)
        retried = {_integer(t.user_attrs.get(RETRY_OF_ATTR)) for t in trials}
        counts = {word: sum(t.state == state for t in trials) for state, word in STATE_WORDS.items()}
        counts["failed_for_good"] = sum(t.state == TrialState.FAIL and t.number not in retried for t in trials)
        return counts

    def finished(self) -> int:
        """Trials that count toward ``n_trials``: complete and pruned ones. On a grid, a point that failed for
        good counts too (the grid has no other point to try instead)."""
        counts = self.counts()
        done = counts["complete"] + counts["pruned"]
        return done + (counts["failed_for_good"] if self.settings.sampler == "grid" else 0)

    def end_reason(self) -> str | None:
        """Why no new trial may start: "n_trials", "timeout" or "failures"; None while trials may start."""
        n = self.n_trials
        if n is not None and self.finished() >= n:
            return "n_trials"
        if self.settings.timeout_s is not None and self.elapsed_s() >= self.settings.timeout_s:
            return "timeout"
        if self.counts()["failed_for_good"] >= (n or FAILURE_LIMIT):
            return "failures"
        return None

    def can_ask(self) -> bool:
        """Whether to start another trial now: the study has not ended, a ``parallel`` place is free, and the
        trials running would not take it past ``n_trials``."""
        if self.end_reason() is not None or self.running >= self.settings.parallel:
            return False
        n = self.n_trials
        return n is None or self.finished() + self.running < n

    def done(self) -> bool:
        """The study is over: it has ended and no trial of this supervisor is still running."""
        return self.running == 0 and self.end_reason() is not None

    def close(self) -> None:
        """Keep the time spent, for the next ``--resume``'s timeout."""
        self._save_elapsed()

    # -- what views read -------------------------------------------------------------------------
    def best(self) -> BestTrial | None:
        """The best complete trial (the highest value), or None before one completed."""
        if not any(t.state == TrialState.COMPLETE for t in self.study.get_trials(deepcopy=False)):
            return None
        best = self.study.best_trial
        return BestTrial(best.number, _run_of(best), dict(best.params), float(best.value))

    def importances(self) -> dict[str, float] | None:
        """fANOVA importances of the params over the complete trials (most important first), or None: fewer than
        two complete trials, or fANOVA could not fit them."""
        complete = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(complete) < 2:
            return None
        try:
            found = get_param_importances(self.study, evaluator=FanovaImportanceEvaluator(seed=self.settings.seed))
        except Exception:  # noqa: BLE001 - importances are context: a fit that fails must never end the study
            return None
        return {name: float(value) for name, value in found.items()} or None

    def row(self, number: int) -> TrialRow:
        """One trial's row (after a tell: what its search_trial event says)."""
        return self._row(self.study.trials[number])

    def trials_table(self) -> list[TrialRow]:
        """Every trial asked so far, in order (queued retries not yet asked are left out)."""
        return [self._row(t) for t in self.study.get_trials(deepcopy=False) if t.state in STATE_WORDS]

    @staticmethod
    def _row(trial: FrozenTrial) -> TrialRow:
        value = trial.value if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) else None
        return TrialRow(trial.number, _run_of(trial), dict(trial.params), STATE_WORDS.get(trial.state, "waiting"),
                        value, _integer(trial.user_attrs.get(PRUNED_STEP_ATTR)),
                        _integer(trial.user_attrs.get(RETRY_OF_ATTR)))

    def end_fields(self, reason: str | None = None) -> dict[str, Any]:
        """The fields of the search_end event: ``emit(Event.SEARCH_END, **study.end_fields())``."""
        best, counts = self.best(), self.counts()
        return {"trials": counts["complete"] + counts["pruned"], "best_trial": best.number if best else None,
                "best_value": best.value if best else None, "best_run": best.run if best else None,
                "best_params": best.params if best else {}, "importances": self.importances(),
                "reason": reason or self.end_reason() or "interrupted", "pruned": counts["pruned"],
                "failed": counts["failed"]}


def trial_fields(row: TrialRow, importances: dict[str, float] | None = None) -> dict[str, Any]:
    """The fields of a search_trial event: ``emit(Event.SEARCH_TRIAL, **trial_fields(study.row(n)))``; the
    importances after a trial ends (`SearchStudy.importances`)."""
    fields: dict[str, Any] = {"trial": row.number, "run": row.run, "state": row.state, "params": row.params}
    optional = {"value": row.value, "step": row.pruned_step, "retry_of": row.retry_of, "importances": importances}
    return {**fields, **{key: value for key, value in optional.items() if value is not None}}
