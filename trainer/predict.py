"""goemo-predict: emotion labels and scores for texts, with the per-label thresholds tuned on dev.

An ensemble folder (ensemble.json beside thresholds.json, one exported model per member under
members/) scores each text with every member and averages by the rule ensemble.json states (the mean of the
probabilities, or of the logits: trainer/ensemble_average.py), as the export did when it tuned the thresholds.
Texts are tokenised as in training: truncated to the ``max_length`` the export's thresholds.json records (128
for exports made before it was recorded).

Three backends run the same model: torch (the safetensors), onnx and onnx-int8 (the graphs goemo-export-onnx adds,
run by ONNX Runtime without importing torch; trainer/onnx_backend.py). The default is the fastest one present whose
test macro-F1, recorded at export, is within 0.005 of torch's; each backend uses the thresholds it ships with.

Texts come from the arguments, stdin's lines or an --input file (.txt, .jsonl, .csv, .tsv); results go to
stdout or an --output file (.jsonl, .csv) with the input's other columns kept, in the input's order. Input is
read and labelled a chunk of rows at a time, each chunk batched by length (trainer/predict_files.py reads and
writes the files)."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from trainer.contract import (DEFAULT_ENSEMBLE_RULE, ENSEMBLE_FILE, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED,
                              EXIT_OK, MODEL_META_FILE, ONNX_META_FILE, THRESHOLDS_FILE)
from trainer.durable import writing_atomic
from trainer.ensemble_average import average_members
from trainer.export_files import ensemble_rule, member_dirs, read_export_spec, read_max_length
from trainer.file_reads import read_json
from trainer.onnx_backend import (BACKEND_TORCH, BACKENDS, OnnxBackendError, OnnxMember, check_backend_available,
                                  default_backend, read_onnx_meta, thresholds_file)
from trainer.predict_files import (LABEL_SEPARATOR, SCORE_PREFIX, TEXT_COLUMN, InputTable, ResultWriter, Row,
                                   check_output_path, labelled)

# The tokenizer encodes a whole text before it truncates (a 12 MB line took 2.27 GB), so texts are cut
# first. Subword pieces of English average about 4 characters and vocabularies hold few over 20, so 64
# characters per token keep every character the kept tokens come from; only a text whose first
# max_length tokens average more (long runs of spaces, words too long for the vocabulary) loses some.
CHARS_PER_TOKEN_BOUND = 64
# Rows read, labelled and written at a time: what memory holds of a large input, and the span over which texts
# are sorted by length (4096 rows of GoEmotions are about 0.5 MB of text and 64 batches).
CHUNK_ROWS = 4096


def clip_text(text: str, max_length: int) -> str:
    """``text`` without the characters that lie beyond what ``max_length`` tokens can hold."""
    return text[: max_length * CHARS_PER_TOKEN_BOUND]


def load_thresholds(model_dir: Path, names: Sequence[str], file: str = THRESHOLDS_FILE) -> list[float]:
    """The per-label thresholds tuned on dev: one number in [0, 1] per label, in the model's label order
    (``file``: thresholds.json, or a backend's own, as onnx.json names it)."""
    path = model_dir / file
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


def _ensemble(model_dir: Path) -> dict[str, Any] | None:
    """An ensemble folder's ensemble.json (None for a single model's folder)."""
    if not (model_dir / ENSEMBLE_FILE).is_file():
        return None
    ensemble = read_json(model_dir / ENSEMBLE_FILE, "the member list of an exported ensemble")
    if not isinstance(ensemble, dict):
        raise ValueError(f"{model_dir / ENSEMBLE_FILE}: expected a JSON object with a 'members' list")
    return ensemble


def _members(model_dir: Path) -> list[Path]:
    """The model folders whose probabilities are averaged: the members of an ensemble, or the folder itself."""
    ensemble = _ensemble(model_dir)
    return [model_dir] if ensemble is None else member_dirs(model_dir, ensemble)


def averaging_rule(model_dir: Path) -> str:
    """How the members' probabilities are averaged: the rule ensemble.json states (mean_prob for a single model)."""
    ensemble = _ensemble(model_dir)
    return DEFAULT_ENSEMBLE_RULE if ensemble is None else ensemble_rule(model_dir, ensemble)


def choose_backend(model_dir: Path, requested: str | None = None) -> str:
    """``requested``, or the default rule's pick for this folder (trainer/onnx_backend.py default_backend)."""
    return requested or default_backend(read_onnx_meta(model_dir), _members(model_dir))


class _TorchMember:
    """One exported model folder run by PyTorch: sigmoid probabilities for a batch of texts."""

    def __init__(self, model: Any, tokenizer: Any, max_length: int) -> None:
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length

    def probabilities(self, texts: Sequence[str]) -> Any:
        import torch

        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, padding=True,
                             return_tensors="pt")
        with torch.no_grad():
            return torch.sigmoid(self.model(enc["input_ids"], enc["attention_mask"])).numpy()


def _same_labels(member: Path, names: list[str], member_names: list[str]) -> list[str]:
    if names and member_names != names:
        raise ValueError(f"{member}: its labels differ from the first member's; expected members of one ensemble")
    return member_names


class Predictor:
    """An exported model folder loaded once (every member of an ensemble): labels and scores for texts.

    ``backend`` is torch, onnx or onnx-int8 (None: the default rule's pick). Streaming callers hand it one chunk
    of texts at a time; each chunk is batched in order of length, so a batch pads its short texts to a similar
    length, not to the longest text of the chunk.
    """

    def __init__(self, model_dir: Path, batch_size: int = 64, backend: str | None = None) -> None:
        self.batch_size = batch_size
        self.max_length = read_max_length(model_dir)  # the ensemble's members share it (trainer/ensemble.py checks)
        self.rule = averaging_rule(model_dir)
        self.backend = choose_backend(model_dir, backend)
        if self.backend not in BACKENDS:
            raise ValueError(f"backend {self.backend!r}: expected one of {', '.join(BACKENDS)}")
        meta = read_onnx_meta(model_dir)
        self._members: list[Any] = []
        names: list[str] = []
        if self.backend == BACKEND_TORCH:
            from trainer.models import load_exported

            for member in _members(model_dir):
                model, tokenizer, member_names = load_exported(member)
                names = _same_labels(member, names, member_names)
                self._members.append(_TorchMember(model, tokenizer, self.max_length))
        else:
            check_backend_available(self.backend)
            if meta is None:
                raise OnnxBackendError(f"{model_dir}: no ONNX export (no {ONNX_META_FILE}); make it with: "
                                       f"goemo-export-onnx --model {model_dir}")
            for member in _members(model_dir):
                names = _same_labels(member, names, read_export_spec(member)["labels"])
                self._members.append(OnnxMember(member, self.backend, meta, self.max_length))
        self.names = names
        self.thresholds = load_thresholds(model_dir, names, thresholds_file(meta, self.backend))

    def member_probabilities(self, texts: Sequence[str]) -> list[Any]:
        """Each member's probability per text and label (float32 numpy arrays), in the order of ``texts``."""
        import numpy as np

        clipped = [clip_text(t, self.max_length) for t in texts]
        order = sorted(range(len(clipped)), key=lambda i: len(clipped[i]))  # characters: a cheap guess at tokens
        out = []
        for member in self._members:
            probs = np.zeros((len(texts), len(self.names)), dtype=np.float32)
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                probs[rows] = member.probabilities([clipped[i] for i in rows])
            out.append(probs)
        return out

    def probabilities(self, texts: Sequence[str]) -> Any:
        """The ensemble's probability per text and label (a float32 numpy array), in the order of ``texts``: the
        members' averaged by the folder's rule, as the export averaged dev to tune the thresholds."""
        return average_members(self.member_probabilities(texts), self.rule)

    def predict(self, texts: Sequence[str]) -> list[dict]:
        """Scores for every label and the labels whose score reaches its tuned threshold, per text, in order."""
        out = []
        for text, row in zip(texts, self.probabilities(texts)):
            scores = {n: round(float(p), 4) for n, p in zip(self.names, row)}
            labels = [n for n, p, t in zip(self.names, row, self.thresholds) if p >= t]
            out.append({"text": text, "labels": sorted(labels, key=lambda n: -scores[n]), "scores": scores})
        return out


def predict_texts(model_dir: Path, texts: Sequence[str], batch_size: int = 64,
                  backend: str | None = None) -> list[dict]:
    """Scores for every label and the labels whose score reaches its tuned threshold, per text."""
    return Predictor(model_dir, batch_size, backend).predict(texts)


def _positive(text: str) -> int:
    value = int(text) if text.strip().isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    """goemo-predict's arguments (``--help`` says how files go in and out)."""
    parser = argparse.ArgumentParser(prog="goemo-predict", description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="an exported model folder, e.g. runs/<id>/final")
    parser.add_argument("--json", action="store_true", help="one JSON object per text (on stdout)")
    parser.add_argument("--top", type=int, default=3, help="scores shown per text in the plain output")
    parser.add_argument("--input", type=Path, metavar="PATH",
                        help="label a file instead of arguments or stdin: .txt (one text per line, blank lines "
                             "skipped), .jsonl (one JSON object per line) or .csv/.tsv (UTF-8, a header line; "
                             ".tsv without quoting). Read as a stream, in chunks sorted by length")
    parser.add_argument("--text-column", default=TEXT_COLUMN, metavar="NAME",
                        help="the column (.csv/.tsv) or key (.jsonl) that holds the texts (default: %(default)s)")
    parser.add_argument("--output", type=Path, metavar="PATH",
                        help="write the results to a file instead of stdout, in the input's order, every input "
                             "column kept: .jsonl adds 'labels' (a list) and 'scores' (label: score) to each row, "
                             f".csv adds a 'labels' column (joined by '{LABEL_SEPARATOR}') and one "
                             f"'{SCORE_PREFIX}<label>' column per label. The file appears whole at the end, or not "
                             "at all")
    parser.add_argument("--batch-size", type=_positive, default=64, metavar="N",
                        help="texts per forward pass (default: %(default)s)")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="what runs the model: torch (the safetensors), onnx or onnx-int8 (ONNX Runtime, the "
                             "graphs goemo-export-onnx adds; needs the onnx extra). Default: the fastest present "
                             "whose test macro-F1, recorded at export, is within 0.005 of torch's")
    parser.add_argument("texts", nargs="*", help="texts to label (default: one per line on stdin)")
    return parser


def _given_rows(texts: Sequence[str]) -> Iterator[Row]:
    """The texts of the command line, or else stdin's non-blank lines, read lazily."""
    if texts:
        for i, text in enumerate(texts, start=1):
            yield Row(text, {TEXT_COLUMN: text}, f"argument {i}")
        return
    for number, line in enumerate(sys.stdin, start=1):
        if line.strip():
            text = line.rstrip("\n")
            yield Row(text, {TEXT_COLUMN: text}, f"stdin:{number}")


def labelled_chunks(predictor: Predictor, rows: Iterable[Row],
                    chunk_rows: int) -> Iterator[tuple[list[Row], list[dict]]]:
    """``rows`` with their results, a chunk at a time, in order: memory holds one chunk, whatever the input's size.

    The first chunk is one batch, so the first results come at once; chunks then double up to ``chunk_rows``,
    the span over which texts are sorted by length.
    """
    rows = iter(rows)
    size = min(predictor.batch_size, chunk_rows)
    while chunk := list(itertools.islice(rows, size)):
        yield chunk, predictor.predict([r.text for r in chunk])
        size = min(size * 2, chunk_rows)


def _progress(table: InputTable | None, shown: bool) -> Any:
    """A row counter on stderr (only a terminal: a log file would fill with bar redraws)."""
    from tqdm import tqdm

    return tqdm(total=None, unit=" rows", disable=not shown, file=sys.stderr, dynamic_ncols=True,
                desc=str(table.path) if table else "stdin")


def _advance(bar: Any, rows: int, table: InputTable | None) -> None:
    """Count ``rows`` more; the total is estimated from the share of the file read so far."""
    bar.update(rows)
    if table is not None and table.bytes_read and not bar.disable:
        bar.total = max(bar.n, round(bar.n * table.size / table.bytes_read))
        bar.refresh()


def _print(rows: Sequence[Row], results: Sequence[dict], as_json: bool, top: int) -> None:
    for row, r in zip(rows, results):
        if as_json:
            print(json.dumps(labelled(row, r)))
        else:
            shown = ", ".join(f"{n} {p:.2f}" for n, p in sorted(r["scores"].items(), key=lambda kv: -kv[1])[:top])
            print(f"{', '.join(r['labels']) or '(none)'}\t[{shown}]\t{r['text']}")
    sys.stdout.flush()  # each chunk shows as it is done, also through a pipe


def _label(args: argparse.Namespace) -> None:
    """Label the texts ``args`` name and write them where it says; bad input raises a one-line ValueError."""
    from tqdm import tqdm

    if args.input is not None and args.texts:
        raise ValueError(f"{args.input}: texts given both as arguments and with --input; expected one of them")
    out_kind = check_output_path(args.output, args.input) if args.output else None  # before the model loads
    with contextlib.ExitStack() as stack:
        table = stack.enter_context(InputTable(args.input, args.text_column)) if args.input else None
        backend = choose_backend(args.model, args.backend)
        check_backend_available(backend)
        if backend == BACKEND_TORCH:  # the ONNX backends never import transformers (a second of cold start)
            from trainer.cli import _quiet_libraries

            _quiet_libraries()
        predictor = Predictor(args.model, args.batch_size, backend)  # before stdin: a broken model costs no input
        streamed = table is not None or not (args.texts or sys.stdin.isatty())
        bar = stack.enter_context(_progress(table, streamed and sys.stderr.isatty()))
        chunks = labelled_chunks(predictor, table if table is not None else _given_rows(args.texts), CHUNK_ROWS)
        if out_kind is None:
            for rows, results in chunks:
                with tqdm.external_write_mode(file=sys.stdout):
                    _print(rows, results, args.json, args.top)
                _advance(bar, len(rows), table)
            return
        with writing_atomic(args.output, newline="" if out_kind == ".csv" else None) as fh:
            writer = ResultWriter(fh, out_kind, predictor.names, table.columns if table else [TEXT_COLUMN])
            for rows, results in chunks:
                writer.write(rows, results)
                _advance(bar, len(rows), table)
            writer.finish()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not any((args.model / f).is_file() for f in (MODEL_META_FILE, ENSEMBLE_FILE)):  # before reading stdin
        print(f"goemo-predict: error: {args.model}: not an exported model folder (no {MODEL_META_FILE} "
              f"or {ENSEMBLE_FILE})", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        _label(args)
    except ValueError as exc:  # ModelError and the input's errors included: one line naming the file
        print(f"goemo-predict: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("goemo-predict: interrupted" + (f"; {args.output} not written" if args.output else ""), file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # stdout's reader left (| head): stop quietly, as the Python docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush must not raise again
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
