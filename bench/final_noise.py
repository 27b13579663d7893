"""How sure is a difference between two final models? Recomputed from their export folders alone.

    python bench/final_noise.py NAME=EXPORT_DIR [NAME=EXPORT_DIR ...] [--resamples 2000] [--splits 10]
                                [--average A,B]

Each EXPORT_DIR is a folder the trainer exported (`final/`, `final/members/<run>/`, `<run>/export/`):
its dev_probs/test_probs/dev_labels/test_labels .npy. For every model it prints the test macro-F1 at
thresholds tuned on its dev split, that score's spread under a bootstrap of the test rows, and the
cross-fitted dev `tuned_cv` over several split seeds (the pipeline computes it with one, the run's seed).
Then the paired bootstrap difference of the first model against each other one (same resampled rows),
with a 95 % interval. `--average A,B` also scores three rules of averaging two of the models.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trainer.contract import F1_MACRO, PROBS_FILES, THRESHOLDS_FILE  # noqa: E402
from trainer.metrics import tune_thresholds, tuned_cv, tuned_summary  # noqa: E402


def load(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Dev/test probabilities and labels, and the dev-tuned thresholds and default the export ships."""
    dev_p, test_p, dev_y, test_y = (np.load(folder / name) for name in PROBS_FILES)  # the contract's order
    shipped = json.loads((folder / THRESHOLDS_FILE).read_text())
    return (dev_p, test_p, dev_y.astype(bool), test_y.astype(bool), np.asarray(shipped["thresholds"]),
            float(shipped["default"]))


def bootstrap_f1(pred: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Macro-F1 of fixed predictions under each row-count vector of `weights` (resamples x rows).
    Hand-written rather than trainer.metrics.f1_summary per resample: one matrix product scores all
    2,000 resamples at once."""
    tp, fp, fn = weights @ (pred & labels), weights @ (pred & ~labels), weights @ (~pred & labels)
    den = 2 * tp + fp + fn
    return np.where(den > 0, 2 * tp / np.maximum(den, 1e-12), 0.0).mean(axis=1)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="NAME=EXPORT_DIR; the first is compared with each other one")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--splits", type=int, default=10, help="tuned_cv split seeds per model")
    parser.add_argument("--average", default="", help="A,B: two model names to average three ways")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    models = {name: load(Path(path)) for name, _, path in (m.partition("=") for m in args.models)}
    test_y = next(iter(models.values()))[3]
    if any(m[3].shape != test_y.shape or (m[3] != test_y).any() for m in models.values()):
        raise SystemExit("the models were not scored on the same test rows")
    rng = np.random.default_rng(args.seed)
    weights = rng.multinomial(len(test_y), np.full(len(test_y), 1 / len(test_y)), size=args.resamples).astype(float)
    scores = {}
    print(f"| model | test tuned | bootstrap sd | dev tuned_cv, mean of {args.splits} splits | sd |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, (dev_p, test_p, dev_y, _, thresholds, default) in models.items():
        scores[name] = bootstrap_f1(test_p >= thresholds, test_y, weights)
        cv = [tuned_cv(dev_p, dev_y, seed=s, default=default) for s in range(args.splits)]
        point = tuned_summary(test_p, test_y, thresholds)[F1_MACRO]
        print(f"| {name} | {point:.4f} | {scores[name].std():.4f} | {np.mean(cv):.4f} | {np.std(cv):.4f} |")
    first = next(iter(scores))
    for name, other in list(scores.items())[1:]:
        diff = scores[first] - other
        print(f"{first} - {name}: {diff.mean():+.4f}, 95% interval [{np.percentile(diff, 2.5):+.4f}, "
              f"{np.percentile(diff, 97.5):+.4f}]")
    if args.average:
        a, b = (models[n] for n in args.average.split(","))
        ta, tb = a[4], b[4]
        sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
        rules = {
            "mean of probabilities": lambda i: (a[i] + b[i]) / 2,
            "mean of logits": lambda i: sigmoid((logit(a[i]) + logit(b[i])) / 2),
            "mean of logits shifted by each member's thresholds":
                lambda i: sigmoid((logit(a[i]) - logit(ta) + logit(b[i]) - logit(tb)) / 2),
        }
        for rule, avg in rules.items():
            dev_p, test_p = avg(0), avg(1)
            thresholds = tune_thresholds(dev_p, a[2], default=a[5])
            print(f"{rule}: test tuned {tuned_summary(test_p, test_y, thresholds)[F1_MACRO]:.4f}")


if __name__ == "__main__":
    main()
