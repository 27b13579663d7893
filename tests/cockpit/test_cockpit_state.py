"""The state model: statuses, ETA, leaderboard, oversampling, stalls, health, tolerance, bounds."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

import fake_pipeline as fp
from cockpit.state import PipelineState, total_steps
from cockpit.views import SERIES_CAP, Series
from cockpit.tail import replay


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
    assert snap.final is not None and snap.final.run == "p4-final" and snap.final.test_f1_02 is not None


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
        assert board[entry["run"]].f1_02 == entry["f1_macro@0.2"]
    live = board["p4-final"]  # not in summary's leaderboard: filled from its eval events
    assert live.source == "live" and live.test_f1 == summary["final"]["test"]["f1_macro@0.2"]
    assert live.delta == pytest.approx(live.f1_02 - summary["baseline"]["f1_macro@0.2"])
    assert live.meets_target == (live.f1_02 >= 0.5)
    f1s = [row.f1_02 for row in snap.leaderboard if row.f1_02 is not None]
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
    assert snap.run("p3-asl").health.kind == "vanishing"
    state = PipelineState()
    state.apply("p1-x", step(1, 0.0, grad_norm=5e4))
    assert state.snapshot(0).run("p1-x").health.kind == "exploding"


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
    assert total_steps({"epochs": 2, "batch_size": 16, "grad_accum": 4, "max_steps": 0}, 1000) == 2 * (63 // 4)
    assert total_steps({"train": {"epochs": 1, "batch_size": 16}}, 1280) == 80
    assert total_steps({"epochs": 3, "batch_size": 16, "max_steps": 50}, 1000) == 50
    assert total_steps({"epochs": 3}, None) is None
    assert total_steps({"epochs": 1, "batch_size": 16, "max_steps": None}, 1280, world_size=2) == 40


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


def test_100k_events_rebuild_quickly(tmp_path: Path) -> None:
    for i in range(5):
        fp.write_bulk_run(tmp_path, f"p1-r{i}", 20_000, seed=i)
    start = time.perf_counter()
    state = load(tmp_path)
    snap = state.snapshot(0)
    elapsed = time.perf_counter() - start
    assert sum(r.step for r in snap.runs) > 95_000
    assert all(len(r.loss_raw.xs) <= SERIES_CAP + 1 for r in snap.runs)
    assert elapsed < 2.0, f"rebuilding 100k events took {elapsed:.2f}s"


def test_trainer_reported_total_steps_win_over_the_formula() -> None:
    state = PipelineState()
    state.apply("p1-x", ev("run_start", run="p1-x", config={"epochs": 1, "batch_size": 16}, model="m", n_params=1,
                           device="cpu", world_size=1, pid=3, resumed_from_step=None, total_steps=123))
    state.apply("p1-x", ev("data", train_size_before=10, train_size_after=1280, dev_size=1, test_size=1,
                           per_class=[], oversampling={}))
    assert state.snapshot(0).run("p1-x").total_steps == 123


def test_preset_gives_restart_limit_and_target(finished_pipeline: Path) -> None:
    state = load(finished_pipeline)
    assert state.max_restarts == 2 and state.target_f1 == 0.5
    assert state.snapshot(0).stalls[0].action == "dump + restart 1 of 2 from step 20"
