"""The records layer: eval events decoded once, and the one ranking rule every consumer uses."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cockpit.pipeline.results import leaderboard, run_scores
from cockpit.records import (PIPELINE_DECODERS, RUN_DECODERS, Alert, BadEvent, EvalRecord, RunLaunch, StepRecord,
                             best_eval, decode, decode_eval, decode_run, rank_key, rank_place)
from trainer.contract import PIPELINE_EVENTS, TRAINER_EVENTS
from cockpit.state import PipelineState
from tests.conftest import REPO
from trainer.contract import TUNED_CV_KEY


def dev_eval(step: int, f1: float | None, cv: float | None = None, **extra) -> dict:
    event = {"v": 1, "type": "eval", "t": float(step), "tuned": {"f1_macro": 0.5}, "split": "dev", "step": step, "epoch": 1.0, "loss": 0.2,
             "f1_macro": {} if f1 is None else {"0.2": f1}, "f1_micro": {"0.2": 0.5}, "per_class": []}
    if cv is not None:
        event["tuned_cv"] = cv
    return {**event, **extra}


def test_an_eval_is_decoded_leniently() -> None:
    record = decode_eval({"type": "eval", "step": 4.0, "split": "dev", "f1_macro": {"0.2": 0.4, "0.5": "x",
                          "0.3": float("nan")}, "tuned": {"f1_macro": True}, "tuned_cv": float("inf"), "epoch": 1})
    assert record == EvalRecord(step=4, split="dev", final=False, epoch=1.0, macro={"0.2": 0.4},
                                by_threshold={"f1_macro": {"0.2": 0.4}})
    assert record.f1(0.2) == 0.4 and record.f1(0.5) is None and record.is_periodic_dev
    assert not decode_eval({"type": "eval", "source": "isear", "split": "dev"}).is_periodic_dev
    assert decode_eval({"type": "eval"}).step == 0  # a missing step reads as 0, not an error


@pytest.mark.parametrize("select_by, better, worse", [
    ("f1@primary", (0.5, None), (0.4, 0.9)),  # the chosen score first
    ("f1@primary", (0.5, 0.6), (0.5, 0.5)),  # then the other
    ("f1@primary", (0.5, 0.1), (0.5, None)),  # a missing tie-break is the lowest
    ("tuned_cv", (0.1, 0.5), (0.9, 0.4)),
    ("tuned_cv", (0.0, 0.01), (0.9, None)),  # a score without the chosen number ranks last
])
def test_the_ranking_rule(select_by: str, better: tuple, worse: tuple) -> None:
    assert rank_key(select_by, *better) > rank_key(select_by, *worse)
    assert rank_place(select_by, *better) < rank_place(select_by, *worse)


def test_on_a_tie_the_earlier_eval_stays_best_as_the_trainer_keeps_its_checkpoint() -> None:
    records = [decode_eval(e) for e in (dev_eval(1, 0.3), dev_eval(2, 0.5, 0.4), dev_eval(3, 0.5, 0.4),
                                        dev_eval(4, 0.5, 0.3), dev_eval(5, None, 0.9))]
    assert best_eval(records, 0.2, "f1@primary").step == 2
    assert best_eval(records, 0.2, "tuned_cv").step == 5
    assert best_eval(records[:1], 0.2, "tuned_cv") is None  # no eval has the chosen score


@pytest.mark.parametrize("select_by", ["f1@primary", "tuned_cv"])
def test_the_supervisor_and_the_view_pick_the_same_best_eval(select_by: str) -> None:
    events = [dev_eval(1, 0.30, 0.35), dev_eval(2, 0.42, 0.33), dev_eval(3, 0.42, 0.36), dev_eval(4, 0.40, 0.41),
              dev_eval(5, 0.41, None), dev_eval(6, 0.90, 0.90, source="isear")]
    state = PipelineState()
    state.apply("preset", {"type": "preset", "data": {"pipeline": {"select_by": select_by}}})
    for event in events:
        state.apply("p1-bce", event)
    view_best = state.snapshot(0.0).run("p1-bce").best_dev
    assert view_best is not None and view_best.step == run_scores(decode_run(events), 0.2, select_by)["best_step"]


def test_the_leaderboard_sorts_by_the_same_rule() -> None:
    cv = TUNED_CV_KEY
    rows = [{"run": "a", "f1_macro@0.2": 0.4, cv: 0.30}, {"run": "b", "f1_macro@0.2": 0.4, cv: 0.35},
            {"run": "c", "f1_macro@0.2": None, cv: 0.9}, {"run": "d", "f1_macro@0.2": 0.5, cv: None}]
    assert [r["run"] for r in leaderboard(rows, 0.2, None, 0.5, 0.46)] == ["d", "b", "a", "c"]
    assert [r["run"] for r in leaderboard(rows, 0.2, None, 0.5, 0.46, select_by="tuned_cv")] == ["c", "b", "a", "d"]


def test_the_records_layer_is_stdlib_only_and_below_the_cockpit() -> None:
    """It imports only the standard library, itself, the contract and the contract's reader of event files
    (`trainer.events`, stdlib only too): the pipeline and the views import it."""
    for path in sorted((REPO / "cockpit" / "records").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            for name in names:
                top = name.split(".")[0]
                assert name.startswith(("cockpit.records", "trainer.contract", "trainer.events")) or top not in (
                    "cockpit", "trainer", "textual", "torch", "rich", "numpy"), f"{Path(path).name} imports {name}"


# -- decode: every event type, one reading ----------------------------------------------------------------------

def _event(kind: str, **fields: object) -> dict:
    return {"v": 1, "t": 5.0, "type": kind, **fields}


def test_decoders_cover_exactly_the_contracts_event_tables() -> None:
    assert set(RUN_DECODERS) == set(TRAINER_EVENTS)
    assert set(PIPELINE_DECODERS) == set(PIPELINE_EVENTS)


def test_decode_reads_a_step_and_refuses_one_without_a_usable_step() -> None:
    fields = dict(epoch=0.5, loss=None, lr=1e-4, grad_norm=float("nan"), samples_per_s=30, tokens_per_s=1,
                  step_time_s=0.1, nonfinite_skipped=None)
    record = decode("p1-bce", _event("step", step=7.0, **fields))
    assert record == StepRecord(t=5.0, step=7, epoch=0.5, loss=None, lr=1e-4, grad_norm=None, samples_per_s=30.0,
                                nonfinite_skipped=0, tokens_per_s=1.0, step_time_s=0.1)
    with pytest.raises(BadEvent, match="step"):
        decode("p1-bce", _event("step", step="seven", **fields))
    with pytest.raises(BadEvent, match="missing step_time_s"):
        decode("p1-bce", _event("step", step=7, **{k: v for k, v in fields.items() if k != "step_time_s"}))


def test_decode_names_the_run_of_a_trainers_alert_and_keeps_the_pipelines_own() -> None:
    alert = _event("alert", level="warn", code="grad_vanishing", message="‖g‖ < 1e-7")
    assert decode("p1-bce", alert) == Alert(5.0, "warn", "grad_vanishing", "‖g‖ < 1e-7", "p1-bce")
    assert decode("pipeline", alert).run is None
    assert decode("pipeline", {**alert, "run": "p3-asl"}).run == "p3-asl"
    with pytest.raises(BadEvent, match="level"):
        decode("pipeline", {**alert, "level": None})


def test_decode_ignores_types_it_does_not_hold_and_refuses_what_is_not_an_event() -> None:
    assert decode("pipeline", _event("step", step=1)) is None  # a trainer's type in pipeline.jsonl
    assert decode("p1-bce", _event("hologram")) is None  # a newer writer's type
    for bad in ([1, 2], {"v": 1, "t": 1.0}, {"type": 3}):
        with pytest.raises(BadEvent):
            decode("p1-bce", bad)


def test_decode_reads_supervisor_events_leniently_where_values_are_optional() -> None:
    launch = decode("pipeline", _event("run_launch", run="p1-bce", device="cpu", pid=None, attempt=2, job_id=""))
    assert launch == RunLaunch(5.0, "p1-bce", 2, "cpu", None, None)
    stall = decode("pipeline", _event("stall", run="p1-bce", attempt=1, silent_s="?", dump="runs/p1-bce/stall-1.txt"))
    assert (stall.silent_s, stall.allowed_s, stall.action) == (0.0, None, "")
    with pytest.raises(BadEvent, match="run"):
        decode("pipeline", _event("run_done", run="", status="completed", attempts=1))
    end = decode("p1-bce", _event("run_end", status="completed", reason="done", wall_s=12.5,
                                  best={"metric": "dev_f1_macro@0.2", "value": 0.4, "step": 30}))
    assert (end.best_metric, end.best_value, end.best_step) == ("dev_f1_macro@0.2", 0.4, 30)


def test_decode_data_keeps_the_first_row_of_each_label_and_named_sources_once() -> None:
    data = decode("p1-bce", _event(
        "data", train_size_before=10, train_size_after=12, dev_size=2, test_size=2, oversampling=None,
        per_class=[{"label": "joy", "before": 3, "after": 5, "weight": 1.5}, {"label": "joy", "before": 9, "after": 9},
                   {"label": "grief", "before": 1}, "junk"],
        sources=[{"name": "goemotions", "rows": {"train_before": 10}, "dropped": {"duplicate": 2, "x": "y"}},
                 {"name": "goemotions"}, {"kind": "csv"}]))
    assert [(c.label, c.before, c.after) for c in data.per_class] == [("joy", 3, 5)]
    assert data.labels == 2  # grief is listed, though without counts
    assert [(s.name, s.train_before, s.dropped) for s in data.sources] == [("goemotions", 10, (("duplicate", 2),))]


def test_a_run_history_keeps_the_last_attempts_curve_and_counts_bad_events() -> None:
    start = _event("run_start", run="p1-bce", config={"loss": "bce"}, model="m", n_params=1, device="cpu",
                   world_size=1, pid=1, resumed_from_step=None)
    step_fields = dict(epoch=0.1, loss=1.0, lr=1e-4, grad_norm=1.0, samples_per_s=3, tokens_per_s=1, step_time_s=0.1,
                       nonfinite_skipped=0)
    events = [start, *(_event("step", step=s, **step_fields) for s in (1, 2, 3)), dev_eval(2, 0.3),
              {**start, "resumed_from_step": 2, "config": {"loss": "asl"}}, _event("step", step=3, **step_fields),
              _event("step", step="x", **step_fields), dev_eval(3, 0.4), dev_eval(3, 0.5, source="isear"),
              dev_eval(3, 0.45, final=True), dev_eval(3, 0.44, final=True, split="test")]
    history = decode_run(events, "p1-bce")
    assert history.bad_events == 1
    assert [(type(r).__name__, r.step) for r in history.curve()] == [
        ("StepRecord", 1), ("StepRecord", 2), ("EvalRecord", 2), ("StepRecord", 3), ("EvalRecord", 3)]
    assert history.config() == {"loss": "asl"}  # the latest attempt's
    assert [r.f1(0.2) for r in history.dev_evals()] == [0.3, 0.4]  # not the per-source one, not the finals
    assert [(r.split, r.f1(0.2)) for r in history.label_evals()] == [("dev", 0.45), ("test", 0.44)]
