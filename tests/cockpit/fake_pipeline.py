"""A seeded, deterministic pipeline folder that follows the contract, for tests and the bench.

`write_fake_pipeline(root)` writes `root/<PIPELINE_ID>/` with pipeline.jsonl, five runs
(one stalled and restarted with a stall-1.txt dump, one failed with non-finite losses),
summary.json and stderr logs; every timestamp is fixed (T0 + offsets), so two calls give
byte-identical folders. `finished=False` stops in phase 3 with p3-asl running. `dev_tuned=True` gives dev
evals a tuned and a cross-fitted tuned macro-F1 (`tuned_cv`), and `select_by="tuned_cv"` ranks by the latter;
`final_mode="ensemble"` records the final as an ensemble of the two best configs. `sources=three_sources()`
adds a multi-source trainer's keys (taxonomy, sources, per-label observed counts, a dev eval of each extra
source after each run eval); without it the events are those of a single-source trainer, as before.
`write_bulk_run` writes N step/eval events for the benchmarks; `append` adds one event and
`append_source_eval` one per-source eval.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any, Sequence

from trainer.contract import (BASELINE_RUN, DEFAULT_PRIMARY_THRESHOLD, DEFAULT_SELECT_BY, ENSEMBLE_RULE, EVENTS_FILE,
                              FINAL_DIR, FINAL_RUN, GRAD_VANISHING_BELOW, GRAD_VANISHING_STEPS, PIPELINE_FILE,
                              PRESET_FILE, SELECT_BY, STDERR_FILE, SUMMARY_FILE, THRESHOLDS_FILE, TUNED_CV_KEY,
                              TUNED_DEV_KEY, TUNED_KEY, best_metric_name, f1_macro_key, f1_micro_key,
                              selection_key, stall_file, threshold_key)

PIPELINE_ID = "20261126-221500-quick"
T0 = 1_795_731_300.0  # 2026-11-26 22:15:00 UTC
LABELS = (
    "admiration amusement anger annoyance approval caring confusion curiosity desire disappointment "
    "disapproval disgust embarrassment excitement fear gratitude grief joy love nervousness optimism "
    "pride realization relief remorse sadness surprise neutral"
).split()
TRAIN_BEFORE, BATCH, EPOCHS = 1100, 16, 1
STEPS = 80  # steps per full run; the data below gives ceil(1280 / 16) = 80 steps per epoch
EVAL_EVERY = 20
SECONDARY = 0.5
TUNED_GAIN, TUNED_CV_GAIN = 0.03, 0.018  # over F1@primary: the cross-fitted score is the less optimistic one


def preset_toml(primary: float = DEFAULT_PRIMARY_THRESHOLD, select_by: str = DEFAULT_SELECT_BY) -> str:
    """The saved preset; `select_by` is written only when it is not the default, so older folders stay as they were."""
    ranking = "" if select_by == DEFAULT_SELECT_BY else f'select_by = "{select_by}"\n'
    return f"""name = "quick"
description = "fake preset of the cockpit tests"

[pipeline]
phases = [1, 2, 3, 4]
reference_f1 = 0.4218
target_f1 = 0.50
max_restarts = 2
primary_threshold = {threshold_key(primary)}
{ranking}"""


PRESET_TOML = preset_toml()
DUMP = """Stall dump for p1-asl attempt 1 (silent 45.0 s)

Thread 0x00007f3a (most recent call first):
  File "trainer/loop.py", line 212 in train_step
  File "trainer/loop.py", line 301 in train
  File "trainer/__main__.py", line 40 in main

GPU snapshot: no NVIDIA GPU
"""


def line(type_: str, t: float, **fields: Any) -> str:
    """One event line, as the trainer and supervisor write them."""
    return json.dumps({"v": 1, "t": round(t, 3), "type": type_, **fields}, separators=(",", ":")) + "\n"


def append(file: Path, type_: str, t: float, **fields: Any) -> None:
    """Append one whole event line to an events file (creating its folder)."""
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file, "a", encoding="utf-8") as fh:
        fh.write(line(type_, t, **fields))


def per_class_data(rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for i, label in enumerate(LABELS):
        before = max(3, int(240 * math.exp(-i / 5.0)) + rng.randint(0, 9))
        after = before if before >= 40 else min(before * 4, 40)
        rows.append({"label": label, "before": before, "after": after, "weight": round(1.0 + 30.0 / before, 3)})
    return rows


def three_sources() -> list[dict[str, Any]]:
    """The `sources` of a multi-source trainer's data event: GoEmotions, ISEAR and SemEval-2018 E-c, whose
    train rows add up to the data event's (1100 before oversampling, 1280 after) and dev rows to its 200."""
    return [
        {"name": "goemotions", "kind": "goemotions", "path": "embedded", "weight": 1.0,
         "rows": {"train_before": 800, "train_after": 940, "dev": 120, "test": 120}, "observed_labels": list(LABELS),
         "dropped": {"placeholder": 0, "duplicate": 4, "empty": 0, "unmapped_only": 0}},
        {"name": "isear", "kind": "isear", "path": "data/isear.csv", "weight": 1.0,
         "rows": {"train_before": 200, "train_after": 220, "dev": 50, "test": 50},
         "observed_labels": ["anger", "disgust", "embarrassment", "fear", "joy", "remorse", "sadness"],
         "dropped": {"placeholder": 52, "duplicate": 3, "empty": 1, "unmapped_only": 0}},
        {"name": "semeval2018-ec", "kind": "semeval2018-ec", "path": "data/2018-E-c-En-train.txt", "weight": 0.5,
         "rows": {"train_before": 100, "train_after": 120, "dev": 30, "test": 30},
         "observed_labels": ["anger", "disgust", "fear", "joy", "love", "optimism", "sadness", "surprise"],
         "dropped": {"placeholder": 0, "duplicate": 0, "empty": 0, "unmapped_only": 9}},
    ]


def observed_rows(label: str, sources: Sequence[dict[str, Any]]) -> int:
    """Train rows (after oversampling) whose source can produce the label."""
    return sum(s["rows"]["train_after"] for s in sources if label in s["observed_labels"])


def config(name: str, loss: str) -> dict[str, Any]:
    return {"name": name, "loss": loss, "model": "tiny-deberta", "epochs": EPOCHS, "max_steps": 0,
            "batch_size": BATCH, "grad_accum": 1, "lr": 5e-4, "seed": 7}


def eval_event(rng: random.Random, step: int, epoch: float, quality: float, split: str = "dev",
               tuned: bool = False, *, primary: float = DEFAULT_PRIMARY_THRESHOLD,
               final: bool = False) -> dict[str, Any]:
    """An eval event's fields; f1_macro / f1_micro are keyed by the primary threshold and 0.5."""
    per_class = []
    for i, label in enumerate(LABELS):
        f1 = round(max(0.0, min(1.0, quality + 0.25 - i * 0.02 + rng.uniform(-0.05, 0.05))), 4)
        per_class.append({"label": label, "precision": round(min(1.0, f1 + 0.05), 4),
                          "recall": round(max(0.0, f1 - 0.03), 4), "f1": f1, "support": 200 - 6 * i,
                          "predicted": 0 if f1 == 0 else round((200 - 6 * i) * 0.9)})
    f1 = round(sum(c["f1"] for c in per_class) / len(per_class), 4)
    at, half = threshold_key(primary), threshold_key(SECONDARY)
    event = {"step": step, "epoch": epoch, "split": split, "loss": round(0.3 - quality / 4, 4),
             "f1_macro": {at: f1, half: round(f1 - 0.06, 4)},
             "f1_micro": {at: round(f1 + 0.08, 4), half: round(f1 + 0.03, 4)},
             "f1_weighted": {at: round(f1 + 0.05, 4)}, "per_class": per_class,
             "tuned": {"thresholds": [0.3] * 28, "f1_macro": round(f1 + TUNED_GAIN, 4)} if tuned else None}
    if tuned and split == "dev":  # cross-fitting splits dev in halves; the test split is scored, never tuned on
        event["tuned_cv"] = round(f1 + TUNED_CV_GAIN, 4)
    if final:
        event["final"] = True
    return event


def source_eval_event(step: int, epoch: float, f1: float, source: dict[str, Any], *,
                      primary: float = DEFAULT_PRIMARY_THRESHOLD) -> dict[str, Any]:
    """A per-source eval's fields: the usual eval keys over the source's observed labels, plus its name."""
    observed = list(source["observed_labels"])
    per_class = [{"label": label, "precision": f1, "recall": f1, "f1": f1, "support": 10} for label in observed]
    at, half = threshold_key(primary), threshold_key(SECONDARY)
    return {"step": step, "epoch": epoch, "split": "dev", "loss": 0.2, "f1_macro": {at: f1, half: round(f1 - 0.05, 4)},
            "f1_micro": {at: round(f1 + 0.05, 4), half: f1}, "per_class": per_class, "tuned": None,
            "source": source["name"], "observed_labels": observed}


def append_source_eval(file: Path, t: float, source: dict[str, Any], step: int, f1: float, *,
                       epoch: float | None = None, primary: float = DEFAULT_PRIMARY_THRESHOLD) -> None:
    """Append the trainer's dev eval of one extra source (macro-F1 `f1` at the primary threshold)."""
    append(file, "eval", t, **source_eval_event(step, round(step / STEPS, 4) if epoch is None else epoch, f1, source,
                                                primary=primary))


def selection(ev: dict[str, Any], at: str, select_by: str) -> tuple[float, float]:
    """A dev eval under select_by: the chosen score, then the other one (the trainer's tie-break)."""
    f1, cv = ev["f1_macro"][at], ev.get("tuned_cv", float("-inf"))
    return (cv, f1) if select_by == "tuned_cv" else (f1, cv)


def write_run(folder: Path, run: str, loss: str, t: float, rng: random.Random, quality: float, *,
              steps: int = STEPS, first_step: int = 1, resumed_from: int | None = None,
              attempt_end: str | None = "completed", nonfinite_at: tuple[int, ...] = (), test: bool = False,
              vanishing: bool = False, primary: float = DEFAULT_PRIMARY_THRESHOLD,
              sources: Sequence[dict[str, Any]] | None = None,
              dev_tuned: bool = False, select_by: str = DEFAULT_SELECT_BY) -> tuple[float, list[dict[str, Any]]]:
    """Append one attempt of a run to <folder>/<run>/events.jsonl; returns (end time, dev evals).
    With `sources`, the data event lists them and every dev eval is followed by one per extra source;
    with `dev_tuned`, dev evals carry tuned thresholds, their macro-F1 and the cross-fitted one; run_end's best
    is the dev eval `select_by` picks."""
    path = folder / run / EVENTS_FILE
    at = threshold_key(primary)
    rng_data = random.Random(11)  # every run sees the same data
    append(path, "run_start", t, run=run, config=config(run.split("-", 1)[1], loss), model="tiny-deberta",
           n_params=1_234_567, device="cpu", world_size=1, pid=40000 + len(run) + first_step,
           resumed_from_step=resumed_from, steps_per_epoch=STEPS, total_steps=STEPS * EPOCHS)
    per_class = per_class_data(rng_data)
    multi_source: dict[str, Any] = {}
    if sources is not None:
        per_class = [row | {"observed": observed_rows(row["label"], sources)} for row in per_class]
        multi_source = {"taxonomy": "goemotions", "sources": list(sources)}
    append(path, "data", t + 1, train_size_before=TRAIN_BEFORE, train_size_after=1280, dev_size=200, test_size=200,
           per_class=per_class,
           oversampling={"rule": "min_count", "factor": 4, "classes": [r["label"] for r in per_class
                                                                       if r["after"] > r["before"]]},
           **multi_source)
    evals, skipped, t = [], 0, t + 2
    for step in range(first_step, steps + 1):
        t += 0.5
        loss_value: float | None = round(0.7 * math.exp(-step / 30) + 0.08 + rng.uniform(0, 0.03), 5)
        grad = 1.5e-7 if vanishing and step > 60 else round(1.0 + rng.uniform(0, 0.5), 6)
        if step in nonfinite_at:
            loss_value, skipped = None, skipped + 1
            append(path, "alert", t, level="warn", code="nonfinite", message=f"non-finite loss at step {step}")
        append(path, "step", t, step=step, epoch=round(step / STEPS, 4), loss=loss_value,
               lr=round(5e-4 * (1 - step / (STEPS + 1)), 8), grad_norm=grad,
               samples_per_s=round(32 + rng.uniform(0, 2), 2),
               tokens_per_s=round(2000 + rng.uniform(0, 100), 1), step_time_s=0.5, nonfinite_skipped=skipped)
        if step % EVAL_EVERY == 0:
            append(path, "activity", t, what="eval", expect_s=30)
            t += 1
            ev = eval_event(rng, step, round(step / STEPS, 4), quality * (0.6 + 0.4 * step / steps),
                            tuned=dev_tuned, primary=primary)
            evals.append(ev)
            append(path, "eval", t, **ev)
            for i, source in enumerate(sources[1:] if sources else ()):
                # Scores apart from the run's (higher, on fewer labels); no rng draw, so the run's own numbers
                # are those of a single-source folder.
                f1 = round(min(1.0, ev["f1_macro"][at] + 0.1 + 0.05 * i), 4)
                append_source_eval(path, t, source, step, f1, epoch=ev["epoch"], primary=primary)
            append(path, "checkpoint", t, step=step, path=f"{run}/checkpoints/latest")
    if vanishing:
        append(path, "alert", t, level="warn", code="grad_vanishing",
               message=f"grad norm below {GRAD_VANISHING_BELOW:.0e} for {GRAD_VANISHING_STEPS} steps")
    if test:
        t += 1
        evals.append(eval_event(rng, steps, 1.0, quality, split="test", tuned=True, primary=primary, final=True))
        append(path, "eval", t, **evals[-1])
    if attempt_end:
        dev = [e for e in evals if e["split"] == "dev"]
        by_cv = select_by == "tuned_cv"
        best = max(dev, key=lambda e: selection(e, at, select_by)) if dev else None
        append(path, "run_end", t + 0.5, status=attempt_end, reason="done" if attempt_end == "completed" else
               "non-finite loss", wall_s=round(t - T0, 1),
               best={"metric": best_metric_name(primary, select_by),
                     "value": (best["tuned_cv"] if by_cv else best["f1_macro"][at]) if best else None,
                     "step": best["step"] if best else None})
    with open(folder / run / STDERR_FILE, "a", encoding="utf-8") as fh:
        fh.write(f"[{run}] attempt ended at step {steps}\nwarning: tokenizer parallelism\n")
    return t + 1, evals


def write_fake_pipeline(root: Path, *, pipeline_id: str = PIPELINE_ID, seed: int = 7,
                        finished: bool = True, primary: float = DEFAULT_PRIMARY_THRESHOLD,
                        sources: Sequence[dict[str, Any]] | None = None, preset_seed: int | None = None,
                        preset_extra: str = "", dev_tuned: bool = False, select_by: str = DEFAULT_SELECT_BY,
                        final_mode: str = "retrain") -> Path:
    """Write the fake pipeline folder under root; returns its path. `primary` is the preset's threshold:
    the key of every F1 in the events and in summary.json. `sources` (e.g. `three_sources()`): a multi-source
    trainer's data events and per-source evals in every run. `seed` draws the scores; `preset_seed` (when set)
    is saved in preset.toml as `[defaults] seed`, and `preset_extra` is TOML appended to preset.toml (another
    preset); without them preset.toml is as before. `dev_tuned`: dev evals and leaderboard rows carry a tuned
    and a cross-fitted tuned macro-F1 (the other numbers stay those of the same seed without them). `select_by`
    ranks the runs and picks each one's best eval, as the supervisor does ("tuned_cv" needs `dev_tuned`).
    `final_mode="ensemble"`: summary's final record is an ensemble of the best runs of the two best configs
    (p3-asl and p1-bce), scored by p4-final's events."""
    if select_by not in SELECT_BY or final_mode not in ("retrain", "ensemble"):
        raise ValueError(f"select_by {select_by!r} / final_mode {final_mode!r}: expected one of {SELECT_BY} / "
                         "retrain, ensemble")
    if select_by == "tuned_cv" and not dev_tuned:
        raise ValueError("select_by='tuned_cv' ranks by the dev evals' tuned_cv: pass dev_tuned=True too")
    folder = Path(root) / pipeline_id
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    pl = folder / PIPELINE_FILE
    t = T0
    at, key, micro = threshold_key(primary), f1_macro_key(primary), f1_micro_key(primary)
    rank_key = selection_key(select_by, primary)

    def score(ev: dict[str, Any]) -> tuple[float, float]:  # what ranks this pipeline's runs and evals
        return selection(ev, at, select_by)

    preset = preset_toml(primary, select_by) + ("" if preset_seed is None else f"\n[defaults]\nseed = {preset_seed}\n")
    (folder / PRESET_FILE).write_text(preset + preset_extra)
    append(pl, "pipeline_start", t, pipeline=pipeline_id, preset="quick", phases=[1, 2, 3, 4], devices=["cpu"],
           configs=["bce", "asl", "combined_07"], resumed=False, pid=4000, primary_threshold=primary)
    phase1 = [BASELINE_RUN, "p1-asl", "p1-combined_07"]
    append(pl, "phase_start", t, phase=1, name="screen", runs=phase1)
    best: dict[str, dict[str, Any]] = {}

    def launch(run: str, t: float, attempt: int = 1) -> None:
        append(pl, "run_launch", t, run=run, device="cpu", pid=40000 + attempt, attempt=attempt)

    def done(run: str, t: float, status: str, attempts: int = 1, code: int = 0) -> None:
        append(pl, "run_exit", t, run=run, code=code, attempt=attempts, reason="exit")
        append(pl, "run_done", t, run=run, status=status, attempts=attempts)

    launch(BASELINE_RUN, t + 1)
    t, evals = write_run(folder, BASELINE_RUN, "bce", t + 1, rng, 0.40, primary=primary, sources=sources,
                         dev_tuned=dev_tuned, select_by=select_by)
    best[BASELINE_RUN] = max(evals, key=score)
    done(BASELINE_RUN, t, "completed")

    launch("p1-asl", t)
    t1, _ = write_run(folder, "p1-asl", "asl", t, rng, 0.47, steps=25, attempt_end=None, primary=primary,
                      sources=sources, dev_tuned=dev_tuned, select_by=select_by)
    append(pl, "stall", t1 + 45, run="p1-asl", attempt=1, silent_s=45.0, dump=f"p1-asl/{stall_file(1)}",
           allowed_s=30.0, action="restart")
    (folder / "p1-asl" / stall_file(1)).write_text(DUMP)
    append(pl, "run_exit", t1 + 46, run="p1-asl", code=-9, attempt=1, reason="stalled")
    append(pl, "restart", t1 + 46, run="p1-asl", attempt=2, from_step=20, reason="stall")
    launch("p1-asl", t1 + 47, attempt=2)
    t, evals = write_run(folder, "p1-asl", "asl", t1 + 47, rng, 0.47, first_step=21, resumed_from=20,
                         primary=primary, sources=sources, dev_tuned=dev_tuned, select_by=select_by)
    best["p1-asl"] = max(evals, key=score)
    done("p1-asl", t, "completed", attempts=2)

    launch("p1-combined_07", t)
    t, _ = write_run(folder, "p1-combined_07", "combined", t, rng, 0.30, steps=34, attempt_end="failed",
                     nonfinite_at=(31, 32, 33, 34), primary=primary, sources=sources, dev_tuned=dev_tuned,
                     select_by=select_by)
    append(pl, "alert", t, level="error", code="run_failed", message="p1-combined_07 failed: non-finite loss",
           run="p1-combined_07")
    done("p1-combined_07", t, "failed", code=1)
    append(pl, "phase_end", t, phase=1)

    append(pl, "phase_start", t, phase=2, name="analyse", runs=[])
    ranking = sorted(best, key=lambda r: score(best[r]), reverse=True)
    append(pl, "phase_end", t, phase=2, ranking=ranking)
    baseline = best[BASELINE_RUN]["f1_macro"][at]
    half = threshold_key(SECONDARY)

    def row(run: str, status: str = "completed") -> dict[str, Any]:
        ev = best.get(run)
        f1 = ev["f1_macro"][at] if ev else None
        return {"run": run, "phase": int(run[1]), "config": run.split("-", 1)[1], "status": status,
                key: f1, f1_macro_key(SECONDARY): ev["f1_macro"][half] if ev else None,
                micro: ev["f1_micro"][at] if ev else None,
                TUNED_DEV_KEY: ev["tuned"]["f1_macro"] if ev and ev["tuned"] else None,
                TUNED_CV_KEY: ev.get("tuned_cv") if ev else None,
                "delta_vs_baseline": round(f1 - baseline, 4) if f1 is not None else None,
                "meets_target": (f1 >= 0.5) if f1 is not None else False}

    leaderboard = [row(r) for r in ranking] + [row("p1-combined_07", "failed")]
    summary: dict[str, Any] = {
        "pipeline": pipeline_id, "preset": "quick", "status": "running", "primary_threshold": primary,
        "select_by": select_by, "selection_key": rank_key, "baseline": {"run": BASELINE_RUN, key: baseline},
        "reference_f1": 0.4218, "target_f1": 0.5, "leaderboard": leaderboard, "final": None}

    append(pl, "phase_start", t, phase=3, name="extend", runs=["p3-asl"])
    launch("p3-asl", t)
    if not finished:
        write_run(folder, "p3-asl", "asl", t, rng, 0.52, steps=30, attempt_end=None, primary=primary, sources=sources,
                  dev_tuned=dev_tuned, select_by=select_by)
        (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=1))
        return folder
    t, evals = write_run(folder, "p3-asl", "asl", t, rng, 0.52, vanishing=True, primary=primary, sources=sources,
                         dev_tuned=dev_tuned, select_by=select_by)
    best["p3-asl"] = max(evals, key=score)
    done("p3-asl", t, "completed")
    append(pl, "phase_end", t, phase=3)

    append(pl, "phase_start", t, phase=4, name="final", runs=[FINAL_RUN])
    launch(FINAL_RUN, t)
    t, evals = write_run(folder, FINAL_RUN, "asl", t, rng, 0.53, test=True, primary=primary, sources=sources,
                         dev_tuned=dev_tuned, select_by=select_by)
    test = evals.pop()
    done(FINAL_RUN, t, "completed")
    append(pl, "phase_end", t, phase=4)
    append(pl, "pipeline_end", t + 1, status="completed", exit_code=0)
    summary["leaderboard"] = sorted([row("p3-asl")] + leaderboard[:-1], key=lambda r: -r[rank_key]) + \
        [leaderboard[-1]]
    summary["status"] = "completed"
    final_dev = {key: evals[-1]["f1_macro"][at]}
    if "tuned_cv" in evals[-1]:
        final_dev[TUNED_CV_KEY] = evals[-1]["tuned_cv"]
    final_test = {key: test["f1_macro"][at], f1_macro_key(SECONDARY): test["f1_macro"][half],
                  TUNED_KEY: test["tuned"]["f1_macro"], micro: test["f1_micro"][at]}
    summary["final"] = {"run": FINAL_RUN, "config": "asl", "trained_in": FINAL_RUN, "mode": final_mode,
                        "select_by": select_by, "dev": final_dev, "test": final_test,
                        "thresholds": f"{FINAL_DIR}/{THRESHOLDS_FILE}"}
    if final_mode == "ensemble":
        members = ensemble_members(summary["leaderboard"], best, final_test, primary)
        summary["final"] |= {"config": "+".join(m["config"] for m in members), "rule": ENSEMBLE_RULE,
                             "members": members}
    (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=1))
    return folder


def ensemble_members(board: list[dict[str, Any]], best: dict[str, dict[str, Any]], ensemble_test: dict[str, Any],
                     primary: float) -> list[dict[str, Any]]:
    """The final record's members: the best-ranked run of each of the two best configs, with the dev numbers of
    its best eval and test numbers a little below the ensemble's (averaging helps)."""
    at, half = threshold_key(primary), threshold_key(SECONDARY)
    key, micro = f1_macro_key(primary), f1_micro_key(primary)
    chosen: dict[str, str] = {}
    for entry in board:
        if entry["run"] in best:
            chosen.setdefault(entry["config"], entry["run"])
    members = []
    for i, (config_name, run) in enumerate(list(chosen.items())[:2]):
        ev, drop = best[run], 0.012 + 0.01 * i
        dev = {key: ev["f1_macro"][at], f1_macro_key(SECONDARY): ev["f1_macro"][half],
               TUNED_KEY: ev["tuned"]["f1_macro"] if ev["tuned"] else None, micro: ev["f1_micro"][at],
               "step": ev["step"]}
        if "tuned_cv" in ev:
            dev[TUNED_CV_KEY] = ev["tuned_cv"]
        test = {k: round(v - drop, 4) for k, v in ensemble_test.items()} | {"step": ev["step"]}
        members.append({"run": run, "config": config_name, "best_step": ev["step"], "dev": dev, "test": test})
    return members


def write_bulk_run(folder: Path, run: str, n_events: int, *, t0: float = T0, seed: int = 0) -> None:
    """A run with n_events events (mostly steps, an eval every 500) for benchmarks; written in blocks."""
    rng = random.Random(seed)
    path = folder / run / EVENTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    per_class = per_class_data(random.Random(11))
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(line("run_start", t0, run=run, config=config(run, "asl") | {"max_steps": n_events},
                      model="tiny", n_params=1, device="cpu", world_size=1, pid=1, resumed_from_step=None))
        fh.write(line("data", t0, train_size_before=TRAIN_BEFORE, train_size_after=1280, dev_size=200,
                      test_size=200, per_class=per_class, oversampling={"rule": "min_count", "factor": 4,
                                                                       "classes": []}))
        block = []
        for i in range(1, n_events - 1):
            t = t0 + i * 0.05
            if i % 500 == 0:
                block.append(line("eval", t, **eval_event(rng, i, i / 1000, 0.45)))
            else:
                block.append(line("step", t, step=i, epoch=i / 1000, loss=0.5 + rng.random() / 10,
                                  lr=1e-4, grad_norm=1.0 + rng.random(), samples_per_s=32.0, tokens_per_s=2000.0,
                                  step_time_s=0.05, nonfinite_skipped=0))
            if len(block) >= 4096:
                fh.write("".join(block))
                block.clear()
        fh.write("".join(block))


def append_final_labels(folder: Path, t: float = T0 + 10_000) -> None:
    """Give the final run a per-label table as newer trainers write it: a final test eval with ``per_label``
    (dev-tuned thresholds, F1 and its 95 % bootstrap interval, narrower for frequent labels)."""
    rng = random.Random(11)
    rows = []
    for i, label in enumerate(LABELS):
        support = 200 - 6 * i
        f1 = round(max(0.0, min(1.0, 0.75 - i * 0.02 + rng.uniform(-0.05, 0.05))), 4)
        half = round(1.2 / support ** 0.5, 4)
        rows.append({"label": label, "threshold": round(0.15 + 0.05 * (i % 8), 2), "precision": round(f1 + 0.03, 4),
                     "recall": round(max(0.0, f1 - 0.03), 4), "f1": f1, "support": support, "predicted": support,
                     "f1_low": round(max(0.0, f1 - half), 4), "f1_high": round(min(1.0, f1 + half), 4)})
    event = eval_event(rng, STEPS, 1.0, 0.53, split="test", tuned=True, final=True)
    append(folder / FINAL_RUN / EVENTS_FILE, "eval", t, **event, per_label=rows)
