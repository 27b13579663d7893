"""goemo-predict's ONNX Runtime backends: a model folder's ``model.onnx`` (fp32) or ``model.int8.onnx``
(dynamically quantised), tokenised with ``tokenizers`` as transformers' fast tokenizer does, and the rule that
picks the default backend.

Torch-free (numpy, onnxruntime, tokenizers): a single text is labelled without importing torch or
transformers, which is most of goemo-predict's cold start. ``goemo-export-onnx`` (trainer/onnx_export.py) writes
the files and ``onnx.json``, the record of what was exported and how well each backend scored on test.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from trainer.contract import (FAST_TOKENIZER_FILE, INT8_THRESHOLDS_FILE, ONNX_INT8_FILE, ONNX_META_FILE,
                              ONNX_MODEL_FILE, THRESHOLDS_FILE)
from trainer.file_reads import read_json

BACKEND_TORCH = "torch"
BACKEND_ONNX = "onnx"
BACKEND_INT8 = "onnx-int8"
BACKENDS = (BACKEND_TORCH, BACKEND_ONNX, BACKEND_INT8)
# The default backend is the fastest one whose recorded test macro-F1 is this close to torch's (issue 22).
F1_TOLERANCE = 0.005
# Fastest first: what the default rule tries before falling back to torch.
ONNX_BACKENDS_BY_SPEED = (BACKEND_INT8, BACKEND_ONNX)
BACKEND_FILES = {BACKEND_ONNX: ONNX_MODEL_FILE, BACKEND_INT8: ONNX_INT8_FILE}
# The graph's names: the tokenizer's two outputs in, one sigmoid probability per label out.
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "probs"
ONNX_EXTRA_HINT = "pip install 'goemo-cockpit[onnx]'"
META_FORMAT = 1


class OnnxBackendError(ValueError):
    """An ONNX backend that cannot run here (no onnxruntime, no exported files, a broken file): one line."""


def onnxruntime_present() -> bool:
    """Whether onnxruntime can be imported (the ``[onnx]`` extra), without importing it."""
    return importlib.util.find_spec("onnxruntime") is not None


def intra_op_threads() -> int:
    """The CPUs this process may run on: what torch's default intra-op pool uses, so both backends get the same."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no affinity on macOS
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class BackendRecord:
    """One backend as onnx.json records it: its graph file (none for torch), its thresholds file, and the test
    macro-F1 it reached with them at export (None when the export could not score it)."""

    file: str | None
    thresholds: str
    test_f1_macro: float | None


@dataclass(frozen=True)
class OnnxMeta:
    """What onnx.json says about a model folder's ONNX export."""

    max_length: int
    pad_id: int
    pad_token: str
    backends: dict[str, BackendRecord]


def _record(path: Path, name: str, raw: Any) -> BackendRecord:
    expected = (f"expected an object with 'thresholds' ({THRESHOLDS_FILE} or {INT8_THRESHOLDS_FILE}), "
                "'test_f1_macro' (a number or null) and, for an ONNX backend, 'file'")
    if not isinstance(raw, dict):
        raise OnnxBackendError(f"{path}: backend {name!r} is {type(raw).__name__}; {expected}")
    file = raw.get("file")
    if file != BACKEND_FILES.get(name):  # only the names the exporter writes: never a path out of the folder
        raise OnnxBackendError(f"{path}: backend {name!r} has 'file' {file!r}; expected {BACKEND_FILES.get(name)!r}")
    thresholds = raw.get("thresholds")
    if thresholds not in (THRESHOLDS_FILE, INT8_THRESHOLDS_FILE):
        raise OnnxBackendError(f"{path}: backend {name!r} has 'thresholds' {thresholds!r}; {expected}")
    f1 = raw.get("test_f1_macro")
    if f1 is not None and (isinstance(f1, bool) or not isinstance(f1, (int, float))):
        raise OnnxBackendError(f"{path}: backend {name!r} has 'test_f1_macro' {f1!r}; {expected}")
    return BackendRecord(file, thresholds, None if f1 is None else float(f1))


def read_onnx_meta(model_dir: Path) -> OnnxMeta | None:
    """onnx.json of a model folder, validated (None when the folder has no ONNX export); one-line errors."""
    path = model_dir / ONNX_META_FILE
    if not path.is_file():
        return None
    shape = "the ONNX export record goemo-export-onnx writes"
    data = read_json(path, shape, OnnxBackendError)
    if not isinstance(data, dict) or not isinstance(data.get("backends"), dict):
        raise OnnxBackendError(f"{path}: no 'backends' object; expected {shape}")
    for key in ("max_length", "pad_id"):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise OnnxBackendError(f"{path}: '{key}' is {value!r}; expected a whole number ({shape})")
    if not isinstance(data.get("pad_token"), str):
        raise OnnxBackendError(f"{path}: 'pad_token' is {data.get('pad_token')!r}; expected a string ({shape})")
    backends = {name: _record(path, name, raw) for name, raw in data["backends"].items() if name in BACKENDS}
    return OnnxMeta(data["max_length"], data["pad_id"], data["pad_token"], backends)


def within_tolerance(record: BackendRecord | None, reference: BackendRecord | None) -> bool:
    """Whether a backend's recorded test macro-F1 is within F1_TOLERANCE of the reference's (torch's)."""
    if record is None or reference is None or record.test_f1_macro is None or reference.test_f1_macro is None:
        return False
    return record.test_f1_macro >= reference.test_f1_macro - F1_TOLERANCE


def default_backend(meta: OnnxMeta | None, members: Sequence[Path]) -> str:
    """The fastest backend present whose recorded test macro-F1 is within F1_TOLERANCE of torch's: onnx-int8,
    else onnx, else torch. Present means onnxruntime imports and every member folder holds the backend's file."""
    if meta is None or not onnxruntime_present():
        return BACKEND_TORCH
    for name in ONNX_BACKENDS_BY_SPEED:
        record = meta.backends.get(name)
        if within_tolerance(record, meta.backends.get(BACKEND_TORCH)) and all(
                (m / BACKEND_FILES[name]).is_file() for m in members):
            return name
    return BACKEND_TORCH


def thresholds_file(meta: OnnxMeta | None, backend: str) -> str:
    """The thresholds file a backend ships with: its own when the export tuned some, else thresholds.json."""
    record = meta.backends.get(backend) if meta is not None else None
    return record.thresholds if record is not None else THRESHOLDS_FILE


def make_session(path: Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session of a graph, with intra-op threads = the CPUs torch would use."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or intra_op_threads()
    options.inter_op_num_threads = 1  # one graph at a time: parallel branches would only compete for the cores
    options.log_severity_level = 3  # errors only: optimizer notes are no news to a user
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # InvalidProtobuf, Fail, NoSuchFile: whatever the runtime says, the file is unusable
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OnnxBackendError(f"{path}: onnxruntime cannot load it ({first[:200]}); expected the graph "
                               "goemo-export-onnx writes") from None


class OnnxMember:
    """One exported model folder run by ONNX Runtime: sigmoid probabilities for a batch of texts."""

    def __init__(self, model_dir: Path, backend: str, meta: OnnxMeta, max_length: int) -> None:
        from tokenizers import Tokenizer

        graph = model_dir / BACKEND_FILES[backend]
        if not graph.is_file():
            raise OnnxBackendError(f"{graph}: file not found; expected the ONNX export of this model "
                                   f"(make it with: goemo-export-onnx --model {model_dir})")
        tokenizer_path = model_dir / FAST_TOKENIZER_FILE
        if not tokenizer_path.is_file():
            raise OnnxBackendError(f"{tokenizer_path}: file not found; expected the fast tokenizer export wrote")
        try:
            self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:  # a broken tokenizer.json surfaces as a serde error from Rust
            raise OnnxBackendError(f"{tokenizer_path}: cannot load the tokenizer ({str(exc)[:200]}); expected the "
                                   "fast tokenizer export wrote") from None
        # What transformers sets for truncation=True, max_length=L, padding=True (longest first, right; pad to
        # the batch's longest), overriding whatever the saved file last held (transformers saves its state).
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.enable_padding(pad_id=meta.pad_id, pad_token=meta.pad_token)
        self.session = make_session(graph)

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """input_ids and attention_mask (int64, padded to the batch's longest text), as the tokenizer gives them."""
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """The model's probability per text and label (float32), in the order of ``texts``."""
        ids, mask = self.encode(texts)
        return self.session.run([OUTPUT_NAME], {INPUT_NAMES[0]: ids, INPUT_NAMES[1]: mask})[0]


def check_backend_available(backend: str) -> None:
    """A one-line OnnxBackendError when an ONNX backend is asked for but onnxruntime is not installed."""
    if backend != BACKEND_TORCH and not onnxruntime_present():
        raise OnnxBackendError(f"--backend {backend}: onnxruntime is not installed; expected the onnx extra "
                               f"({ONNX_EXTRA_HINT})")
