"""The search study (issue 21) on Optuna's journal storage, driven as the supervisor will drive it, with a fake
objective (numbers computed here, no trainer): pruning, exactly n_trials, a resume after a crash, importances,
and the events it writes decoded back."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("optuna")

from cockpit.pipeline.presets import Preset, load_preset  # noqa: E402
from cockpit.records import decode  # noqa: E402
from cockpit.records.search_events import SearchEnd, SearchTrial  # noqa: E402
from cockpit.search.study import AskedTrial, Recovered, SearchStudy, trial_fields  # noqa: E402
from cockpit.search.trials import trial_run_config  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from trainer.contract import PIPELINE_ORIGIN, Event, PipelinePaths  # noqa: E402

QUICK = (REPO / "presets" / "quick.toml").read_text()
SPACE = """
lr = { log_uniform = [1e-5, 1e-3] }
loss = { choice = ["bce", "asl", "combined"] }
gamma_neg = { uniform = [1, 6] }
ratio = { uniform = [0.3, 0.9] }
dropout = { uniform = [0, 0.3] }
"""
MEDIAN = "n_trials = 10\nseed = 3\nstartup_trials = 3\npruner = \"median\"\nprune_after_trials = 2"
STEPS = (10, 20, 30, 40)


def preset(tmp_path: Path, settings: str = MEDIAN, params: str = SPACE) -> Preset:
    path = tmp_path / "search.toml"
    path.write_text(f"{QUICK}\n[search]\n{settings}\n\n[search.params]\n{params}\n")
    return load_preset(str(path))[0]


def study(tmp_path: Path, p: Preset, **kwargs: Any) -> SearchStudy:
    folder = tmp_path / "20260101-000000-quick"
    folder.mkdir(exist_ok=True)
    space = p.search_space()
    assert space is not None
    return SearchStudy(folder, space, **kwargs)


def score(params: dict[str, Any], step: int) -> float:
    """A fake dev curve: best near lr 1e-4, asl a little better, rising with the step."""
    quality = 0.5 - 0.1 * abs(math.log10(params["lr"]) + 4) + (0.03 if params.get("loss") == "asl" else 0.0)
    return quality * (1 - math.exp(-step / 15))


def run_trial(s: SearchStudy, asked: AskedTrial) -> str:
    """What the supervisor does with one trial's run: report each dev eval, stop it when pruned, tell the end."""
    value = None
    for step in STEPS:
        value = score(asked.params, step)
        s.report(asked.number, step, value)
        if s.should_prune(asked.number):
            return s.tell_pruned(asked.number, step)
    return s.tell_complete(asked.number, value)


def drive(s: SearchStudy) -> list[str]:
    states = []
    while not s.done():
        while s.can_ask():
            states.append(run_trial(s, s.ask()))
    return states


def test_a_study_prunes_and_ends_with_exactly_n_trials(tmp_path: Path) -> None:
    s = study(tmp_path, preset(tmp_path))
    states = drive(s)
    assert len(states) == 10 and s.finished() == 10 and s.end_reason() == "n_trials" and not s.can_ask()
    assert "pruned" in states and "complete" in states
    rows = s.trials_table()
    assert [r.run for r in rows] == [f"s-{n:03d}" for n in range(10)]
    assert all(r.pruned_step in STEPS for r in rows if r.state == "pruned")
    assert all(r.pruned_step is None and r.value is not None for r in rows if r.state == "complete")
    best = s.best()
    assert best is not None and best.value == max(r.value for r in rows if r.state == "complete")
    assert PipelinePaths(tmp_path / "20260101-000000-quick").search_journal.is_file()


def test_a_seeded_study_samples_the_same_trials(tmp_path: Path) -> None:
    p = preset(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    runs = []
    for sub in ("a", "b"):
        s = study(tmp_path / sub, p)
        drive(s)
        runs.append([(r.params, r.state) for r in s.trials_table()])
    assert runs[0] == runs[1]


def test_parallel_trials_never_take_the_study_past_n_trials(tmp_path: Path) -> None:
    s = study(tmp_path, preset(tmp_path, "n_trials = 3\nparallel = 2\npruner = \"none\""))
    first, second = s.ask(), s.ask()
    assert not s.can_ask()  # both places taken
    s.tell_complete(first.number, 0.4)
    third = s.ask()
    assert not s.can_ask()  # 1 finished + 2 running = 3
    s.tell_complete(second.number, 0.5)
    s.tell_complete(third.number, 0.3)
    assert s.done() and s.finished() == 3


def test_a_resume_fails_the_trial_left_running_retries_it_and_keeps_the_finished(tmp_path: Path) -> None:
    p = preset(tmp_path, "n_trials = 5\nseed = 5\npruner = \"none\"\nstartup_trials = 2")
    s = study(tmp_path, p)
    done = [s.ask() for _ in range(2)]
    for asked in done:
        s.tell_complete(asked.number, score(asked.params, 40))
    left = s.ask()
    s.report(left.number, 10, 0.1)
    kept = [(r.number, r.params, r.value) for r in s.trials_table()[:2]]
    del s  # the supervisor dies: the trial stays RUNNING in the journal

    resumed = study(tmp_path, p)
    assert resumed.recover(max_retries=2) == [Recovered(left.number, "s-002", retried=True)]
    assert resumed.trials_table()[left.number].state == "failed"
    retry = resumed.ask()  # the queued retry comes first: same params, same run (its folder resumes)
    assert (retry.params, retry.run, retry.retry_of) == (left.params, "s-002", left.number)
    assert retry.number != left.number
    resumed.tell_complete(retry.number, score(retry.params, 40))
    drive(resumed)
    rows = resumed.trials_table()
    assert [(r.number, r.params, r.value) for r in rows[:2]] == kept
    assert resumed.finished() == 5 == sum(r.state == "complete" for r in rows)
    assert [r.state for r in rows].count("failed") == 1 and resumed.counts()["failed_for_good"] == 0
    assert resumed.recover(max_retries=2) == []  # nothing left running


def test_a_trial_out_of_retries_stays_failed(tmp_path: Path) -> None:
    p = preset(tmp_path, "n_trials = 3\npruner = \"none\"")
    s = study(tmp_path, p)
    s.ask()
    del s
    again = study(tmp_path, p)
    assert again.recover(max_retries=0) == [Recovered(0, "s-000", retried=False)]
    assert again.ask().run == "s-001"  # a new point, not a retry
    assert again.counts()["failed_for_good"] == 1


def test_a_grid_point_that_failed_for_good_counts_as_done(tmp_path: Path) -> None:
    p = preset(tmp_path, 'sampler = "grid"\npruner = "none"', 'config = { choice = ["bce", "asl", "combined_07"] }')
    s = study(tmp_path, p)
    seen, states = [], []
    while not s.done():
        asked = s.ask()
        seen.append(asked.params["config"])
        states.append(s.tell_failed(asked.number) if asked.params["config"] == "asl" else
                      s.tell_complete(asked.number, 0.4))
    assert sorted(seen) == ["asl", "bce", "combined_07"] and s.end_reason() == "n_trials"
    config = trial_run_config(p, {"config": "asl"}, "s-001")
    assert (config.loss, config.seed) == ("asl", 42)


def test_a_run_that_never_scored_is_a_failed_trial(tmp_path: Path) -> None:
    s = study(tmp_path, preset(tmp_path))
    asked = s.ask()
    assert s.tell_complete(asked.number, None) == "failed" and s.best() is None


def test_the_timeout_counts_the_time_of_every_supervisor(tmp_path: Path) -> None:
    p = preset(tmp_path, "timeout_s = 100\npruner = \"none\"")
    now = [0.0]
    s = study(tmp_path, p, clock=lambda: now[0])
    s.tell_complete(s.ask().number, 0.3)
    now[0] = 60.0
    s.close()
    now[0] = 1000.0  # the supervisor was down: that time does not count
    again = study(tmp_path, p, clock=lambda: now[0])
    assert again.can_ask() and again.n_trials is None
    now[0] = 1041.0
    assert again.end_reason() == "timeout" and not again.can_ask() and again.done()


def test_sqlite_storage_is_a_file_in_the_pipeline_folder(tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy")
    s = study(tmp_path, preset(tmp_path, 'n_trials = 2\nstorage = "sqlite"\npruner = "none"'))
    drive(s)
    folder = PipelinePaths(tmp_path / "20260101-000000-quick")
    assert folder.search_sqlite.is_file() and not folder.search_journal.exists()
    assert s.finished() == 2


def test_importances_need_two_complete_trials(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    s = study(tmp_path, preset(tmp_path, "n_trials = 8\nseed = 1\npruner = \"none\"\nstartup_trials = 8"))
    first = s.ask()
    s.tell_complete(first.number, score(first.params, 40))
    assert s.importances() is None
    drive(s)
    importances = s.importances()
    assert importances is not None and set(importances) <= {"lr", "loss", "dropout", "gamma_neg", "ratio"}
    assert "lr" in importances and math.isclose(sum(importances.values()), 1.0, abs_tol=1e-6)


def test_the_events_it_writes_decode_to_records(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    s = study(tmp_path, preset(tmp_path))
    drive(s)
    pruned = next(r for r in s.trials_table() if r.state == "pruned")
    event = {"v": 1, "t": 5.0, "type": Event.SEARCH_TRIAL, **trial_fields(pruned, s.importances())}
    record = decode(PIPELINE_ORIGIN, event)
    assert isinstance(record, SearchTrial)
    assert (record.trial, record.run, record.state, record.params, record.step) == \
        (pruned.number, pruned.run, "pruned", pruned.params, pruned.pruned_step)
    assert record.importances is not None and record.importances[0][1] == max(v for _, v in record.importances)
    end = decode(PIPELINE_ORIGIN, {"v": 1, "t": 6.0, "type": Event.SEARCH_END, **s.end_fields()})
    best = s.best()
    assert isinstance(end, SearchEnd) and best is not None
    assert (end.trials, end.best_trial, end.best_value, end.best_run, end.reason) == \
        (10, best.number, best.value, best.run, "n_trials")
