"""A seeded, deterministic pipeline folder with a finished search phase, for the study view's tests.

`write_search_pipeline(root)` writes `root/<SEARCH_PIPELINE_ID>/`: preset.toml with a `[search]` table, six trials
(runs s-000..s-005: four complete, two pruned by the median pruner) with their events.jsonl, the supervisor's
search_trial / search_report / search_end events, and phase 1 started on the study's configs. Every timestamp is
fixed (fake_pipeline.T0 + offsets), so two calls give byte-identical folders.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from fake_pipeline import T0, append, selection, write_run
from trainer.contract import DEFAULT_PRIMARY_THRESHOLD, PIPELINE_FILE, PRESET_FILE, SEARCH_PHASE, \
    SEARCH_PHASE_NAME, threshold_key

SEARCH_PIPELINE_ID = "20261126-221500-search"
PRESET = """name = "search"
description = "fake preset with a search phase"

[pipeline]
phases = [0, 1]
primary_threshold = 0.2

[defaults]
loss = "bce"
max_steps = 80

[[configs]]
name = "bce"
loss = "bce"

[search]
sampler = "tpe"
pruner = "median"
n_trials = 6
seed = 42

[search.params]
lr = { log_uniform = [1e-5, 1e-3] }
loss = { choice = ["bce", "asl"] }
gamma_neg = { uniform = [1, 6] }
"""
# (params, quality of the run, pruned at this step or None): trial 3 is the best.
TRIALS: tuple[tuple[dict[str, Any], float, int | None], ...] = (
    ({"lr": 0.00021, "loss": "bce"}, 0.41, None),
    ({"lr": 4.7e-05, "loss": "asl", "gamma_neg": 3.2}, 0.45, None),
    ({"lr": 1.2e-05, "loss": "bce"}, 0.22, 40),
    ({"lr": 0.00012, "loss": "asl", "gamma_neg": 4.1}, 0.50, None),
    ({"lr": 0.00089, "loss": "asl", "gamma_neg": 1.6}, 0.18, 20),
    ({"lr": 8.3e-05, "loss": "asl", "gamma_neg": 5.4}, 0.47, None),
)
IMPORTANCES = ({"lr": 0.71, "loss": 0.29}, {"lr": 0.58, "gamma_neg": 0.27, "loss": 0.15})


def write_search_pipeline(root: Path, *, seed: int = 11) -> Path:
    """Write the search pipeline folder under root; returns its path."""
    folder = Path(root) / SEARCH_PIPELINE_ID
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PRESET_FILE).write_text(PRESET)
    rng = random.Random(seed)
    pl = folder / PIPELINE_FILE
    at = threshold_key(DEFAULT_PRIMARY_THRESHOLD)
    t = T0
    append(pl, "pipeline_start", t, pipeline=SEARCH_PIPELINE_ID, preset="search", phases=[SEARCH_PHASE, 1],
           devices=["cpu"], configs=["bce"], resumed=False, pid=4000, primary_threshold=DEFAULT_PRIMARY_THRESHOLD)
    append(pl, "phase_start", t, phase=SEARCH_PHASE, name=SEARCH_PHASE_NAME, runs=[])
    best: tuple[int, float, str, dict[str, Any]] | None = None
    complete = 0
    for number, (params, quality, pruned_at) in enumerate(TRIALS):
        run = f"s-{number:03d}"
        append(pl, "search_trial", t, trial=number, run=run, state="running", params=params)
        append(pl, "run_launch", t + 1, run=run, device="cpu", pid=41000 + number, attempt=1)
        steps = pruned_at if pruned_at is not None else 80
        end, evals = write_run(folder, run, str(params["loss"]), t + 1, rng, quality, steps=steps,
                               attempt_end="completed" if pruned_at is None else "stopped")
        for ev in evals:
            append(pl, "search_report", t + 1 + ev["step"] * 0.5, trial=number, run=run, step=ev["step"],
                   value=ev["f1_macro"][at])
        t = end + 1
        append(pl, "run_done", t, run=run, status="completed" if pruned_at is None else "stopped", attempts=1)
        value = max(selection(ev, at, "f1@primary")[0] for ev in evals) if pruned_at is None \
            else evals[-1]["f1_macro"][at]
        fields: dict[str, Any] = {"value": round(value, 4)}
        if pruned_at is None:
            complete += 1
            if best is None or value > best[1]:
                best = (number, round(value, 4), run, params)
            if complete >= 2:
                fields["importances"] = IMPORTANCES[0 if complete < 4 else 1]
        else:
            fields["step"] = pruned_at
        append(pl, "search_trial", t, trial=number, run=run, state="complete" if pruned_at is None else "pruned",
               params=params, **fields)
    assert best is not None
    append(pl, "search_end", t, trials=len(TRIALS), best_trial=best[0], best_value=best[1], best_run=best[2],
           best_params=best[3], importances=IMPORTANCES[1], reason="n_trials", pruned=2, failed=0)
    append(pl, "phase_end", t, phase=SEARCH_PHASE)
    append(pl, "phase_start", t, phase=1, name="screen", runs=["p1-bce", "p1-s_003"])
    return folder
