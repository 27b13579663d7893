"""final/ is replaced by rename, never deleted first, and a kill between the renames is repaired."""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.pipeline.publisher import ResultsPublisher
from cockpit.pipeline.spec import load_preset
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
