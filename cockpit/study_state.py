"""The search phase's study folded from pipeline.jsonl (issue 21): one row per trial, the best-so-far curve,
the latest importances and the best trial. `PipelineState` holds one and hands it the three search records;
`snapshot()` returns a frozen `StudyView`. Plain class, no Textual. The study maximizes its objective (the
supervisor creates it with direction="maximize"), so "best" is the highest value of a complete trial."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cockpit.records.search_events import SearchEnd, SearchReport, SearchTrial
from cockpit.snapshots import SeriesView, StudyView, TrialRow

FINISHED = frozenset({"complete", "pruned"})


def param_text(value: Any) -> str:
    """A sampled parameter's value, short: floats in 3 significant digits, the rest as written."""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def params_text(params: dict[str, Any]) -> str:
    """``lr=3e-05 gamma=2``: the parameters by name, in the order the study sampled them."""
    return " ".join(f"{k}={param_text(v)}" for k, v in params.items())


@dataclass
class _Trial:
    trial: int
    run: str
    state: str
    params: dict[str, Any]
    value: float | None = None
    step: int | None = None
    retry_of: int | None = None


class StudyState:
    """The study as its records arrive; `seen` stays False until the first search record."""

    def __init__(self) -> None:
        self.seen = False
        self._trials: dict[int, _Trial] = {}
        self._importances: tuple[tuple[str, float], ...] = ()
        self._end: SearchEnd | None = None

    def apply(self, record: SearchTrial | SearchReport | SearchEnd) -> None:
        """Fold one decoded search record in."""
        self.seen = True
        if isinstance(record, SearchTrial):
            trial = self._trials.get(record.trial)
            if trial is None or trial.state != "complete":  # a late duplicate never undoes a complete trial
                self._trials[record.trial] = _Trial(record.trial, record.run, record.state, dict(record.params),
                                                    record.value, record.step, record.retry_of)
            retried = self._trials.get(record.retry_of) if record.retry_of is not None else None
            if retried is not None and retried.state == "running":  # its supervisor died; the study failed it
                retried.state = "failed"
            if record.importances is not None:
                self._importances = record.importances
        elif isinstance(record, SearchReport):
            trial = self._trials.get(record.trial)
            if trial is not None and trial.state == "running":  # the pruner's latest number for a live trial
                trial.value, trial.step = record.value, record.step
        else:
            self._end = record
            if record.importances is not None:
                self._importances = record.importances

    def _best(self) -> _Trial | None:
        complete = [t for t in self._trials.values() if t.state == "complete" and t.value is not None]
        return max(complete, key=lambda t: (t.value, -t.trial), default=None)

    def _best_so_far(self, trials: list[_Trial]) -> SeriesView:
        xs: list[float] = []
        ys: list[float] = []
        best: float | None = None
        for t in trials:
            if t.state == "complete" and t.value is not None and (best is None or t.value > best):
                best = t.value
            if t.state in FINISHED and best is not None:
                xs.append(float(t.trial))
                ys.append(best)
        return SeriesView(tuple(xs), tuple(ys))

    def snapshot(self) -> StudyView | None:
        """The study as views draw it; None when the pipeline has no search phase (no search record yet)."""
        if not self.seen:
            return None
        trials = sorted(self._trials.values(), key=lambda t: t.trial)
        best = self._best()
        end = self._end
        if best is None and end is not None and end.best_trial is not None:
            best_trial, best_run, best_params, best_value = end.best_trial, end.best_run, end.best_params, end.best_value
        elif best is not None:
            best_trial, best_run, best_params, best_value = best.trial, best.run, best.params, best.value
        else:
            best_trial = best_run = best_value = None
            best_params = {}
        states = [t.state for t in trials]
        return StudyView(
            trials=tuple(TrialRow(t.trial, t.run, params_text(t.params), t.state, t.value, t.step, t.retry_of)
                         for t in trials),
            best_so_far=self._best_so_far(trials), importances=self._importances, best_trial=best_trial,
            best_run=best_run, best_params=tuple(best_params.items()), best_value=best_value,
            complete=states.count("complete"), pruned=states.count("pruned"), failed=states.count("failed"),
            running=states.count("running"), ended=end is not None, reason=end.reason if end is not None else "")
