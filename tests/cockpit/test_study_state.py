"""The search phase's study as the cockpit folds it: trial rows, best-so-far, importances, best trial, counts."""

from __future__ import annotations

from cockpit.records.search_events import SearchEnd, SearchReport, SearchTrial
from cockpit.state import PipelineState
from cockpit.study_state import StudyState, params_text
from trainer.contract import Event

LR = {"lr": 3e-05, "gamma_neg": 4}


def study(*records: SearchTrial | SearchReport | SearchEnd) -> StudyState:
    state = StudyState()
    for record in records:
        state.apply(record)
    return state


def test_no_search_record_means_no_study() -> None:
    assert StudyState().snapshot() is None
    assert PipelineState().snapshot(0.0).study is None


def test_trials_rows_counts_and_best() -> None:
    view = study(
        SearchTrial(1.0, 0, "s-000", "running", LR),
        SearchReport(2.0, 0, 20, 0.31, "s-000"),
        SearchTrial(3.0, 1, "s-001", "running", {"lr": 1e-4}),
        SearchTrial(4.0, 0, "s-000", "complete", LR, value=0.42),
        SearchTrial(5.0, 1, "s-001", "pruned", {"lr": 1e-4}, value=0.2, step=20),
        SearchTrial(6.0, 2, "s-002", "running", {"lr": 5e-5}),
        SearchReport(7.0, 2, 40, 0.38, "s-002"),
    ).snapshot()
    assert view is not None
    assert [(r.trial, r.run, r.state, r.value, r.step) for r in view.trials] == [
        (0, "s-000", "complete", 0.42, None), (1, "s-001", "pruned", 0.2, 20), (2, "s-002", "running", 0.38, 40)]
    assert view.trials[0].params == "lr=3e-05 gamma_neg=4"
    assert (view.complete, view.pruned, view.failed, view.running) == (1, 1, 0, 1)
    assert (view.best_trial, view.best_run, view.best_value) == (0, "s-000", 0.42)
    assert dict(view.best_params) == LR
    assert not view.ended


def test_best_so_far_follows_trial_order_and_only_complete_values() -> None:
    view = study(
        SearchTrial(1.0, 0, "s-000", "pruned", {}, value=0.9, step=20),  # a pruned value is never "best"
        SearchTrial(2.0, 2, "s-002", "complete", {}, value=0.5),
        SearchTrial(3.0, 1, "s-001", "complete", {}, value=0.3),
        SearchTrial(4.0, 3, "s-003", "complete", {}, value=0.4),
        SearchTrial(5.0, 4, "s-004", "failed", {}),
    ).snapshot()
    assert view is not None
    assert view.best_so_far.xs == (1.0, 2.0, 3.0)
    assert view.best_so_far.ys == (0.3, 0.5, 0.5)
    assert view.best_trial == 2


def test_importances_come_from_the_latest_record_carrying_them() -> None:
    first = (("lr", 0.7), ("gamma_neg", 0.3))
    state = study(SearchTrial(1.0, 0, "s-000", "complete", LR, value=0.4, importances=first),
                  SearchTrial(2.0, 1, "s-001", "running", LR))
    assert state.snapshot().importances == first  # a record without them keeps the last ones
    last = (("gamma_neg", 0.6), ("lr", 0.4))
    state.apply(SearchEnd(3.0, 2, 0, 0.4, "s-000", LR, last, "n_trials", 0, 0))
    view = state.snapshot()
    assert view.importances == last
    assert view.ended and view.reason == "n_trials"


def test_a_retried_trial_fails_the_one_it_retries() -> None:
    view = study(SearchTrial(1.0, 0, "s-000", "running", LR),
                 SearchTrial(2.0, 1, "s-000", "running", LR, retry_of=0)).snapshot()
    assert [(r.trial, r.state, r.retry_of) for r in view.trials] == [(0, "failed", None), (1, "running", 0)]
    assert (view.failed, view.running) == (1, 1)


def test_params_text_shortens_floats() -> None:
    assert params_text({"lr": 0.000123456, "loss": "asl", "seed": 3}) == "lr=0.000123 loss=asl seed=3"


def test_pipeline_state_forwards_search_events() -> None:
    state = PipelineState()
    state.apply("pipeline", {"v": 1, "t": 1.0, "type": Event.SEARCH_TRIAL, "trial": 0, "run": "s-000",
                             "state": "complete", "params": LR, "value": 0.42})
    state.apply("pipeline", {"v": 1, "t": 2.0, "type": Event.SEARCH_END, "trials": 1, "best_trial": 0,
                             "best_value": 0.42, "best_run": "s-000", "best_params": LR, "reason": "n_trials"})
    view = state.snapshot(3.0).study
    assert view is not None and view.best_run == "s-000" and view.ended
    assert state.skipped_events == 0
