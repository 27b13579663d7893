"""The state model: statuses, ETA, leaderboard, oversampling, stalls, health, tolerance, bounds."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import fake_pipeline as fp
from cockpit.state import PIPELINE_IGNORED, TRAINER_IGNORED, PipelineState, run_total_steps
from cockpit.series import SERIES_CAP, Series
from cockpit.tail import replay
from trainer.contract import (GRAD_BADGE_STEPS, GRAD_VANISHING_BELOW, PIPELINE_EVENTS, SUMMARY_FILE, TRAINER_EVENTS,
                              f1_macro_key)


def load(folder: Path) -> PipelineState:
    state = PipelineState()
    replay(folder, state.apply_batch)
    return state


def ev(type_: str, t: float = fp.T0, **fields) -> dict:
    return {"v": 1, "t": t, "type": type_, **fields}


def step(n: int, t: float, **over) -> dict:
    fields = dict(step=n, epoch=n / 80, loss=0.5, lr=1e-4, grad_norm=1.0, samples_per_s=32.0, tokens_per_s=1.0,
                  step_time_s=0.5, nonfinite_skipped=0)
    fields.update(over)
    return ev("step", t, **fields)


def test_finished_pipeline_statuses_and_summary(finished_pipeline: Path) -> None:
    snap = load(finished_pipeline).snapshot(fp.T0)
    assert {r.run: r.status for r in snap.runs} == {
        "p1-bce": "completed", "p1-asl": "completed", "p1-combined_07": "failed", "p3-asl": "completed",
        "p4-final": "completed"}
    assert (snap.pipeline, snap.preset, snap.status, snap.exit_code) == (fp.PIPELINE_ID, "quick", "completed", 0)
    assert (snap.phase, snap.phase_name) == (4, "final")
    assert snap.run("p1-asl").attempt == 2 and snap.run("p1-asl").restarts == 1
    assert snap.final is not None and snap.final.run == "p4-final" and snap.final.test_f1_primary is not None


def test_live_run_has_eta_from_step_rate_and_total_steps(live_pipeline: Path) -> None:
    run = load(live_pipeline).snapshot(fp.T0).run("p3-asl")
    assert run.status == "running"
    assert run.total_steps == 80  # ceil(1280 / 16) // 1 x 1 epoch
    assert run.step == 30
    # 50 steps left at a bit under 2 steps/s (a step every 0.5 s, evals pause 1 s)
    assert 25.0 <= run.eta_s <= 30.0


def test_status_transitions() -> None:
    state = PipelineState()
    status = lambda: state.snapshot(0).run("p1-x").status  # noqa: E731
    state.apply("pipeline", ev("phase_start", phase=1, name="screen", runs=["p1-x"]))
    assert status() == "queued"
    state.apply("pipeline", ev("run_launch", fp.T0 + 1, run="p1-x", device="cpu", pid=1, attempt=1))
    assert status() == "running"
    state.apply("pipeline", ev("stall", fp.T0 + 2, run="p1-x", attempt=1, silent_s=30.0, dump="p1-x/stall-1.txt"))
    assert status() == "stalled"
    state.apply("pipeline", ev("restart", fp.T0 + 3, run="p1-x", attempt=2, from_step=10, reason="stall"))
    assert status() == "restarting"
    state.apply("pipeline", ev("run_launch", fp.T0 + 4, run="p1-x", device="cpu", pid=2, attempt=2))
    assert status() == "running"
    # The trainer's run_end may land before the supervisor's run_done.
    state.apply("p1-x", ev("run_end", fp.T0 + 5, status="completed", reason="done", wall_s=1.0, best={}))
    assert status() == "completed"
    state.apply("pipeline", ev("run_done", fp.T0 + 6, run="p1-x", status="stopped", attempts=2))
    assert status() == "stopped"


def test_a_requeued_slurm_job_shows_requeued_n_until_it_ends() -> None:
    state = PipelineState()
    status = lambda: state.snapshot(0).run("p1-x").status  # noqa: E731
    state.apply("pipeline", ev("run_launch", fp.T0 + 1, run="p1-x", device="slurm0", pid=None, attempt=1,
                               job_id="17"))
    # Preempted: the trainer checkpoints on SIGTERM and says "stopped"; Slurm queues the job again.
    state.apply("p1-x", ev("run_end", fp.T0 + 2, status="stopped", reason="signal SIGTERM", wall_s=1.0, best={}))
    state.apply("pipeline", ev("requeue", fp.T0 + 3, run="p1-x", attempt=1, restarts=1))
    assert status() == "requeued (1)"
    state.apply("pipeline", ev("requeue", fp.T0 + 4, run="p1-x", attempt=1, restarts=2))
    assert status() == "requeued (2)"
    state.apply("p1-x", ev("run_end", fp.T0 + 5, status="completed", reason="done", wall_s=1.0, best={}))
    assert status() == "completed"


def test_stall_alert_actions() -> None:
    state = PipelineState()
    state.apply("preset", {"type": "preset", "data": {"pipeline": {"max_restarts": 1}}})
    state.apply("pipeline", ev("stall", run="p1-a", attempt=1, silent_s=12.5, dump="p1-a/stall-1.txt",
                               action="restart"))
    (stall,) = state.snapshot(0).active_stalls
    assert (stall.run, stall.silent_s, stall.dump) == ("p1-a", 12.5, "p1-a/stall-1.txt")
    state.apply("pipeline", ev("restart", run="p1-a", attempt=2, from_step=5))
    assert state.snapshot(0).stalls[-1].action == "dump + restart 1 of 1 from step 5"
    assert not state.snapshot(0).active_stalls
    state.apply("pipeline", ev("stall", run="p1-a", attempt=2, silent_s=20.0, dump="p1-a/stall-2.txt",
                               action="fail"))
    assert "restart limit reached" in state.snapshot(0).active_stalls[0].action
    state.apply("pipeline", ev("run_done", run="p1-a", status="failed", attempts=2))
    snap = state.snapshot(0)
    assert [s.action for s in snap.stalls][-1] == "dump + failed"
    assert snap.run("p1-a").stall_dumps == ("p1-a/stall-1.txt", "p1-a/stall-2.txt")


def test_leaderboard_from_summary_with_live_fill_in(finished_pipeline: Path) -> None:
    snap = load(finished_pipeline).snapshot(0)
    board = {row.run: row for row in snap.leaderboard}
    summary = json.loads((finished_pipeline / "summary.json").read_text())
    for entry in summary["leaderboard"]:
        assert board[entry["run"]].source == "summary"
        assert board[entry["run"]].f1_primary == entry["f1_macro@0.2"]
    live = board["p4-final"]  # not in summary's leaderboard: filled from its eval events
    assert live.source == "live" and live.test_f1 == summary["final"]["test"]["f1_macro@0.2"]
    assert live.delta == pytest.approx(live.f1_primary - summary["baseline"]["f1_macro@0.2"])
    assert live.meets_target == (live.f1_primary >= 0.5)
    f1s = [row.f1_primary for row in snap.leaderboard if row.f1_primary is not None]
    assert f1s == sorted(f1s, reverse=True)
    assert board["p1-combined_07"].status == "failed"


def test_leaderboard_without_summary_uses_live_evals_and_bce_baseline(finished_pipeline: Path) -> None:
    (finished_pipeline / "summary.json").unlink()
    snap = load(finished_pipeline).snapshot(0)
    assert {row.source for row in snap.leaderboard} == {"live"}
    bce = next(row for row in snap.leaderboard if row.run == "p1-bce")
    assert bce.delta == 0.0
    assert snap.final is not None and snap.final.run == "p4-final"  # from its test eval


def test_oversampling_table_from_first_data_event(finished_pipeline: Path) -> None:
    snap = load(finished_pipeline).snapshot(0)
    assert len(snap.oversampling) == 28 and snap.oversampling_run == "p1-bce"
    for row in snap.oversampling:
        assert row.factor == pytest.approx(row.after / row.before)
    assert any(row.factor > 1 for row in snap.oversampling)


def test_health_badges(finished_pipeline: Path) -> None:
    snap = load(finished_pipeline).snapshot(0)
    assert snap.run("p1-bce").health.kind == "healthy"
    assert snap.run("p1-combined_07").health.text == "4 non-finite skipped"
    assert snap.run("p3-asl").health.kind == "vanishing"  # the trainer's grad_vanishing alert


def health(state: PipelineState) -> str:
    return state.snapshot(0).run("p1-x").health.kind


def grad_alert(code: str) -> dict:
    return ev("alert", level="warn", code=code, message="from the trainer's rule")


def test_grad_badge_follows_the_trainers_alerts_not_its_own_thresholds() -> None:
    state = PipelineState()
    state.apply_batch("p1-x", [step(1, 0.0, grad_norm=5e4), step(2, 0.5, grad_norm=1e-9)])
    assert health(state) == "healthy"  # odd norms alone: the trainer judges them, and it said nothing
    state.apply("p1-x", grad_alert("grad_exploding"))
    assert health(state) == "exploding"
    state.apply("p1-x", step(2 + GRAD_BADGE_STEPS, 1.0))
    assert health(state) == "exploding"  # held for the alert's cooldown ...
    state.apply("p1-x", step(3 + GRAD_BADGE_STEPS, 1.5))
    assert health(state) == "healthy"  # ... and no longer


def test_vanishing_badge_lasts_until_the_norm_is_back_over_the_contract_floor() -> None:
    state = PipelineState()
    state.apply_batch("p1-x", [step(1, 0.0, grad_norm=GRAD_VANISHING_BELOW / 10), grad_alert("grad_vanishing")])
    state.apply_batch("p1-x", [step(n, n, grad_norm=GRAD_VANISHING_BELOW / 10) for n in range(2, 200)])
    assert health(state) == "vanishing"  # the trainer raises it once per episode
    state.apply("p1-x", step(200, 200.0, grad_norm=GRAD_VANISHING_BELOW))
    assert health(state) == "healthy"


def test_nonfinite_loss_is_skipped_in_series_not_in_step() -> None:
    state = PipelineState()
    state.apply_batch("p1-x", [step(1, 0.0), step(2, 0.5, loss=None, nonfinite_skipped=1)])
    run = state.snapshot(0).run("p1-x")
    assert run.step == 2 and run.loss is None and run.loss_raw.xs == (1,)


def test_resume_truncates_series_past_the_checkpoint() -> None:
    state = PipelineState()
    state.apply_batch("p1-x", [step(n, n * 0.5) for n in range(1, 31)])
    state.apply("p1-x", ev("run_start", run="p1-x", config={}, model="m", n_params=1, device="cpu",
                           world_size=1, pid=3, resumed_from_step=20))
    state.apply_batch("p1-x", [step(n, 100 + n) for n in range(21, 26)])
    xs = state.snapshot(0).run("p1-x").loss_raw.xs
    assert list(xs) == sorted(xs) and xs[-1] == 25 and len(xs) == 25


def test_total_steps_formula() -> None:
    assert run_total_steps({"epochs": 2, "batch_size": 16, "grad_accum": 4, "max_steps": 0}, 1000) == 2 * (63 // 4)
    assert run_total_steps({"train": {"epochs": 1, "batch_size": 16}}, 1280) == 80
    assert run_total_steps({"epochs": 3, "batch_size": 16, "max_steps": 50}, 1000) == 50
    assert run_total_steps({"epochs": 3}, None) is None
    assert run_total_steps({"epochs": 1, "batch_size": 16, "max_steps": None}, 1280, world_size=2) == 40


def test_garbage_and_malformed_events_are_counted_not_raised(tmp_path: Path) -> None:
    folder = tmp_path / "pipe"
    (folder / "p1-x").mkdir(parents=True)
    path = folder / "p1-x" / "events.jsonl"
    good = json.dumps(step(1, 0.0))
    path.write_text("not json\n" + good + "\n[1, 2]\n" + json.dumps(step(2, 0.5))[:25])  # torn last line
    state = PipelineState()
    tail = replay(folder, state.apply_batch)
    assert tail.bad_lines == 2 and state.snapshot(0).run("p1-x").step == 1
    with open(path, "a") as fh:  # the writer finishes the line
        fh.write(json.dumps(step(2, 0.5))[25:] + "\n")
    tail.drain()
    assert state.snapshot(0).run("p1-x").step == 2
    for bad in (ev("step", step="x", epoch=None, loss=0, lr=0, grad_norm=0, samples_per_s=0, tokens_per_s=0,
                   step_time_s=0, nonfinite_skipped=0), ev("step"), {"type": "eval"}, ev("data", per_class=5),
                ev("run_launch", run="p1-x", device="cpu", pid=1, attempt="two")):
        state.apply("p1-x" if bad["type"] != "run_launch" else "pipeline", bad)
    assert state.skipped_events == 5


def test_series_downsampling_is_bounded_and_keeps_the_last_point() -> None:
    series = Series()
    for i in range(100_000):
        series.add(i, float(i))
    view = series.view()
    assert len(view.xs) <= SERIES_CAP + 1
    assert view.xs[0] == 0 and view.xs[-1] == 99_999
    gaps = {b - a for a, b in zip(view.xs, view.xs[1:-1])}
    assert len(gaps) == 1  # evenly strided


def test_snapshots_are_immutable_and_detached() -> None:
    state = PipelineState()
    state.apply_batch("p1-x", [step(n, n * 0.5) for n in range(1, 11)])
    snap = state.snapshot(0)
    run = snap.run("p1-x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.step = 3  # type: ignore[misc]
    assert isinstance(run.loss_raw.xs, tuple) and isinstance(snap.runs, tuple)
    state.apply("p1-x", step(11, 6.0))
    assert run.step == 10 and len(run.loss_raw.xs) == 10
    assert state.snapshot(0).run("p1-x").step == 11


def test_100k_events_rebuild_with_bounded_series(tmp_path: Path) -> None:
    # How fast is bench/cockpit_overhead.py's question; this test asks only whether the result is right.
    for i in range(5):
        fp.write_bulk_run(tmp_path, f"p1-r{i}", 20_000, seed=i)
    snap = load(tmp_path).snapshot(0)
    assert sum(r.step for r in snap.runs) > 95_000
    assert all(len(r.loss_raw.xs) <= SERIES_CAP + 1 for r in snap.runs)
    assert all(r.loss_raw.xs[-1] == r.step for r in snap.runs)


def test_trainer_reported_total_steps_win_over_the_formula() -> None:
    state = PipelineState()
    state.apply("p1-x", ev("run_start", run="p1-x", config={"epochs": 1, "batch_size": 16}, model="m", n_params=1,
                           device="cpu", world_size=1, pid=3, resumed_from_step=None, total_steps=123))
    state.apply("p1-x", ev("data", train_size_before=10, train_size_after=1280, dev_size=1, test_size=1,
                           per_class=[], oversampling={}))
    assert state.snapshot(0).run("p1-x").total_steps == 123


def test_a_job_that_does_not_train_shows_no_step_total() -> None:
    """A reuse export or an ensemble final reports total_steps 0: the formula's 80 would be a bar that never
    moves; the runs table then shows the bare step."""
    from cockpit.widgets.tables import RunsTable

    state = PipelineState()
    state.apply("p4-final", ev("run_start", run="p4-final", config={"epochs": 1, "batch_size": 16}, model="m",
                               n_params=1, device="cpu", world_size=1, pid=3, resumed_from_step=None, total_steps=0))
    state.apply("p4-final", ev("data", train_size_before=10, train_size_after=1280, dev_size=1, test_size=1,
                               per_class=[], oversampling={}))
    run = state.snapshot(0).run("p4-final")
    assert run.total_steps == 0 and run.eta_s is None
    assert RunsTable().format_row((run.run, run.status, (run.step, run.total_steps or 0), run.epoch, None,
                                   None, None, None))[2].plain.strip() == "0"


def test_preset_gives_restart_limit_and_target(finished_pipeline: Path) -> None:
    state = load(finished_pipeline)
    assert state.max_restarts == 2 and state.target_f1 == 0.5
    assert state.snapshot(0).stalls[0].action == "dump + restart 1 of 2 from step 20"


def test_every_contract_event_type_has_a_handler_or_is_ignored_on_purpose() -> None:
    for handlers, ignored, contract in ((PipelineState.PIPELINE_HANDLERS, PIPELINE_IGNORED, PIPELINE_EVENTS),
                                        (PipelineState.TRAINER_HANDLERS, TRAINER_IGNORED, TRAINER_EVENTS)):
        assert set(handlers) | ignored == set(contract)
        assert not set(handlers) & ignored
        assert all(callable(h) for h in handlers.values())


def test_unknown_event_types_are_ignored_not_counted() -> None:
    state = PipelineState()
    state.apply("pipeline", ev("device", host="h"))
    state.apply("p1-x", ev("requeue"))
    assert state.skipped_events == 0 and state.status == "waiting"


def test_primary_threshold_from_the_preset_labels_and_keys_every_value(runs_dir: Path) -> None:
    folder = fp.write_fake_pipeline(runs_dir, primary=0.3)
    snap = load(folder).snapshot(0)
    summary = json.loads((folder / SUMMARY_FILE).read_text())
    assert snap.primary == 0.3
    board = {row.run: row for row in snap.leaderboard}
    for entry in summary["leaderboard"]:
        assert board[entry["run"]].f1_primary == entry[f1_macro_key(0.3)]
    assert board["p3-asl"].f1_primary is not None
    assert board["p4-final"].f1_primary is not None and board["p4-final"].micro_primary is not None
    assert snap.final.test_f1_primary == summary["final"]["test"][f1_macro_key(0.3)]
    assert snap.run("p1-bce").dev_f1.ys and snap.baseline_f1 == summary["baseline"][f1_macro_key(0.3)]


@pytest.mark.parametrize("source", ["summary", "pipeline", "preset"])
def test_each_source_can_name_the_primary_threshold(source: str) -> None:
    state = PipelineState()
    state.apply("p1-x", ev("eval", **fp.eval_event(fp.random.Random(0), 10, 0.1, 0.4, primary=0.3)))
    assert state.snapshot(0).run("p1-x").best_dev is None  # 0.2 is not among its keys
    if source == "summary":
        state.apply("summary", {"type": "summary", "data": {"primary_threshold": 0.3}})
    elif source == "pipeline":
        state.apply("pipeline", ev("pipeline_start", pipeline="p", preset="quick", primary_threshold=0.3))
    else:
        state.apply("preset", {"type": "preset", "data": {"pipeline": {"primary_threshold": 0.3}}})
    run = state.snapshot(0).run("p1-x")  # evals read before the threshold was known are read again
    assert state.primary == 0.3 and run.best_dev.f1_primary is not None and run.dev_f1.ys


def test_summary_outranks_pipeline_start_and_preset_and_nonsense_is_ignored() -> None:
    state = PipelineState(primary=0.25)
    assert state.primary == 0.25
    state.apply("preset", {"type": "preset", "data": {"pipeline": {"primary_threshold": 0.35}}})
    state.apply("pipeline", ev("pipeline_start", pipeline="p", preset="quick", primary_threshold=0.4))
    assert state.primary == 0.4
    state.apply("summary", {"type": "summary", "data": {"primary_threshold": 0.3}})
    state.apply("preset", {"type": "preset", "data": {"pipeline": {"primary_threshold": 0.45}}})
    assert state.primary == 0.3
    for bad in ("0.5", 7, True, None, float("nan")):
        state.apply("summary", {"type": "summary", "data": {"primary_threshold": bad}})
        assert state.primary == 0.3


@pytest.mark.parametrize("summary", [
    {"leaderboard": 5}, {"leaderboard": "p1-bce"}, {"final": "x"}, {"final": {"test": 3}}, {"final": {"run": 3}},
    {"leaderboard": [1, "two", None, [], {"no": "run"}, {"run": 7}]},
    {"leaderboard": [{"run": "p1-bce", "phase": "one", "config": 3, "f1_macro@0.2": "0.5", "status": 1,
                      "meets_target": "yes", "delta_vs_baseline": "x", "tuned_f1_macro": {}}],
     "target_f1": "0.5", "reference_f1": [], "baseline": "p1-bce", "pipeline": 3, "status": 2},
    {"primary_threshold": "0.2", "final": {"run": None, "test": {"f1_macro@0.2": "0.5"}}},
])
def test_wrong_typed_summary_shows_what_it_can(finished_pipeline: Path, summary: dict) -> None:
    (finished_pipeline / SUMMARY_FILE).write_text(json.dumps(summary))
    snap = load(finished_pipeline).snapshot(0)
    assert {r.run for r in snap.runs} == {"p1-bce", "p1-asl", "p1-combined_07", "p3-asl", "p4-final"}
    runs = [row.run for row in snap.leaderboard]
    assert len(runs) == len(set(runs)) and {"p1-bce", "p4-final"} <= set(runs)
    assert all(isinstance(row.run, str) and (row.f1_primary is None or isinstance(row.f1_primary, float))
               for row in snap.leaderboard)
    assert snap.final is not None  # from p4-final's test eval when the summary's is unusable


def test_a_run_listed_twice_in_the_summary_shows_once(finished_pipeline: Path) -> None:
    summary = json.loads((finished_pipeline / SUMMARY_FILE).read_text())
    first = dict(summary["leaderboard"][0])
    summary["leaderboard"] += [dict(first, **{"f1_macro@0.2": 0.01}), first]
    (finished_pipeline / SUMMARY_FILE).write_text(json.dumps(summary))
    board = load(finished_pipeline).snapshot(0).leaderboard
    rows = [row for row in board if row.run == first["run"]]
    assert len(rows) == 1 and rows[0].f1_primary == first["f1_macro@0.2"]
    assert len(board) == len({row.run for row in board})


def test_duplicate_labels_in_per_class_lists_keep_the_first() -> None:
    state = PipelineState()
    per_class = [{"label": "joy", "before": 5, "after": 20, "weight": 1.0},
                 {"label": "joy", "before": 7, "after": 7, "weight": 1.0},
                 "junk", {"label": "anger", "before": "many", "after": 3},
                 {"label": "love", "before": 3, "after": 12, "weight": "heavy"}]
    state.apply("p1-x", ev("data", train_size_before=10, train_size_after=40, dev_size=1, test_size=1,
                           per_class=per_class, oversampling={}))
    snap = state.snapshot(0)
    assert [(r.label, r.before, r.after, r.weight) for r in snap.oversampling] == [("joy", 5, 20, 1.0),
                                                                                 ("love", 3, 12, None)]
    scores = [{"label": "joy", "precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 3},
              {"label": "joy", "precision": 0.1, "recall": 0.1, "f1": 0.1, "support": "3"}]
    state.apply("p1-x", ev("eval", step=1, epoch=0.1, split="dev", loss=0.3, f1_macro={"0.2": 0.5},
                           f1_micro={"0.2": "0.5"}, per_class=scores, tuned=None))
    run = state.snapshot(0).run("p1-x")
    assert [(c.label, c.f1, c.support) for c in run.per_class] == [("joy", 0.5, 3)]
    assert run.best_dev.f1_primary == 0.5 and run.best_dev.micro_primary is None


def test_sources_taxonomy_and_observed_counts_from_the_first_data_event(runs_dir: Path) -> None:
    snap = load(fp.write_fake_pipeline(runs_dir, sources=fp.three_sources())).snapshot(0)
    assert snap.taxonomy == "goemotions"
    assert [s.name for s in snap.sources] == ["goemotions", "isear", "semeval2018-ec"]
    goemotions, isear, semeval = snap.sources
    assert (isear.kind, isear.path, isear.train_before, isear.train_after, isear.dev, isear.test) == (
        "isear", "data/isear.csv", 200, 220, 50, 50)
    assert isear.observed_text == "7/28" and goemotions.observed_text == "28/28" and "remorse" in isear.observed
    assert dict(isear.dropped) == {"placeholder": 52, "duplicate": 3, "empty": 1, "unmapped_only": 0}
    # Every extra source is scored on its own dev split; the latest eval by time is p4-final's.
    assert goemotions.dev_f1 is None and isear.dev_f1 is not None and semeval.dev_f1 > isear.dev_f1
    assert isear.dev_f1_run == semeval.dev_f1_run == "p4-final"
    observed = {row.label: row.observed for row in snap.oversampling}
    assert observed == {label: fp.observed_rows(label, fp.three_sources()) for label in fp.LABELS}
    assert observed["anger"] == 1280 and observed["admiration"] == 940


def test_older_data_events_list_no_sources(finished_pipeline: Path) -> None:
    snap = load(finished_pipeline).snapshot(0)
    assert snap.sources == () and snap.taxonomy == ""
    assert all(row.observed is None for row in snap.oversampling)


def test_source_evals_change_no_curve_best_score_or_leaderboard(runs_dir: Path) -> None:
    plain = load(fp.write_fake_pipeline(runs_dir / "plain")).snapshot(0)
    multi = load(fp.write_fake_pipeline(runs_dir / "multi", sources=fp.three_sources())).snapshot(0)
    # The fake writes the same run evals either way, so every run-level number must match.
    assert multi.leaderboard == plain.leaderboard and multi.final == plain.final
    for run in plain.runs:
        other = multi.run(run.run)
        assert (other.dev_f1, other.best_dev, other.last_eval, other.per_class, other.test) == (
            run.dev_f1, run.best_dev, run.last_eval, run.per_class, run.test)


def test_a_higher_source_score_is_not_the_runs_best() -> None:
    state = PipelineState()
    isear = fp.three_sources()[1]
    state.apply("p1-x", ev("data", train_size_before=10, train_size_after=10, dev_size=1, test_size=1,
                           per_class=[], oversampling={}, sources=[isear]))
    state.apply("p1-x", ev("eval", fp.T0 + 1, **fp.eval_event(fp.random.Random(0), 10, 0.1, 0.3)))
    before = state.snapshot(0)
    state.apply("p1-x", ev("eval", fp.T0 + 1, **fp.source_eval_event(10, 0.1, 0.99, isear)))
    after = state.snapshot(0)
    assert after.run("p1-x").best_dev == before.run("p1-x").best_dev and after.leaderboard == before.leaderboard
    assert after.run("p1-x").dev_f1 == before.run("p1-x").dev_f1 and after.run("p1-x").last_eval.split == "dev"
    assert after.run("p1-x").per_class == before.run("p1-x").per_class
    assert after.sources[0].dev_f1 == 0.99 and after.sources[0].dev_f1_run == "p1-x"
    assert after.sources[0].labels is None and after.sources[0].observed_text == "7"  # no per_class to count
    # An older eval of another run (earlier t) leaves the newest score; a newer one replaces it.
    state.apply("p1-y", ev("eval", fp.T0, **fp.source_eval_event(5, 0.05, 0.11, isear)))
    assert state.snapshot(0).sources[0].dev_f1 == 0.99
    state.apply("p1-y", ev("eval", fp.T0 + 2, **fp.source_eval_event(20, 0.2, 0.42, isear)))
    assert (state.snapshot(0).sources[0].dev_f1, state.snapshot(0).sources[0].dev_f1_run) == (0.42, "p1-y")
    assert state.snapshot(0).run("p1-y").best_dev is None and not state.snapshot(0).run("p1-y").dev_f1.ys


def test_source_scores_follow_the_primary_threshold(runs_dir: Path) -> None:
    snap = load(fp.write_fake_pipeline(runs_dir, primary=0.3, sources=fp.three_sources())).snapshot(0)
    assert snap.primary == 0.3 and all(s.dev_f1 is not None for s in snap.sources[1:])


def test_odd_sources_show_what_they_can() -> None:
    state = PipelineState()
    sources = ["junk", {"kind": "isear"}, {"name": "a", "rows": [1], "observed_labels": "joy",
                                           "dropped": {"duplicate": "2", "empty": 1}},
               {"name": "a", "kind": "twice"}]
    state.apply("p1-x", ev("data", train_size_before=10, train_size_after=10, dev_size=1, test_size=1,
                           per_class=[], oversampling={}, sources=sources, taxonomy=3))
    snap = state.snapshot(0)
    assert state.skipped_events == 0 and snap.taxonomy == ""
    (row,) = snap.sources
    assert (row.name, row.kind, row.train_before, row.observed, row.dropped) == ("a", "", None, (), (("empty", 1),))


def dev_eval(state: PipelineState, run: str, t: float, step_n: int, f1: float, tuned_cv: float | None) -> None:
    """A run's periodic dev eval with macro-F1 at 0.2 and, when given, the cross-fitted tuned score."""
    extra = {} if tuned_cv is None else {"tuned_cv": tuned_cv}
    state.apply(run, ev("eval", t, step=step_n, epoch=1.0, split="dev", loss=0.2, f1_macro={"0.2": f1},
                            f1_micro={"0.2": f1}, per_class=[], tuned={"f1_macro": f1 + 0.05}, **extra))


def test_tuned_cv_reaches_summary_and_live_rows(runs_dir: Path) -> None:
    folder = fp.write_fake_pipeline(runs_dir, dev_tuned=True)
    snap = load(folder).snapshot(0)
    summary = json.loads((folder / SUMMARY_FILE).read_text())
    board = {row.run: row for row in snap.leaderboard}
    for entry in summary["leaderboard"]:
        assert board[entry["run"]].tuned_cv == entry["tuned_cv_f1_macro"]
    assert board["p3-asl"].tuned_cv is not None and board["p3-asl"].tuned_cv < board["p3-asl"].tuned
    live = board["p4-final"]  # not in the summary: its best dev eval's tuned_cv
    assert live.source == "live" and live.tuned_cv == snap.run("p4-final").best_dev.tuned_cv is not None
    # Older folders carry no tuned_cv anywhere: the column stays empty, nothing else changes.
    old = load(fp.write_fake_pipeline(runs_dir / "old")).snapshot(0)
    assert {row.tuned_cv for row in old.leaderboard} == {None} and old.select_by == "f1@primary"


def test_select_by_tuned_cv_ranks_live_rows_among_the_summarys_and_picks_their_best_eval() -> None:
    state = PipelineState()
    dev_eval(state, "p3-x", fp.T0, 100, 0.50, 0.49)
    dev_eval(state, "p3-x", fp.T0 + 1, 200, 0.46, 0.515)  # lower at 0.2, higher once tuned cross-fitted
    dev_eval(state, "p3-y", fp.T0 + 2, 100, 0.30, None)  # an older trainer's eval: no tuned_cv
    assert state.snapshot(0).run("p3-x").best_dev.step == 100  # by F1@0.2 until something says otherwise
    assert [row.run for row in state.snapshot(0).leaderboard] == ["p3-x", "p3-y"]
    state.apply("preset", {"type": "preset", "data": {"pipeline": {"select_by": "tuned_cv"}}})
    snap = state.snapshot(0)
    assert snap.select_by == "tuned_cv" and snap.ranking_label == "tuned cv"
    assert snap.run("p3-x").best_dev.step == 200  # the eval the trainer kept as its best checkpoint
    rows = [{"run": "p2-a", "f1_macro@0.2": 0.40, "tuned_cv_f1_macro": 0.52},
            {"run": "p2-b", "f1_macro@0.2": 0.48, "tuned_cv_f1_macro": 0.50},
            {"run": "p2-c", "f1_macro@0.2": 0.47, "tuned_cv_f1_macro": None}]
    state.apply("summary", {"type": "summary", "data": {"select_by": "tuned_cv",
                                                        "selection_key": "tuned_cv_f1_macro", "leaderboard": rows}})
    board = state.snapshot(0).leaderboard
    # The summary's order stays; p3-x (tuned cv 0.515) goes between 0.52 and 0.50, p3-y (none) after the
    # last row with a tuned cv and, on the same footing as p2-c, by macro-F1.
    assert [(row.run, row.source) for row in board] == [
        ("p2-a", "summary"), ("p3-x", "live"), ("p2-b", "summary"), ("p2-c", "summary"), ("p3-y", "live")]
    assert [row.tuned_cv for row in board] == [0.52, 0.515, 0.50, None, None]
    # A summary without select_by was ranked by F1@0.2 (older supervisors): it outranks the preset.
    state.apply("summary", {"type": "summary", "data": {"leaderboard": rows[1:], "select_by": "best"}})
    snap = state.snapshot(0)
    assert snap.select_by == "f1@primary" and snap.run("p3-x").best_dev.step == 100
    assert [row.run for row in snap.leaderboard] == ["p3-x", "p2-b", "p2-c", "p3-y"]


def test_an_ensemble_final_names_its_members(runs_dir: Path) -> None:
    folder = fp.write_fake_pipeline(runs_dir, dev_tuned=True, select_by="tuned_cv", final_mode="ensemble")
    snap = load(folder).snapshot(0)
    assert snap.select_by == "tuned_cv"
    assert (snap.final.mode, snap.final.members, snap.final.config) == ("ensemble", ("p3-asl", "p1-bce"), "asl+bce")
    assert snap.final.model_text == "ensemble of p3-asl + p1-bce"
    plain = load(fp.write_fake_pipeline(runs_dir / "plain")).snapshot(0).final
    assert (plain.mode, plain.members, plain.model_text) == ("retrain", (), "asl")
