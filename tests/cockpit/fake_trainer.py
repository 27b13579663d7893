"""A stand-in for goemo-train in supervisor tests: a real process that writes real events, without torch.

What it does is named by the run's config (the part of the run id after ``pN-``) in FAKE_TRAINER, a
JSON object config -> behaviour: ``ok`` (a few steps, a dev eval, run_end, exit 0), ``fail`` (exit 1 at
once), ``crash`` (exit 1 after two steps), ``slow`` (a step every 0.1 s until SIGTERM, then run_end
stopped and exit 143), ``hang`` (one step, then silence), ``slow_until_requeued`` (``slow`` until Slurm
starts the job again, then ``ok``), ``stuck`` (30 dev evals 0.1 s apart at chance, with ``learning``
figures, then completed; stopped at SIGTERM), ``steady`` (a step every 0.2 s for 6 s, then ``ok``), ``bad_input`` (a
library's warning, then goemo-train's one-line error on stderr, exit 2 before any event). SIGUSR1 dumps
every thread's stack to stderr, as goemo-train's does.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from trainer.contract import EVENTS_FILE, split_run_id  # noqa: E402
from trainer.events import EventWriter  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--config")
parser.add_argument("--out", type=Path)
parser.add_argument("--resume", action="store_true")
parser.add_argument("--export-from")
args = parser.parse_args()
_, config = split_run_id(args.out.name)
behaviour = json.loads(os.environ.get("FAKE_TRAINER", "{}")).get(config, "ok")
if behaviour == "slow_until_requeued":
    behaviour = "ok" if int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0 else "slow"
faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
if behaviour == "bad_input":
    print("UserWarning: a library says something first", file=sys.stderr)
    print(f"goemo-train: error: {args.config}: key 'max_length' is 64, but the ensemble's is 128\n", file=sys.stderr)
    sys.exit(2)
stop = {"signal": None}
signal.signal(signal.SIGTERM, lambda s, f: stop.update(signal=s))
events = EventWriter(args.out / EVENTS_FILE)
events.emit("run_start", run=args.out.name, config={"max_steps": 3}, model="fake", n_params=1, device="cpu",
            world_size=1, pid=os.getpid(), resumed_from_step=None, total_steps=3)
if behaviour == "fail":
    sys.exit(1)


def step(n: int) -> None:
    events.emit("step", step=n, epoch=n / 3, loss=1.0 / n, lr=1e-3, grad_norm=1.0, samples_per_s=10.0,
                tokens_per_s=100.0, step_time_s=0.01, nonfinite_skipped=0)


score = 0.1 + 0.01 * len(config)  # distinct per config, so rankings are stable
if behaviour in ("slow", "hang"):
    n = 0
    while stop["signal"] is None:
        if behaviour == "slow" or n == 0:
            n += 1
            step(n)
        time.sleep(0.1)
    events.emit("run_end", status="stopped", reason="signal SIGTERM", wall_s=0.1, best={})
    sys.exit(143)
if behaviour == "stuck":  # on the label prior: 30 dev evals, one every 0.1 s, ranking at chance
    n = 0
    while stop["signal"] is None and n < 30:
        n += 1
        step(n)
        events.emit("eval", step=n, epoch=n / 30, split="dev", loss=0.5, f1_macro={"0.2": 0.02},
                    f1_micro={"0.2": 0.3}, per_class=[], tuned={"f1_macro": 0.05},
                    learning={"auc_macro": 0.51, "labels_predicted": 1, "labels": 28, "prior_gap": 0.004})
        time.sleep(0.1)
    if stop["signal"] is not None:
        events.emit("run_end", status="stopped", reason="signal SIGTERM", wall_s=0.1, best={})
        sys.exit(143)
    events.emit("run_end", status="completed", reason="30 optimizer steps", wall_s=3.0, best={})
    sys.exit(0)
if behaviour == "steady":
    for n in range(30):
        time.sleep(0.2)
        events.emit("activity", what="train", expect_s=30)
for n in (1, 2):
    step(n)
if behaviour == "crash":
    sys.exit(1)
step(3)
per_class = [{"label": "x", "precision": 0.5, "recall": 0.5, "f1": score, "support": 1}]
events.emit("eval", step=3, epoch=1.0, split="dev", loss=0.5, f1_macro={"0.2": score, "0.3": score, "0.5": score},
            f1_micro={"0.2": score, "0.3": score, "0.5": score}, per_class=per_class, tuned={"f1_macro": score + 0.1})
events.emit("run_end", status="completed", reason="3 optimizer steps", wall_s=0.1,
            best={"metric": "dev_f1_macro@0.2", "value": score, "step": 3})
