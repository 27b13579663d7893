"""The not_learning judgement (issue 20): a run stuck on the label prior, or ranking no better than chance,
is told apart from runs that learn slowly; the supervisor alerts (and may stop) once per run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cockpit.judgements.learning import LearningRule, LearningWatch, judge
from cockpit.records import decode_eval
from cockpit.state import PipelineState


def dev_eval(step: int, auc: float | None, predicted: int = 10, gap: float = 0.08, **extra: Any) -> dict:
    return {"v": 1, "t": float(step), "type": "eval", "split": "dev", "step": step, "epoch": 0.1, "loss": 0.2,
            "f1_macro": {"0.2": 0.1}, "f1_micro": {"0.2": 0.1}, "per_class": [], "tuned": None,
            "learning": {"auc_macro": auc, "labels_predicted": predicted, "labels": 28, "prior_gap": gap}, **extra}


def run_start(total: int, resumed: int | None = None) -> dict:
    return {"v": 1, "t": 0.0, "type": "run_start", "run": "p1-bce", "config": {}, "model": "m", "n_params": 1,
            "device": "cpu", "world_size": 1, "pid": 1, "resumed_from_step": resumed, "total_steps": total}


def records(*events: dict) -> list:
    return [decode_eval(e) for e in events]


def test_chance_discrimination_fires_after_two_evals_and_not_before() -> None:
    assert judge(records(dev_eval(10, 0.52)), total_steps=100) is None  # one eval, 10 % of the run: too early
    verdict = judge(records(dev_eval(10, 0.52), dev_eval(20, 0.55)), total_steps=100)
    assert verdict is not None and verdict.step == 20 and "near chance" in verdict.message
    assert "head_lr" in verdict.message  # it says what usually causes it


def test_a_fraction_of_the_run_is_a_fair_chance_too() -> None:
    assert judge(records(dev_eval(40, 0.5)), LearningRule(after_evals=5, after_fraction=0.3), 100) is not None
    assert judge(records(dev_eval(20, 0.5)), LearningRule(after_evals=5, after_fraction=0.3), 100) is None


def test_predictions_at_the_prior_fire_even_with_some_ranking() -> None:
    stuck = records(dev_eval(10, 0.7, predicted=1, gap=0.01), dev_eval(20, 0.72, predicted=1, gap=0.012))
    verdict = judge(stuck, total_steps=100)
    assert verdict is not None and "label prior" in verdict.message and "1 of 28 labels" in verdict.message


def test_learning_runs_never_fire() -> None:
    slow = records(dev_eval(10, 0.58), dev_eval(20, 0.66), dev_eval(30, 0.80))  # slow, but it ranks well by eval 2
    calibrated_high = records(dev_eval(10, 0.9, predicted=28, gap=0.4), dev_eval(20, 0.92, predicted=28, gap=0.4))
    few_but_moving = records(dev_eval(10, 0.8, predicted=1, gap=0.05), dev_eval(20, 0.85, predicted=1, gap=0.06))
    for evals in (slow, calibrated_high, few_but_moving):
        assert judge(evals, total_steps=100) is None
    assert judge(records({**dev_eval(10, 0.5), "learning": None}, {**dev_eval(20, 0.5), "learning": None})) is None


def test_the_watch_judges_each_run_once_and_forgets_what_a_resume_drops() -> None:
    watch = LearningWatch()
    assert watch.observe("p1-bce", run_start(100)) is None
    assert watch.observe("p1-bce", dev_eval(10, 0.5)) is None
    assert watch.observe("pipeline", dev_eval(20, 0.5)) is None  # not a run's event
    assert watch.observe("p1-bce", {"type": "eval"}) is None  # refused by the contract: ignored
    assert watch.observe("p1-bce", dev_eval(20, 0.5, source="isear")) is None  # a per-source eval
    assert watch.observe("p1-bce", run_start(100, resumed=5)) is None  # the eval at step 10 is void
    assert watch.observe("p1-bce", dev_eval(10, 0.5)) is None
    assert watch.observe("p1-bce", dev_eval(20, 0.5)) is not None
    assert watch.observe("p1-bce", dev_eval(30, 0.5)) is None  # once


def test_the_view_shows_the_verdict_as_the_runs_badge() -> None:
    state = PipelineState()
    state.apply("pipeline", {"v": 1, "t": 1.0, "type": "alert", "level": "warn", "code": "not_learning",
                             "message": "not learning: …", "run": "p1-bce"})
    assert state.snapshot(2.0).run("p1-bce").health.kind == "not-learning"


def test_the_label_history_marks_labels_never_predicted_and_follows_the_evals() -> None:
    def with_labels(step: int, joy: tuple[float, int], grief: tuple[float, int]) -> dict:
        rows = [{"label": "joy", "precision": 0.5, "recall": 0.5, "f1": joy[0], "support": 40, "predicted": joy[1]},
                {"label": "grief", "precision": 0.0, "recall": 0.0, "f1": grief[0], "support": 3, "predicted": grief[1]}]
        return {**dev_eval(step, 0.8), "per_class": rows}

    state = PipelineState()
    state.apply("p1-bce", with_labels(10, (0.2, 30), (0.0, 0)))
    state.apply("p1-bce", with_labels(20, (0.4, 35), (0.0, 0)))
    history = state.snapshot(1.0).run("p1-bce").labels
    assert history.labels == ("joy", "grief") and history.steps == (10, 20)
    assert history.f1 == ((0.2, 0.4), (0.0, 0.0)) and history.support == (40, 3)
    assert history.never_predicted == (False, True)
    state.apply("p1-bce", with_labels(30, (0.5, 35), (0.0, 2)))  # predicted once, wrongly: no longer "never"
    assert state.snapshot(2.0).run("p1-bce").labels.never_predicted == (False, False)


def test_a_not_learning_alert_is_its_own_notification_by_default() -> None:
    from cockpit.outlets.notify_messages import Context, build, classify
    from cockpit.records import decode
    from trainer.contract import DEFAULT_NOTIFY_ON

    alert = decode("pipeline", {"v": 1, "t": 1.0, "type": "alert", "level": "warn", "code": "not_learning",
                                "message": "not learning: dev macro ROC-AUC has stayed near chance", "run": "p1-bce"})
    kind = classify("pipeline", alert, frozenset(DEFAULT_NOTIFY_ON))
    assert kind == "not_learning"
    note = build(kind, "pipeline", alert, Context("p", "host"), Path("/nonexistent"), 0.2)
    assert note.title == "goemo p1-bce is not learning" and "near chance" in note.body and note.level == "warning"
    assert classify("pipeline", alert, frozenset({"stall"})) is None


def test_trackers_get_the_learning_figures_as_scalars() -> None:
    from cockpit.outlets.trackers.events_to_calls import Scalar, calls_for_event

    calls = calls_for_event({**dev_eval(20, 0.73, predicted=5, gap=0.04), "t": 1.8e9})
    got = {c.tag: c.value for c in calls if isinstance(c, Scalar) and "/learning/" in c.tag}
    assert got == {"dev/learning/auc_macro": 0.73, "dev/learning/labels_predicted": 5.0,
                   "dev/learning/prior_gap": 0.04}
