"""A deterministic pipeline folder whose phase 1 ran each config with three seeds (``seeds = 3``).

The runs' events come from `fake_pipeline.write_run`; each run's best checkpoint keeps synthetic dev probabilities
on one shared set of dev rows (as the trainer's `eval_seed` gives a seed group); summary.json is then written by the
real `ResultsPublisher`, so the groups, the pooled paired Δs and the decision sentence are the product's own.
"""

from __future__ import annotations

import random
import tomllib
from pathlib import Path

import numpy as np

import fake_pipeline as fp
from trainer.contract import BEST, CHECKPOINTS_DIR, PIPELINE_FILE, PRESET_FILE, PROBS_FILES, PipelinePaths, run_id

PIPELINE_ID = "20261127-090000-seeds"
SEEDS = (42, 43, 44)
# config -> (loss, dev quality of the events, skill of the synthetic probabilities): combined_07 ahead of the
# other two, which draw from one distribution (a tie)
CONFIGS = {"bce": ("bce", 0.40, 1.0), "asl": ("asl", 0.41, 1.0), "combined_07": ("combined", 0.47, 1.8)}
PRESET = fp.preset_toml().replace("phases = [1, 2, 3, 4]", "phases = [1, 2]\nseeds = 3") + """
[[configs]]
name = "bce"
loss = "bce"

[[configs]]
name = "asl"
loss = "asl"

[[configs]]
name = "combined_07"
loss = "combined"
loss_params = { ratio = 0.7 }
"""


def _probs(rng: np.random.Generator, y: np.ndarray, skill: float) -> np.ndarray:
    return (1 / (1 + np.exp(-(rng.normal(0, 1, y.shape) + skill * (2 * y - 1) - 1.5)))).astype(np.float32)


def write_seeded_pipeline(root: Path) -> Path:
    """Write ``root/<PIPELINE_ID>/``: phases 1-2 of three configs × three seeds, completed; returns the folder."""
    from cockpit.pipeline.presets import Preset
    from cockpit.pipeline.publisher import ResultsPublisher
    from cockpit.pipeline.scheduler import RunRecord

    folder = Path(root) / PIPELINE_ID
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PRESET_FILE).write_text(PRESET)
    pl = folder / PIPELINE_FILE
    rng, data = random.Random(3), np.random.default_rng(5)
    labels = data.random((200, len(fp.LABELS))) < 0.12  # the dev rows every seed scores
    t = fp.T0
    runs = [(run_id(1, name, seed), name, seed) for name in CONFIGS for seed in SEEDS]
    fp.append(pl, "pipeline_start", t, pipeline=PIPELINE_ID, preset="quick", phases=[1, 2], devices=["cpu"],
              configs=list(CONFIGS), resumed=False, pid=4000, primary_threshold=fp.DEFAULT_PRIMARY_THRESHOLD)
    fp.append(pl, "phase_start", t, phase=1, name="screen", runs=[r for r, _, _ in runs])
    records = []
    for run, name, seed in runs:
        loss, quality, skill = CONFIGS[name]
        fp.append(pl, "run_launch", t + 1, run=run, device="cpu", pid=41000 + seed, attempt=1)
        t, _ = fp.write_run(folder, run, loss, t + 1, rng, quality + 0.01 * (seed - 43))
        best = folder / run / CHECKPOINTS_DIR / BEST
        best.mkdir(parents=True)
        np.save(best / PROBS_FILES[0], _probs(data, labels, skill))
        np.save(best / PROBS_FILES[2], labels)
        fp.append(pl, "run_exit", t, run=run, code=0, attempt=1, reason="exit")
        fp.append(pl, "run_done", t, run=run, status="completed", attempts=1)
        records.append(RunRecord(run, 1, name, status="completed", attempts=1, seed=seed))
    fp.append(pl, "phase_end", t, phase=1)
    fp.append(pl, "phase_start", t, phase=2, name="analyse", runs=[])
    fp.append(pl, "phase_end", t, phase=2, ranking=[r for r, _, _ in runs])
    fp.append(pl, "pipeline_end", t + 1, status="completed", exit_code=0)
    preset = Preset.model_validate(tomllib.loads(PRESET))
    ResultsPublisher(PipelinePaths(folder), preset).write_summary(records, "completed", 2)
    return folder
