"""bf16 training throughput of the DeBERTa-v3-large shape on one GPU (see gpu_check.sh).

Token ids are hashed word pieces of real GoEmotions comments (the DeBERTa tokenizer needs the network),
so batch shapes and padding match real training while the ids themselves are arbitrary.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import math
import re
import time
import zlib
from pathlib import Path

import torch
from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

DATA = Path(__file__).resolve().parents[1] / "trainer" / "resources" / "goemotions" / "train.tsv.gz"
# Dense bf16 tensor-core peaks (TFLOPS) by card name; --peak-tflops overrides.
PEAKS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0, "4090": 165.0,
         "A6000": 155.0, "V100": 125.0}


def deberta_v3_large_config() -> DebertaV2Config:
    """The published microsoft/deberta-v3-large configuration, 28 multi-label outputs."""
    return DebertaV2Config(
        vocab_size=128100, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, max_position_embeddings=512,
        type_vocab_size=0, relative_attention=True, max_relative_positions=-1, position_buckets=256,
        norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type=["p2c", "c2p"], position_biased_input=False,
        layer_norm_eps=1e-7, pooler_hidden_size=1024, pooler_hidden_act="gelu", pooler_dropout=0, pad_token_id=0,
        num_labels=28, problem_type="multi_label_classification",
    )


def goemotions_batches(batch_size: int, max_length: int = 128) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    rows = []
    with gzip.open(DATA, "rt", encoding="utf-8", newline="") as fh:
        for text, labels, *_ in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            pieces = re.findall(r"\w{1,6}|[^\w\s]", text.lower())  # ~DeBERTa's pieces per word
            ids = [1] + [3 + zlib.crc32(p.encode()) % 128000 for p in pieces][: max_length - 2] + [2]
            rows.append((ids, [int(x) for x in labels.split(",")]))
    rows.sort(key=lambda r: len(r[0]))  # length-grouped, as goemo-train batches them
    g = torch.Generator().manual_seed(0)
    starts = torch.randperm(len(rows) // batch_size, generator=g).tolist()
    out = []
    for s in starts:
        chunk = rows[s * batch_size:(s + 1) * batch_size]
        width = -(-max(len(r[0]) for r in chunk) // 8) * 8
        ids = torch.zeros(len(chunk), width, dtype=torch.long)
        mask = torch.zeros_like(ids)
        y = torch.zeros(len(chunk), 28)
        for i, (t, labels) in enumerate(chunk):
            ids[i, : len(t)] = torch.tensor(t)
            mask[i, : len(t)] = 1
            y[i, labels] = 1
        out.append((ids, mask, y))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--peak-tflops", type=float)
    parser.add_argument("--device", default="cuda", help="cuda (the check); cpu only proves the script runs")
    args = parser.parse_args()
    dev = torch.device(args.device)
    on_cuda = dev.type == "cuda"
    if on_cuda:
        assert torch.cuda.is_available(), "no CUDA device"
        torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name(0) if on_cuda else "CPU"
    sync = torch.cuda.synchronize if on_cuda else (lambda: None)
    torch.manual_seed(0)
    model = DebertaV2ForSequenceClassification(deberta_v3_large_config()).to(dev)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-5, weight_decay=0.01, fused=on_cuda or None)
    lossf = torch.nn.BCEWithLogitsLoss()
    batches = goemotions_batches(args.batch_size)
    n_params = sum(p.numel() for p in model.parameters())
    n_embed = model.deberta.embeddings.word_embeddings.weight.numel()
    cfg = model.config
    finite, samples, real_tokens, flops, seconds = True, 0, 0, 0.0, 0.0
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    for i in range(args.warmup + args.steps):
        ids, mask, y = (t.to(dev, non_blocking=True) for t in batches[i % len(batches)])
        sync()
        t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            logits = model(input_ids=ids, attention_mask=mask).logits
        loss = lossf(logits.float(), y)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        dt = time.perf_counter() - t0
        finite &= math.isfinite(loss.item()) and math.isfinite(norm.item())
        if i >= args.warmup:
            b, s = ids.shape
            seconds += dt
            samples += b
            real_tokens += int(mask.sum())
            # 6·N per computed token for the dense layers, plus QK^T and AV (x3 for backward); DeBERTa's
            # extra c2p/p2c attention terms are not counted, so this MFU is a lower bound.
            flops += 6 * (n_params - n_embed) * b * s + 3 * 4 * cfg.num_hidden_layers * cfg.hidden_size * b * s * s
    peak = args.peak_tflops or (next((v for k, v in PEAKS.items() if k in name), None) if on_cuda else None)
    achieved = flops / seconds / 1e12
    print(f"card: {name}")
    print(f"model: deberta-v3-large shape, {n_params / 1e6:.0f}M params, bf16 autocast, {'fused ' if on_cuda else ''}AdamW, "
          f"gradient checkpointing {'on' if args.gradient_checkpointing else 'off'}, batch {args.batch_size}")
    print(f"samples/s: {samples / seconds:.1f}")
    print(f"tokens/s (real, non-padding): {real_tokens / seconds:.0f}")
    print(f"achieved: {achieved:.1f} TFLOPS; MFU: " + (f"{100 * achieved / peak:.1f}% of {peak:.0f} TFLOPS bf16 peak"
                                                         if peak else "unknown peak (pass --peak-tflops)"))
    if on_cuda:
        print(f"peak memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    print(f"losses and gradients finite: {finite}")


if __name__ == "__main__":
    main()
