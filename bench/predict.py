"""goemo-predict's backends on one exported model folder: torch, onnx and onnx-int8 in one run.

    goemo-export-onnx --model runs/<id>/final          # once: adds the ONNX graphs and onnx.json
    python bench/predict.py --model runs/<id>/final [--repeats 3] [--json out.json]

For each backend, in a fresh process of its own (so peak memory is that backend's alone):
  - texts/s: the 5,427 GoEmotions test texts through goemo-predict's own streaming path (labelled_chunks: chunks
    sorted by length, batches of --batch-size, result rows built), model load excluded; the best of --repeats;
  - load s: building the Predictor (model files, tokenizer, sessions);
  - peak RSS of that process (ru_maxrss), after loading and labelling everything (the GoEmotions splits the
    worker reads first are in it, as "before model" shows);
  - test macro-F1 with the thresholds the backend ships (thresholds.json, or its own thresholds.int8.json).
Then the cold start: `python -m trainer.predict --model M --backend B "text"` in a fresh subprocess, wall time from
launch to its first line on stdout (the median of --repeats; the first launch also warms the file cache).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trainer.contract import F1_MACRO  # noqa: E402
from trainer.onnx_backend import BACKENDS, intra_op_threads  # noqa: E402

COLD_TEXT = "thank you so much, this made my day!"


def measure(model: Path, backend: str, batch_size: int, repeats: int) -> dict:
    """One backend's figures, in this process (run it as a worker: the peak RSS is the whole process's)."""
    import numpy as np

    from trainer.onnx_export import _eval_splits
    from trainer.predict import CHUNK_ROWS, Predictor, labelled_chunks
    from trainer.predict_files import Row

    from trainer.export_files import read_export_spec
    from trainer.predict import _members

    splits, why = _eval_splits(read_export_spec(_members(model)[0])["labels"])
    if splits is None:
        raise SystemExit(f"bench/predict.py: {model}: {why}")
    test = splits["test"]
    data_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Python, numpy and the dataset alone
    started = time.perf_counter()
    predictor = Predictor(model, batch_size, backend)
    load_s = time.perf_counter() - started
    rows = [Row(t, {"text": t}, f"test:{i}") for i, t in enumerate(test.texts)]
    timings, results = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        results = [r for _, chunk in labelled_chunks(predictor, rows, CHUNK_ROWS) for r in chunk]
        timings.append(time.perf_counter() - started)
    from trainer.metrics import f1_summary

    predicted = np.array([[n in set(r["labels"]) for n in predictor.names] for r in results])
    threads = intra_op_threads()
    if backend == "torch":
        import torch

        threads = torch.get_num_threads()
    return {"backend": backend, "texts": len(rows), "texts_per_s": len(rows) / min(timings),
            "runs_s": [round(t, 3) for t in timings], "load_s": load_s, "threads": threads,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "data_rss_mb": data_rss_mb,
            "test_f1_macro": f1_summary(test.labels, predicted)[F1_MACRO]}


def cold_start(model: Path, backend: str, repeats: int) -> list[float]:
    """Wall seconds from launching goemo-predict on one text to its first line on stdout, per launch."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "trainer.predict", "--model", str(model), "--backend", backend,
                                 COLD_TEXT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                                env=env)
        assert proc.stdout is not None
        first = proc.stdout.readline()
        times.append(time.perf_counter() - started)
        _, err = proc.communicate()
        if proc.returncode != 0 or not first:
            raise SystemExit(f"bench/predict.py: goemo-predict --backend {backend} failed: {err.strip()}")
    return times


def cpu_name() -> str:
    """The CPU's model name (platform.processor() is empty on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def worker(args: argparse.Namespace) -> dict:
    """Run ``measure`` for one backend in a fresh process and read back its JSON line."""
    res = subprocess.run([sys.executable, __file__, "--model", str(args.model), "--worker", args.worker_backend,
                          "--batch-size", str(args.batch_size), "--repeats", str(args.repeats)],
                         capture_output=True, text=True, cwd=REPO)
    if res.returncode != 0:
        raise SystemExit(f"bench/predict.py: the {args.worker_backend} worker failed: {res.stderr.strip()[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="an exported model folder with its ONNX export")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated (default: all three)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per backend, and cold starts")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--worker", dest="worker_backend", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.worker_backend:
        from trainer.cli import _quiet_libraries

        _quiet_libraries()
        print(json.dumps(measure(args.model, args.worker_backend, args.batch_size, args.repeats)))
        return
    results = []
    for backend in args.backends.split(","):
        args.worker_backend = backend
        figures = worker(args)
        args.worker_backend = None
        figures["cold_start_s"] = cold_start(args.model, backend, args.repeats)
        results.append(figures)
        print(f"{backend}: done", file=sys.stderr)
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores "
          f"({len(os.sched_getaffinity(0))} usable); {args.model}; {results[0]['texts']} test texts, batch "
          f"{args.batch_size}, best of {args.repeats} passes")
    print("| backend | texts/s | cold start to first result (s) | load (s) | peak RSS (MB; before model) | test macro-F1 "
          "| threads |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        cold = statistics.median(r["cold_start_s"])
        print(f"| {r['backend']} | {r['texts_per_s']:,.0f} | {cold:.2f} (runs {', '.join(f'{t:.2f}' for t in r['cold_start_s'])}) "
              f"| {r['load_s']:.2f} | {r['peak_rss_mb']:,.0f} ({r['data_rss_mb']:,.0f}) | {r['test_f1_macro']:.4f} "
              f"| {r['threads']} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
