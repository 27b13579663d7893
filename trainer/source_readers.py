"""Readers for the native files of licensed emotion datasets: SemEval-2018 Task 1 E-c (English), ISEAR,
MELD, and a generic table (.csv, .tsv or .jsonl).

Each reader returns a ``RawSource``: per split the texts, each row's labels *as the source names them*,
the line each row starts on and the file it came from. Nothing here knows our 28 labels: mapping source
labels onto ours is ``trainer.label_maps``' job, and the line numbers let it name the row it rejects.

Every problem with the user's files is a ``DataError`` whose message is one line naming the file (and line)
and what was expected. These datasets are licensed and never shipped, so a missing file is an error, never
replaced by anything. Sources without an official split (ISEAR, a single table file) get a seeded,
label-stratified 80/10/10 split that is a pure function of the file's contents and the seed.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import ftfy
import numpy as np

from trainer.data import MAX_TEXT_CHARS, SPLITS, DataError, field_too_large, json_line_error
from trainer.input_files import ENV_MAX_SOURCE_BYTES, InputFileError, max_source_bytes, read_input_file

DROP_REASONS = ("placeholder", "empty")


@dataclass
class RawSplit:
    """One split of a source: texts with the source's own label names, and where each row came from."""

    name: str  # "train" | "dev" | "test"
    texts: list[str]
    labels: list[list[str]]  # per row, the source's label names as written (table: the raw tokens)
    lines: list[int]  # 1-based line in `origin` where each row starts
    origin: str  # the file the rows came from
    # False only for SemEval's unlabelled test release (NONE in every label cell): its rows have [] like
    # an all-zero row, and must not be scored as if they were labelled.
    labelled: bool = True

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class RawSource:
    """A source's splits, how many rows were dropped and why, and the label vocabulary it declares."""

    splits: dict[str, RawSplit]  # always "train" and "dev"; "test" when the source has one
    dropped: dict[str, int]  # counts by reason; DROP_REASONS always present
    label_names: list[str] | None  # the label columns the format declares (SemEval); None otherwise


# -- rows of one file --------------------------------------------------------------------------------
def _no_drops() -> dict[str, int]:
    return dict.fromkeys(DROP_REASONS, 0)


@dataclass
class _Rows:
    """The rows kept from one file, in file order, and how many were dropped by reason."""

    origin: str
    texts: list[str] = field(default_factory=list)
    labels: list[list[str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=_no_drops)

    def keep(self, line: int, text: str, labels: list[str]) -> None:
        """Keep a row, unless its (cleaned) text is empty: that teaches nothing, so it is counted and dropped."""
        if not text:
            self.drop("empty")
            return
        self.texts.append(text)
        self.labels.append(labels)
        self.lines.append(line)

    def drop(self, reason: str) -> None:
        self.dropped[reason] += 1

    def check_not_empty(self) -> None:
        if self.texts:
            return
        gone = ", ".join(f"{n} {reason}" for reason, n in self.dropped.items() if n)
        raise DataError(f"{self.origin}: no rows{f' left after dropping {gone}' if gone else ''} "
                        f"(expected at least one row with text)")

    def split(self, name: str, labelled: bool = True) -> RawSplit:
        """All rows as one split (a file that is a split of its own)."""
        self.check_not_empty()
        return RawSplit(name, list(self.texts), list(self.labels), list(self.lines), self.origin, labelled)

    def take(self, name: str, indices: Sequence[int]) -> RawSplit:
        return RawSplit(name, [self.texts[i] for i in indices], [self.labels[i] for i in indices],
                        [self.lines[i] for i in indices], self.origin)

    def drawn_splits(self, strata: Sequence[str], seed: int) -> dict[str, RawSplit]:
        """The seeded 80/10/10 train/dev/test split of these rows, stratified by ``strata``."""
        self.check_not_empty()
        return {name: self.take(name, rows) for name, rows in stratified_split(strata, seed).items()}


def _sum_drops(parts: Sequence[_Rows]) -> dict[str, int]:
    out = _no_drops()
    for part in parts:
        for reason, n in part.dropped.items():
            out[reason] += n
    return out


# -- the seeded split of a source without one ---------------------------------------------------------
def held_out_sizes(n: int) -> tuple[int, int]:
    """(dev rows, test rows) of a stratum of ``n`` rows; train keeps the rest.

    Each is 10% rounded half up (so train is within one row of 80%). A stratum of 3 or more rows always
    gets a dev row, so a small label is still evaluated; one or two rows all stay in train.
    """
    tenth = (n + 5) // 10
    return (max(tenth, 1) if n >= 3 else 0), tenth


def stratified_split(strata: Sequence[str], seed: int) -> dict[str, list[int]]:
    """Row indices of a seeded 80/10/10 train/dev/test split, stratified by ``strata[i]`` (a row's label).

    Each stratum's rows are shuffled by their own generator, seeded with (seed, crc32 of the stratum's
    name): a label's split depends only on its own rows and the seed, so rows of another label added to
    the file leave it as it was. Each split's indices are ascending (file order).
    """
    _check_seed(seed)
    groups: dict[str, list[int]] = {}
    for index, key in enumerate(strata):
        groups.setdefault(key, []).append(index)
    out: dict[str, list[int]] = {name: [] for name in SPLITS}
    for key, rows in groups.items():
        n_dev, n_test = held_out_sizes(len(rows))
        rng = np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])
        shuffled = [rows[i] for i in rng.permutation(len(rows))]
        out["dev"] += shuffled[:n_dev]
        out["test"] += shuffled[n_dev:n_dev + n_test]
        out["train"] += shuffled[n_dev + n_test:]
    return {name: sorted(rows) for name, rows in out.items()}


def _check_seed(seed: Any) -> None:
    # numpy seeds must be non-negative integers; say so in one line instead of numpy's traceback
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"split_seed {seed!r}: expected a non-negative integer")


# -- bytes to text -------------------------------------------------------------------------------------
def _line_at(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _read_bytes(path: Path, expected: str) -> bytes:
    """A file's bytes; a missing, unreadable, non-regular, oversized or binary file is a DataError saying what
    was ``expected``."""
    try:
        data = read_input_file(path, expected, max_source_bytes(), ENV_MAX_SOURCE_BYTES)
    except InputFileError as exc:
        raise DataError(str(exc)) from None
    # No text file holds a NUL byte: this is a binary file, or UTF-16 (as Excel sometimes saves).
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{path}:{_line_at(data, nul)}: NUL byte, not text (expected {expected} as "
                        f"UTF-8 text; a binary or UTF-16 file?)")
    return data


def _decode_utf8(data: bytes, origin: str) -> str:
    """Strict UTF-8; a byte-order mark (Excel writes one) is dropped, not glued to the first column name."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]  # stripped here, not by utf-8-sig, so error offsets stay right
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{origin}:{_line_at(data, exc.start)}: byte 0x{data[exc.start]:02x} is not UTF-8 "
                        f"(expected UTF-8 text)") from None


_CP1252_FALLBACK = "goemo-cp1252-fallback"


def _cp1252_fallback(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler: read a run of bytes that is not UTF-8 as Windows-1252 instead."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    try:
        return exc.object[exc.start:exc.end].decode("cp1252"), exc.end
    except UnicodeDecodeError:
        raise exc from None  # the original error: its offsets locate the byte in the whole file


# A named handler is looked up by the decoder; registering the same name again just replaces it.
codecs.register_error(_CP1252_FALLBACK, _cp1252_fallback)


def _decode_mixed(data: bytes, origin: str) -> str:
    """UTF-8, where each byte run that is not UTF-8 is read as Windows-1252.

    MELD and the ISEAR export mix the two, sometimes within one line ("café" in UTF-8 next to a 0x92
    apostrophe), so falling back per line or per file would garble the UTF-8 part. Only the five bytes
    Windows-1252 leaves undefined (0x81, 0x8d, 0x8f, 0x90, 0x9d) cannot be read: not text in either.
    """
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8", errors=_CP1252_FALLBACK)
    except UnicodeDecodeError as exc:
        raise DataError(f"{origin}:{_line_at(data, exc.start)}: bytes {data[exc.start:exc.end].hex(' ')} are "
                        f"neither UTF-8 nor Windows-1252 (expected a text file)") from None


# -- delimited records -----------------------------------------------------------------------------------
def _records(text: str, origin: str, delimiter: str, quoted: bool) -> list[tuple[int, list[str]]]:
    """(line the record starts on, fields) per non-blank record; a csv error names the record's line.

    ``quoted=False`` is QUOTE_NONE: tweets and ISEAR texts hold quote characters that are not CSV quoting.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter,
                        quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)
    # csv's default field limit (131072) ends a read with a traceback; the limit is process-wide, so
    # it is raised for this read only
    old_limit = csv.field_size_limit(MAX_TEXT_CHARS)
    out: list[tuple[int, list[str]]] = []
    try:
        while True:
            start = reader.line_num + 1  # line_num is where the previous record ended
            try:
                record = next(reader)
            except StopIteration:
                return out
            except csv.Error as exc:
                if "field larger" in str(exc):
                    raise field_too_large(origin, start, reader.line_num) from None
                raise DataError(f"{origin}:{start}: not valid {'CSV' if quoted else 'delimited text'} "
                                f"({exc})") from None
            if record:  # [] is a blank line
                out.append((start, record))
    finally:
        csv.field_size_limit(old_limit)


def _header(records: list[tuple[int, list[str]]], origin: str, expected: str) -> tuple[int, list[str]]:
    if not records:
        raise DataError(f"{origin}: empty file (expected {expected})")
    line, names = records[0]
    return line, [name.strip() for name in names]


def _column(header: list[str], name: str, origin: str, line: int, why: str) -> int:
    """The FIRST position of a column: the ISEAR export repeats some column names."""
    if name in header:
        return header.index(name)
    found = ", ".join(repr(h) for h in header[:15]) + (", ..." if len(header) > 15 else "")
    raise DataError(f"{origin}:{line}: no column {name!r} ({why}; found {found})")


def _check_width(record: list[str], width: int, origin: str, line: int) -> None:
    if len(record) != width:
        # a quote left open swallows the following lines into one field: say so, it is the usual cause
        spans = any("\n" in f or "\r" in f for f in record)
        raise DataError(f"{origin}:{line}: {len(record)} columns (expected {width}, as in the header"
                        f"{'; an unclosed quote?' if spans else ''})")


def _cell(record: list[str], index: int, column: str, origin: str, line: int, expected: str) -> str:
    """A label cell that must not be empty (the row's only label in ISEAR and MELD)."""
    value = record[index].strip()
    if not value:
        raise DataError(f"{origin}:{line}: column {column!r} is empty (expected {expected})")
    return value


# -- finding files ---------------------------------------------------------------------------------------
def _folder(path: str | Path, expected: str) -> Path:
    folder = Path(path).expanduser()
    if not folder.exists():
        raise DataError(f"{folder}: folder not found (expected a folder with {expected})")
    if not folder.is_dir():
        raise DataError(f"{folder}: is a file (expected a folder with {expected})")
    return folder


def _find_under(folder: Path, name: str) -> Path | None:
    """The one file called ``name`` anywhere under ``folder``; None if there is none.

    Two copies are an error rather than a guess: an unpacked archive next to an edited copy is common.
    """
    hits = sorted(p for p in folder.rglob(name) if p.is_file())
    if len(hits) > 1:
        raise DataError(f"{folder}: {name} found {len(hits)} times, {hits[0]} and {hits[1]} "
                        f"(expected one; move or delete the others)")
    return hits[0] if hits else None


def _require_under(folder: Path, name: str, dataset: str) -> Path:
    found = _find_under(folder, name)
    if found is None:
        raise DataError(f"{folder}: no {name} anywhere under this folder (expected the {dataset} files)")
    return found


# -- SemEval-2018 Task 1 E-c (English) ---------------------------------------------------------------------
SEMEVAL_LABELS = ("anger", "anticipation", "disgust", "fear", "joy", "love", "optimism", "pessimism", "sadness",
                  "surprise", "trust")
SEMEVAL_HEADER = ("ID", "Tweet", *SEMEVAL_LABELS)
_SEMEVAL_DATASET = "SemEval-2018 E-c English"
_SEMEVAL_FILES = {"train": "2018-E-c-En-train.txt", "dev": "2018-E-c-En-dev.txt"}
_SEMEVAL_GOLD = "2018-E-c-En-test-gold.txt"
_SEMEVAL_UNLABELLED = "2018-E-c-En-test.txt"  # the test file as released before the gold labels: NONE cells


def _clean_tweet(raw: str) -> str:
    # A tweet's line breaks are stored as the two characters backslash-n: a break between words is a space.
    return " ".join(raw.replace("\\n", " ").split())


def _semeval_labels(cells: list[str], origin: str, line: int, unlabelled: bool) -> list[str]:
    """The header names of the columns that are 1; an unlabelled file's all-NONE row has none."""
    cells = [c.strip() for c in cells]
    if unlabelled and all(c == "NONE" for c in cells):
        return []
    expected = "0 or 1, or NONE in every label column" if unlabelled else "0 or 1"
    labels = []
    for name, cell in zip(SEMEVAL_LABELS, cells):
        if cell == "1":
            labels.append(name)
        elif cell != "0":
            raise DataError(f"{origin}:{line}: column {name!r} is {cell!r} (expected {expected})")
    return labels


def _read_semeval_file(path: Path, unlabelled: bool) -> _Rows:
    origin = str(path)
    expected_header = "the tab-separated header " + " ".join(SEMEVAL_HEADER)
    records = _records(_decode_utf8(_read_bytes(path, f"a {_SEMEVAL_DATASET} file"), origin), origin, "\t",
                       quoted=False)
    line, header = _header(records, origin, expected_header)
    if tuple(header) != SEMEVAL_HEADER:
        raise DataError(f"{origin}:{line}: unexpected header {header!r:.160} (expected {expected_header})")
    rows = _Rows(origin)
    for line, record in records[1:]:
        _check_width(record, len(SEMEVAL_HEADER), origin, line)
        rows.keep(line, _clean_tweet(record[1]), _semeval_labels(record[2:], origin, line, unlabelled))
    return rows


def read_semeval2018_ec(path: str | Path) -> RawSource:
    """SemEval-2018 Task 1 E-c (English): train, dev and test files found anywhere under the folder ``path``.

    Test is the gold file, else the unlabelled release (its rows have [] and ``labelled=False``), else absent.
    """
    folder = _folder(path, f"the {_SEMEVAL_DATASET} files ({', '.join(_SEMEVAL_FILES.values())})")
    # name -> (file, is the unlabelled release)
    files = {name: (_require_under(folder, file, _SEMEVAL_DATASET), False) for name, file in _SEMEVAL_FILES.items()}
    gold = _find_under(folder, _SEMEVAL_GOLD)
    unlabelled = None if gold else _find_under(folder, _SEMEVAL_UNLABELLED)
    if gold:
        files["test"] = (gold, False)
    elif unlabelled:
        files["test"] = (unlabelled, True)
    parts = {name: _read_semeval_file(file, unl) for name, (file, unl) in files.items()}
    splits = {name: rows.split(name, labelled=not files[name][1]) for name, rows in parts.items()}
    return RawSource(splits, _sum_drops(list(parts.values())), list(SEMEVAL_LABELS))


# -- ISEAR ---------------------------------------------------------------------------------------------
ISEAR_EMOTIONS = ("joy", "fear", "anger", "sadness", "disgust", "shame", "guilt")
_ISEAR_EXPECTED = "the ISEAR databank export isear.csv, '|'-separated with columns Field1 (emotion) and SIT (text)"
# The export wrote each original line break as "á " (a-acute, space); no English word ends in á.
_ISEAR_BREAK = re.compile(r"á(?=\s|$)")
# A whole text that is one bracketed remark is the coder's note that there is no answer:
# "[ Same as in anger.]", "[ Do not know.]", "[ No response.]".
_ISEAR_PLACEHOLDER = re.compile(r"\[[^\[\]]*\]")


def _clean_isear_text(raw: str) -> str:
    return " ".join(_ISEAR_BREAK.sub(" ", raw).split())


def _isear_fields(record: list[str], header: list[str], origin: str, line: int) -> list[str]:
    # Every line ends with '|', so the header and each row carry one empty last field. A row whose
    # trailing '|' was lost (an edited file) is the same row: pad it rather than reject it.
    if header[-1] == "" and len(record) == len(header) - 1:
        record = [*record, ""]
    _check_width(record, len(header), origin, line)
    return record


def read_isear(path: str | Path, split_seed: int = 0) -> RawSource:
    """ISEAR from its databank export ``isear.csv``, with a seeded 80/10/10 split stratified by emotion.

    Bracketed placeholder texts are dropped as "placeholder", empty ones as "empty".
    """
    _check_seed(split_seed)
    file = Path(path).expanduser()
    origin = str(file)
    records = _records(_decode_mixed(_read_bytes(file, _ISEAR_EXPECTED), origin), origin, "|", quoted=False)
    line, header = _header(records, origin, _ISEAR_EXPECTED)
    emotion = _column(header, "Field1", origin, line, f"expected {_ISEAR_EXPECTED}")
    text = _column(header, "SIT", origin, line, f"expected {_ISEAR_EXPECTED}")
    rows = _Rows(origin)
    for line, record in records[1:]:
        record = _isear_fields(record, header, origin, line)
        label = _cell(record, emotion, "Field1", origin, line, "an emotion: " + ", ".join(ISEAR_EMOTIONS))
        situation = _clean_isear_text(record[text])
        if _ISEAR_PLACEHOLDER.fullmatch(situation):
            rows.drop("placeholder")
            continue
        rows.keep(line, situation, [label])
    splits = rows.drawn_splits([labels[0] for labels in rows.labels], split_seed)
    return RawSource(splits, dict(rows.dropped), None)


# -- MELD ----------------------------------------------------------------------------------------------
MELD_EMOTIONS = ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")
_MELD_DATASET = "MELD"
_MELD_FILES = {"train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
_MELD_EXPECTED = "a MELD *_sent_emo.csv file with columns Utterance and Emotion"


def _clean_meld_text(raw: str) -> str:
    # ftfy repairs UTF-8 that was once read as Windows-1252 ("â€™" -> an apostrophe) without touching text
    # that is right; it also straightens curly quotes, so 0x92 and "â€™" both end up as "'".
    # Line breaks inside a quoted utterance are kept: they are part of what was said.
    return ftfy.fix_text(raw).strip()


def _read_meld_file(path: Path) -> _Rows:
    origin = str(path)
    records = _records(_decode_mixed(_read_bytes(path, _MELD_EXPECTED), origin), origin, ",", quoted=True)
    line, header = _header(records, origin, _MELD_EXPECTED)
    text = _column(header, "Utterance", origin, line, f"expected {_MELD_EXPECTED}")
    emotion = _column(header, "Emotion", origin, line, f"expected {_MELD_EXPECTED}")
    rows = _Rows(origin)
    for line, record in records[1:]:
        _check_width(record, len(header), origin, line)
        label = _cell(record, emotion, "Emotion", origin, line, "an emotion: " + ", ".join(MELD_EMOTIONS))
        rows.keep(line, _clean_meld_text(record[text]), [label])
    return rows


def read_meld(path: str | Path) -> RawSource:
    """MELD: train_sent_emo.csv and dev_sent_emo.csv (test_sent_emo.csv optional) anywhere under ``path``."""
    folder = _folder(path, f"the {_MELD_DATASET} files ({', '.join(_MELD_FILES.values())})")
    files = {name: _require_under(folder, file, _MELD_DATASET) if name != "test" else _find_under(folder, file)
             for name, file in _MELD_FILES.items()}
    parts = {name: _read_meld_file(file) for name, file in files.items() if file}
    splits = {name: rows.split(name) for name, rows in parts.items()}
    return RawSource(splits, _sum_drops(list(parts.values())), None)


# -- a generic table -----------------------------------------------------------------------------------------
TABLE_EXTENSIONS = (".csv", ".tsv", ".jsonl")
_TABLE_EXPECTED = "a .csv, .tsv or .jsonl file, or a folder with train, dev and optionally test files"
_LABEL_SEPARATORS = re.compile(r"[,;]")


def _label_tokens(raw: Any, origin: str, line: int, key: str) -> list[str]:
    """A row's labels as written: names or ids separated by ',' or ';' (jsonl: also a list; ints as text)."""
    items: list[Any]
    if raw is None:
        items = []
    elif isinstance(raw, str):
        items = _LABEL_SEPARATORS.split(raw)
    elif isinstance(raw, list):
        items = raw
    else:
        items = [raw]
    tokens: list[str] = []
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str):
            raise DataError(f"{origin}:{line}: labels {raw!r:.80} in {key!r} (expected label names or integer "
                            f"ids, separated by ',' or ';' or as a list)")
        token = item.strip()
        if token and token not in tokens:
            tokens.append(token)
    return tokens


def _missing(what: str, name: str, setting: str, origin: str, line: int, found: list[str]) -> DataError:
    shown = ", ".join(repr(f) for f in found[:15]) + (", ..." if len(found) > 15 else "")
    return DataError(f"{origin}:{line}: no {what} {name!r} (expected the {what} that {setting} = \"...\" "
                     f"names; found {shown})")


def _read_delimited_table(path: Path, text_col: str, labels_col: str) -> _Rows:
    origin = str(path)
    csv_file = path.suffix.lower() == ".csv"
    # A .tsv is read as GoEmotions' own .tsv is (QUOTE_NONE): texts hold quote characters as they are.
    records = _records(_decode_utf8(_read_bytes(path, _TABLE_EXPECTED), origin), origin,
                       "," if csv_file else "\t", quoted=csv_file)
    line, header = _header(records, origin, f"a header naming columns {text_col!r} and {labels_col!r}")
    columns = {}
    for name, setting in ((text_col, "text"), (labels_col, "labels")):
        if name not in header:
            raise _missing("column", name, setting, origin, line, header)
        columns[setting] = header.index(name)
    rows = _Rows(origin)
    for line, record in records[1:]:
        _check_width(record, len(header), origin, line)
        rows.keep(line, record[columns["text"]].strip(),
                  _label_tokens(record[columns["labels"]], origin, line, labels_col))
    return rows


def _read_jsonl_table(path: Path, text_key: str, labels_key: str) -> _Rows:
    origin = str(path)
    rows = _Rows(origin)
    text = _decode_utf8(_read_bytes(path, _TABLE_EXPECTED), origin)
    for line, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise json_line_error(exc, origin, line, "one JSON object per line") from None
        if not isinstance(obj, dict):
            raise DataError(f"{origin}:{line}: a JSON {type(obj).__name__} (expected one object per line)")
        for name, setting in ((text_key, "text"), (labels_key, "labels")):
            if name not in obj:
                raise _missing("key", name, setting, origin, line, list(obj))
        value = obj[text_key]
        if value is not None and not isinstance(value, str):
            raise DataError(f"{origin}:{line}: key {text_key!r} is {value!r:.60} (expected a string)")
        rows.keep(line, (value or "").strip(), _label_tokens(obj[labels_key], origin, line, labels_key))
    return rows


def _read_table_file(path: Path, text_col: str, labels_col: str) -> _Rows:
    suffix = path.suffix.lower()
    if suffix not in TABLE_EXTENSIONS:
        raise DataError(f"{path}: unsupported file type {path.suffix or '(none)'!r} (expected {_TABLE_EXPECTED})")
    if suffix == ".jsonl":
        return _read_jsonl_table(path, text_col, labels_col)
    return _read_delimited_table(path, text_col, labels_col)


def _table_split_file(folder: Path, name: str, required: bool) -> Path | None:
    found = [folder / f"{name}{ext}" for ext in TABLE_EXTENSIONS if (folder / f"{name}{ext}").exists()]
    if len(found) > 1:
        raise DataError(f"{folder}: both {found[0].name} and {found[1].name} (expected one {name} file)")
    if not found and required:
        raise DataError(f"{folder}: no {name}.csv, {name}.tsv or {name}.jsonl (expected {_TABLE_EXPECTED})")
    return found[0] if found else None


def read_table(path: str | Path, text: str = "text", labels: str = "labels", split_seed: int = 0) -> RawSource:
    """A generic table: one .csv/.tsv/.jsonl file (then a seeded 80/10/10 split stratified by each row's
    first label), or a folder holding train.*, dev.* and optionally test.* in those formats.

    ``text`` and ``labels`` name the columns (csv/tsv header) or keys (jsonl objects). A row without labels
    is kept with []; a row with empty text is dropped as "empty".
    """
    _check_seed(split_seed)
    target = Path(path).expanduser()
    if not target.exists():
        raise DataError(f"{target}: not found (expected {_TABLE_EXPECTED})")
    if not target.is_dir():
        rows = _read_table_file(target, text, labels)
        strata = [row_labels[0] if row_labels else "" for row_labels in rows.labels]
        return RawSource(rows.drawn_splits(strata, split_seed), dict(rows.dropped), None)
    files = {name: _table_split_file(target, name, required=name != "test") for name in SPLITS}
    parts = {name: _read_table_file(file, text, labels) for name, file in files.items() if file}
    splits = {name: rows.split(name) for name, rows in parts.items()}
    return RawSource(splits, _sum_drops(list(parts.values())), None)
