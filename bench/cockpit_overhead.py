"""What the cockpit costs: import time, first frame, following live runs, memory after a big replay.

    python bench/cockpit_overhead.py [--seconds 60] [--events 1000000] [--runs 5] [--rate 20]

Every measurement runs in a fresh subprocess so imports and caches are cold:

1. import: wall time of `import cockpit.app, cockpit.state, cockpit.tail, trainer.devices,
   cockpit.pipeline.control` inside the interpreter (interpreter start excluded); median of 3.
2. first frame: `make_app(folder)` on the fake finished pipeline of the tests, run headless at
   160x48, until the tail has read every file, the snapshot is published and the screen has
   been repainted once (Pilot.pause). Reported from process start (imports included) and
   from `App.run()` alone.
3. live follow: N runs each get `--rate` events/s appended (steps, an eval every 50 steps) for
   `--seconds`; the headless app (default telemetry sampler, default TEXTUAL_FPS) follows them.
   Its CPU% (of one core) is sampled once a second with psutil: median and max; RSS max.
4. replay: a folder of `--events` events (5 runs) is read by PipelineTail into PipelineState,
   the state model alone; RSS and time after it. Then the headless app attaches to the same
   folder: time until caught up and its RSS (the app bounds queued chunks, so this is flat too).

Results depend on the machine and its load; nothing here is hardcoded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "cockpit")]

import fake_pipeline as fp  # noqa: E402
from trainer.contract import Event  # noqa: E402

PY = sys.executable
MB = 1024 * 1024


def run_py(code: str, timeout: float = 600) -> dict:
    """Run code in a fresh interpreter at the repo root; it prints one JSON line last."""
    out = subprocess.run([PY, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                         timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_import() -> float:
    code = """
    import json, time
    t = time.perf_counter()
    import cockpit.app, cockpit.state, cockpit.tail, trainer.devices, cockpit.pipeline.control
    print(json.dumps({"s": time.perf_counter() - t}))
    """
    return statistics.median(run_py(code)["s"] for _ in range(3))


APP_SNIPPET = """
import asyncio, json, os, sys, time
T_PROCESS = time.perf_counter()
sys.path.insert(0, "tests/cockpit")
from pathlib import Path
import psutil
from cockpit.app import make_app
"""


def bench_first_frame(folder: Path) -> dict:
    code = APP_SNIPPET + f"""
app = make_app(Path({str(folder)!r}), Path({str(folder.parent)!r}))
result = {{}}

async def auto(pilot):
    while not app.caught_up:
        await asyncio.sleep(0.005)
    await pilot.pause()
    result["first_frame_s"] = time.perf_counter() - T_PROCESS
    result["from_run_s"] = time.perf_counter() - T_RUN
    app.exit()

T_RUN = time.perf_counter()
app.run(headless=True, size=(160, 48), auto_pilot=auto)
print(json.dumps(result))
"""
    return run_py(code)


def bench_live(runs: int, rate: float, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "20261201-000000-bench"
        names = [f"p1-live{i}" for i in range(runs)]
        pl = folder / "pipeline.jsonl"
        fp.append(pl, Event.PIPELINE_START, time.time(), pipeline=folder.name, preset="bench", phases=[1],
                  devices=["cpu"])
        fp.append(pl, Event.PHASE_START, time.time(), phase=1, name="screen", runs=names)
        for name in names:
            fp.append(pl, Event.RUN_LAUNCH, time.time(), run=name, device="cpu", pid=1, attempt=1)
            fp.append(folder / name / "events.jsonl", Event.RUN_START, time.time(), run=name, config=fp.config(name, "asl"),
                      model="tiny", n_params=1, device="cpu", world_size=1, pid=1, resumed_from_step=None)
        code = APP_SNIPPET + f"""
app = make_app(Path({str(folder)!r}), Path({tmp!r}))

async def auto(pilot):
    await asyncio.sleep({seconds + 3.0})
    app.exit()

app.run(headless=True, size=(160, 48), auto_pilot=auto)
print(json.dumps({{}}))
"""
        proc = subprocess.Popen([PY, "-c", textwrap.dedent(code)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        stop = threading.Event()

        def write() -> None:
            rng = fp.random.Random(0)
            step = 0
            period = 1.0 / rate
            next_t = time.monotonic()
            while not stop.is_set():
                step += 1
                for name in names:
                    path = folder / name / "events.jsonl"
                    if step % 50 == 0:
                        fp.append(path, "eval", time.time(), **fp.eval_event(rng, step, step / 1000, 0.4))
                    else:
                        fp.append(path, "step", time.time(), step=step, epoch=step / 1000, loss=0.5 + rng.random() / 10,
                                  lr=1e-4, grad_norm=1.0, samples_per_s=32.0, tokens_per_s=2000.0, step_time_s=period,
                                  nonfinite_skipped=0)
                next_t += period
                stop.wait(max(next_t - time.monotonic(), 0))

        writer = threading.Thread(target=write, daemon=True)
        ps = psutil.Process(proc.pid)
        time.sleep(2.0)  # imports and first replay are measured in (2), not here
        writer.start()
        ps.cpu_percent(None)
        cpu, rss = [], []
        end = time.monotonic() + seconds
        while time.monotonic() < end and proc.poll() is None:
            time.sleep(1.0)
            try:
                cpu.append(ps.cpu_percent(None))
                rss.append(ps.memory_info().rss / MB)
            except psutil.Error:
                break
        stop.set()
        writer.join()
        proc.wait(timeout=30)
        if proc.returncode:
            raise RuntimeError(proc.stderr.read()[-2000:] if proc.stderr else "app failed")
        return {"cpu_median": statistics.median(cpu), "cpu_max": max(cpu), "rss_max": max(rss),
                "events_per_s": runs * rate, "samples": len(cpu)}


def bench_replay(n_events: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "20261201-000000-replay"
        per_run = n_events // 5
        for i in range(5):
            fp.write_bulk_run(folder, f"p1-r{i}", per_run, seed=i)
        size_mb = sum(p.stat().st_size for p in folder.rglob("events.jsonl")) / MB
        state_code = f"""
        import json, time, psutil
        from cockpit.state import PipelineState
        from cockpit.tail import replay
        t = time.perf_counter()
        state = PipelineState()
        replay({str(folder)!r}, state.apply_batch)
        snap = state.snapshot(0)
        print(json.dumps({{"s": time.perf_counter() - t, "rss": psutil.Process().memory_info().rss / {MB},
                          "steps": sum(r.step for r in snap.runs)}}))
        """
        state = run_py(state_code)
        app_code = APP_SNIPPET + f"""
app = make_app(Path({str(folder)!r}), Path({tmp!r}))
result = {{}}
peak = [0.0]

async def auto(pilot):
    me = psutil.Process()
    while not app.caught_up:
        peak[0] = max(peak[0], me.memory_info().rss / {MB})
        await asyncio.sleep(0.05)
    await pilot.pause()
    result["s"] = time.perf_counter() - T_RUN
    result["rss"] = me.memory_info().rss / {MB}
    result["rss_peak"] = max(peak[0], result["rss"])
    app.exit()

T_RUN = time.perf_counter()
app.run(headless=True, size=(160, 48), auto_pilot=auto)
print(json.dumps(result))
"""
        app = run_py(app_code, timeout=1200)
        return {"state": state, "app": app, "size_mb": size_mb, "events": per_run * 5}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="duration of the live-follow test")
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the replay test")
    parser.add_argument("--runs", type=int, default=5, help="live runs to follow")
    parser.add_argument("--rate", type=float, default=20.0, help="events per second per live run")
    args = parser.parse_args()

    rows: list[tuple[str, str, str, bool | None]] = []
    imp = bench_import()
    rows.append(("import cockpit modules", f"{imp:.3f} s", "≤ 0.4 s", imp <= 0.4))
    with tempfile.TemporaryDirectory() as tmp:
        folder = fp.write_fake_pipeline(Path(tmp) / "runs")
        first = bench_first_frame(folder)
    rows.append(("attach → first full frame (process start)", f"{first['first_frame_s']:.3f} s", "≤ 1.0 s",
                 first["first_frame_s"] <= 1.0))
    rows.append(("  of which App.run() → first full frame", f"{first['from_run_s']:.3f} s", "", None))
    live = bench_live(args.runs, args.rate, args.seconds)
    rows.append((f"follow {args.runs} runs × {args.rate:g} ev/s for {args.seconds:g} s: CPU median",
                 f"{live['cpu_median']:.1f} % (max {live['cpu_max']:.1f} %)", "≤ 5 % of a core",
                 live["cpu_median"] <= 5.0))
    rows.append(("  RSS (max)", f"{live['rss_max']:.0f} MB", "≤ 200 MB", live["rss_max"] <= 200))
    rep = bench_replay(args.events)
    rows.append((f"replay {rep['events']:,} events ({rep['size_mb']:.0f} MB), state model: RSS",
                 f"{rep['state']['rss']:.0f} MB in {rep['state']['s']:.1f} s", "≤ 300 MB",
                 rep["state"]["rss"] <= 300))
    rows.append(("  same folder, app attach: RSS (peak) / time to caught up",
                 f"{rep['app']['rss']:.0f} MB ({rep['app']['rss_peak']:.0f}) / {rep['app']['s']:.1f} s", "≤ 300 MB",
                 rep["app"]["rss_peak"] <= 300))

    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'result':<28} {'target':<16} ok")
    for name, value, target, ok in rows:
        mark = "" if ok is None else ("yes" if ok else "NO")
        print(f"{name:<{width}}  {value:<28} {target:<16} {mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
