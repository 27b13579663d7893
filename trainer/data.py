"""GoEmotions data: sources, row validation, seeded subsets, rare-class oversampling, class weights,
cached tokenisation and length-grouped, dynamically padded batches."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from trainer.file_reads import decode_utf8, int_limit_message
from trainer.input_files import ENV_MAX_SOURCE_BYTES, InputFileError, max_source_bytes, read_input_file
from trainer.taxonomy import NUM_GOEMOTIONS_LABELS, goemotions_labels

NUM_LABELS = NUM_GOEMOTIONS_LABELS
SPLITS = ("train", "dev", "test")
HUB_DATASET = ("google-research-datasets/go_emotions", "simplified")


class DataError(ValueError):
    """Bad input data: the message is one line naming the file (and line) and the problem."""


def _resource_dir() -> Path:
    return Path(str(resources.files("trainer") / "resources" / "goemotions"))


def label_names() -> list[str]:
    """The 28 GoEmotions label names in id order (27 = neutral)."""
    return list(goemotions_labels())


@dataclass
class Split:
    """One split: texts and a [n, labels] 0/1 label matrix, with where they came from.

    ``mask`` [n, labels] marks the entries a row's source can know (1) and those it cannot (0; the
    losses ignore them); None means every entry is observed. ``source`` is each row's source index
    into the run's source list, None for a single source.
    """

    name: str
    texts: list[str]
    labels: np.ndarray
    origin: str
    mask: np.ndarray | None = None
    source: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, indices: np.ndarray) -> "Split":
        return Split(self.name, [self.texts[i] for i in indices], self.labels[indices], self.origin,
                     None if self.mask is None else self.mask[indices],
                     None if self.source is None else self.source[indices])


def _multi_hot(rows: list[list[int]]) -> np.ndarray:
    out = np.zeros((len(rows), NUM_LABELS), dtype=np.uint8)
    for i, ids in enumerate(rows):
        out[i, ids] = 1
    return out


def _parse_label_ids(raw: Any, where: str) -> list[int]:
    if isinstance(raw, str):
        parts = [p for p in raw.replace(";", ",").split(",") if p.strip()]
        try:
            ids = [int(p) for p in parts]
        except ValueError:
            raise DataError(f"{where}: labels {raw!r} are not comma-separated integer ids") from None
    elif isinstance(raw, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in raw):
        ids = list(raw)
    else:
        raise DataError(f"{where}: labels {raw!r} are not a list of integer ids")
    if not ids:
        raise DataError(f"{where}: no label ids (expected at least one id in 0..27)")
    bad = [i for i in ids if not 0 <= i < NUM_LABELS]
    if bad:
        raise DataError(f"{where}: label id {bad[0]} outside 0..27")
    return ids


# Longest text accepted, in characters. csv's own default field limit (131072) would end a read with a
# traceback; GoEmotions comments are short and tokenisation truncates at max_length anyway, so anything
# past this is a broken file (a CSV quote left open swallows the rest of the file into one field).
MAX_TEXT_CHARS = 1 << 20


def _validated_rows(rows: Iterable[tuple[int, Any, Any]], origin: str) -> tuple[list[str], list[list[int]]]:
    texts: list[str] = []
    ids: list[list[int]] = []
    for line_no, text, raw_labels in rows:
        where = f"{origin}:{line_no}"
        if text is not None and not isinstance(text, str):
            raise DataError(f"{where}: text is not a string (got {text!r:.60}; expected a non-empty comment)")
        if not text or not text.strip():
            raise DataError(f"{where}: empty text (expected a non-empty comment)")
        if len(text) > MAX_TEXT_CHARS:
            raise DataError(f"{where}: text of {len(text)} characters (expected at most {MAX_TEXT_CHARS})")
        texts.append(text)
        ids.append(_parse_label_ids(raw_labels, where))
    if not texts:
        raise DataError(f"{origin}: no rows")
    return texts, ids


def field_too_large(origin: str, start: int, end: int) -> DataError:
    """csv's "field larger than field limit" for the record on lines ``start``..``end``, as one line.

    Only a quoted field runs on past the end of its line, so a record that did is an unclosed quote; one that
    did not holds a field that is really that long.
    """
    if end > start:
        return DataError(f"{origin}:{start}: a field longer than {MAX_TEXT_CHARS} characters, running on to line "
                         f"{end} (expected its closing quote; an unclosed quote?)")
    return DataError(f"{origin}:{start}: a field longer than {MAX_TEXT_CHARS} characters "
                     f"(expected a text of at most {MAX_TEXT_CHARS})")


def json_line_error(exc: ValueError | RecursionError, origin: str, line: int, expected: str) -> DataError:
    """Why ``json.loads`` refused one line, as one line: nesting too deep, a number too long, or not JSON."""
    if isinstance(exc, RecursionError):
        return DataError(f"{origin}:{line}: JSON nested too deeply to read (expected {expected})")
    too_long = int_limit_message(exc)
    if too_long:
        return DataError(f"{origin}:{line}: {too_long}, more than Python reads as an integer (expected {expected})")
    return DataError(f"{origin}:{line}: not valid JSON (expected {expected})")


def _csv_error(exc: csv.Error, origin: str, start: int, end: int) -> DataError:
    """csv's own errors (a field over the limit, ...) as one line naming file and line."""
    if "field larger than field limit" in str(exc):
        return field_too_large(origin, start, end)
    return DataError(f"{origin}:{start}: not valid CSV ({exc})")


def _csv_records(reader: Any, origin: str) -> Iterable[Any]:
    """The records of a csv reader; an error names the line its record starts on (an unclosed quote's line)."""
    ends = getattr(reader, "reader", reader)  # a DictReader updates its own line_num only after a good row
    while True:
        start = ends.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _csv_error(exc, origin, start, ends.line_num) from None
        yield record


def _tsv_rows(fh: io.TextIOBase, origin: str) -> Iterable[tuple[int, Any, Any]]:
    # QUOTE_NONE: GoEmotions texts contain quote characters that are not CSV quoting.
    reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
    for row in _csv_records(reader, origin):
        if not row:
            continue  # a blank line
        if len(row) < 2:
            raise DataError(f"{origin}:{reader.line_num}: expected 'text<TAB>label ids[<TAB>id]', "
                            f"found {len(row)} column(s)")
        yield reader.line_num, row[0], row[1]


def _csv_rows(fh: io.TextIOBase, origin: str) -> Iterable[tuple[int, Any, Any]]:
    reader = csv.DictReader(fh)
    try:
        fieldnames = reader.fieldnames  # reads the header row
    except csv.Error as exc:
        raise _csv_error(exc, origin, 1, reader.reader.line_num) from None
    if not fieldnames or not {"text", "labels"} <= set(fieldnames):
        raise DataError(f"{origin}:1: expected a header with columns 'text' and 'labels'")
    for row in _csv_records(reader, origin):
        # line_num: the line a record ends on (a quoted text may span lines)
        yield reader.line_num, row.get("text"), row.get("labels") or ""


def _jsonl_rows(fh: io.TextIOBase, origin: str) -> Iterable[tuple[int, Any, Any]]:
    for line_no, line in enumerate(fh, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise json_line_error(exc, origin, line_no, "an object with keys 'text' and 'labels'") from None
        if not isinstance(obj, dict) or "text" not in obj or "labels" not in obj:
            raise DataError(f"{origin}:{line_no}: expected an object with keys 'text' and 'labels'")
        yield line_no, obj["text"], obj["labels"]


_READERS = {".tsv": _tsv_rows, ".csv": _csv_rows, ".jsonl": _jsonl_rows}
_DATA_FILE = "a data file"


def read_split_file(path: Path, name: str) -> Split:
    """Read and validate one split file (.tsv, .csv or .jsonl, optionally .gz; UTF-8, a BOM allowed)."""
    suffixes = path.suffixes
    gz = suffixes[-1:] == [".gz"]
    kind = suffixes[-2] if gz and len(suffixes) >= 2 else path.suffix
    if kind not in _READERS:
        raise DataError(f"{path}: unsupported file type (expected .tsv, .csv or .jsonl)")
    cap = max_source_bytes()
    try:
        raw = read_input_file(path, _DATA_FILE, cap, ENV_MAX_SOURCE_BYTES)
        data = _gunzip(raw, path, cap) if gz else raw
    except InputFileError as exc:
        raise DataError(str(exc)) from None
    except gzip.BadGzipFile as exc:
        raise DataError(f"{path}: not a gzip file ({exc}); expected gzip-compressed {kind} text") from None
    except EOFError:
        raise DataError(f"{path}: gzip data ends early (truncated file?)") from None
    except zlib.error as exc:
        raise DataError(f"{path}: corrupt gzip data ({exc})") from None
    # a byte-order mark (Excel writes one) is dropped instead of joining the first header/text
    text = decode_utf8(data, path, _DATA_FILE, DataError)
    # csv's default field limit (131072) is below MAX_TEXT_CHARS; set for this read only (it is process-wide)
    old_limit = csv.field_size_limit(MAX_TEXT_CHARS)
    try:
        texts, ids = _validated_rows(_READERS[kind](io.StringIO(text, newline=""), str(path)), str(path))
    finally:
        csv.field_size_limit(old_limit)
    return Split(name, texts, _multi_hot(ids), str(path))


def _gunzip(raw: bytes, path: Path, cap: int) -> bytes:
    """Decompressed bytes, at most ``cap`` of them: a small gzip file can expand to far more than memory."""
    out = bytearray()
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as fh:
        while chunk := fh.read(1 << 20):
            out += chunk
            if len(out) > cap:
                raise InputFileError(f"{path}: more than {cap} bytes once decompressed, over the limit "
                                     f"(set {ENV_MAX_SOURCE_BYTES} to read larger files)")
    return bytes(out)


def _find_split_file(folder: Path, name: str) -> Path:
    # exists(), not is_file(): a folder named train.tsv is reported as such by read_split_file
    for ext in (".tsv", ".csv", ".jsonl", ".tsv.gz", ".csv.gz", ".jsonl.gz"):
        candidate = folder / f"{name}{ext}"
        if candidate.exists():
            return candidate
    raise DataError(f"{folder}: no {name}.tsv, {name}.csv or {name}.jsonl (expected train, dev and test files)")


_OFFLINE_VARS = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
_EMBEDDED_HINT = 'use source = "embedded" for the GoEmotions copy shipped in the package'


def _hub_offline() -> bool:
    return any(os.environ.get(v, "").strip().upper() in ("1", "ON", "YES", "TRUE") for v in _OFFLINE_VARS)


def _load_hub() -> dict[str, Split]:
    from datasets import load_dataset

    try:
        ds = load_dataset(*HUB_DATASET)
    except Exception as exc:  # noqa: BLE001 - datasets/huggingface_hub/requests raise many kinds; all mean "no data"
        if _hub_offline():
            raise DataError(f"source 'hub': the Hugging Face hub is unreachable (offline: "
                            f"{' or '.join(_OFFLINE_VARS)} is set) and {HUB_DATASET[0]} is not cached; "
                            f"{_EMBEDDED_HINT}") from None
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        raise DataError(f"source 'hub': could not load {HUB_DATASET[0]} from the Hugging Face hub "
                        f"({type(exc).__name__}{': ' + reason if reason else ''}); {_EMBEDDED_HINT}") from None
    out = {}
    for name, hub_name in (("train", "train"), ("dev", "validation"), ("test", "test")):
        part = ds[hub_name]
        origin = f"hub:{HUB_DATASET[0]}/{hub_name}"
        texts, ids = _validated_rows(
            ((i + 1, t, list(l)) for i, (t, l) in enumerate(zip(part["text"], part["labels"]))), origin
        )
        out[name] = Split(name, texts, _multi_hot(ids), origin)
    return out


def check_hub_source(timeout_s: float = 10.0) -> None:
    """Before a pipeline starts: can ``source = "hub"`` be loaded? Cached, or the hub answers; else DataError.

    Torch-free and cheap (one metadata request), so the cockpit can ask it without loading the data.
    """
    cache = Path(os.environ.get("HF_DATASETS_CACHE") or Path(os.environ.get("HF_HOME") or
                 Path.home() / ".cache" / "huggingface") / "datasets")
    if any(cache.glob(HUB_DATASET[0].replace("/", "___") + "*")):
        return
    if not _hub_offline():
        try:
            from huggingface_hub import HfApi

            HfApi().dataset_info(HUB_DATASET[0], timeout=timeout_s)
            return
        except Exception:  # noqa: BLE001 - no route, DNS, proxy, HTTP errors: all mean "unreachable"
            pass
    raise DataError(f"source 'hub': the Hugging Face hub is unreachable and {HUB_DATASET[0]} is not cached; "
                    f"{_EMBEDDED_HINT}")


def load_splits(source: str = "embedded") -> dict[str, Split]:
    """Load train/dev/test from the embedded copy, the Hugging Face hub, or a local folder."""
    if source == "embedded":
        folder = _resource_dir()
    elif source == "hub":
        return _load_hub()
    else:
        folder = Path(source).expanduser()
        if folder.exists() and not folder.is_dir():
            raise DataError(f"{source}: expected a folder with train, dev and test files, found a file")
        if not folder.is_dir():
            raise DataError(f"{source}: data source not found (expected 'embedded', 'hub' or a folder)")
    return {name: read_split_file(_find_split_file(folder, name), name) for name in SPLITS}


def seeded_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a seeded random subset of size n in which every present label still appears.

    One row per label is drawn first (rarest label first), then the rest uniformly
    at random; the result is sorted so the subset keeps the file's order.
    """
    total = len(labels)
    if n >= total:
        return np.arange(total)
    rng = np.random.default_rng(seed)
    chosen: set[int] = set()
    for label in np.argsort(labels.sum(axis=0), kind="stable"):
        rows = np.flatnonzero(labels[:, label])
        if len(rows) == 0 or (chosen and labels[list(chosen), label].any()):
            continue  # absent label, or already carried by a row drawn for a rarer one
        chosen.add(int(rng.choice(rows)))
    rest = np.setdiff1d(np.arange(total), np.fromiter(chosen, dtype=np.int64))
    fill = rng.choice(rest, size=max(0, n - len(chosen)), replace=False)
    return np.sort(np.concatenate([np.fromiter(chosen, dtype=np.int64), fill]))


@dataclass
class Oversampling:
    """Which rows the train set is made of after oversampling, and why."""

    indices: np.ndarray  # into the (subsetted) train split; originals first, then added rows
    rule: str
    factor: float
    classes: list[int]  # label ids that were oversampled
    added_per_class: dict[int, int]


def oversample_rare_classes(labels: np.ndarray, rule: str, factor: float, seed: int) -> Oversampling:
    """Add rows for rare labels, drawn with replacement from the rows that carry them.

    ``below_median``: for each label whose count is below the median label count,
    add floor((factor - 1) * count) rows. Counts are taken before any row is added,
    so the result does not depend on label order; added rows carry their other labels too.
    """
    n = len(labels)
    base = np.arange(n)
    if rule == "none" or factor <= 1.0:
        return Oversampling(base, rule, factor, [], {})
    if rule != "below_median":
        raise DataError(f"oversampling rule {rule!r}: expected 'below_median' or 'none'")
    counts = labels.sum(axis=0).astype(np.int64)
    median = float(np.median(counts))
    rng = np.random.default_rng(seed)
    added: list[np.ndarray] = []
    per_class: dict[int, int] = {}
    for label in range(labels.shape[1]):
        count = int(counts[label])
        if count == 0 or count >= median:
            continue
        extra = int(np.floor((factor - 1.0) * count))
        if extra <= 0:
            continue
        rows = np.flatnonzero(labels[:, label])
        added.append(rng.choice(rows, size=extra, replace=True))
        per_class[label] = extra
    indices = np.concatenate([base, *added]) if added else base
    return Oversampling(indices, rule, factor, sorted(per_class), per_class)


def balanced_class_weights(labels: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """'balanced' weights N_c / (labels * count_c) per label, N_c the rows that observe label c (all rows
    without a mask); a label with no positive rows gets weight 0."""
    counts = (labels if mask is None else labels * mask).sum(axis=0).astype(np.float64)
    observing = np.full(labels.shape[1], len(labels), dtype=np.float64) if mask is None \
        else mask.sum(axis=0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = np.where(counts > 0, observing / (labels.shape[1] * counts), 0.0)
    return weights.astype(np.float32)


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A short id of a tokenizer's behaviour for cache keys (name, vocab size, class)."""
    ident = f"{type(tokenizer).__name__}|{getattr(tokenizer, 'name_or_path', '')}|{len(tokenizer)}"
    return hashlib.sha1(ident.encode()).hexdigest()[:12]


def cache_dir() -> Path:
    """Where tokenised splits are cached (``GOEMO_CACHE_DIR``, else ~/.cache/goemo-cockpit)."""
    root = os.environ.get("GOEMO_CACHE_DIR") or Path.home() / ".cache" / "goemo-cockpit"
    return Path(root) / "tokens"


def tokenize_texts(texts: Sequence[str], tokenizer: Any, max_length: int) -> list[np.ndarray]:
    """Token ids per text, truncated at max_length, unpadded; cached on disk as Arrow via datasets.

    The cache key covers the texts, the tokenizer and max_length, so every run of a
    pipeline after the first skips tokenisation.
    """
    import datasets

    datasets.disable_progress_bars()
    digest = hashlib.sha1("\n".join(texts).encode("utf-8")).hexdigest()[:16]
    key = f"{digest}-{tokenizer_fingerprint(tokenizer)}-{max_length}"
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    ds = datasets.Dataset.from_dict({"text": list(texts)})
    ds = ds.map(
        lambda batch: {"input_ids": tokenizer(batch["text"], truncation=True, max_length=max_length)["input_ids"]},
        batched=True,
        batch_size=2048,
        remove_columns=["text"],
        cache_file_name=str(folder / f"{key}.arrow"),
        load_from_cache_file=True,
        # Our key already names the result. Without it, datasets fingerprints the transform by pickling
        # the lambda and the tokenizer it holds (~185k objects through dill), which took 1-3 s of every
        # run's start, cache hit or not.
        new_fingerprint=key,
        desc=None,
    )
    column = ds.with_format("numpy")["input_ids"]
    return [np.asarray(ids, dtype=np.int64) for ids in column]


def length_grouped_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int,
                           group_batches: int = 50) -> list[np.ndarray]:
    """Shuffled batches of similar lengths, a pure function of (seed, epoch).

    Rows are shuffled, cut into groups of ``group_batches`` batches, sorted by length
    inside each group and batched; then the batches are shuffled. Padding stays small
    while every epoch sees a different order — and a resumed run recomputes the same one.
    """
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(len(lengths))
    group = batch_size * group_batches
    batches: list[np.ndarray] = []
    for start in range(0, len(perm), group):
        chunk = perm[start:start + group]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def eval_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Batches for evaluation: sorted by length (little padding), every row exactly once."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def pad_batch(token_ids: Sequence[np.ndarray], pad_id: int, multiple_of: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad a batch to its longest row (rounded up to multiple_of): input_ids and attention_mask."""
    longest = max(len(t) for t in token_ids)
    width = -(-longest // multiple_of) * multiple_of
    ids = np.full((len(token_ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(token_ids), width), dtype=np.int64)
    for i, t in enumerate(token_ids):
        ids[i, : len(t)] = t
        mask[i, : len(t)] = 1
    return ids, mask
