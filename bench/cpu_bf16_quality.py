"""The quality half of the bf16-on-CPU gate: one preset run config in fp32 and in bf16 autocast, two seeds.

    python bench/cpu_bf16_quality.py [--preset quick --phase 3 --config bce] [--seeds 42,43] [--parallel 4]
                                     [--out runs/bench-cpu-bf16]

Each run is `goemo-train` on the preset's resolved config for that phase (what the supervisor writes to
run.toml), with the full dev split scored and 2 torch threads. `--parallel 4` runs all four at once (a
machine with 8 or more cores); on two cores keep 1. The table gives each run's median samples/s (steps
6 on), wall time and final dev F1@primary, tuned and tuned_cv, read back from its events.jsonl.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cockpit.pipeline.presets import load_preset  # noqa: E402
from cockpit.records import RunEnd, RunStart, decode_run  # noqa: E402
from trainer.config import config_to_toml  # noqa: E402
from trainer.contract import EVENTS_FILE  # noqa: E402
from trainer.events import read_events  # noqa: E402
from trainer.metrics import threshold_key  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--phase", type=int, default=3)
    parser.add_argument("--config", default="bce")
    parser.add_argument("--seeds", default="42,43")
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench-cpu-bf16")
    args = parser.parse_args()
    preset, _ = load_preset(args.preset, [])
    runs = []
    for precision in ("no", "bf16"):
        for seed in (int(s) for s in args.seeds.split(",")):
            run_id = f"p{args.phase}-{args.config}-{'fp32' if precision == 'no' else 'bf16'}-s{seed}"
            config = preset.run_config(args.phase, preset.config(args.config), run_id)
            config.precision, config.seed, config.device, config.torch_threads = precision, seed, "cpu", 2
            config.max_eval_samples, config.export = 0, False
            folder = args.out / run_id
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "run.toml").write_text(config_to_toml(config))
            runs.append((run_id, folder))
    pending = list(runs)
    while pending:  # in batches of --parallel
        batch, pending = pending[:args.parallel], pending[args.parallel:]
        procs = [subprocess.Popen([sys.executable, "-m", "trainer.cli", "--config", str(f / "run.toml"), "--out",
                                   str(f / "run")], cwd=REPO, stdout=subprocess.DEVNULL) for _, f in batch]
        for proc in procs:
            proc.wait()
    primary = threshold_key(preset.run_config(args.phase, preset.config(args.config), "x").primary_threshold)
    print("| run | precision | samples/s | wall (s) | dev F1@primary | dev tuned | dev tuned_cv |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for run_id, folder in runs:
        history = decode_run(read_events(folder / "run" / EVENTS_FILE), run_id)
        steps = [r.samples_per_s for r in history.steps() if r.samples_per_s is not None][5:]
        start = next(r for r in history.records if isinstance(r, RunStart))
        end = next(r for r in history.records if isinstance(r, RunEnd))
        dev = [r for r in history.evals() if r.split == "dev"][-1]
        print(f"| {run_id} | {start.precision} | {statistics.median(steps):.1f} | {end.wall_s:.1f} | "
              f"{dev.macro[primary]:.4f} | {dev.tuned:.4f} | {dev.tuned_cv:.4f} |")


if __name__ == "__main__":
    main()
