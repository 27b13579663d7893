"""final/ is replaced by rename, never deleted first, and a kill between the renames is repaired."""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.pipeline.publisher import ResultsPublisher
from cockpit.pipeline.presets import load_preset
from trainer.contract import FINAL_DIR, FINAL_RUN, MODEL_CARD_FILE, OLD_SUFFIX, PipelinePaths
from trainer.events import EventWriter


@pytest.fixture
def publisher(tmp_path: Path) -> ResultsPublisher:
    preset, _ = load_preset("smoke")
    paths = PipelinePaths(tmp_path / "p")
    run = paths.run(FINAL_RUN)
    run.export.mkdir(parents=True)
    (run.export / "weights.bin").write_bytes(b"new")
    run.export.joinpath("weights.bin").chmod(0o600)
    run.config.write_text('model = "tiny-deberta"\n')
    with EventWriter(run.events) as w:
        for split in ("dev", "test"):
            w.emit("eval", step=3, epoch=1.0, split=split, loss=0.1, final=True, f1_macro={"0.2": 0.4, "0.5": 0.3},
                   f1_micro={"0.2": 0.5}, per_class=[], tuned={"f1_macro": 0.45})
    return ResultsPublisher(paths, preset)


def test_final_is_replaced_by_rename_and_gets_the_folders_permissions(publisher: ResultsPublisher) -> None:
    final = publisher.paths.final
    final.mkdir()
    (final / "weights.bin").write_bytes(b"old")
    replaced = []
    import os as real_os

    original = real_os.replace

    def spy(src, dst):
        replaced.append((Path(src).name, Path(dst).name))
        assert Path(dst).name != FINAL_DIR or not Path(dst).exists()  # the old copy was moved aside, not deleted
        return original(src, dst)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("cockpit.pipeline.publisher.os.replace", spy)
        record = publisher.publish_final("bce", FINAL_RUN)
    assert (final / "weights.bin").read_bytes() == b"new" and (final / MODEL_CARD_FILE).exists()
    assert (FINAL_DIR, FINAL_DIR + OLD_SUFFIX) in replaced
    assert not final.with_name(FINAL_DIR + OLD_SUFFIX).exists()
    assert (final / "weights.bin").stat().st_mode & 0o777 == publisher.paths.root.stat().st_mode & 0o666
    assert record["test"]["f1_macro@0.2"] == 0.4 and publisher.paths.summary_final.exists()


def test_a_kill_between_the_two_renames_is_repaired(publisher: ResultsPublisher) -> None:
    old = publisher.paths.final.with_name(FINAL_DIR + OLD_SUFFIX)
    old.mkdir()
    (old / "weights.bin").write_bytes(b"old")
    publisher.restore_interrupted_final()
    assert (publisher.paths.final / "weights.bin").read_bytes() == b"old" and not old.exists()


def test_a_higher_source_score_changes_no_ranking_summary_or_final(tmp_path: Path) -> None:
    import fake_pipeline as fp
    from cockpit.pipeline.results import final_scores, run_scores
    from cockpit.records import read_run_history
    from cockpit.pipeline.scheduler import RunRecord

    preset, _ = load_preset("smoke")
    paths = PipelinePaths(tmp_path / "p")
    isear = fp.three_sources()[1]
    rng = fp.random.Random(0)
    for run, quality in (("p1-bce", 0.30), ("p1-asl", 0.40)):
        events = paths.run(run).events
        fp.append(events, "eval", fp.T0, **fp.eval_event(rng, 20, 0.25, quality))
    bce_events = paths.run("p1-bce").events
    fp.append_source_eval(bce_events, fp.T0 + 1, isear, 40, 0.99)  # later and far higher: still not the run's
    final = fp.source_eval_event(40, 0.5, 0.98, isear) | {"final": True}
    fp.append(bce_events, "eval", fp.T0 + 2, **final)
    publisher = ResultsPublisher(paths, preset)
    records = [RunRecord("p1-bce", 1, "bce", "completed", 1), RunRecord("p1-asl", 1, "asl", "completed", 1)]
    board = publisher.leaderboard(records)
    assert [row["run"] for row in board] == ["p1-asl", "p1-bce"]
    bce = next(row for row in board if row["run"] == "p1-bce")
    assert bce["f1_macro@0.2"] < 0.9 and bce["best_step"] == 20
    assert publisher.ranked_configs(records, 1) == ["asl", "bce"]
    summary = publisher.summary(records, "running", 1)
    assert summary["baseline"]["f1_macro@0.2"] == bce["f1_macro@0.2"]
    bce_read = read_run_history(paths.root, "p1-bce")
    assert len(bce_read.dev_evals()) == 1 and final_scores(bce_read) == {}
    assert run_scores(bce_read)["f1_macro@0.2"] == bce["f1_macro@0.2"]
