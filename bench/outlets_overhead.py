"""What trackers and notifications cost (issue 9): the supervisor's CPU, and the trainer's samples/s.

    python bench/outlets_overhead.py supervisor [--seconds 60] [--runs 2] [--steps-per-s 5] [--trackers all]
    python bench/outlets_overhead.py trainer [--steps 60] [--repeats 2] [--trackers tensorboard,mlflow]

supervisor: the supervisor hands every event it reads to its outlets (trackers, notifier); that work runs
  in their threads inside the supervisor process. This drives a TrackerFanout and a Notifier (json:// to a
  local HTTP server) with a realistic stream — N runs, each a `step` event per optimizer step at
  --steps-per-s, a dev `eval` every 100 steps, an alert now and then, a stall and a pipeline_end — for
  --seconds, with no outlet, then with each tracker alone, then with the notifier alone, and reports the
  process's CPU (all threads and child processes, user+sys) as a percentage of one core, over the whole
  feed (tracker start-up included) and over its steady part. The difference to "no outlets" is what
  forwarding adds to the supervisor.
trainer: the trainer never forwards anything itself; the only way trackers can slow it is by taking CPU
  from it. This runs the same MiniLM goemo-train (--steps optimizer steps, batch 16) alone and beside a
  process that forwards its events live to the trackers as the supervisor would, alternating, and
  compares the median samples/s of the steps after warm-up.

Results depend on the machine and its load; nothing here is hardcoded.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from trainer.contract import F1_MACRO, F1_MICRO, PIPELINE_ORIGIN, SCHEMA_VERSION, Event  # noqa: E402


class _Hook(http.server.BaseHTTPRequestHandler):
    received = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Hook.received += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _events(runs: int, steps: int) -> list[tuple[float, str, dict]]:
    """(seconds from start, source, event) of a pipeline with `runs` runs side by side."""
    out: list[tuple[float, str, dict]] = []
    for r in range(runs):
        run = f"p1-cfg{r}"
        config = {"run": run, "loss": "bce", "lr": 1e-4, "report_to": "all", "loss_params": {}}
        v = {"v": SCHEMA_VERSION}
        out.append((0.0, run, {**v, "type": Event.RUN_START, "t": 0, "run": run, "config": config, "model": "minilm",
                               "n_params": 22_000_000, "device": "cpu", "world_size": 1, "pid": 1,
                               "resumed_from_step": None}))
        for s in range(1, steps + 1):
            out.append((s, run, {**v, "type": Event.STEP, "t": s, "step": s, "epoch": s / 1000, "loss": 0.1 + 1 / s,
                                 "lr": 1e-4, "grad_norm": 0.3, "samples_per_s": 60.0, "tokens_per_s": 1200.0,
                                 "step_time_s": 0.2, "nonfinite_skipped": 0}))
            if s % 100 == 0:
                f1 = {"0.2": 0.3 + s / 1e5, "0.5": 0.2}
                out.append((s, run, {**v, "type": Event.EVAL, "t": s, "step": s, "epoch": s / 1000, "split": "dev",
                                     "loss": 0.09, F1_MACRO: f1, F1_MICRO: f1, "tuned": {F1_MACRO: 0.4},
                                     "per_class": [{"label": f"l{i}", "precision": 0.5, "recall": 0.5,
                                                    "f1": 0.5, "support": 10} for i in range(28)]}))
            if s % 250 == 0:
                out.append((s, run, {**v, "type": Event.ALERT, "t": s, "level": "warn", "code": "grad_vanishing",
                                     "message": f"step {s}: grad norm below 1e-4"}))
    return sorted(out, key=lambda e: e[0])


def _cpu() -> float:
    """user+sys seconds of this process and its children (wandb's service process counts too)."""
    proc = psutil.Process()
    total = sum(proc.cpu_times()[:2])
    for child in proc.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def _drive(outlets: list, runs: int, steps_per_s: float, seconds: float) -> dict:
    """Feed the stream in real time. CPU is reported for the whole feed (tracker start-up included) and
    for its steady part (from a quarter of the way in: tracker runs created, only forwarding left)."""
    steps = int(seconds * steps_per_s)
    stream = _events(runs, steps)
    cpu0, t0 = _cpu(), time.monotonic()
    steady_at, steady = t0 + seconds / 4, None
    for at, source, event in stream:
        wait = t0 + at / steps_per_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        if steady is None and time.monotonic() >= steady_at:
            steady = (_cpu(), time.monotonic())
        for outlet in outlets:
            outlet.on_event(source, event)
    cpu_fed, t_fed = _cpu(), time.monotonic()
    for outlet in outlets:
        outlet.on_event(PIPELINE_ORIGIN, {"v": SCHEMA_VERSION, "type": Event.PIPELINE_END, "t": steps, "status": "completed", "exit_code": 0})
    for outlet in outlets:
        outlet.close(60)
    wall = time.monotonic() - t0
    cpu = _cpu() - cpu0
    steady_pct = 100 * (cpu_fed - steady[0]) / (t_fed - steady[1]) if steady else float("nan")
    return {"events": len(stream), "wall_s": round(wall, 1), "cpu_s": round(cpu, 2),
            "cpu_pct_whole": round(100 * cpu / wall, 2), "cpu_pct_steady": round(steady_pct, 2)}


def bench_supervisor(args: argparse.Namespace) -> dict:
    from cockpit.outlets.notify import Notifier
    from cockpit.outlets.trackers import TrackerFanout, installed_trackers

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"json://127.0.0.1:{server.server_address[1]}/hook"
    results: dict = {"runs": args.runs, "steps/s per run": args.steps_per_s, "seconds": args.seconds}
    os.environ.setdefault("WANDB_MODE", "offline")
    alerts: list = []
    with tempfile.TemporaryDirectory() as tmp:
        results["no outlets"] = _drive([], args.runs, args.steps_per_s, args.seconds)
        for tracker in (args.trackers.split(",") if args.trackers != "all" else installed_trackers()):
            pdir = Path(tmp) / tracker / "20261130-000000-bench"
            pdir.mkdir(parents=True)
            fan = TrackerFanout(pdir, pdir.name)
            stream_config = {"report_to": [tracker]}
            results[tracker] = _drive([_Only(fan, stream_config)], args.runs, args.steps_per_s, args.seconds)
            alerts += fan.drain_alerts()
        pdir = Path(tmp) / "notify" / "20261130-000000-bench"
        pdir.mkdir(parents=True)
        notifier = Notifier([url], [Event.STALL, "failed", "nonfinite_abort", Event.PIPELINE_END, Event.ALERT], pdir, 0.2)
        results["notifier (json://, alerts and the end)"] = _drive([notifier], args.runs, args.steps_per_s,
                                                                   args.seconds)
        alerts += notifier.drain_alerts()
    server.shutdown()
    results["notifications received"] = _Hook.received
    results["outlet alerts"] = alerts
    return results


class _Only:
    """Passes events on with the run config's report_to replaced (one tracker at a time)."""

    def __init__(self, outlet, config: dict) -> None:
        self.outlet, self.config = outlet, config

    def on_event(self, source: str, event: dict) -> None:
        if event.get("type") == Event.RUN_START:
            event = {**event, "config": {**event["config"], **self.config}}
        self.outlet.on_event(source, event)

    def close(self, timeout_s: float) -> None:
        self.outlet.close(timeout_s)


_FORWARD = """
import sys, time, json
from pathlib import Path
from cockpit.outlets.trackers import TrackerFanout
from trainer.contract import Event
from trainer.events import EventReader
run_dir, pdir = Path(sys.argv[1]), Path(sys.argv[2])
fan = TrackerFanout(pdir, pdir.name)
reader = EventReader(run_dir / "events.jsonl")
done = False
while not done:  # the supervisor's loop: read new events every 0.25 s and hand them on
    for e in reader.read_new():
        fan.on_event(run_dir.name, e)
        done = done or e.get("type") == Event.RUN_END
    time.sleep(0.25)
fan.close(60)
print(json.dumps(fan.drain_alerts()))
"""


def _train(out: Path, steps: int, trackers: str | None) -> float:
    cmd = [sys.executable, "-m", "trainer.cli", "--out", str(out), "--model", "minilm", "--device", "cpu",
           "--max-steps", str(steps), "--batch-size", "16", "--max-train-samples", str(16 * steps),
           "--max-eval-samples", "64", "--set", "checkpoint_every_steps=0", "--set", "oversampling=\"none\"",
           "--set", f"report_to={json.dumps(trackers.split(',')) if trackers else json.dumps('none')}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "offline"}
    out.mkdir(parents=True)
    train = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    fwd = None
    if trackers:
        fwd = subprocess.Popen([sys.executable, "-c", _FORWARD, str(out), str(out.parent)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    _, err = train.communicate()
    if train.returncode != 0:
        raise RuntimeError(err[-2000:])
    if fwd is not None:
        fwd.wait(timeout=300)
    rates = [json.loads(line)["samples_per_s"] for line in (out / "events.jsonl").read_text().splitlines()
             if '"type":"step"' in line]
    return statistics.median(rates[5:])  # after warm-up


def bench_trainer(args: argparse.Namespace) -> dict:
    alone, beside = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            alone.append(_train(Path(tmp) / f"alone-{i}" / "run", args.steps, None))
            beside.append(_train(Path(tmp) / f"beside-{i}" / "run", args.steps, args.trackers))
    a, b = statistics.median(alone), statistics.median(beside)
    return {"samples/s alone": [round(x, 2) for x in alone], "samples/s with forwarding": [round(x, 2) for x in beside],
            "median alone": round(a, 2), "median with forwarding": round(b, 2),
            "change": f"{100 * (b - a) / a:+.1f}%",
            "spread alone": f"{100 * (max(alone) - min(alone)) / a:.1f}%"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("supervisor")
    s.add_argument("--seconds", type=float, default=60)
    s.add_argument("--runs", type=int, default=2)
    s.add_argument("--steps-per-s", type=float, default=5)
    s.add_argument("--trackers", default="all", help="comma-separated, or all installed")
    t = sub.add_parser("trainer")
    t.add_argument("--steps", type=int, default=60)
    t.add_argument("--repeats", type=int, default=2)
    t.add_argument("--trackers", default="tensorboard,mlflow,trackio,wandb")
    args = parser.parse_args()
    result = bench_supervisor(args) if args.what == "supervisor" else bench_trainer(args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
