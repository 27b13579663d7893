"""goemo-predict: emotion labels and scores for texts, with the per-label thresholds tuned on dev.

An ensemble folder (ensemble.json beside thresholds.json, one exported model per member under
members/) scores each text with every member and averages the probabilities, as the pipeline did when
it tuned the thresholds. Texts are tokenised as in training: truncated to the ``max_length`` the export's
thresholds.json records (128 for exports made before it was recorded)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Sequence

from trainer.contract import ENSEMBLE_FILE, EXIT_BAD_INPUT, EXIT_OK, MODEL_META_FILE, THRESHOLDS_FILE
from trainer.export_files import read_max_length
from trainer.file_reads import read_json

# The tokenizer encodes a whole text before it truncates (a 12 MB line took 2.27 GB), so texts are cut
# first. Subword pieces of English average about 4 characters and vocabularies hold few over 20, so 64
# characters per token keep every character the kept tokens come from; only a text whose first
# max_length tokens average more (long runs of spaces, words too long for the vocabulary) loses some.
CHARS_PER_TOKEN_BOUND = 64


def clip_text(text: str, max_length: int) -> str:
    """``text`` without the characters that lie beyond what ``max_length`` tokens can hold."""
    return text[: max_length * CHARS_PER_TOKEN_BOUND]


def load_thresholds(model_dir: Path, names: Sequence[str]) -> list[float]:
    """The per-label thresholds tuned on dev: one number in [0, 1] per label, in the model's label order."""
    path = model_dir / THRESHOLDS_FILE
    shape = f"a JSON object with a 'thresholds' list of {len(names)} numbers in [0, 1], one per label"
    expected = f"expected {shape}"
    if not path.exists():
        raise ValueError(f"{path}: file not found (expected the tuned thresholds of an exported model)")
    data = read_json(path, shape)
    raw = data.get("thresholds") if isinstance(data, dict) else None
    if not isinstance(raw, list):
        raise ValueError(f"{path}: no 'thresholds' list; {expected}")
    if len(raw) != len(names):
        raise ValueError(f"{path}: {len(raw)} thresholds for {len(names)} labels; {expected}")
    for i, t in enumerate(raw):
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (math.isfinite(t) and 0.0 <= t <= 1.0):
            raise ValueError(f"{path}: threshold {i} ({names[i]}) is {t!r}, not a number in [0, 1]; {expected}")
    labels = data.get("labels")
    if labels is not None and labels != list(names):
        raise ValueError(f"{path}: its 'labels' differ from the model's in {MODEL_META_FILE}; "
                         "expected the thresholds exported with this model")
    return [float(t) for t in raw]


def _members(model_dir: Path) -> list[Path]:
    """The model folders whose probabilities are averaged: the members of an ensemble, or the folder itself."""
    if not (model_dir / ENSEMBLE_FILE).is_file():
        return [model_dir]
    from trainer.ensemble import member_dirs

    ensemble = read_json(model_dir / ENSEMBLE_FILE, "the member list of an exported ensemble")
    if not isinstance(ensemble, dict):
        raise ValueError(f"{model_dir / ENSEMBLE_FILE}: expected a JSON object with a 'members' list")
    return member_dirs(model_dir, ensemble)


def predict_texts(model_dir: Path, texts: Sequence[str], batch_size: int = 64) -> list[dict]:
    """Scores for every label and the labels whose score reaches its tuned threshold, per text."""
    import numpy as np
    import torch

    from trainer.models import load_exported

    members = _members(model_dir)
    max_length = read_max_length(model_dir)  # the ensemble's members share it (trainer/ensemble.py checks)
    clipped = [clip_text(t, max_length) for t in texts]
    probs = None
    names: list[str] = []
    for member in members:
        model, tokenizer, member_names = load_exported(member)
        if names and member_names != names:
            raise ValueError(f"{member}: its labels differ from the first member's; expected members of one ensemble")
        names = member_names
        chunks = []
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                enc = tokenizer(clipped[start:start + batch_size], truncation=True, max_length=max_length,
                                padding=True, return_tensors="pt")
                chunks.append(torch.sigmoid(model(enc["input_ids"], enc["attention_mask"])).numpy())
        member_probs = np.concatenate(chunks) if chunks else np.zeros((0, len(names)), dtype=np.float32)
        probs = member_probs if probs is None else probs + member_probs
    assert probs is not None  # _members returns at least one folder
    probs = probs / len(members)
    thresholds = load_thresholds(model_dir, names)
    out = []
    for text, row in zip(texts, probs):
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
    if not any((args.model / f).is_file() for f in (MODEL_META_FILE, ENSEMBLE_FILE)):  # before reading stdin
        print(f"goemo-predict: error: {args.model}: not an exported model folder (no {MODEL_META_FILE} "
              f"or {ENSEMBLE_FILE})", file=sys.stderr)
        return EXIT_BAD_INPUT
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    try:
        from trainer.cli import _quiet_libraries

        _quiet_libraries()
        results = predict_texts(args.model, texts)
    except ValueError as exc:  # ModelError included: one line naming the file and what was expected
        print(f"goemo-predict: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for r in results:
        if args.json:
            print(json.dumps(r))
        else:
            top = sorted(r["scores"].items(), key=lambda kv: -kv[1])[: args.top]
            shown = ", ".join(f"{n} {p:.2f}" for n, p in top)
            print(f"{', '.join(r['labels']) or '(none)'}\t[{shown}]\t{r['text']}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
