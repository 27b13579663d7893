"""The pipeline through real subprocesses: the smoke preset end to end, fault drills, resume, bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, train_env
from tests.webhook import WebHook
from trainer.contract import ENV_NOTIFY
from trainer.events import read_events
from trainer.metrics import evaluate_probs, tune_thresholds, tuned_summary

pytestmark = pytest.mark.e2e
SMOKE = (REPO / "presets" / "smoke.toml").read_text()


def cockpit(*args: str, timeout: float = 400, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cockpit.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env or train_env())


def only_pipeline(runs: Path) -> Path:
    dirs = [p for p in runs.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


@pytest.fixture(scope="module")
def smoke_run(smoke_pipeline):
    res, pdir, _ = smoke_pipeline  # tests/conftest.py: the session's smoke pipeline (Slurm jobs where up)
    return res, pdir


def test_smoke_pipeline_completes_and_leaves_the_contract_folder(smoke_run):
    res, pdir = smoke_run
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    for name in ("preset.toml", "pipeline.jsonl", "summary.json", "report.md", "curves.png"):
        assert (pdir / name).exists(), name
    runs = ["p1-bce", "p1-asl", "p1-combined_07", "p1-combined_05", "p1-combined_03", "p4-final"]
    for run in runs:
        for name in ("run.toml", "events.jsonl", "stdout.log", "stderr.log", "checkpoints"):
            assert (pdir / run / name).exists(), (run, name)
    types = [e["type"] for e in read_events(pdir / "pipeline.jsonl")]
    assert types[0] == "pipeline_start" and types[-1] == "pipeline_end"
    assert types.count("phase_start") == 4 and types.count("run_done") == 8
    summary = json.loads((pdir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["primary_threshold"] == 0.2
    assert summary["reference_f1"] == 0.4218 and summary["target_f1"] == 0.5
    board = summary["leaderboard"]
    assert {r["run"] for r in board} == set(runs[:-1]) | {r["run"] for r in board if r["phase"] == 3}
    assert len([r for r in board if r["phase"] == 3]) == 2
    scores = [r["f1_macro@0.2"] for r in board]
    assert scores == sorted(scores, reverse=True)
    for row in board:
        for key in ("run", "phase", "config", "status", "f1_macro@0.2", "f1_macro@0.5", "f1_micro@0.2",
                    "tuned_f1_macro", "delta_vs_baseline", "meets_target"):
            assert key in row, key
    assert summary["baseline"]["run"] == "p1-bce"
    assert "leaderboard" in (pdir / "report.md").read_text().lower()
    assert "test" in res.stdout and "summary.json" in res.stdout


def test_every_event_of_a_smoke_pipeline_is_in_the_contract_table(smoke_run):
    from trainer.contract import PIPELINE_EVENTS, TRAINER_EVENTS, PipelinePaths, contract_violation

    _, pdir = smoke_run
    paths = PipelinePaths(pdir)
    seen = set()
    for file, table in [(paths.events, PIPELINE_EVENTS)] + [(f, TRAINER_EVENTS) for f in paths.run_event_files()]:
        events = read_events(file)
        assert events, file
        for event in events:
            assert contract_violation(event, table) is None, (file.name, event)
            seen.add(event["type"])
    assert {"run_done", "pipeline_end", "run_end", "eval", "step"} <= seen


def test_final_numbers_recompute_from_saved_arrays_and_thresholds_come_from_dev(smoke_run):
    _, pdir = smoke_run
    final = pdir / "final"
    for name in ("model.safetensors", "config.json", "goemo_model.json", "thresholds.json", "model_card.md",
                 "dev_probs.npy", "test_probs.npy", "dev_labels.npy", "test_labels.npy"):
        assert (final / name).exists(), name
    summary = json.loads((pdir / "summary.json").read_text())
    thresholds = json.loads((final / "thresholds.json").read_text())
    names = thresholds["labels"]
    dev_p, dev_y = np.load(final / "dev_probs.npy"), np.load(final / "dev_labels.npy")
    test_p, test_y = np.load(final / "test_probs.npy"), np.load(final / "test_labels.npy")
    assert dev_p.dtype == np.float32 and dev_p.shape[1] == 28
    assert np.allclose(thresholds["thresholds"], tune_thresholds(dev_p, dev_y))  # tuned on dev, not test
    for split, probs, labels in (("dev", dev_p, dev_y), ("test", test_p, test_y)):
        reported = summary["final"][split]
        again = evaluate_probs(probs, labels, [0.2, 0.5], names)
        assert reported["f1_macro@0.2"] == pytest.approx(again["f1_macro"]["0.2"])
        assert reported["f1_macro@0.5"] == pytest.approx(again["f1_macro"]["0.5"])
        assert reported["f1_micro@0.2"] == pytest.approx(again["f1_micro"]["0.2"])
        tuned = tuned_summary(probs, labels, np.array(thresholds["thresholds"]))
        assert reported["f1_macro_tuned"] == pytest.approx(tuned["f1_macro"])


def test_predict_uses_the_exported_model(smoke_run):
    _, pdir = smoke_run
    res = subprocess.run([sys.executable, "-m", "trainer.predict", "--model", str(pdir / "final"), "--json",
                          "thanks so much!", "this is awful"], capture_output=True, text=True, cwd=REPO,
                         env=train_env(), timeout=120)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["thanks so much!", "this is awful"]
    assert all(len(r["scores"]) == 28 and isinstance(r["labels"], list) for r in rows)


def drill_preset(tmp_path: Path, configs: str, **pipeline: object) -> Path:
    """The smoke preset, Phase 1 only, with other configs and pipeline settings."""
    import tomllib

    import tomli_w

    data = tomllib.loads(SMOKE)
    data.update(name="drill", configs=tomllib.loads(configs)["configs"])
    data["pipeline"].update(phases=[1], **pipeline)
    path = tmp_path / "drill.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def test_drills_hang_is_dumped_and_restarted_crash_resumes_nan_is_survived_and_the_webhook_hears(tmp_path):
    preset = drill_preset(tmp_path, """
[[configs]]
name = "hang"
loss = "bce"
fault = "hang@4"

[[configs]]
name = "crash"
loss = "bce"
fault = "crash@7"

[[configs]]
name = "nan"
loss = "asl"
fault = "nan@3"
""", stall_floor_s=4, stall_factor=10)
    runs = tmp_path / "runs"
    started = time.time()
    # The same pipeline sends its notifications to a local webhook through apprise's json:// plugin.
    hook = WebHook()
    env = train_env()
    env.pop(ENV_NOTIFY, None)  # only the URL given here
    try:
        res = cockpit("--headless", "--preset", str(preset), "--runs-dir", str(runs),
                      "--set", f'pipeline.notify=["{hook.url}"]', env=env)
    finally:
        hook.close()
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    pdir = only_pipeline(runs)
    events = read_events(pdir / "pipeline.jsonl")
    stalls = [e for e in events if e["type"] == "stall"]
    assert [s["run"] for s in stalls] == ["p1-hang"]
    assert stalls[0]["silent_s"] < 30  # detected within the stall window, not after minutes
    dump = (pdir / stalls[0]["dump"]).read_text()
    assert "injected_hang" in dump and "trainer/faults.py" in dump  # the hanging frame
    assert "== GPU ==" in dump and "== process ==" in dump
    restarts = {e["run"]: e for e in events if e["type"] == "restart"}
    assert set(restarts) == {"p1-hang", "p1-crash"}
    assert restarts["p1-crash"]["from_step"] == 5  # checkpoint_every_steps = 5
    done = {e["run"]: e["status"] for e in events if e["type"] == "run_done"}
    assert done == {"p1-hang": "completed", "p1-crash": "completed", "p1-nan": "completed"}
    crash_events = read_events(pdir / "p1-crash" / "events.jsonl")
    assert [e["resumed_from_step"] for e in crash_events if e["type"] == "run_start"] == [None, 5]
    nan_steps = [e for e in read_events(pdir / "p1-nan" / "events.jsonl") if e["type"] == "step"]
    assert nan_steps[-1]["nonfinite_skipped"] == 1
    assert "stalled" in res.stderr and time.time() - started < 300

    # Notifications (the default notify_on): the stall, with its hanging frame, and the end; the crash
    # was a restart and the NaN a skipped step, so neither is news. No send failed.
    assert not [e for e in events if e["type"] == "alert" and e.get("code") == "notify"]
    assert [p["title"] for p in hook.posts] == ["goemo p1-hang stalled", "goemo pipeline completed"], hook.posts
    stall, end = hook.posts
    print(f"--- {stall['title']} ---\n{stall['message']}\n--- {end['title']} ---\n{end['message']}")
    assert pdir.name in stall["message"] and "p1-hang attempt 1" in stall["message"]
    assert "restart 1 of 2" in stall["message"]
    assert "injected_hang (faults.py:" in stall["message"]  # the hanging frame, innermost first
    assert "completed (exit 0)" in end["message"] and "1. p1-" in end["message"]
    assert end["type"] == "success"


def _second_steps(pdir: Path) -> list[dict]:
    events = pdir / "p1-second" / "events.jsonl"
    return [e for e in read_events(events) if e["type"] == "step"] if events.exists() else []


def _wait_for_steps(runs: Path, at_least: int, deadline_s: float = 180) -> Path:
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        dirs = list(runs.glob("*/pipeline.jsonl")) if runs.exists() else []
        if dirs and len(_second_steps(dirs[0].parent)) >= at_least:
            return dirs[0].parent
        time.sleep(0.2)
    raise AssertionError(f"p1-second never reached {at_least} step events")


def test_interrupted_then_killed_supervisor_resumes_and_completes_without_repeating_finished_runs(tmp_path):
    """One pipeline, two faults (one pipeline instead of two keeps .ci/run's time): Ctrl-C (the runs
    checkpoint and stop, exit 130), --resume; then SIGKILL of the resumed supervisor mid-run (its trainer is
    left behind), --resume again. The run finished before the faults is never repeated, and the stopped
    run resumes from its checkpoint each time."""
    preset = drill_preset(tmp_path, """
[[configs]]
name = "first"
loss = "bce"

[[configs]]
name = "second"
loss = "asl"
settings = { max_train_samples = 400, batch_size = 8 }
""")
    runs = tmp_path / "runs"
    supervisor = [sys.executable, "-m", "cockpit.cli", "--headless"]
    proc = subprocess.Popen([*supervisor, "--preset", str(preset), "--runs-dir", str(runs)], cwd=REPO,
                            env=train_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pdir = _wait_for_steps(runs, 6)
    proc.send_signal(signal.SIGINT)  # Ctrl-C: runs checkpoint and stop, the pipeline says so, exit 130
    assert proc.wait(timeout=60) == 130
    assert read_events(pdir / "pipeline.jsonl")[-1]["status"] == "interrupted"
    assert read_events(pdir / "p1-second" / "events.jsonl")[-1]["status"] == "stopped"

    before = len(_second_steps(pdir))
    proc = subprocess.Popen([*supervisor, "--resume", str(pdir)], cwd=REPO, env=train_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_steps(runs, before + 3)
    proc.kill()  # SIGKILL: no pipeline_end, and the trainer goes on alone until the next supervisor
    proc.wait(timeout=60)
    assert read_events(pdir / "pipeline.jsonl")[-1]["type"] != "pipeline_end"

    res = cockpit("--headless", "--resume", str(pdir))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    events = read_events(pdir / "pipeline.jsonl")
    launches = [e["run"] for e in events if e["type"] == "run_launch"]
    assert launches.count("p1-first") == 1  # finished before the faults: not repeated
    second = read_events(pdir / "p1-second" / "events.jsonl")
    starts = [e for e in second if e["type"] == "run_start"]
    assert launches.count("p1-second") == len(starts) == 3
    assert all(s["resumed_from_step"] >= 5 for s in starts[1:])
    assert second[-1]["type"] == "run_end" and second[-1]["status"] == "completed"
    steps = [e["step"] for e in second if e["type"] == "step"]
    assert steps[-1] == max(steps)  # ended at the last step, whatever was repeated after a checkpoint
    assert json.loads((pdir / "summary.json").read_text())["status"] == "completed"


def test_control_channel_restarts_and_stops_a_run(tmp_path):
    from cockpit.pipeline.control import send_command

    preset = drill_preset(tmp_path, """
[[configs]]
name = "slow"
loss = "bce"
fault = "slow@1"
settings = { max_train_samples = 400, batch_size = 8 }

[[configs]]
name = "quick"
loss = "bce"
""")
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "cockpit.cli", "--headless", "--preset", str(preset),
                             "--runs-dir", str(runs)], cwd=REPO, env=train_env(GOEMO_FAULT_ALWAYS="1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_for(predicate, what):
        deadline = time.time() + 180
        while time.time() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        proc.kill()
        raise AssertionError(f"timed out waiting for {what}")

    def pdir():
        found = list(runs.glob("*/pipeline.jsonl")) if runs.exists() else []
        return found[0].parent if found else None

    def steps():
        return [e for e in read_events(pdir() / "p1-slow" / "events.jsonl") if e["type"] == "step"]

    wait_for(lambda: pdir() is not None and len(steps()) >= 3, "first steps")
    send_command(pdir(), "restart_run", "p1-slow")
    wait_for(lambda: any(e["type"] == "restart" for e in read_events(pdir() / "pipeline.jsonl")), "restart")
    wait_for(lambda: len([e for e in read_events(pdir() / "p1-slow" / "events.jsonl")
                          if e["type"] == "run_start"]) == 2 and len(steps()) >= 8, "relaunch")
    send_command(pdir(), "stop_run", "p1-slow")
    assert proc.wait(timeout=240) == 1  # a stopped run is not a completed one
    events = read_events(pdir() / "pipeline.jsonl")
    restart = next(e for e in events if e["type"] == "restart")
    assert restart["run"] == "p1-slow" and restart["reason"] == "requested"
    done = {e["run"]: e["status"] for e in events if e["type"] == "run_done"}
    assert done == {"p1-slow": "stopped", "p1-quick": "completed"}
    assert read_events(pdir() / "p1-slow" / "events.jsonl")[-1]["status"] == "stopped"


@pytest.mark.parametrize("preset_text, args, needle", [
    ('name = "x"\nbogus = 1\n[[configs]]\nname = "bce"\nloss = "bce"\n', [], "unknown key 'bogus'"),
    ('name = "x"\n[pipeline]\ntop_k = "two"\n[[configs]]\nname = "bce"\nloss = "bce"\n', [], "key 'pipeline.top_k'"),
    ('name = "x"\n[pipeline\n', [], "invalid TOML"),
    ('name = "x"\n[defaults]\nmodel = "./no/such/model"\n[[configs]]\nname = "bce"\nloss = "bce"\n', [],
     "path not found"),
    ('name = "x"\n[defaults]\nsource = "/no/such/data"\n[[configs]]\nname = "bce"\nloss = "bce"\n', [],
     "data source not found"),
    (None, ["--set", "lrr=1"], "unknown key 'lrr'"),
    (None, ["--set", "pipeline.top_k=many"], "pipeline.top_k"),
    (None, ["--configs", "bce,hinge"], "unknown config 'hinge'"),
])
def test_bad_input_exits_2_with_one_line_and_starts_nothing(tmp_path, preset_text, args, needle):
    runs = tmp_path / "runs"
    preset = "smoke"
    if preset_text is not None:
        path = tmp_path / "bad.toml"
        path.write_text(preset_text)
        preset = str(path)
    res = cockpit("--headless", "--preset", preset, "--runs-dir", str(runs), *args, timeout=60)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in res.stderr, res.stderr
    assert not runs.exists() or not any(runs.iterdir())


def test_every_shipped_preset_loads():
    from cockpit.pipeline.presets import list_presets, load_preset

    names = [n for n, _ in list_presets()]
    assert {"smoke", "quick", "cpu-full", "deberta-v3-large", "deberta-v3-large-ddp", "multi-source"} <= set(names)
    fixtures = REPO / "tests" / "fixtures" / "sources"
    # The multi-source template takes its paths by --set (the datasets' licences forbid shipping them).
    paths = {"multi-source": [f"sources.1.path={fixtures / 'semeval'}", f"sources.2.path={fixtures / 'isear' / 'isear.csv'}",
                              f"sources.3.path={fixtures / 'meld'}"]}
    for name in names:
        preset, _ = load_preset(name, paths.get(name, []))
        assert len(preset.configs) == 5
    # Issue 10: the DeBERTa presets take cpu-full's measured select_by and final (docs/results.md).
    chosen = {name: (p.pipeline.select_by, p.pipeline.final)
              for name in ("cpu-full", "deberta-v3-large", "deberta-v3-large-ddp")
              for p in [load_preset(name, [])[0]]}
    assert chosen["deberta-v3-large"] == chosen["deberta-v3-large-ddp"] == chosen["cpu-full"] == ("f1@primary", "reuse")


def _predict(model: Path, *texts: str) -> list[dict]:
    res = subprocess.run([sys.executable, "-m", "trainer.predict", "--model", str(model), "--json", *texts],
                         capture_output=True, text=True, cwd=REPO, env=train_env(), timeout=120)
    assert res.returncode == 0, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines()]


def test_ensemble_final_averages_the_top_runs_by_tuned_cv_and_predict_uses_every_member(tmp_path):
    runs = tmp_path / "runs"
    res = cockpit("--headless", "--preset", "smoke", "--runs-dir", str(runs), "--phases", "1,2,4",
                  "--configs", "bce,asl,combined_07", "--set", "pipeline.final=ensemble",
                  "--set", "pipeline.select_by=tuned_cv")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    pdir = only_pipeline(runs)
    summary = json.loads((pdir / "summary.json").read_text())
    assert summary["select_by"] == "tuned_cv" and summary["selection_key"] == "tuned_cv_f1_macro"
    board = summary["leaderboard"]
    cv = [row["tuned_cv_f1_macro"] for row in board]
    assert cv == sorted(cv, reverse=True)  # ranked by tuned_cv
    final = summary["final"]
    members = [m["run"] for m in final["members"]]
    assert final["mode"] == "ensemble" and members == [row["run"] for row in board[:2]]
    assert final["config"] == "+".join(row["config"] for row in board[:2])
    final_events = read_events(pdir / "p4-final" / "events.jsonl")
    assert not any(e["type"] == "step" for e in final_events)  # no training
    # ... and it says so: 0 steps, so the runs table does not show a 0/N bar that never moves
    assert [e["total_steps"] for e in final_events if e["type"] == "run_start"] == [0]
    from trainer.contract import TRAINER_EVENTS, contract_violation

    assert all(contract_violation(e, TRAINER_EVENTS) is None for e in final_events)
    assert [e["ensemble"] for e in final_events if e["type"] == "eval"] == [members, members]

    folder = pdir / "final"
    ensemble = json.loads((folder / "ensemble.json").read_text())
    assert [m["run"] for m in ensemble["members"]] == members
    # The average, its dev-tuned thresholds and the one test evaluation recompute from final/*.npy.
    load = lambda path: np.load(path)  # noqa: E731
    dev_p, dev_y, test_p, test_y = (load(folder / n) for n in ("dev_probs.npy", "dev_labels.npy", "test_probs.npy",
                                                                "test_labels.npy"))
    member_dev = [load(folder / "members" / m / "dev_probs.npy") for m in members]
    member_test = [load(folder / "members" / m / "test_probs.npy") for m in members]
    assert np.allclose(dev_p, np.mean(member_dev, axis=0), atol=1e-6)
    assert np.allclose(test_p, np.mean(member_test, axis=0), atol=1e-6)
    thresholds = json.loads((folder / "thresholds.json").read_text())
    assert np.allclose(thresholds["thresholds"], tune_thresholds(dev_p, dev_y))
    assert thresholds["max_length"] == 128  # goemo-predict tokenises as the members were trained
    again = evaluate_probs(test_p, test_y, [0.2, 0.5], thresholds["labels"])
    assert final["test"]["f1_macro@0.2"] == pytest.approx(again["f1_macro"]["0.2"])
    assert final["test"]["f1_macro_tuned"] == pytest.approx(
        tuned_summary(test_p, test_y, np.array(thresholds["thresholds"]))["f1_macro"])
    for member, probs in zip(final["members"], member_test):  # each member's own dev-tuned score
        own = json.loads((folder / "members" / member["run"] / "thresholds.json").read_text())["thresholds"]
        assert member["test"]["f1_macro_tuned"] == pytest.approx(tuned_summary(probs, test_y, np.array(own))["f1_macro"])
    assert all(m["run"] in (folder / "model_card.md").read_text() for m in final["members"])

    # goemo-predict on the ensemble averages what each member says.
    texts = ("thanks so much!", "this is awful")
    together = _predict(folder, *texts)
    alone = [_predict(folder / "members" / m, *texts) for m in members]
    for i, row in enumerate(together):
        for label, score in row["scores"].items():
            assert score == pytest.approx(np.mean([a[i]["scores"][label] for a in alone]), abs=2e-4)

    # Bad input: members that cannot be averaged, or both export flags, are refused in one line, exit 2.
    train = [sys.executable, "-m", "trainer.cli", "--config", str(pdir / members[0] / "run.toml")]
    for extra, needle in ((["--ensemble-from", str(pdir / members[0]), "--ensemble-from", str(pdir / members[1]),
                            "--set", "max_length=64"], "key 'max_length'"),
                          (["--ensemble-from", str(tmp_path)], "no run.toml"),
                          (["--ensemble-from", str(pdir / members[0]), "--export-from", str(pdir / members[1])],
                           "choose one")):
        bad = subprocess.run(train + ["--out", str(tmp_path / "x"), *extra], capture_output=True, text=True,
                             cwd=REPO, env=train_env(), timeout=120)
        assert bad.returncode == 2 and needle in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
        assert not (tmp_path / "x").exists()
