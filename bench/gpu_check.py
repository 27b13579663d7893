"""bf16 training throughput of the DeBERTa-v3-large shape on one GPU (see gpu_check.sh), with row batches and
with token-budget batches (goemo-train's max_tokens_per_batch), optionally torch.compile'd.

    python bench/gpu_check.py [--batch-size 32 8x2] [--max-tokens-per-batch 16384] [--compile] [--steps 30]

Each setting is measured on the same model, one after another: samples/s, real tokens/s, achieved TFLOPS and
MFU, the GPU's utilisation while it ran (NVML through torch.cuda.utilization; needs nvidia-ml-py), the mean
rows per optimizer step and the peak memory. ``8x2`` is 8 rows a micro-batch, 2 micro-batches a step (the
deberta-v3-large preset's batch_size and grad_accum).

Token ids are hashed word pieces of real GoEmotions comments (the DeBERTa tokenizer needs the network),
so batch shapes and padding match real training while the ids themselves are arbitrary.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import math
import re
import sys
import threading
import time
import zlib
from pathlib import Path

import torch
from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "trainer" / "resources" / "goemotions" / "train.tsv.gz"
# Dense bf16 tensor-core peaks (TFLOPS) by card name; --peak-tflops overrides.
PEAKS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0, "4090": 165.0,
         "A6000": 155.0, "V100": 125.0}
PAD_MULTIPLE = 8  # as goemo-train pads on CUDA

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # input ids, attention mask, multi-hot labels


def deberta_v3_large_config(layers: int = 24) -> DebertaV2Config:
    """The published microsoft/deberta-v3-large configuration, 28 multi-label outputs."""
    return DebertaV2Config(
        vocab_size=128100, hidden_size=1024, num_hidden_layers=layers, num_attention_heads=16, intermediate_size=4096,
        hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, max_position_embeddings=512,
        type_vocab_size=0, relative_attention=True, max_relative_positions=-1, position_buckets=256,
        norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type=["p2c", "c2p"], position_biased_input=False,
        layer_norm_eps=1e-7, pooler_hidden_size=1024, pooler_hidden_act="gelu", pooler_dropout=0, pad_token_id=0,
        num_labels=28, problem_type="multi_label_classification",
    )


def goemotions_rows(max_length: int = 128) -> list[tuple[list[int], list[int]]]:
    """(token ids, label ids) of every GoEmotions train row, sorted by length."""
    rows = []
    with gzip.open(DATA, "rt", encoding="utf-8", newline="") as fh:
        for text, labels, *_ in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            pieces = re.findall(r"\w{1,6}|[^\w\s]", text.lower())  # ~DeBERTa's pieces per word
            ids = [1] + [3 + zlib.crc32(p.encode()) % 128000 for p in pieces][: max_length - 2] + [2]
            rows.append((ids, [int(x) for x in labels.split(",")]))
    rows.sort(key=lambda r: len(r[0]))
    return rows


def to_tensors(chunk: list[tuple[list[int], list[int]]]) -> Batch:
    width = -(-max(len(r[0]) for r in chunk) // PAD_MULTIPLE) * PAD_MULTIPLE
    ids = torch.zeros(len(chunk), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    y = torch.zeros(len(chunk), 28)
    for i, (t, labels) in enumerate(chunk):
        ids[i, : len(t)] = torch.tensor(t)
        mask[i, : len(t)] = 1
        y[i, labels] = 1
    return ids, mask, y


def row_batches(rows: list, batch_size: int, count: int) -> list[Batch]:
    """``count`` length-grouped batches of ``batch_size`` rows (contiguous runs of the sorted rows, in a seeded
    random order), as goemo-train's row batches are."""
    g = torch.Generator().manual_seed(0)
    starts = torch.randperm(len(rows) // batch_size, generator=g).tolist()[:count]
    return [to_tensors(rows[s * batch_size:(s + 1) * batch_size]) for s in starts]


def budget_batches(rows: list, max_tokens: int, count: int) -> list[Batch]:
    """``count`` token-budget batches in goemo-train's own order (trainer.batches, seed 0, epoch 0)."""
    import numpy as np

    sys.path.insert(0, str(REPO))
    from trainer.batches import token_budget_batches

    lengths = np.array([len(r[0]) for r in rows])
    batches = token_budget_batches(lengths, max_tokens, seed=0, epoch=0, multiple_of=PAD_MULTIPLE)
    return [to_tensors([rows[i] for i in b]) for b in batches[:count]]


class Utilisation:
    """The GPU's utilisation (NVML's percent of time a kernel ran), sampled every 0.2 s while it is open."""

    def __init__(self, on_cuda: bool) -> None:
        self.samples: list[float] = []
        self.error: str | None = None if on_cuda else "no GPU"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.samples.append(float(torch.cuda.utilization()))
            except Exception as exc:  # no pynvml (ModuleNotFoundError), or NVML refused
                self.error = f"unknown ({type(exc).__name__}: pip install nvidia-ml-py)"
                return

    def __enter__(self) -> "Utilisation":
        if self.error is None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def text(self) -> str:
        if self.error or not self.samples:
            return f"GPU util {self.error or 'unknown (no sample)'}"
        return f"GPU util {sum(self.samples) / len(self.samples):.0f}% (mean of {len(self.samples)} samples)"


def measure(model: torch.nn.Module, batches: list[Batch], accum: int, warmup: int, steps: int,
            dev: torch.device, peak: float | None) -> tuple[str, bool]:
    """Time ``steps`` optimizer steps of ``accum`` micro-batches each after ``warmup`` untimed ones."""
    on_cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if on_cuda else (lambda: None)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-5, weight_decay=0.01, fused=on_cuda or None)
    lossf = torch.nn.BCEWithLogitsLoss()
    n_params = sum(p.numel() for p in model.parameters())
    n_embed = model.deberta.embeddings.word_embeddings.weight.numel()
    cfg = model.config
    finite, samples, real_tokens, flops, seconds, first_s = True, 0, 0, 0.0, 0.0, 0.0
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    util = Utilisation(on_cuda)
    for i in range(warmup + steps):
        if i == warmup:
            util.__enter__()
        micro = [tuple(t.to(dev, non_blocking=True) for t in batches[(i * accum + k) % len(batches)])
                 for k in range(accum)]
        sync()
        t0 = time.perf_counter()
        for ids, mask, y in micro:
            with torch.autocast(dev.type, dtype=torch.bfloat16):
                logits = model(input_ids=ids, attention_mask=mask).logits
            loss = lossf(logits.float(), y) / accum
            loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        dt = time.perf_counter() - t0
        finite &= math.isfinite(loss.item()) and math.isfinite(norm.item())
        if i == 0:
            first_s = dt
        if i >= warmup:
            seconds += dt
            for ids, mask, _ in micro:
                b, s = ids.shape
                samples += b
                real_tokens += int(mask.sum())
                # 6·N per computed token for the dense layers, plus QK^T and AV (x3 for backward); DeBERTa's
                # extra c2p/p2c attention terms are not counted, so this MFU is a lower bound.
                flops += 6 * (n_params - n_embed) * b * s + 3 * 4 * cfg.num_hidden_layers * cfg.hidden_size * b * s * s
    util.__exit__()
    achieved = flops / seconds / 1e12
    mfu = f"MFU {100 * achieved / peak:.1f}% of {peak:.0f}" if peak else "MFU unknown (pass --peak-tflops)"
    memory = f" | peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if on_cuda else ""
    del opt
    return (f"samples/s {samples / seconds:.1f} | tokens/s {real_tokens / seconds:.0f} (real) | "
            f"{achieved:.1f} TFLOPS, {mfu} | {util.text()} | rows/step {samples / steps:.1f} | "
            f"step {1000 * seconds / steps:.0f} ms | first step {first_s:.1f} s{memory}"), finite


def row_setting(text: str) -> tuple[int, int]:
    """``32`` -> (32, 1); ``8x2`` -> (8, 2): rows a micro-batch, micro-batches a step."""
    rows, _, accum = text.partition("x")
    try:
        value = int(rows), int(accum or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or NxG (rows x grad_accum), got {text!r}") from None
    if min(value) < 1:
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=row_setting, nargs="*", default=[(32, 1)], metavar="N[xG]",
                        help="row batches to measure: N rows, G micro-batches a step (default 32)")
    parser.add_argument("--max-tokens-per-batch", type=int, nargs="*", default=[], metavar="N",
                        help="token budgets to measure after the row batches (goemo-train's batching)")
    parser.add_argument("--steps", type=int, default=30, help="timed optimizer steps per setting")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation happens here)")
    parser.add_argument("--compile", action="store_true", help="model.compile(dynamic=True), as compile = true")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--peak-tflops", type=float)
    parser.add_argument("--device", default="cuda", help="cuda (the check); cpu only proves the script runs")
    parser.add_argument("--layers", type=int, default=24, help="fewer only to prove the script runs (24: the shape)")
    args = parser.parse_args()
    dev = torch.device(args.device)
    on_cuda = dev.type == "cuda"
    if on_cuda:
        assert torch.cuda.is_available(), "no CUDA device"
        torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name(0) if on_cuda else "CPU"
    torch.manual_seed(0)
    model = DebertaV2ForSequenceClassification(deberta_v3_large_config(args.layers)).to(dev)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if args.compile:
        model.compile(dynamic=True)
    model.train()
    peak = args.peak_tflops or (next((v for k, v in PEAKS.items() if k in name), None) if on_cuda else None)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"card: {name}")
    shape = "deberta-v3-large shape" if args.layers == 24 else f"deberta-v3-large, {args.layers} of its 24 layers"
    print(f"model: {shape}, {n_params / 1e6:.0f}M params, bf16 autocast, {'fused ' if on_cuda else ''}"
          f"AdamW, gradient checkpointing {'on' if args.gradient_checkpointing else 'off'}, "
          f"torch.compile {'on (dynamic)' if args.compile else 'off'}; {args.steps} timed steps after {args.warmup}")
    rows = goemotions_rows()
    need = args.warmup + args.steps
    all_finite = True
    for batch_size, accum in args.batch_size:
        line, finite = measure(model, row_batches(rows, batch_size, need * accum), accum, args.warmup, args.steps,
                               dev, peak)
        all_finite &= finite
        print(f"rows {batch_size}" + (f"x{accum}" if accum > 1 else "") + f": {line}", flush=True)
    for budget in args.max_tokens_per_batch:
        line, finite = measure(model, budget_batches(rows, budget, need), 1, args.warmup, args.steps, dev, peak)
        all_finite &= finite
        print(f"tokens {budget}: {line}", flush=True)
    print(f"losses and gradients finite: {all_finite}")


if __name__ == "__main__":
    main()
