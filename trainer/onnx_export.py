"""goemo-export-onnx: add ONNX Runtime backends to an exported model folder (a ``final/``), ensembles included.

For the model (each member of an ensemble, under members/<run>/, so the averaging rule stays in goemo-predict)
it writes ``model.onnx`` (torch.onnx's TorchScript exporter: input_ids and attention_mask in, as the tokenizer
gives them, with dynamic batch and sequence axes; sigmoid probabilities out) and ``model.int8.onnx`` (ONNX
Runtime's dynamic quantisation, int8 weights). Then it scores torch, onnx and onnx-int8 through goemo-predict's
own code on the GoEmotions test split shipped with the package (folded to the model's taxonomy), each with the
thresholds it ships: each member's fp32 graph must match its torch probabilities; when int8 with the shipped
thresholds falls more than 0.005 below torch, thresholds are tuned for it on dev and shipped as
``thresholds.int8.json``. ``onnx.json`` records the files, max_length, the opset and each backend's test macro-F1
(goemo-predict's default backend rule reads it), and the model card gains a table of the backends.

Needs the onnx extra (``pip install 'goemo-cockpit[onnx]'``): onnxruntime and onnx.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from trainer.contract import (ENSEMBLE_FILE, EXIT_BAD_INPUT, EXIT_OK, INT8_THRESHOLDS_FILE, MODEL_CARD_FILE,
                              MODEL_META_FILE, ONNX_META_FILE, THRESHOLDS_FILE, F1_MACRO, TMP_SUFFIX, WEIGHTS_FILE)
from trainer.durable import write_atomic, write_json_atomic
from trainer.ensemble_average import average_members
from trainer.export_files import read_export_spec, read_max_length, write_thresholds
from trainer.file_reads import read_json
from trainer.onnx_backend import (BACKEND_FILES, BACKEND_INT8, BACKEND_ONNX, BACKEND_TORCH, BACKENDS, F1_TOLERANCE,
                                  INPUT_NAMES, META_FORMAT, ONNX_EXTRA_HINT, OUTPUT_NAME, default_backend,
                                  read_onnx_meta)

# The TorchScript exporter's newest well-trodden opset that onnxruntime's quantiser and CPU kernels all cover.
DEFAULT_OPSET = 17
# The fp32 graph must give torch's probabilities: float32 rounding differs by ~1e-7; a shape baked into the
# trace (a sequence length the graph does not follow) would differ by far more.
EXACT_TOLERANCE = 1e-4
# Two texts of different lengths: the traced batch holds padding, so the attention mask's path is in the graph.
TRACE_TEXTS = ("thanks!", "thank you so much, this is great and I will never forget it")
SCORED_SPLIT = "test"
TUNING_SPLIT = "dev"
CARD_HEADING = "## Backends"


class ExportError(ValueError):
    """An export that cannot be made or does not match its torch model: one line naming the file."""


def _members(model_dir: Path) -> list[Path]:
    from trainer.predict import _members as members

    return members(model_dir)


class ProbabilityGraph(torch.nn.Module):
    """The classifier with its sigmoid, as the graph to trace: goemo-predict averages the members' probabilities
    by the ensemble's rule (trainer/ensemble_average.py), whichever backend gave them."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(input_ids, attention_mask))


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP_SUFFIX}")


def export_member(member: Path, max_length: int, opset: int = DEFAULT_OPSET) -> tuple[int, str]:
    """model.onnx and model.int8.onnx beside one model's safetensors; returns the tokenizer's (pad id, pad token)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from trainer.models import load_exported

    model, tokenizer, _ = load_exported(member)
    # Attention as plain matmuls: on a 2-core Xeon, ORT ran this graph ~7 % faster than the decomposed SDPA one,
    # with the same probabilities (1e-6). Models without the choice (DeBERTa-v2) trace as they are.
    with contextlib.suppress(AttributeError, ValueError):
        model.backbone.set_attn_implementation("eager")
    if tokenizer.pad_token_id is None:
        raise ExportError(f"{member}: the tokenizer has no padding token; expected one to batch texts")
    enc = tokenizer(list(TRACE_TEXTS), truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    graph, int8 = member / BACKEND_FILES[BACKEND_ONNX], member / BACKEND_FILES[BACKEND_INT8]
    dynamic = {INPUT_NAMES[0]: {0: "batch", 1: "sequence"}, INPUT_NAMES[1]: {0: "batch", 1: "sequence"},
               OUTPUT_NAME: {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes: no news to a user
        # dynamo=False: the TorchScript exporter needs no onnxscript and traces these encoders exactly
        torch.onnx.export(ProbabilityGraph(model).eval(), (enc["input_ids"], enc["attention_mask"]), str(_tmp(graph)),
                          input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME], dynamic_axes=dynamic,
                          opset_version=opset, do_constant_folding=True, dynamo=False)
    os.replace(_tmp(graph), graph)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser's advice to pre-process (tried: no change to speed or F1 here)
    try:
        # Per output channel: on MiniLM quick, per-tensor scales cost 0.010 test macro-F1, per-channel 0.001.
        quantize_dynamic(graph, _tmp(int8), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.setLevel(level)
    os.replace(_tmp(int8), int8)
    return int(tokenizer.pad_token_id), str(tokenizer.pad_token)


def _eval_splits(names: Sequence[str]) -> tuple[dict[str, Any] | None, str]:
    """The embedded GoEmotions dev and test splits in the model's labels, or None and why not."""
    from trainer.data import load_splits
    from trainer.sources import fold
    from trainer.taxonomy import TAXONOMIES, taxonomy_labels

    taxonomy = next((t for t in TAXONOMIES if taxonomy_labels(t) == list(names)), None)
    if taxonomy is None:
        return None, "the model's labels are no GoEmotions taxonomy, so the shipped test split cannot score it"
    splits = load_splits("embedded")
    return {n: fold(splits[n], taxonomy) for n in (TUNING_SPLIT, SCORED_SPLIT)}, taxonomy


def _macro_f1(probs: np.ndarray, labels: np.ndarray, thresholds: Sequence[float]) -> float:
    from trainer.metrics import apply_thresholds, f1_summary

    return round(float(f1_summary(labels, apply_thresholds(probs, np.asarray(thresholds)))[F1_MACRO]), 6)


def _meta(max_length: int, opset: int, pad: tuple[int, str], members: Sequence[Path], model_dir: Path,
          backends: dict[str, dict[str, Any]], scored: dict[str, Any]) -> dict[str, Any]:
    return {"format": META_FORMAT, "max_length": max_length, "opset": opset,
            "exporter": f"torch.onnx TorchScript exporter, torch {torch.__version__}",
            "inputs": list(INPUT_NAMES), "output": OUTPUT_NAME, "pad_id": pad[0], "pad_token": pad[1],
            "members": [str(m.relative_to(model_dir)) for m in members],
            "backends": backends, "scored_on": scored}


def _backends(f1: dict[str, float | None], thresholds: dict[str, str],
              extra: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    return {b: {"file": BACKEND_FILES.get(b), "thresholds": thresholds[b], "test_f1_macro": f1.get(b),
                **(extra or {}).get(b, {})} for b in BACKENDS}


def export_onnx(model_dir: Path, *, opset: int = DEFAULT_OPSET, max_texts: int | None = None, score: bool = True,
                batch_size: int = 64, log: Any = None) -> dict[str, Any]:
    """Export every member of ``model_dir`` to ONNX (fp32 and int8), score the backends and write onnx.json;
    returns onnx.json's content. ``max_texts`` scores on the first N texts of each split (tests)."""
    from trainer.predict import Predictor, load_thresholds

    say = log or (lambda text: None)
    max_length = read_max_length(model_dir)
    members = _members(model_dir)
    meta_path = model_dir / ONNX_META_FILE
    meta_path.unlink(missing_ok=True)  # first: a half-done export must not leave scores of older graphs behind
    (model_dir / INT8_THRESHOLDS_FILE).unlink(missing_ok=True)
    pads = set()
    for member in members:
        started = time.monotonic()
        pads.add(export_member(member, max_length, opset))
        say(f"{member}: {BACKEND_FILES[BACKEND_ONNX]} and {BACKEND_FILES[BACKEND_INT8]} in "
            f"{time.monotonic() - started:.1f} s")
    if len(pads) != 1:
        raise ExportError(f"{model_dir}: the members' tokenizers pad differently ({sorted(pads)}); expected "
                          "members of one model")
    pad = pads.pop()
    thresholds = {b: THRESHOLDS_FILE for b in BACKENDS}
    unscored = {"split": None, "texts": 0, "why": "not scored (--no-score)"}
    write_json_atomic(meta_path, _meta(max_length, opset, pad, members, model_dir, _backends({}, thresholds),
                                       unscored))
    names = read_export_spec(members[0])["labels"]
    splits, taxonomy = _eval_splits(names) if score else (None, unscored["why"])
    if splits is None:
        say(f"not scored: {taxonomy}; goemo-predict's default stays torch")
        meta = _meta(max_length, opset, pad, members, model_dir, _backends({}, thresholds), {**unscored, "why": taxonomy})
        write_json_atomic(meta_path, meta)
        return meta
    test, dev = splits[SCORED_SPLIT], splits[TUNING_SPLIT]
    n = len(test) if max_texts is None else min(max_texts, len(test))
    probs: dict[str, np.ndarray] = {}
    member_probs: dict[str, list[np.ndarray]] = {}
    f1: dict[str, float | None] = {}
    for backend in BACKENDS:  # through goemo-predict's own code: its tokenizers, its batching, its rule, its thresholds
        predictor = Predictor(model_dir, batch_size, backend)
        member_probs[backend] = predictor.member_probabilities(test.texts[:n])
        probs[backend] = average_members(member_probs[backend], predictor.rule)
        f1[backend] = _macro_f1(probs[backend], test.labels[:n], predictor.thresholds)
    # Member by member: a graph follows its model or not. (Through mean_logit a float32 rounding of a member's
    # probability near 1 moves the average by far more than 1e-7: trainer/ensemble_average.py.)
    diff = {b: max(float(np.abs(mine - torch_own).max())
                   for mine, torch_own in zip(member_probs[b], member_probs[BACKEND_TORCH]))
            for b in (BACKEND_ONNX, BACKEND_INT8)}
    if diff[BACKEND_ONNX] > EXACT_TOLERANCE:
        raise ExportError(f"{model_dir}: {BACKEND_FILES[BACKEND_ONNX]} gives probabilities up to "
                          f"{diff[BACKEND_ONNX]:.2g} away from torch's on {n} test texts; expected at most "
                          f"{EXACT_TOLERANCE:g} (the graph does not follow the model)")
    extra: dict[str, dict[str, Any]] = {b: {"max_abs_diff_vs_torch": round(diff[b], 7)} for b in diff}
    torch_f1 = f1[BACKEND_TORCH]
    assert torch_f1 is not None
    if f1[BACKEND_INT8] is not None and f1[BACKEND_INT8] < torch_f1 - F1_TOLERANCE:
        from trainer.metrics import tune_thresholds

        shipped = read_json(model_dir / THRESHOLDS_FILE, "the tuned thresholds of an exported model")
        dev_n = len(dev) if max_texts is None else min(max_texts, len(dev))
        int8 = Predictor(model_dir, batch_size, BACKEND_INT8)
        tuned = tune_thresholds(int8.probabilities(dev.texts[:dev_n]), dev.labels[:dev_n],
                                default=float(shipped.get("default", 0.2)))
        write_thresholds(model_dir, names, tuned, float(shipped.get("default", 0.2)), max_length=max_length,
                         file=INT8_THRESHOLDS_FILE, backend=BACKEND_INT8)
        extra[BACKEND_INT8]["test_f1_macro_shipped_thresholds"] = f1[BACKEND_INT8]
        thresholds[BACKEND_INT8] = INT8_THRESHOLDS_FILE
        f1[BACKEND_INT8] = _macro_f1(probs[BACKEND_INT8], test.labels[:n],
                                     load_thresholds(model_dir, names, INT8_THRESHOLDS_FILE))
        say(f"int8 with the shipped thresholds: test macro-F1 {extra[BACKEND_INT8]['test_f1_macro_shipped_thresholds']:.4f}"
            f"; thresholds tuned on dev for it ({INT8_THRESHOLDS_FILE}): {f1[BACKEND_INT8]:.4f}")
    scored = {"split": SCORED_SPLIT, "source": "embedded GoEmotions", "taxonomy": taxonomy, "texts": n}
    meta = _meta(max_length, opset, pad, members, model_dir, _backends(f1, thresholds, extra), scored)
    write_json_atomic(meta_path, meta)
    _write_card(model_dir, meta, members)
    return meta


def _card_section(meta: dict[str, Any], default: str) -> str:
    scored = meta["scored_on"]
    rows = [f"`goemo-predict --backend B` runs the same model three ways (`goemo-export-onnx`, opset {meta['opset']}, "
            f"max_length {meta['max_length']}). Test macro-F1 on the {scored['texts']:,} texts of the shipped "
            f"GoEmotions test split, each backend with the thresholds it ships:", "",
            "| backend | model file | thresholds | test macro-F1 |", "| --- | --- | --- | --- |"]
    for name, record in meta["backends"].items():
        f1 = record.get("test_f1_macro")
        rows.append(f"| {name} | {record.get('file') or WEIGHTS_FILE} | {record['thresholds']} | "
                    f"{'n/a' if f1 is None else f'{f1:.4f}'} |")
    rows += ["", f"Default backend: {default} (the fastest whose test macro-F1 is within {F1_TOLERANCE} of torch's)."]
    return CARD_HEADING + "\n\n" + "\n".join(rows) + "\n"


def _write_card(model_dir: Path, meta: dict[str, Any], members: Sequence[Path]) -> None:
    """The model card's backends section, replaced when the export runs again."""
    card = model_dir / MODEL_CARD_FILE
    if not card.is_file():
        return
    text = card.read_text(encoding="utf-8")
    default = default_backend(read_onnx_meta(model_dir), members)
    start = text.find("\n" + CARD_HEADING + "\n")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start + 1] + (text[end + 1:] if end >= 0 else "")
    write_atomic(card, text.rstrip("\n") + "\n\n" + _card_section(meta, default))


def _positive(text: str) -> int:
    value = int(text) if text.strip().isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="goemo-export-onnx", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="an exported model folder, e.g. runs/<id>/final")
    parser.add_argument("--opset", type=_positive, default=DEFAULT_OPSET, help="ONNX opset (default: %(default)s)")
    parser.add_argument("--no-score", action="store_true",
                        help="skip scoring the backends on test (goemo-predict's default then stays torch)")
    parser.add_argument("--max-texts", type=_positive, metavar="N",
                        help="score on the first N texts of test (and dev) only (default: all)")
    parser.add_argument("--batch-size", type=_positive, default=64, metavar="N",
                        help="texts per forward pass while scoring (default: %(default)s)")
    return parser


def _missing_extra() -> str | None:
    missing = [m for m in ("onnxruntime", "onnx") if importlib.util.find_spec(m) is None]
    return f"{' and '.join(missing)} not installed; expected the onnx extra ({ONNX_EXTRA_HINT})" if missing else None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prog = "goemo-export-onnx"
    if not any((args.model / f).is_file() for f in (MODEL_META_FILE, ENSEMBLE_FILE)):
        print(f"{prog}: error: {args.model}: not an exported model folder (no {MODEL_META_FILE} or {ENSEMBLE_FILE})",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    missing = _missing_extra()
    if missing:
        print(f"{prog}: error: {missing}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from trainer.cli import _quiet_libraries

    _quiet_libraries()
    try:
        meta = export_onnx(args.model, opset=args.opset, max_texts=args.max_texts, score=not args.no_score,
                           batch_size=args.batch_size, log=lambda text: print(text, file=sys.stderr))
    except ValueError as exc:  # ModelError, ExportError, a broken thresholds.json: one line naming the file
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for name, record in meta["backends"].items():
        f1 = record.get("test_f1_macro")
        print(f"{name:10s} {record.get('file') or WEIGHTS_FILE:18s} {record['thresholds']:22s} "
              f"test macro-F1 {'n/a' if f1 is None else f'{f1:.4f}'}")
    print(f"default backend: {default_backend(read_onnx_meta(args.model), _members(args.model))}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
