"""goemo-predict: emotion labels and scores for texts, with the per-label thresholds tuned on dev."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

EXIT_BAD_INPUT = 2


def load_thresholds(model_dir: Path, n_labels: int) -> list[float]:
    path = model_dir / "thresholds.json"
    try:
        data = json.loads(path.read_text())
        thresholds = [float(t) for t in data["thresholds"]]
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found (expected the tuned thresholds of an exported model)") from None
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{path}: expected a JSON object with a 'thresholds' list") from None
    if len(thresholds) != n_labels:
        raise ValueError(f"{path}: {len(thresholds)} thresholds for {n_labels} labels")
    return thresholds


def predict_texts(model_dir: Path, texts: Sequence[str], batch_size: int = 64) -> list[dict]:
    """Scores for every label and the labels whose score reaches its tuned threshold, per text."""
    import torch

    from trainer.models import load_exported

    model, tokenizer, names = load_exported(model_dir)
    thresholds = load_thresholds(model_dir, len(names))
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start:start + batch_size])
            enc = tokenizer(chunk, truncation=True, max_length=128, padding=True, return_tensors="pt")
            probs = torch.sigmoid(model(enc["input_ids"], enc["attention_mask"])).numpy()
            for text, row in zip(chunk, probs):
                scores = {n: round(float(p), 4) for n, p in zip(names, row)}
                labels = [n for n, p, t in zip(names, row, thresholds) if p >= t]
                out.append({"text": text, "labels": sorted(labels, key=lambda n: -scores[n]), "scores": scores})
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="goemo-predict", description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="an exported model folder, e.g. runs/<id>/final")
    parser.add_argument("--json", action="store_true", help="one JSON object per text")
    parser.add_argument("--top", type=int, default=3, help="scores shown per text in the plain output")
    parser.add_argument("texts", nargs="*", help="texts to label (default: one per line on stdin)")
    args = parser.parse_args(argv)
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not (args.model / "goemo_model.json").exists():
        print(f"goemo-predict: error: {args.model}: not an exported model folder (no goemo_model.json)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        from trainer.cli import _quiet_libraries

        _quiet_libraries()
        results = predict_texts(args.model, texts)
    except ValueError as exc:
        print(f"goemo-predict: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for r in results:
        if args.json:
            print(json.dumps(r))
        else:
            top = sorted(r["scores"].items(), key=lambda kv: -kv[1])[: args.top]
            shown = ", ".join(f"{n} {p:.2f}" for n, p in top)
            print(f"{', '.join(r['labels']) or '(none)'}\t[{shown}]\t{r['text']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
