"""The search phase's pipeline events (issue 21) decode into records, strictly where their meaning rests on a value
and leniently elsewhere, and no view breaks on them."""

from __future__ import annotations

import pytest

from cockpit.records import BadEvent, decode
from cockpit.records.search_events import SearchEnd, SearchReport, SearchTrial
from cockpit.state import PipelineState
from trainer.contract import PIPELINE_EVENTS, PIPELINE_ORIGIN, SEARCH_TRIAL_STATES, Event, search_run_id


def ev(kind: str, **fields: object) -> dict[str, object]:
    return {"v": 1, "t": 12.5, "type": kind, **fields}


def test_a_trial_event_decodes() -> None:
    record = decode(PIPELINE_ORIGIN, ev(Event.SEARCH_TRIAL, trial=4, run="s-004", state="pruned",
                                        params={"lr": 1e-4, "loss": "asl"}, value=0.31, step=40,
                                        importances={"lr": 0.2, "loss": 0.7, "bad": None}))
    assert record == SearchTrial(12.5, 4, "s-004", "pruned", {"lr": 1e-4, "loss": "asl"}, 0.31, 40, None,
                                 (("loss", 0.7), ("lr", 0.2)))


def test_a_running_trial_needs_only_its_required_keys() -> None:
    record = decode(PIPELINE_ORIGIN, ev(Event.SEARCH_TRIAL, trial=5, run="s-002", state="running",
                                        params={"lr": 1e-4}, retry_of=2, value="x"))
    assert isinstance(record, SearchTrial)
    assert (record.retry_of, record.value, record.step, record.importances) == (2, None, None, None)


@pytest.mark.parametrize("event", [
    ev(Event.SEARCH_TRIAL, trial=1, run="s-001", state="complete"),  # no params
    ev(Event.SEARCH_TRIAL, trial="one", run="s-001", state="complete", params={}),
    ev(Event.SEARCH_TRIAL, trial=1, run="", state="complete", params={}),
    ev(Event.SEARCH_REPORT, trial=1, step=10, value=None),  # a report is its value
    ev(Event.SEARCH_REPORT, trial=1, value=0.3),
    ev(Event.SEARCH_END, trials=3, best_trial=None),
])
def test_an_event_without_what_it_means_is_bad(event: dict[str, object]) -> None:
    with pytest.raises(BadEvent):
        decode(PIPELINE_ORIGIN, event)


def test_a_report_and_the_end_decode() -> None:
    assert decode(PIPELINE_ORIGIN, ev(Event.SEARCH_REPORT, trial=3, run="s-003", step=20, value=0.4)) == \
        SearchReport(12.5, 3, 20, 0.4, "s-003")
    end = decode(PIPELINE_ORIGIN, ev(Event.SEARCH_END, trials=12, best_trial=None, best_value=None))
    assert end == SearchEnd(12.5, 12, None, None)
    full = decode(PIPELINE_ORIGIN, ev(Event.SEARCH_END, trials=12, best_trial=7, best_value=0.52, best_run="s-007",
                                      best_params={"lr": 2e-4}, importances={"lr": 1.0}, reason="timeout", pruned=5,
                                      failed=1))
    assert full == SearchEnd(12.5, 12, 7, 0.52, "s-007", {"lr": 2e-4}, (("lr", 1.0),), "timeout", 5, 1)


def test_the_contract_knows_the_search() -> None:
    assert {Event.SEARCH_TRIAL, Event.SEARCH_REPORT, Event.SEARCH_END} <= set(PIPELINE_EVENTS)
    assert SEARCH_TRIAL_STATES == ("running", "complete", "pruned", "failed")
    assert search_run_id(17) == "s-017" and search_run_id(1234) == "s-1234"


def test_the_view_model_skips_nothing_of_a_study() -> None:
    state = PipelineState()
    for event in (ev(Event.SEARCH_TRIAL, trial=0, run="s-000", state="running", params={"lr": 1e-4}),
                  ev(Event.SEARCH_REPORT, trial=0, step=10, value=0.2),
                  ev(Event.SEARCH_END, trials=1, best_trial=0, best_value=0.2)):
        state.apply(PIPELINE_ORIGIN, event)
    assert state.skipped_events == 0
