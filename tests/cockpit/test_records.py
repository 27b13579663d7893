"""The records layer: eval events decoded once, and the one ranking rule every consumer uses."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cockpit.pipeline.results import leaderboard, run_scores
from cockpit.records import EvalRecord, best_eval, decode_eval, rank_key, rank_place
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
    assert record == EvalRecord(step=4, split="dev", final=False, epoch=1.0, macro={"0.2": 0.4})
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
    assert view_best is not None and view_best.step == run_scores(events, 0.2, select_by)["best_step"]


def test_the_leaderboard_sorts_by_the_same_rule() -> None:
    cv = TUNED_CV_KEY
    rows = [{"run": "a", "f1_macro@0.2": 0.4, cv: 0.30}, {"run": "b", "f1_macro@0.2": 0.4, cv: 0.35},
            {"run": "c", "f1_macro@0.2": None, cv: 0.9}, {"run": "d", "f1_macro@0.2": 0.5, cv: None}]
    assert [r["run"] for r in leaderboard(rows, 0.2, None, 0.5, 0.46)] == ["d", "b", "a", "c"]
    assert [r["run"] for r in leaderboard(rows, 0.2, None, 0.5, 0.46, select_by="tuned_cv")] == ["c", "b", "a", "d"]


def test_the_records_layer_is_stdlib_only_and_below_the_cockpit() -> None:
    """It imports only the standard library, itself and the contract: the pipeline and the views import it."""
    for path in sorted((REPO / "cockpit" / "records").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            for name in names:
                top = name.split(".")[0]
                assert name.startswith(("cockpit.records", "trainer.contract")) or top not in (
                    "cockpit", "trainer", "textual", "torch", "rich", "numpy"), f"{Path(path).name} imports {name}"
