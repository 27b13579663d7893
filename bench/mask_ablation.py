"""Label masks against unobserved-as-negative, measured on GoEmotions itself (issue 8).

We have no licensed copies of ISEAR and friends here, so a pseudo-source is cut out of GoEmotions:
a seeded 30 % of train becomes a `table` source that observes only the seven labels ISEAR maps onto
(joy, fear, anger, sadness, disgust, embarrassment, remorse), keeping its labels for those and hiding
the other 21. The remaining 70 % stays a full goemotions source. Two MiniLM runs, identical but for
`label_masks`, are scored on the full GoEmotions dev split: macro-F1 at 0.2 and with per-label tuned
thresholds, overall and on the 21 labels the pseudo-source hides.

    python bench/mask_ablation.py --out /tmp/mask-ablation [--seed 42] [--max-train 0]

Prints one markdown table (paste into docs/results.md) and writes it to <out>/result.md.
Takes about 2 x 10 minutes on 2 cores (one epoch over all 43k rows each).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from trainer.contract import F1_MACRO
from trainer.data import load_splits
from trainer.metrics import f1_summary, tune_thresholds
from trainer.taxonomy import goemotions_labels

ISEAR_LABELS = ("joy", "fear", "anger", "sadness", "disgust", "embarrassment", "remorse")
SHARE = 0.30


def write_sources(folder: Path, seed: int) -> None:
    """goemotions/ (70 % of train, full dev and test) and pseudo/ (30 % of train, seven labels shown)."""
    names = goemotions_labels()
    keep = [names.index(n) for n in ISEAR_LABELS]
    splits = load_splits("embedded")
    train = splits["train"]
    rng = np.random.default_rng(seed)
    pseudo = np.zeros(len(train), dtype=bool)
    pseudo[rng.choice(len(train), size=int(SHARE * len(train)), replace=False)] = True
    ge = folder / "goemotions"
    ge.mkdir(parents=True, exist_ok=True)
    for name, split, rows in (("train", train, np.flatnonzero(~pseudo)), ("dev", splits["dev"], None),
                              ("test", splits["test"], None)):
        rows = np.arange(len(split)) if rows is None else rows
        with open(ge / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            for i in rows:
                fh.write(json.dumps({"text": split.texts[i], "labels": np.flatnonzero(split.labels[i]).tolist()}) + "\n")
    ps = folder / "pseudo"
    ps.mkdir(parents=True, exist_ok=True)
    # Its dev: GoEmotions dev seen through the same seven labels (scored as the source's own dev eval).
    for name, split, rows in (("train", train, np.flatnonzero(pseudo)), ("dev", splits["dev"], None)):
        rows = np.arange(len(split)) if rows is None else rows
        with open(ps / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            for i in rows:
                shown = [names[j] for j in keep if split.labels[i, j]]
                fh.write(json.dumps({"text": split.texts[i], "labels": shown}) + "\n")
    (folder / "pseudo-map.toml").write_text("[labels]\n" + "".join(f'{n} = ["{n}"]\n' for n in ISEAR_LABELS))


def run(folder: Path, masks: bool, seed: int, max_train: int) -> tuple[Path, float]:
    """Train one arm; an arm whose export is already there is reused (the bench can be rerun after a kill)."""
    out = folder / ("masks" if masks else "negatives")
    done = out / "export" / "dev_probs.npy"
    if done.exists():
        end = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines() if '"run_end"' in line]
        return out, float(end[-1]["wall_s"]) if end else float("nan")
    sources = (f'[{{kind="goemotions", path="{folder / "goemotions"}"}}, '
               f'{{kind="table", name="pseudo", path="{folder / "pseudo"}", label_map="{folder / "pseudo-map.toml"}"}}]')
    cmd = [sys.executable, "-m", "trainer.cli", "--out", str(out), "--set", f"sources={sources}",
           "--set", f"label_masks={'true' if masks else 'false'}", "--set", "model=\"minilm\"",
           "--set", "device=\"cpu\"", "--set", "lr=1e-4", "--set", "head_lr=3e-2", "--set", "batch_size=32",
           "--set", "warmup_ratio=0.06", "--set", "epochs=1", "--set", f"seed={seed}",
           "--set", "checkpoint_every_steps=0", "--set", "loss=\"bce\"", "--set", "export=true",
           "--set", f"max_train_samples={max_train}"]
    t = time.time()
    subprocess.run(cmd, check=True)
    return out, time.time() - t


def scores(run_dir: Path) -> dict[str, float]:
    names = goemotions_labels()
    hidden = [i for i, n in enumerate(names) if n not in ISEAR_LABELS]
    probs = np.load(run_dir / "export" / "dev_probs.npy")
    labels = np.load(run_dir / "export" / "dev_labels.npy").astype(bool)
    tuned = np.asarray(tune_thresholds(probs, labels, default=0.2))
    out = {}
    for part, cols in (("all 28", list(range(28))), ("21 hidden", hidden)):
        out[f"{part} @0.2"] = f1_summary(labels[:, cols], probs[:, cols] >= 0.2)[F1_MACRO]
        out[f"{part} tuned"] = f1_summary(labels[:, cols], probs[:, cols] >= tuned[cols])[F1_MACRO]
    return out


def paired_bootstrap(a: Path, b: Path, n: int = 1000, seed: int = 0) -> dict[str, tuple[float, float]]:
    """95 % interval of the macro-F1@0.2 difference a - b over resampled dev rows (same rows for both):
    how much of the difference dev sampling alone could explain (training noise is not in it)."""
    names = goemotions_labels()
    hidden = [i for i, n_ in enumerate(names) if n_ not in ISEAR_LABELS]
    labels = np.load(a / "export" / "dev_labels.npy").astype(bool)
    pa = np.load(a / "export" / "dev_probs.npy") >= 0.2
    pb = np.load(b / "export" / "dev_probs.npy") >= 0.2
    rng = np.random.default_rng(seed)
    out = {}
    for part, cols in (("all 28 @0.2", list(range(28))), ("21 hidden @0.2", hidden)):
        diffs = []
        for _ in range(n):
            rows = rng.integers(0, len(labels), len(labels))
            y = labels[rows][:, cols]
            diffs.append(f1_summary(y, pa[rows][:, cols])[F1_MACRO] - f1_summary(y, pb[rows][:, cols])[F1_MACRO])
        out[part] = (float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-train", type=int, default=0, help="seeded subset of the combined train (0: all)")
    args = parser.parse_args()
    if not (args.out / "pseudo-map.toml").exists():
        write_sources(args.out, args.seed)
    results = {}
    for masks in (True, False):
        run_dir, wall = run(args.out, masks, args.seed, args.max_train)
        results["masks" if masks else "unobserved = negative"] = (scores(run_dir), wall)
    keys = list(next(iter(results.values()))[0])
    lines = ["| GoEmotions dev macro-F1 | " + " | ".join(keys) + " | wall |",
             "|---|" + "---|" * (len(keys) + 1)]
    for name, (s, wall) in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{s[k]:.4f}" for k in keys) + f" | {wall / 60:.1f} min |")
    (a, _), (b, _) = results.values()
    lines.append("| difference | " + " | ".join(f"{a[k] - b[k]:+.4f}" for k in keys) + " | |")
    ci = paired_bootstrap(args.out / "masks", args.out / "negatives")
    lines.append("| 95 % interval of the difference (paired bootstrap over dev rows) | "
                 + " | ".join(f"[{ci[k][0]:+.4f}, {ci[k][1]:+.4f}]" if k in ci else "" for k in keys) + " | |")
    table = "\n".join(lines)
    (args.out / "result.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
