"""Trackers (report_to): the pure translation, report_to resolution, the live fan-out's behaviour with a tracker
that raises or hangs, and each tracker's store read back with the tracker's own reader, after a replay and after
live forwarding. All offline; a tracker whose library is missing is skipped."""

from __future__ import annotations

import heapq
import json
import shutil
import struct
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

import fake_pipeline as fp
from cockpit.export import main_export
from cockpit.outlets.trackers import REPLAY_TAG, TrackerFanout, TrackerError, replay, resolve_report_to
from cockpit.outlets.trackers import registry

replay_module = sys.modules["cockpit.outlets.trackers.replay"]  # the module: the package's `replay` is the function
from cockpit.outlets.trackers.base import TrackerRun
from cockpit.outlets.trackers.events_to_calls import (Params, Resume, RunTranslator, Scalar, Summary, Table, Text,
                                              calls_for_event, flatten_params)
from trainer.contract import PIPELINE_ORIGIN, PipelinePaths
from trainer.events import read_events

PID = fp.PIPELINE_ID
LIVE_RUNS = ("p1-asl", "p1-combined_07", "p4-final")  # a restart, non-finite alerts and a failure, the test eval
ALL_RUNS = ("p1-bce", "p1-asl", "p1-combined_07", "p3-asl", "p4-final")
REPLAYED_AT = "2026-11-27T09:00:00+00:00"  # what replay_time says in these tests


@pytest.fixture
def replay_clock(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The times the next replays tag their runs with, in turn (REPLAYED_AT when the list runs out)."""
    times: list[str] = []
    monkeypatch.setattr(replay_module, "replay_time", lambda: times.pop(0) if times else REPLAYED_AT)
    return times


@pytest.fixture
def pipeline(runs_dir: Path) -> Path:
    """The fake pipeline with three sources, each attempt's events in goemo-train's order: its data event
    comes before its run_start (the fake writes them the other way round)."""
    folder = fp.write_fake_pipeline(runs_dir, sources=fp.three_sources())
    for events_file in PipelinePaths(folder).run_event_files():
        lines = events_file.read_text().splitlines(keepends=True)
        for i in range(len(lines) - 1):
            if '"type":"run_start"' in lines[i] and '"type":"data"' in lines[i + 1]:
                lines[i], lines[i + 1] = lines[i + 1], lines[i]
        events_file.write_text("".join(lines))
    return folder


def events_of(pipeline: Path, run: str) -> list[dict[str, Any]]:
    return read_events(PipelinePaths(pipeline).run(run).events)


def expected(pipeline: Path, run: str) -> dict[str, Any]:
    """What a tracker must show for a run, straight from its events (a restarted step: the later attempt)."""
    events = events_of(pipeline, run)
    dev = [e for e in events if e["type"] == "eval" and e["split"] == "dev" and not e.get("source")]
    tests = [e for e in events if e["type"] == "eval" and e.get("final") and e["split"] == "test"]
    return {
        "loss": {e["step"]: e["loss"] for e in events if e["type"] == "step" and e["loss"] is not None},
        "dev": {e["step"]: e["f1_macro"]["0.2"] for e in dev},
        "isear": {e["step"]: e["f1_macro"]["0.2"] for e in events if e.get("source") == "isear"},
        "alerts": [f"[{e['level']}] {e['message']}" for e in events if e["type"] == "alert"],
        "last_alert": {f"alerts/{e['code']}": f"[{e['level']}] {e['message']}" for e in events if e["type"] == "alert"},
        "test": tests[0] if tests else None,
        "config": next(e["config"] for e in events if e["type"] == "run_start"),
    }


def set_report_to(pipeline: Path, report_to: dict[str, Any]) -> None:
    """Write ``report_to`` (by run; "none" for the others) into every run_start config of the run folders."""
    for events_file in PipelinePaths(pipeline).run_event_files():
        lines = []
        for line in events_file.read_text().splitlines(keepends=True):
            event = json.loads(line)
            if event["type"] == "run_start":
                event["config"]["report_to"] = report_to.get(events_file.parent.name, "none")
                line = json.dumps(event, separators=(",", ":")) + "\n"
            lines.append(line)
        events_file.write_text("".join(lines))


def forward_live(pipeline: Path, report_to: dict[str, Any], **fanout_options: Any) -> TrackerFanout:
    """Feed a fanout every event of the pipeline as the supervisor would (runs interleaved by time, the pipeline's
    own events too), with ``report_to`` set in each run's run_start config; returns the open fanout."""
    set_report_to(pipeline, report_to)
    fanout = TrackerFanout(pipeline, PID, **fanout_options)
    streams = [[(e["t"], PIPELINE_ORIGIN, e) for e in read_events(PipelinePaths(pipeline).events)]]
    for events_file in PipelinePaths(pipeline).run_event_files():
        run = events_file.parent.name
        streams.append([(e["t"], run, e) for e in read_events(events_file)])
    for _, source, event in heapq.merge(*streams, key=lambda item: item[0]):
        fanout.on_event(source, event)
    return fanout


def close_cleanly(fanout: TrackerFanout, timeout_s: float = 60.0) -> None:
    fanout.close(timeout_s=timeout_s)
    assert fanout.drain_alerts() == []


# -- the translation -----------------------------------------------------------------------------
def translate(pipeline: Path, run: str) -> list[Any]:
    translator = RunTranslator()
    return [call for event in events_of(pipeline, run) for call in translator.translate(event)]


def scalars(calls: list[Any], tag: str) -> dict[int, float]:
    return {c.step: c.value for c in calls if isinstance(c, Scalar) and c.tag == tag}


def test_a_run_becomes_params_train_and_dev_scalars_and_per_source_scores(pipeline: Path) -> None:
    want = expected(pipeline, fp.BASELINE_RUN)
    calls = translate(pipeline, fp.BASELINE_RUN)
    params = [c for c in calls if isinstance(c, Params)]
    assert [p.group for p in params] == ["data", "config"]  # the data event comes before run_start
    assert params[0].values["data.train_size_after"] == 1280
    assert json.loads(params[0].values["data.sources"]) == ["goemotions", "isear", "semeval2018-ec"]
    config = params[1].values
    assert (config["loss"], config["lr"], config["batch_size"]) == ("bce", 5e-4, 16)
    assert (config["n_params"], config["device"], config["world_size"]) == (1_234_567, "cpu", 1)
    assert scalars(calls, "train/loss") == want["loss"] and sorted(want["loss"]) == list(range(1, 81))
    assert scalars(calls, "dev/f1_macro@0.2") == want["dev"] and sorted(want["dev"]) == [20, 40, 60, 80]
    assert set(scalars(calls, "dev/f1_micro@0.5")) == {20, 40, 60, 80}
    assert set(scalars(calls, "train/lr")) == set(scalars(calls, "train/grad_norm")) == set(range(1, 81))
    assert scalars(calls, "source/isear/f1_macro@0.2") == want["isear"] != {}
    assert not scalars(calls, "dev/tuned_f1_macro")  # these dev evals carry no tuned thresholds
    summary = [c for c in calls if isinstance(c, Summary)]
    best = max(want["dev"].values())
    assert summary == [Summary({"status": "completed", "wall_s": pytest.approx(summary[0].values["wall_s"]),
                                "best/dev_f1_macro@0.2": best, "best/step": max(want["dev"], key=want["dev"].get)})]


def test_final_test_numbers_alerts_restarts_and_supervisor_notes(pipeline: Path) -> None:
    final = translate(pipeline, fp.FINAL_RUN)
    test = expected(pipeline, fp.FINAL_RUN)["test"]
    step = test["step"]
    assert scalars(final, "test/f1_macro@0.2") == {step: test["f1_macro"]["0.2"]}
    assert scalars(final, "test/f1_macro@0.5") == {step: test["f1_macro"]["0.5"]}
    assert scalars(final, "test/tuned_f1_macro") == {step: test["tuned"]["f1_macro"]}
    joy = next(r["f1"] for r in test["per_class"] if r["label"] == "joy")
    assert scalars(final, "test/f1/joy") == {step: joy}
    table = next(c for c in final if isinstance(c, Table) and c.tag == "test/per_class")
    assert table.columns[:4] == ("label", "precision", "recall", "f1") and len(table.rows) == 28

    failed = translate(pipeline, "p1-combined_07")
    assert set(scalars(failed, "train/loss")) == set(range(1, 31))  # steps 31-34 had a non-finite (null) loss
    notes = [c for c in failed if isinstance(c, Text)]
    assert [(n.tag, n.text, n.level) for n in notes[:4]] == [
        ("alerts/nonfinite", f"[warn] non-finite loss at step {s}", "warn") for s in (31, 32, 33, 34)]
    assert [n.step for n in notes[:4]] == [30, 31, 32, 33]  # an alert sits at the last step before it
    assert (notes[-1].tag, notes[-1].level) == ("events/run_end", "error")

    restarted = translate(pipeline, "p1-asl")
    assert [c.step for c in restarted if isinstance(c, Resume)] == [20]
    assert sum(isinstance(c, Params) and c.group == "config" for c in restarted) == 2

    stall = next(e for e in read_events(PipelinePaths(pipeline).events) if e["type"] == "stall")
    (note,) = calls_for_event(stall, 25, from_pipeline=True)
    assert (note.tag, note.step, note.level) == ("events/stall", 25, "warn") and "45.0 s" in note.text
    ours = {"v": 1, "t": fp.T0, "type": "alert", "level": "warn", "code": "tracker", "message": "mlflow failed",
            "run": "p1-asl"}
    assert calls_for_event(ours, 3, from_pipeline=True) == []  # our own failures are not echoed to trackers


def test_flatten_params_makes_scalars_of_nested_configs() -> None:
    flat = flatten_params({"loss_params": {"gamma_neg": 4, "clip": 0.05}, "sources": [{"name": "isear"}],
                           "label_masks": None, "oversampling": True, "empty": {}})
    assert flat == {"loss_params.gamma_neg": 4, "loss_params.clip": 0.05, "sources": '[{"name": "isear"}]',
                    "label_masks": "null", "oversampling": True, "empty": "{}"}


# -- report_to -----------------------------------------------------------------------------------
def test_resolve_report_to_follows_hugging_face(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "is_installed", lambda name: name in ("tensorboard", "trackio"))
    assert resolve_report_to("none") == []
    assert resolve_report_to("all") == ["tensorboard", "trackio"]
    assert resolve_report_to(["trackio", "tensorboard", "trackio"]) == ["trackio", "tensorboard"]
    with pytest.raises(ValueError) as info:
        resolve_report_to(["tensorboard", "mlflow"])
    assert str(info.value) == "report_to: 'mlflow' is not installed (pip install 'goemo-cockpit[mlflow]')"
    with pytest.raises(ValueError, match=r"^report_to: unknown tracker 'comet' \(expected 'all', 'none'"):
        resolve_report_to(["comet"])


def test_replay_refuses_bad_input_in_one_line(pipeline: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"not a pipeline folder \(expected pipeline.jsonl in it\)$"):
        replay(tmp_path, "tensorboard")
    monkeypatch.setattr(registry, "is_installed", lambda name: False)
    with pytest.raises(ValueError,
                       match=r"^report_to: 'wandb' is not installed \(pip install 'goemo-cockpit\[wandb\]'\)$"):
        replay(pipeline, "wandb")
    with pytest.raises(ValueError, match="expected one tracker name"):
        replay(pipeline, "all")


# -- the live fan-out with fake trackers ---------------------------------------------------------
class RecordingRun(TrackerRun):
    """A tracker that keeps what it is given: ``log[run]`` lists ("open", continue) / calls / ("finish", status)."""

    tracker = "tensorboard"
    log: dict[str, list[Any]] = {}

    def open(self, *, continue_existing: bool, wall_time: float | None) -> None:
        self.log.setdefault(self.run, []).append(("open", continue_existing))

    def apply(self, call: Any) -> None:
        self.log[self.run].append(call)

    def finish(self, status: str, wall_time: float | None) -> None:
        self.log[self.run].append(("finish", status))


@pytest.fixture
def fake_trackers(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """RecordingRun as the 'tensorboard' tracker, the one installed ("all" means it alone)."""
    log: dict[str, list[Any]] = {}
    monkeypatch.setattr(RecordingRun, "log", log)
    monkeypatch.setattr(registry, "is_installed", lambda name: name == "tensorboard")
    monkeypatch.setitem(registry.ADAPTERS, "tensorboard", RecordingRun)
    return log


def timed_on_event(fanout: TrackerFanout, pipeline: Path, report_to: dict[str, Any],
                   runs: tuple[str, ...]) -> list[float]:
    """Feed the runs' events one by one; returns how long each on_event took, in seconds."""
    durations = []
    for run in runs:
        for event in events_of(pipeline, run):
            if event["type"] == "run_start":
                event = {**event, "config": {**event["config"], "report_to": report_to[run]}}
            start = time.perf_counter()
            fanout.on_event(run, event)
            durations.append(time.perf_counter() - start)
    return durations


def assert_fast(durations: list[float]) -> None:
    """on_event only queues: under 5 ms, for 99 % of the calls; the rare rest is the OS scheduler of a busy
    machine (even a no-op call sees it), far from the seconds a call blocked on a hung tracker would take."""
    durations = sorted(durations)
    assert durations[int(len(durations) * 0.99)] < 0.005 and durations[-1] < 0.1


def test_live_forwarding_matches_replay_buffers_data_and_continues_restarts(
        pipeline: Path, fake_trackers: dict[str, list[Any]]) -> None:
    fanout = forward_live(pipeline, {"p1-asl": ["tensorboard"], "p1-combined_07": "all", "p4-final": ["tensorboard"]})
    close_cleanly(fanout, timeout_s=10)
    live = dict(fake_trackers)
    fake_trackers.clear()
    assert replay(pipeline, "tensorboard").runs == 5
    assert sorted(live) == sorted(LIVE_RUNS)  # p1-bce and p3-asl said "none"
    for run in LIVE_RUNS:
        opened, *calls, finished = live[run]
        assert opened == ("open", True) and fake_trackers[run][0] == ("open", False)  # replay writes new runs
        assert calls == fake_trackers[run][1:-1]  # live and replay hand the tracker the same calls
        assert finished == ("finish", "failed" if run == "p1-combined_07" else "completed")
    asl = live["p1-asl"]
    assert isinstance(asl[1], Params) and asl[1].group == "data"  # buffered before run_start, forwarded first
    assert sum(isinstance(c, tuple) and c[0] == "open" for c in asl) == 1  # the restart continued the same run
    notes = [c.tag for c in asl if isinstance(c, Text)]
    assert notes == ["events/stall", "events/restart", "events/resume"]  # the supervisor's notes, merged by time


def test_a_run_restarted_after_run_end_reopens_the_same_tracker_run(fake_trackers: dict[str, list[Any]],
                                                                    tmp_path: Path) -> None:
    from cockpit.outlets.trackers.session import TrackerSession

    start = {"v": 1, "type": "run_start", "t": 1.0, "run": "p1-bce", "config": {"lr": 1e-3}, "model": "m",
             "n_params": 1, "device": "cpu", "world_size": 1, "pid": 1, "resumed_from_step": None}
    step = {"v": 1, "type": "step", "epoch": 0.5, "lr": None, "grad_norm": None, "samples_per_s": None,
            "tokens_per_s": None, "step_time_s": None, "nonfinite_skipped": 0}
    end = {"v": 1, "type": "run_end", "wall_s": None, "best": None}
    tracker_run = RecordingRun(pipeline_dir=tmp_path, pipeline_id=PID, run="p1-bce")
    session = TrackerSession(tracker_run, continue_existing=False)
    for event in (start, {**step, "t": 2.0, "step": 1, "loss": 0.5},
                  {**end, "t": 3.0, "status": "failed", "reason": "out of memory"},
                  {**start, "t": 4.0, "resumed_from_step": 1}, {**step, "t": 5.0, "step": 2, "loss": 0.4},
                  {**end, "t": 6.0, "status": "completed", "reason": "done"}):
        session.feed(event)
    lifecycle = [c for c in fake_trackers["p1-bce"] if isinstance(c, tuple)]
    assert lifecycle == [("open", False), ("finish", "failed"), ("open", True), ("finish", "completed")]
    assert [(c.step, c.value) for c in fake_trackers["p1-bce"]
            if isinstance(c, Scalar) and c.tag == "train/loss"] == [(1, 0.5), (2, 0.4)]


def test_a_tracker_that_raises_is_dropped_with_one_alert(pipeline: Path, fake_trackers: dict[str, list[Any]],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    class FailingRun(RecordingRun):
        tracker = "mlflow"

        def apply(self, call: Any) -> None:
            if isinstance(call, Scalar):
                raise ConnectionError("tracking server said 503\nretry later")
            super().apply(call)

    monkeypatch.setitem(registry.ADAPTERS, "mlflow", FailingRun)
    monkeypatch.setattr(registry, "is_installed", lambda name: name in ("tensorboard", "mlflow"))
    fanout = TrackerFanout(pipeline, PID)
    durations = timed_on_event(fanout, pipeline, {"p1-bce": ["mlflow", "tensorboard"]}, (fp.BASELINE_RUN,))
    fanout.close(timeout_s=10)
    alerts = fanout.drain_alerts()
    assert alerts == [{"level": "warn", "code": "tracker", "run": "p1-bce",
                       "message": "mlflow failed for p1-bce (tracking server said 503 retry later); "
                                  "no longer forwarding it there"}]
    assert_fast(durations)
    ok = [c for c in fake_trackers["p1-bce"] if isinstance(c, Scalar) and c.tag == "train/loss"]
    assert len(ok) == 80  # the other tracker of the run got everything
    assert fanout.drain_alerts() == []


def test_a_hung_tracker_is_abandoned_and_close_keeps_its_timeout(pipeline: Path, fake_trackers: dict[str, list[Any]],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def hang(self: RecordingRun, call: Any) -> None:
        if isinstance(call, Scalar) and call.step == 3:
            release.wait(60)
        self.log[self.run].append(call)

    monkeypatch.setattr(RecordingRun, "apply", hang)
    try:
        fanout = TrackerFanout(pipeline, PID, call_timeout_s=0.29876)  # shown rounded: 0.3 s
        durations = timed_on_event(fanout, pipeline, {"p1-bce": ["tensorboard"]}, (fp.BASELINE_RUN,))
        deadline = time.monotonic() + 5
        alerts: list[dict[str, Any]] = []
        while not alerts and time.monotonic() < deadline:
            time.sleep(0.05)
            alerts = fanout.drain_alerts()
        assert [(a["run"], a["code"]) for a in alerts] == [("p1-bce", "tracker")]
        assert "tensorboard stopped answering for p1-bce (step event took over 0.3 s)" in alerts[0]["message"]
        assert_fast(durations + timed_on_event(fanout, pipeline, {"p1-bce": ["tensorboard"]}, (fp.BASELINE_RUN,)))
        start = time.monotonic()
        fanout.close(timeout_s=1)
        assert time.monotonic() - start < 1.5
        assert fanout.drain_alerts() == []  # dropped once, not again at close

        stuck = TrackerFanout(pipeline, PID)  # the default 30 s watchdog: only close's deadline catches this one
        assert_fast(timed_on_event(stuck, pipeline, {"p1-bce": ["tensorboard"]}, (fp.BASELINE_RUN,)))
        start = time.monotonic()
        stuck.close(timeout_s=0.99853)  # what is left of the supervisor's budget; shown rounded: 1 s
        assert 0.9 < time.monotonic() - start < 1.5
        (alert,) = stuck.drain_alerts()
        assert alert["message"].startswith("tensorboard did not finish p1-bce within 1 s (busy with: step event)")
    finally:
        release.set()


def test_a_full_queue_drops_and_counts_with_one_alert(pipeline: Path, fake_trackers: dict[str, list[Any]],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    record_open = RecordingRun.open

    def slow_open(self: RecordingRun, **kwargs: Any) -> None:
        release.wait(10)
        record_open(self, **kwargs)

    monkeypatch.setattr(RecordingRun, "open", slow_open)
    fanout = TrackerFanout(pipeline, PID, queue_size=5)
    try:
        timed_on_event(fanout, pipeline, {"p1-bce": ["tensorboard"]}, (fp.BASELINE_RUN,))
        (alert,) = fanout.drain_alerts()
        assert alert["message"] == ("tensorboard: forwarding fell 5 events behind for p1-bce; dropping events "
                                    "until it catches up")
    finally:
        release.set()
    fanout.close(timeout_s=5)
    assert fanout.drain_alerts() == []
    steps = [c.step for c in fake_trackers["p1-bce"] if isinstance(c, Scalar) and c.tag == "train/loss"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) <= 5  # what fitted in the queue, then nothing


# -- TensorBoard ---------------------------------------------------------------------------------
def needs_tensorboard() -> None:
    reason = "TensorBoard export needs tensorboardX and tensorboard (pip install 'goemo-cockpit[tensorboard]')"
    pytest.importorskip("tensorboardX", reason=reason)
    pytest.importorskip("tensorboard", reason=reason)


def tensorboard_run(pipeline: Path, run: str) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(PipelinePaths(pipeline).tracker_dir("tensorboard") / run),
                                   size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def check_tensorboard(pipeline: Path, runs: tuple[str, ...], replayed_at: str | None = None) -> None:
    for run in runs:
        want, tb = expected(pipeline, run), tensorboard_run(pipeline, run)
        tags = tb.Tags()["tensors"]
        if replayed_at is None:
            assert REPLAY_TAG not in tags  # live forwarding is no replay
        else:
            assert [t.tensor_proto.string_val[0].decode() for t in tb.Tensors(REPLAY_TAG)][-1] == replayed_at
        loss = {e.step: e.value for e in tb.Scalars("train/loss")}
        assert loss == pytest.approx(want["loss"], rel=1e-6)  # float32; after a restart, the later attempt's
        assert len(tb.Scalars("train/loss")) == len(want["loss"])
        assert {e.step: e.value for e in tb.Scalars("dev/f1_macro@0.2")} == pytest.approx(want["dev"], rel=1e-6)
        texts = {tag: [t.tensor_proto.string_val[0].decode() for t in tb.Tensors(tag)] for tag in tb.Tags()["tensors"]}
        assert texts.get("alerts/nonfinite", []) + texts.get("alerts/grad_vanishing", []) == want["alerts"]
        if want["test"]:
            test = want["test"]
            assert tb.Scalars("test/f1_macro@0.2")[0].value == pytest.approx(test["f1_macro"]["0.2"], rel=1e-6)
            assert tb.Scalars("test/tuned_f1_macro")[0].value == pytest.approx(test["tuned"]["f1_macro"], rel=1e-6)
            assert "| joy |" in texts["test/per_class"][0]
    assert "restart 2 from step 20: stall" in texts_of(pipeline, "p1-asl", "events/restart")


def texts_of(pipeline: Path, run: str, tag: str) -> str:
    return " ".join(t.tensor_proto.string_val[0].decode() for t in tensorboard_run(pipeline, run).Tensors(tag))


def test_tensorboard_replay_reads_back_with_event_accumulator(pipeline: Path, replay_clock: list[str]) -> None:
    needs_tensorboard()
    replay_clock[:] = ["2026-11-27T09:00:00+00:00", "2026-11-28T10:30:00+00:00"]
    assert replay(pipeline, "tensorboard").runs == 5
    check_tensorboard(pipeline, ("p1-bce",) + LIVE_RUNS, "2026-11-27T09:00:00+00:00")
    assert replay(pipeline, "tensorboard").runs == 5  # a second export replaces the first (session START at step 0)
    check_tensorboard(pipeline, ("p1-asl",), "2026-11-28T10:30:00+00:00")


def test_tensorboard_live_reads_back_with_event_accumulator(pipeline: Path) -> None:
    needs_tensorboard()
    close_cleanly(forward_live(pipeline, {run: ["tensorboard"] for run in LIVE_RUNS}))
    check_tensorboard(pipeline, LIVE_RUNS)


def test_tensorboard_export_does_not_load_torch(pipeline: Path) -> None:
    needs_tensorboard()
    import subprocess

    code = (f"import sys; from cockpit.outlets.trackers import replay; replay({str(pipeline)!r}, 'tensorboard'); "
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')); "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# -- MLflow --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mlflow_empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated MLflow database, made once: creating one runs MLflow's migrations (seconds)."""
    pytest.importorskip("mlflow", reason="MLflow export needs mlflow (pip install 'goemo-cockpit[mlflow]')")
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def mlflow_store(pipeline: Path, mlflow_empty_db: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The pipeline's default MLflow store (mlruns/mlflow.db), seeded with the empty database."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_ENABLE_ASYNC_LOGGING"):
        monkeypatch.delenv(name, raising=False)
    store = PipelinePaths(pipeline).tracker_dir("mlflow")
    store.mkdir()
    shutil.copy(mlflow_empty_db, store / "mlflow.db")
    return store


def check_mlflow(pipeline: Path, store: Path, runs: tuple[str, ...], tmp_path: Path,
                 replayed_at: str | None = None) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(PID)
    assert experiment.artifact_location == (store / "artifacts").resolve().as_uri()
    found = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(found) == sorted(f"{PID}/{run}" for run in runs)  # one MLflow run per run, restarts included
    for run in runs:
        want, mlrun = expected(pipeline, run), found[f"{PID}/{run}"]
        assert mlrun.info.status == ("FAILED" if run == "p1-combined_07" else "FINISHED")
        assert mlrun.data.tags.get(REPLAY_TAG) == replayed_at  # the export's time; none on a live run
        params = mlrun.data.params
        assert (params["loss"], params["lr"], params["batch_size"]) == (want["config"]["loss"], "0.0005", "16")
        assert params["data.train_size_after"] == "1280" and params["n_params"] == "1234567"
        history = sorted(client.get_metric_history(mlrun.info.run_id, "train/loss"), key=lambda m: m.timestamp)
        assert {m.step: m.value for m in history} == pytest.approx(want["loss"])  # the later attempt last
        dev = client.get_metric_history(mlrun.info.run_id, "dev/f1_macro_at_0.2")
        assert {m.step: m.value for m in dev} == pytest.approx(want["dev"])
        if want["test"]:
            metrics = mlrun.data.metrics
            assert metrics["test/f1_macro_at_0.2"] == pytest.approx(want["test"]["f1_macro"]["0.2"])
            assert metrics["test/tuned_f1_macro"] == pytest.approx(want["test"]["tuned"]["f1_macro"])
            table = json.loads(Path(client.download_artifacts(mlrun.info.run_id, "test/per_class.json",
                                                              str(tmp_path))).read_text())
            assert len(table["data"]) == 28 and table["columns"][0] == "label"
        if want["alerts"]:
            assert {k: v for k, v in mlrun.data.tags.items() if k.startswith("alerts/")} == want["last_alert"]
            notes = Path(client.download_artifacts(mlrun.info.run_id, "notes.txt", str(tmp_path))).read_text()
            assert all(alert in notes for alert in want["alerts"])
    restarted = found[f"{PID}/p1-asl"].info.run_id
    steps = [m.step for m in client.get_metric_history(restarted, "train/loss")]
    assert sorted(steps) == sorted(list(range(1, 26)) + list(range(21, 81)))  # both attempts, in one run


def test_mlflow_replay_reads_back_with_mlflow_client(pipeline: Path, mlflow_store: Path, tmp_path: Path,
                                                     replay_clock: list[str]) -> None:
    assert replay(pipeline, "mlflow").runs == 5
    check_mlflow(pipeline, mlflow_store, ALL_RUNS, tmp_path, REPLAYED_AT)


def test_mlflow_live_reads_back_with_mlflow_client(pipeline: Path, mlflow_store: Path, tmp_path: Path) -> None:
    close_cleanly(forward_live(pipeline, {run: ["mlflow"] for run in LIVE_RUNS}))
    check_mlflow(pipeline, mlflow_store, LIVE_RUNS, tmp_path)


# -- trackio -------------------------------------------------------------------------------------
@pytest.fixture
def trackio_env(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("trackio", reason="trackio export needs trackio (pip install 'goemo-cockpit[trackio]')")
    for name in ("TRACKIO_DIR", "TRACKIO_SPACE_ID", "TRACKIO_SERVER_URL", "TRACKIO_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)


def check_trackio(pipeline: Path, runs: tuple[str, ...], replayed_at: str | None = None) -> None:
    from trackio.sqlite_storage import SQLiteStorage

    store = PipelinePaths(pipeline).tracker_dir("trackio").resolve()
    assert SQLiteStorage.get_project_db_path(PID) == store / f"{PID}.db"  # the pipeline's folder, not ~/.cache
    assert sorted(SQLiteStorage.get_runs(PID)) == sorted(f"{PID}/{run}" for run in runs)
    for run in runs:
        want, name = expected(pipeline, run), f"{PID}/{run}"
        logs = SQLiteStorage.get_logs(PID, name)
        loss = [(row["step"], row["train/loss"]) for row in logs if "train/loss" in row]
        assert dict(loss) == pytest.approx(want["loss"])  # rows in order: the later attempt's steps last
        assert {row["step"]: row["dev/f1_macro@0.2"] for row in logs if "dev/f1_macro@0.2" in row} == \
            pytest.approx(want["dev"])
        config = SQLiteStorage.get_run_config(PID, name)
        assert (config["loss"], config["lr"], config["data.train_size_after"]) == (want["config"]["loss"], 5e-4, 1280)
        assert config.get(REPLAY_TAG) == replayed_at
        alerts = [a["text"] for a in SQLiteStorage.get_alerts(PID, run_name=name) if a["title"].startswith("alerts/")]
        assert sorted(alerts) == sorted(want["alerts"])
        if want["test"]:
            (row,) = [row for row in logs if "test/f1_macro@0.2" in row]
            assert row["test/f1_macro@0.2"] == pytest.approx(want["test"]["f1_macro"]["0.2"])
            assert row["test/tuned_f1_macro"] == pytest.approx(want["test"]["tuned"]["f1_macro"])


def test_trackio_replay_reads_back_from_its_database(pipeline: Path, trackio_env: None,
                                                     replay_clock: list[str]) -> None:
    assert replay(pipeline, "trackio").runs == 5
    check_trackio(pipeline, ALL_RUNS, REPLAYED_AT)


def test_trackio_live_reads_back_from_its_database(pipeline: Path, trackio_env: None) -> None:
    close_cleanly(forward_live(pipeline, {run: ["trackio"] for run in LIVE_RUNS}))
    check_trackio(pipeline, LIVE_RUNS)


# -- Weights & Biases ----------------------------------------------------------------------------
@pytest.fixture
def wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb", reason="W&B export needs wandb (pip install 'goemo-cockpit[wandb]')")
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))  # a developer's own login must not make it online
    for name, folder in (("WANDB_CACHE_DIR", "cache"), ("WANDB_DATA_DIR", "data"), ("WANDB_CONFIG_DIR", "config")):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / folder))  # keep the test out of ~/.cache and co


def wandb_records(path: Path) -> list[Any]:
    """The records of an offline run's ``.wandb`` file, decoded with wandb's own protobuf classes.

    wandb >= 0.20 writes the file from its Go core and no longer ships a Python reader (the old
    ``wandb.sdk.internal.datastore``), so the framing is read here: a 7-byte header (``:W&B``, magic, version),
    then LevelDB-log records in 32 KiB blocks (crc32, length, type FULL/FIRST/MIDDLE/LAST, payload)."""
    from wandb.proto import wandb_internal_pb2

    data, block, records, parts = path.read_bytes(), 32768, [], b""
    assert data[:4] == b":W&B"
    pos = 7
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        payload, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            continue
        assert zlib.crc32(bytes([kind]) + payload) == crc
        parts += payload
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            records.append(record)
            parts = b""
    return records


def wandb_run(pipeline: Path, run: str) -> dict[str, Any]:
    """An offline run's identity, config, history rows, summary and exit code."""
    (path,) = (PipelinePaths(pipeline).tracker_dir("wandb")).glob(f"offline-run-*-{PID}-{run}*/run-*.wandb")
    out: dict[str, Any] = {"history": [], "config": {}, "summary": {}}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":  # with the config given to wandb.init
            out["run"] = record.run
            out["config"].update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            out["config"].update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            row = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in record.history.item}
            out["history"].append(row)
        elif kind == "summary":
            out["summary"].update({(i.key or "/".join(i.nested_key)): json.loads(i.value_json)
                                   for i in record.summary.update})
        elif kind == "exit":
            out["exit_code"] = record.exit.exit_code
    return out


def check_wandb(pipeline: Path, runs: tuple[str, ...], replayed_at: str | None = None) -> None:
    folders = sorted(p.name for p in PipelinePaths(pipeline).tracker_dir("wandb").glob("offline-run-*"))
    assert len(folders) == len(runs)  # one offline run per run: the restart continued it
    for run in runs:
        want, got = expected(pipeline, run), wandb_run(pipeline, run)
        assert (got["run"].display_name, got["run"].run_group, got["run"].project) == (f"{PID}/{run}", PID,
                                                                                       "goemo-cockpit")
        assert (got["config"]["loss"], got["config"]["lr"]) == (want["config"]["loss"], 5e-4)
        assert got["config"]["data"]["train_size_after"] == 1280
        assert got["config"].get(REPLAY_TAG) == replayed_at
        assert list(got["run"].tags) == (["replay"] if replayed_at else [])
        history = got["history"]
        loss = [(row["trainer/step"], row["train/loss"]) for row in history if "train/loss" in row]
        assert dict(loss) == pytest.approx(want["loss"])
        assert {row["trainer/step"]: row["dev/f1_macro@0.2"] for row in history if "dev/f1_macro@0.2" in row} == \
            pytest.approx(want["dev"])
        assert [row[k] for row in history for k in row if k.startswith("alerts/")] == want["alerts"]
        assert got["exit_code"] == (1 if run == "p1-combined_07" else 0)
        assert got["summary"]["status"] == ("failed" if run == "p1-combined_07" else "completed")
        if want["test"]:
            (row,) = [row for row in history if "test/f1_macro@0.2" in row]
            assert row["trainer/step"] == want["test"]["step"]
            assert row["test/f1_macro@0.2"] == pytest.approx(want["test"]["f1_macro"]["0.2"])
            assert row["test/tuned_f1_macro"] == pytest.approx(want["test"]["tuned"]["f1_macro"])
            assert row["test/per_class/_type"] == "table-file" and row["test/per_class/nrows"] == 28


def test_wandb_replay_reads_back_from_the_offline_run(pipeline: Path, wandb_offline: None,
                                                      replay_clock: list[str]) -> None:
    assert replay(pipeline, "wandb").runs == 5
    check_wandb(pipeline, ALL_RUNS, REPLAYED_AT)


def test_wandb_live_reads_back_from_the_offline_run(pipeline: Path, wandb_offline: None) -> None:
    close_cleanly(forward_live(pipeline, {run: ["wandb"] for run in LIVE_RUNS}))
    check_wandb(pipeline, LIVE_RUNS)
    assert {p.name for p in PipelinePaths(pipeline).tracker_dir("wandb").glob("offline-run-*")} == {
        p.name for p in PipelinePaths(pipeline).tracker_dir("wandb").glob(f"offline-run-*-{PID}-p*")}


def test_replay_names_the_tracker_and_run_that_failed(pipeline: Path, fake_trackers: dict[str, list[Any]],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: RecordingRun, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(RecordingRun, "open", boom)
    with pytest.raises(TrackerError,
                       match=r"^tensorboard: replaying p1-asl \(p1-asl/events.jsonl\) failed: disk full$"):
        replay(pipeline, "tensorboard")


# -- export's edges: bad lines, a second export, a tracker that never answers ---------------------
def test_translation_skips_and_counts_an_event_it_cannot_use(monkeypatch: pytest.MonkeyPatch) -> None:
    from cockpit.outlets.trackers import events_to_calls
    from cockpit.records import Alert

    def broken(record: Any, last_step: int) -> list[Any]:
        raise TypeError("unsupported operand")

    def ev(kind: str, **fields: Any) -> dict[str, Any]:
        return {"v": 1, "t": fp.T0, "type": kind, **fields}

    step = dict(epoch=0.1, lr=None, grad_norm=None, samples_per_s=None, tokens_per_s=None, step_time_s=None,
                nonfinite_skipped=0)
    monkeypatch.setitem(events_to_calls.TRAINER_TRANSLATIONS, Alert, broken)
    translator = RunTranslator()
    assert translator.translate(ev("alert", level="warn", code="x", message="x")) == []
    assert translator.translate(ev("step", step=3, loss=0.5, **step)) == [
        Scalar("train/loss", 0.5, 3, fp.T0), Scalar("train/epoch", 0.1, 3, fp.T0)]
    assert translator.bad_events == 1
    # What the contract refuses (as the views do): a type that is not a string, an event without its keys.
    refused = [{"type": ["step"]}, {"type": "step", "step": 4, "loss": 1.0},
               ev("eval", split="dev", final=True, per_class=5), ev("step", step="x", loss=1.0, **step)]
    assert [call for event in refused for call in translator.translate(event)] == []
    assert translator.bad_events == 5
    # Shapes the translation meets in damaged files: no error, no call a tracker would refuse.
    odd = [ev("step", step=10 ** 30, loss=10 ** 400, **step),
           ev("eval", split="dev", final=True, per_class=5, step=2, epoch=1, loss=None, f1_macro=[], f1_micro=None,
              tuned=3),
           ev("data", per_class="x", train_size_before=1, train_size_after="y", dev_size=None, test_size=2,
              oversampling=4),
           {**ev("step", step=4, loss=1.0, **step), "t": "noon"},
           {**ev("run_end", status="failed", reason="r", wall_s=None, best={"value": 10 ** 400, "step": 1 << 70}),
            "t": 1e300},
           ev("run_start", run="p1", config=5, model="m", n_params=1, device="cpu", world_size=1, pid=1,
              resumed_from_step=-(1 << 70))]
    calls = [call for event in odd for call in translator.translate(event)]
    assert translator.bad_events == 5
    assert all(abs(c.step) < (1 << 63) and getattr(c, "wall_time", None) is None for c in calls
               if hasattr(c, "step") and not isinstance(c, Scalar) or isinstance(c, Text))
    assert Scalar("train/loss", 1.0, 4) in calls and Summary({"status": "failed"}) in calls


MALFORMED_LINES = {  # a damaged events.jsonl: lines that do not parse and events the contract refuses (both counted)
    "p1-asl": [b"not json at all\n", b"[" * 100_000 + b"]" * 100_000 + b"\n",
               b'{"type":"step","step":99999999999999999999999,"loss":1.0}\n',
               b'{"type":"eval","split":"dev","final":true,"per_class":5}\n', b'{"type":["step"]}\n',
               b'{"type":"step","step":3,"t":"noon"}\n'],
    "p4-final": [b'{"type":"step","step":1,"loss":0.5}\xff\n'],
}


def test_a_tensorboard_export_skips_and_counts_malformed_lines(pipeline: Path, replay_clock: list[str],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    needs_tensorboard()
    want = {run: expected(pipeline, run) for run in ALL_RUNS}
    for run, lines in MALFORMED_LINES.items():
        events_file = PipelinePaths(pipeline).run(run).events
        original = events_file.read_bytes().splitlines(keepends=True)
        events_file.write_bytes(b"".join(original[:30] + lines + original[30:]))
    with PipelinePaths(pipeline).events.open("ab") as fh:
        fh.write(b"{torn\n")
    assert main_export([str(pipeline), "--to", "tensorboard"]) == 0
    assert capsys.readouterr().out.strip() == (f"{pipeline}: 5 runs replayed to tensorboard, tagged goemo.replay = "
                                               f"{REPLAYED_AT}; 8 bad lines skipped")
    for run in ALL_RUNS:  # every run whole: the damage cost only its own lines
        tb = tensorboard_run(pipeline, run)
        assert {e.step: e.value for e in tb.Scalars("train/loss")} == pytest.approx(want[run]["loss"], rel=1e-6)
        assert {e.step: e.value for e in tb.Scalars("dev/f1_macro@0.2")} == pytest.approx(want[run]["dev"], rel=1e-6)
    assert tensorboard_run(pipeline, "p4-final").Scalars("test/f1_macro@0.2")[0].value == \
        pytest.approx(want["p4-final"]["test"]["f1_macro"]["0.2"], rel=1e-6)


def test_a_second_mlflow_export_is_told_apart_and_continues_its_own_runs(
        pipeline: Path, mlflow_store: Path, replay_clock: list[str]) -> None:
    from mlflow.tracking import MlflowClient

    # p1-asl's first attempt ends with run_end before its restart: the replay reopens the tracker run
    events_file = PipelinePaths(pipeline).run("p1-asl").events
    lines = events_file.read_text().splitlines(keepends=True)
    second_start = [i for i, line in enumerate(lines) if '"type":"run_start"' in line][1]
    lines.insert(second_start, json.dumps({"v": 1, "t": json.loads(lines[second_start - 1])["t"], "type": "run_end",
                                           "status": "failed", "reason": "stalled"}) + "\n")
    events_file.write_text("".join(lines))
    times = ("2026-11-27T09:00:00+00:00", "2026-11-28T10:30:00+00:00")
    replay_clock[:] = times
    assert replay(pipeline, "mlflow").runs == 5 and replay(pipeline, "mlflow").runs == 5
    client = MlflowClient(tracking_uri=f"sqlite:///{mlflow_store / 'mlflow.db'}")
    found = client.search_runs([client.get_experiment_by_name(PID).experiment_id])
    by_export: dict[str, list[str]] = {}
    for run in found:
        by_export.setdefault(run.data.tags[REPLAY_TAG], []).append(run.info.run_name)
    assert {k: sorted(v) for k, v in by_export.items()} == {t: sorted(f"{PID}/{run}" for run in ALL_RUNS)
                                                            for t in times}
    for run in found:
        if run.info.run_name == f"{PID}/p1-asl":  # both attempts in each export's run, nothing of the other export
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "train/loss"))
            assert steps == sorted(list(range(1, 26)) + list(range(21, 81)))


def test_a_tracking_server_that_never_answers_ends_the_export_in_one_line(pipeline: Path, tmp_path: Path) -> None:
    """A local server that accepts connections and never answers (loopback only, closed within the test): the
    export gives up after --tracker-timeout with one line and exit 1, instead of hanging."""
    pytest.importorskip("mlflow", reason="MLflow export needs mlflow (pip install 'goemo-cockpit[mlflow]')")
    import os
    import socket
    import subprocess

    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except (socket.timeout, OSError):
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{server.getsockname()[1]}",
           "HOME": str(tmp_path)}
    try:
        start = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "cockpit.cli", "export", str(pipeline), "--to", "mlflow",
                                 "--tracker-timeout", "2"], cwd=Path(__file__).resolve().parents[2], env=env,
                                capture_output=True, text=True, timeout=90)
        elapsed = time.monotonic() - start
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr == ("goemo-cockpit export: error: mlflow stopped answering while replaying p1-asl "
                             "(opening the run took over 2 s); gave up after 0 runs\n")
    assert held, "the export never reached the server"
    assert elapsed < 60  # mlflow's own retries would take minutes
