"""The ensemble final: the best weights of several runs, their dev and test probabilities averaged by the config's
``ensemble_rule`` (the mean of probabilities, or of logits: trainer/ensemble_average.py), per-label thresholds
tuned on dev for the average, and the test split evaluated once.

It runs inside a ``goemo-train --ensemble-from RUN_DIR ...`` job (the pipeline's ``final = "ensemble"``),
so the watchdog, restarts and events work as for any other run. The export folder holds one complete
exported model per member under ``members/<run id>/`` (with that member's own dev-tuned thresholds and
probabilities), the ensemble's thresholds and probabilities, and ``ensemble.json``, written last: its
presence marks a complete ensemble folder, and its ``ensemble_rule`` tells goemo-predict how to average.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from trainer import checkpoints
from trainer.config import RunConfig, read_toml, validate_config
from trainer.contract import (CHECKPOINTS_DIR, ENSEMBLE_FILE, ENSEMBLE_RULES, ENSEMBLE_SHARED_KEYS, EXPORT_DIR,
                              MEMBERS_DIR, RUN_CONFIG_FILE, SECONDARY_THRESHOLD, THRESHOLDS_FILE, TUNED_CV_KEY,
                              TUNED_KEY, CheckpointStateError, f1_macro_key, f1_micro_key, is_run_id, split_run_id)
from trainer.contract import Event, F1_MACRO, F1_MICRO
from trainer.durable import write_json_atomic
from trainer.ensemble_average import average_members
# EnsembleError lives with the export folder's readers: goemo-predict reads ensemble.json without torch
from trainer.export_files import EnsembleError, save_probs, write_thresholds
from trainer.metrics import evaluate_probs, final_thresholds, threshold_key, tuned_cv, tuned_summary
from trainer.models import export_classifier

# (probs, labels, mean loss) of a split, scored by the given model
SplitScores = tuple[np.ndarray, np.ndarray, float]


@dataclass(frozen=True)
class Evaluator:
    """What the ensemble needs of a set-up run, and nothing more (``TrainingRun.evaluator()`` builds it): a model
    to load each member's weights into, how to score a split with it, how to tell the watchdog and the
    events, and where the export goes."""

    config: RunConfig  # the ensemble's own: primary threshold, max_length, seed
    names: Sequence[str]  # the taxonomy's labels: the model's outputs
    model: Any  # the bare (unwrapped) model: each member's best weights are loaded into it in turn
    tokenizer: Any
    export_dir: Path
    eval_rows: int  # dev + test rows: what one member's scoring covers, for the watchdog's allowance
    predict: Callable[[str, Any], SplitScores]  # (split, model) -> sigmoid probabilities, labels, loss
    announce_eval: Callable[[int], None]  # an evaluation of that many rows starts now
    emit_final_evals: Callable[..., None]  # the final dev and test evals, as an export writes them
    emit: Callable[..., None]  # one event into the run's events.jsonl


def member_config(member: Path) -> RunConfig:
    """A member run's own resolved config (its run.toml)."""
    path = member / RUN_CONFIG_FILE
    if not path.is_file():
        raise EnsembleError(f"{member}: no {RUN_CONFIG_FILE} (expected a run folder written by goemo-train)")
    return validate_config(read_toml(path), str(path))


def check_members(final: RunConfig, members: Sequence[Path]) -> list[RunConfig]:
    """Every member has a best checkpoint and the final's model, pooling, taxonomy and max_length."""
    if not members:
        raise EnsembleError("--ensemble-from: expected at least one run folder")
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise EnsembleError(f"--ensemble-from: a run is named twice ({', '.join(names)})")
    configs = []
    for member in members:
        if not is_run_id(member.name):  # ensemble.json names members by folder: goemo-predict follows the name
            raise EnsembleError(f"--ensemble-from {member}: the folder name {member.name!r} is not a run id "
                                "(expected letters, digits, '.', '_' and '-', starting with a letter or digit)")
        config = member_config(member)
        if checkpoints.find_best(member / CHECKPOINTS_DIR) is None:
            raise EnsembleError(f"{member}: no best checkpoint to average (expected {CHECKPOINTS_DIR}/best)")
        for key in ENSEMBLE_SHARED_KEYS:
            if getattr(config, key) != getattr(final, key):
                raise EnsembleError(f"{member / RUN_CONFIG_FILE}: key '{key}' is {getattr(config, key)!r}, but the "
                                    f"ensemble's is {getattr(final, key)!r} "
                                    f"(members must share {', '.join(ENSEMBLE_SHARED_KEYS)})")
        configs.append(config)
    return configs


def score_block(probs: np.ndarray, labels: np.ndarray, thresholds: np.ndarray, primary: float,
                names: Sequence[str], seed: int | None = None) -> dict[str, Any]:
    """The numbers summary.final.json keeps per split: macro-F1 at the primary threshold and 0.5, micro-F1,
    with the given (dev-tuned) thresholds, and (dev only, seed given) the cross-fitted tuned_cv."""
    metrics = evaluate_probs(probs, labels, sorted({primary, SECONDARY_THRESHOLD}), list(names), primary)
    block: dict[str, Any] = {
        f1_macro_key(primary): metrics[F1_MACRO][threshold_key(primary)],
        f1_macro_key(SECONDARY_THRESHOLD): metrics[F1_MACRO][threshold_key(SECONDARY_THRESHOLD)],
        TUNED_KEY: tuned_summary(probs, labels, thresholds)[F1_MACRO],
        f1_micro_key(primary): metrics[F1_MICRO][threshold_key(primary)],
    }
    if seed is not None:
        block[TUNED_CV_KEY] = tuned_cv(probs, labels, seed=seed, default=primary)
    return block


def export_ensemble(evaluator: Evaluator, members: Sequence[Path]) -> dict[str, Any]:
    """Average the members' probabilities by the config's ensemble_rule and write the ensemble export; returns
    ensemble.json's content."""
    cfg, names, model, export_dir = evaluator.config, evaluator.names, evaluator.model, evaluator.export_dir
    primary = cfg.primary_threshold
    member_dev: list[np.ndarray] = []
    member_test: list[np.ndarray] = []
    records = []
    for member in members:
        evaluator.announce_eval(evaluator.eval_rows)
        loaded = checkpoints.load_best(member / CHECKPOINTS_DIR)
        if loaded is None:
            raise CheckpointStateError(f"{member}: no best checkpoint to average")
        weights, meta = loaded
        model.load_state_dict(weights)
        dev_probs, dev_labels, _ = evaluator.predict("dev", model)
        test_probs, test_labels, _ = evaluator.predict("test", model)
        own = final_thresholds(dev_probs, dev_labels, primary, cfg.threshold_bagging)
        folder = export_dir / MEMBERS_DIR / member.name
        export_classifier(model, evaluator.tokenizer, folder)
        save_probs(folder, dev_probs, test_probs, dev_labels, test_labels)
        write_thresholds(folder, names, own, primary, max_length=cfg.max_length, best_step=meta.get("step"))
        records.append({
            "run": member.name, "config": split_run_id(member.name)[1], "best_step": meta.get("step"),
            "best": meta, "dev": score_block(dev_probs, dev_labels, own, primary, names, seed=cfg.evaluation_seed),
            "test": score_block(test_probs, test_labels, own, primary, names),
        })
        member_dev.append(dev_probs)
        member_test.append(test_probs)
    # check_members refused an empty list; goemo-predict averages with the same function (trainer/predict.py)
    dev_probs = average_members(member_dev, cfg.ensemble_rule)
    test_probs = average_members(member_test, cfg.ensemble_rule)
    # dev_labels and test_labels, as the last member's scoring left them: each split's own, the same for every member
    thresholds = final_thresholds(dev_probs, dev_labels, primary, cfg.threshold_bagging)
    # No loss: members may have been trained on different losses, and none of them scores the average.
    evaluator.emit_final_evals(0, 0.0, (dev_probs, dev_labels, None), (test_probs, test_labels, None),
                               thresholds, ensemble=[m.name for m in members])
    save_probs(export_dir, dev_probs, test_probs, dev_labels, test_labels)
    write_thresholds(export_dir, names, thresholds, primary, max_length=cfg.max_length,
                     members=[m.name for m in members])
    # "rule" for people (the report and model card quote it), "ensemble_rule" for goemo-predict
    ensemble = {"rule": ENSEMBLE_RULES[cfg.ensemble_rule], "ensemble_rule": cfg.ensemble_rule, "labels": list(names),
                "primary_threshold": primary, "members": records, "thresholds": THRESHOLDS_FILE}
    write_json_atomic(export_dir / ENSEMBLE_FILE, ensemble)  # last: marks a complete ensemble
    evaluator.emit(Event.CHECKPOINT, step=0, path=EXPORT_DIR, kind="export")
    return ensemble
