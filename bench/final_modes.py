"""Which selection key and which final model to ship: a preset run headless under each combination.

    python bench/final_modes.py --preset quick [--combos f1@primary:retrain,tuned_cv:ensemble] [--runs-dir D]

Each combination is `select_by:final`; it runs `goemo-cockpit --headless --preset P --set
pipeline.select_by=… --set pipeline.final=…` in its own runs folder (one at a time: two torch processes
on two cores thrash). A combination whose pipeline already completed there is not run again, so an
interrupted bench resumes where it stopped. Every figure is read back from the pipeline's files:
test macro-F1 at the primary threshold and with the dev-tuned thresholds (summary.final.json), the final
model's dev tuned_cv, the chosen run(s), and the wall time from pipeline.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cockpit.records import PipelineEnd, PipelineStart, decode_all  # noqa: E402
from trainer.contract import (EVENTS_FILE, PIPELINE_ORIGIN, TUNED_CV_KEY, TUNED_KEY, PipelinePaths,  # noqa: E402
                              f1_macro_key)
from trainer.events import read_events  # noqa: E402

DEFAULT_COMBOS = "f1@primary:retrain,tuned_cv:retrain,f1@primary:ensemble,tuned_cv:ensemble"


def pipeline_of(folder: Path) -> Path | None:
    found = sorted(p for p in folder.iterdir() if p.is_dir() and PipelinePaths(p).events.is_file()) \
        if folder.is_dir() else []
    return found[-1] if found else None


def completed(pipeline: Path | None) -> bool:
    if pipeline is None:
        return False
    records, _ = decode_all(PIPELINE_ORIGIN, read_events(PipelinePaths(pipeline).events))
    ends = [r for r in records if isinstance(r, PipelineEnd)]
    return bool(ends) and ends[-1].status == "completed"


def run_combo(preset: str, select_by: str, final: str, folder: Path, extra: list[str]) -> Path:
    pipeline = pipeline_of(folder)
    if completed(pipeline):
        return pipeline  # type: ignore[return-value]
    if pipeline is not None:  # interrupted: continue it
        cmd = ["--headless", "--resume", str(pipeline)]
    else:
        cmd = ["--headless", "--preset", preset, "--runs-dir", str(folder), "--set", f"pipeline.select_by={select_by}",
               "--set", f"pipeline.final={final}", *[f"--set={o}" for o in extra]]
    subprocess.run([sys.executable, "-m", "cockpit.cli", *cmd], cwd=REPO, check=False,
                   env=dict(os.environ, HF_HUB_OFFLINE="1"))
    pipeline = pipeline_of(folder)
    if not completed(pipeline):
        raise SystemExit(f"{folder}: the pipeline did not complete; rerun to resume it")
    return pipeline  # type: ignore[return-value]


def figures(pipeline: Path) -> dict:
    paths = PipelinePaths(pipeline)
    summary = json.loads(paths.summary.read_text())
    final, primary = summary["final"], summary["primary_threshold"]
    events = read_events(paths.events)
    # Wall time of every supervisor that worked on it: a resumed bench adds its segments, each from its
    # pipeline_start to the last event, of the pipeline or of a run, before the next one (a supervisor
    # that was killed wrote no pipeline_end, and its run went on writing until the kill).
    times = sorted([e["t"] for e in events] + [e["t"] for run in pipeline.glob(f"*/{EVENTS_FILE}")
                                                 for e in read_events(run)])
    starts = [r.t for r in decode_all(PIPELINE_ORIGIN, events)[0] if isinstance(r, PipelineStart)]
    wall = 0.0
    for start, following in zip(starts, [*starts[1:], float("inf")]):
        wall += max(t for t in times if start <= t < following) - start
    return {
        "pipeline": pipeline.name, "final": final["config"], "trained_in": final.get("trained_in"),
        "test_f1_primary": final["test"][f1_macro_key(primary)], "test_tuned": final["test"][TUNED_KEY],
        "dev_tuned_cv": (final.get("dev") or {}).get(TUNED_CV_KEY), "wall_min": wall / 60,
        "members": [(m["run"], m["test"][TUNED_KEY]) for m in final.get("members") or []],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--combos", default=DEFAULT_COMBOS, help="comma-separated select_by:final pairs")
    parser.add_argument("--runs-dir", type=Path, default=REPO / "runs" / "bench-final-modes")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="more preset overrides")
    args = parser.parse_args()
    rows = []
    for combo in args.combos.split(","):
        select_by, _, final = combo.partition(":")
        folder = args.runs_dir / args.preset / f"{select_by.replace('@', '-at-')}_{final}"
        pipeline = run_combo(args.preset, select_by, final, folder, args.overrides)
        rows.append((select_by, final, figures(pipeline)))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; preset {args.preset}")
    print(f"| select_by | final | final model | test F1@primary | test tuned | dev tuned_cv | wall (min) |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for select_by, final, f in rows:
        cv = "–" if f["dev_tuned_cv"] is None else f"{f['dev_tuned_cv']:.4f}"
        print(f"| {select_by} | {final} | {f['final']} ({f['trained_in']}) | {f['test_f1_primary']:.4f} | "
              f"{f['test_tuned']:.4f} | {cv} | {f['wall_min']:.1f} |")
        for run, tuned in f["members"]:
            print(f"|  |  | member {run} |  | {tuned:.4f} |  |  |")


if __name__ == "__main__":
    main()
