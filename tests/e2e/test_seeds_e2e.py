"""Configs over seeds through real trainer processes (issue 19): a smoke pipeline with `seeds = 2` and a
`seed_ensemble` final, read back from summary.json, ensemble.json, final/*.npy and goemo-predict."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO, train_env
from trainer.contract import ENSEMBLE_MEAN_LOGIT
from trainer.events import read_events
from trainer.metrics import tuned_summary

pytestmark = pytest.mark.e2e


def test_seeds_group_the_leaderboard_and_a_seed_ensemble_averages_the_winners_logits(tmp_path) -> None:
    runs = tmp_path / "runs"
    res = subprocess.run([sys.executable, "-m", "cockpit.cli", "--headless", "--preset", "smoke", "--runs-dir",
                          str(runs), "--phases", "1,2,4", "--configs", "bce,asl", "--set", "pipeline.seeds=2",
                          "--set", "pipeline.final=seed_ensemble", "--set", "pipeline.onnx=auto"],
                         capture_output=True, text=True, timeout=600, cwd=REPO, env=train_env())
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    pdir = next(p for p in runs.iterdir() if p.is_dir())
    summary = json.loads((pdir / "summary.json").read_text())

    # Phase 1: two seeds per config, grouped, every seed scored on the same dev rows (pooled Δ computed).
    assert sorted(r["run"] for r in summary["leaderboard"]) == ["p1-asl-s42", "p1-asl-s43", "p1-bce-s42",
                                                                 "p1-bce-s43"]
    groups = {g["config"]: g for g in summary["groups"]}
    assert set(groups) == {"bce", "asl"} and all(g["n"] == 2 and g["planned"] == 2 for g in groups.values())
    assert all(g["f1_macro@0.2"]["low"] is not None for g in groups.values())
    second = summary["groups"][1]
    assert second["vs_leader"] is not None and isinstance(second["vs_leader"]["tied"], bool)
    assert summary["decisions"][0]["kept"] == summary["groups"][0]["config"]
    dev = [np.load(pdir / run / "checkpoints" / "best" / "dev_labels.npy") for run in groups["bce"]["runs"]]
    assert np.array_equal(dev[0], dev[1])  # eval_seed: both seeds evaluated the same rows

    # Phase 4: the winner trained with both seeds (no phase 3 to reuse), then p4-final averages their logits.
    best = summary["groups"][0]["config"]
    final = summary["final"]
    members = [m["run"] for m in final["members"]]
    assert final["mode"] == "seed_ensemble" and final["config"] == best
    assert members == [f"p4-{best}-s42", f"p4-{best}-s43"] and final["ensemble_rule"] == ENSEMBLE_MEAN_LOGIT
    events = read_events(pdir / "pipeline.jsonl")  # phase 4 starts once, before its members train
    starts = [i for i, e in enumerate(events) if e["type"] == "phase_start" and e["phase"] == 4]
    launch = next(i for i, e in enumerate(events) if e["type"] == "run_launch" and e["run"] == members[0])
    assert len(starts) == 1 and starts[0] < launch and events[starts[0]]["runs"] == [*members, "p4-final"]
    ensemble = json.loads((pdir / "final" / "ensemble.json").read_text())
    assert ensemble["ensemble_rule"] == ENSEMBLE_MEAN_LOGIT
    # The test F1 recomputes from final/*.npy and the shipped thresholds.
    probs, labels = np.load(pdir / "final" / "test_probs.npy"), np.load(pdir / "final" / "test_labels.npy")
    thresholds = np.array(json.loads((pdir / "final" / "thresholds.json").read_text())["thresholds"])
    assert final["test"]["f1_macro_tuned"] == pytest.approx(tuned_summary(probs, labels, thresholds)["f1_macro"])
    assert "seed ensemble of" in res.stdout and "by config over seeds" in res.stdout

    # goemo-predict loads it like any ensemble and averages by its rule.
    from trainer.predict import Predictor

    predictor = Predictor(pdir / "final", backend="torch")
    assert predictor.rule == ENSEMBLE_MEAN_LOGIT and len(predictor.predict(["I love this!"])) == 1
    # onnx = "auto" with the onnx extra installed: the pipeline exported the ensemble's ONNX copies itself.
    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx"):
        assert (pdir / "final" / "onnx.json").is_file(), res.stdout[-2000:]
        onnx = Predictor(pdir / "final", backend="onnx")
        assert onnx.rule == ENSEMBLE_MEAN_LOGIT
        assert np.allclose(onnx.probabilities(["I love this!"]), predictor.probabilities(["I love this!"]), atol=1e-4)


def test_a_seed_ensemble_reuses_phase_3s_seeds_only_when_they_trained_what_phase_4_would() -> None:
    from cockpit.pipeline.presets import load_preset

    preset, _ = load_preset("smoke", ["pipeline.seeds=2", "pipeline.final=seed_ensemble"])
    bce = preset.config("bce")
    assert preset.same_training(3, 4, bce, 42)  # smoke's phases 3 and 4 train the same 240 rows
    other, _ = load_preset("smoke", ["pipeline.seeds=2", "pipeline.final=seed_ensemble",
                                     "phase4.max_train_samples=200"])
    assert not other.same_training(3, 4, other.config("bce"), 42)
