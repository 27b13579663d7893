"""Files in and files out for goemo-predict: rows read lazily from a text table, results written beside them.

In: ``.txt`` (one text per line, blank lines skipped as on stdin), ``.jsonl`` (one JSON object per line, the
text under a key) and ``.csv``/``.tsv`` (a header line, the text in a column; a ``.tsv`` is read as GoEmotions'
own, without quoting). Every row keeps all its columns, so the output can carry ids and gold labels along.
Out: ``.jsonl`` (each input object with ``labels`` and ``scores`` added, as ``--json`` prints them) or ``.csv``
(the input's columns, then ``labels`` joined by ``;``, then one ``score_<label>`` column per label).

Rows are read one line at a time, so a 1 GB input costs only the chunk of rows being labelled. Every input
error is a ``ValueError`` of one line naming the file (and the line) and what was expected.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator, Sequence, TextIO

from trainer.data import MAX_TEXT_CHARS, field_too_large, json_line_error
from trainer.input_files import open_regular_file

INPUT_SUFFIXES = (".txt", ".jsonl", ".csv", ".tsv")
OUTPUT_SUFFIXES = (".jsonl", ".csv")
TEXT_COLUMN = "text"  # the default --text-column, and the column a .txt line or a stdin line becomes
LABELS_COLUMN = "labels"
SCORES_COLUMN = "scores"
SCORE_PREFIX = "score_"  # CSV: one column per label, as spreadsheets want them
LABEL_SEPARATOR = ";"
_INPUT_FILE = "a text file to label (.txt, .jsonl, .csv or .tsv)"


@dataclass(frozen=True)
class Row:
    """One text to label and the row it came from (every column of it, the text's included), in input order."""

    text: str
    fields: dict[str, Any]
    where: str  # "file:line" (or "stdin:line", "argument 2") for an error about this row


def suffix_of(path: Path, allowed: Sequence[str], role: str) -> str:
    """The lower-cased suffix of ``path`` when it is one of ``allowed``; a one-line ValueError otherwise."""
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise ValueError(f"{path}: unknown {role} type {suffix or '(no suffix)'!r}; expected "
                         f"{', '.join(allowed[:-1])} or {allowed[-1]}")
    return suffix


class InputTable:
    """An input file opened for streaming: its ``columns`` (a table's header; ``None`` for .jsonl) and its rows.

    Iterate once; ``bytes_read`` and ``size`` let a progress bar estimate the total.
    """

    def __init__(self, path: Path, text_column: str = TEXT_COLUMN) -> None:
        self.path = path
        self.kind = suffix_of(path, INPUT_SUFFIXES, "input")
        self.text_column = TEXT_COLUMN if self.kind == ".txt" else text_column
        self._fh: BinaryIO = open_regular_file(path, _INPUT_FILE)
        self.size = os.fstat(self._fh.fileno()).st_size
        self.columns: list[str] | None = [TEXT_COLUMN] if self.kind == ".txt" else None
        self._records: Iterator[tuple[int, list[str]]] | None = None
        if self.kind in (".csv", ".tsv"):
            self._records = self._csv_records()
            self.columns = self._header()

    @property
    def bytes_read(self) -> int:
        """How far into the file the reader is (ahead by its buffer): for a progress estimate only."""
        return self._fh.tell() if not self._fh.closed else self.size

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> InputTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _lines(self) -> Iterator[tuple[int, str]]:
        """Decoded lines with their numbers (from 1) and endings; a byte-order mark (Excel writes one) dropped."""
        for number, raw in enumerate(self._fh, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{self.path}:{number}: not UTF-8 text ({exc.reason} at byte {exc.start} of the "
                                 "line); expected UTF-8") from None

    def _csv_records(self) -> Iterator[tuple[int, list[str]]]:
        """(line its record starts on, fields) for each record; csv's own errors as one line naming the line."""
        lines = (line for _, line in self._lines())
        # A .tsv is read as GoEmotions' own .tsv is (QUOTE_NONE): texts hold quote characters as they are.
        quoting = csv.QUOTE_MINIMAL if self.kind == ".csv" else csv.QUOTE_NONE
        # strict: an unclosed quote is an error, not the rest of the file swallowed into one text
        reader = csv.reader(lines, delimiter="," if self.kind == ".csv" else "\t", quoting=quoting, strict=True)
        old_limit = csv.field_size_limit(MAX_TEXT_CHARS)  # an unclosed quote stops here, not at the end of 1 GB
        try:
            while True:
                start = reader.line_num + 1
                try:
                    record = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    if "field larger than field limit" in str(exc):
                        raise field_too_large(str(self.path), start, reader.line_num) from None
                    hint = "; an unclosed quote?" if "unexpected end of data" in str(exc) else ""
                    raise ValueError(f"{self.path}:{start}: not valid {self.kind[1:].upper()} ({exc}{hint})") from None
                if record:  # a blank line
                    yield start, record
        finally:
            csv.field_size_limit(old_limit)

    def _header(self) -> list[str]:
        assert self._records is not None
        expected = f"a header line naming the columns, {self.text_column!r} among them"
        first = next(self._records, None)
        if first is None:
            raise ValueError(f"{self.path}: no header line (the file is empty); expected {expected}")
        line, header = first
        for i, name in enumerate(header):
            if name in header[:i]:
                raise ValueError(f"{self.path}:{line}: column {name!r} appears twice in the header; expected one "
                                 "name per column")
        taken = [name for name in (LABELS_COLUMN, SCORES_COLUMN) if name in header]
        if taken:
            raise _taken(f"{self.path}:{line}", taken[0])
        if self.text_column not in header:
            raise ValueError(f"{self.path}:{line}: no column {self.text_column!r} (columns found: "
                             f"{_shown(header)}); expected --text-column to name the column of texts")
        return header

    def __iter__(self) -> Iterator[Row]:
        if self.kind == ".txt":
            for number, line in self._lines():
                text = line.rstrip("\r\n")
                if text.strip():  # as stdin's lines are read
                    yield Row(text, {TEXT_COLUMN: text}, f"{self.path}:{number}")
        elif self.kind == ".jsonl":
            yield from self._jsonl_rows()
        else:
            yield from self._table_rows()

    def _jsonl_rows(self) -> Iterator[Row]:
        key = self.text_column
        expected = f"a JSON object per line with the text under {key!r}"
        for number, line in self._lines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (ValueError, RecursionError) as exc:
                raise ValueError(str(json_line_error(exc, str(self.path), number, expected))) from None
            if not isinstance(obj, dict):
                raise ValueError(f"{self.path}:{number}: found a JSON {type(obj).__name__}; expected {expected}")
            if key not in obj:
                raise ValueError(f"{self.path}:{number}: no key {key!r} (keys found: {_shown(list(obj))}); "
                                 "expected --text-column to name the key of the texts")
            text = obj[key]
            if not isinstance(text, str):
                raise ValueError(f"{self.path}:{number}: {key!r} is {text!r:.60}, not a string; expected {expected}")
            yield Row(text, obj, f"{self.path}:{number}")

    def _table_rows(self) -> Iterator[Row]:
        assert self._records is not None and self.columns is not None
        header = self.columns
        at = header.index(self.text_column)
        for line, record in self._records:
            if len(record) != len(header):
                raise ValueError(f"{self.path}:{line}: {len(record)} fields; expected {len(header)}, one per "
                                 "column of the header")
            yield Row(record[at], dict(zip(header, record)), f"{self.path}:{line}")


def _taken(where: str, column: str) -> ValueError:
    return ValueError(f"{where}: the input already has a column {column!r}, which the results would overwrite; "
                      f"expected no {LABELS_COLUMN!r}, {SCORES_COLUMN!r} or '{SCORE_PREFIX}<label>' columns "
                      "(rename it)")


def _shown(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names[:15]) + (", ..." if len(names) > 15 else "") if names else "none"


def check_output_path(path: Path, source: Path | None) -> str:
    """The output's suffix, once ``path`` is writable in principle; a one-line ValueError otherwise.

    Checked before the model loads, so a typo costs nothing.
    """
    kind = suffix_of(path, OUTPUT_SUFFIXES, "output")
    if not path.parent.is_dir():
        raise ValueError(f"{path}: the folder {path.parent} does not exist; expected --output in an existing folder")
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; expected a file name ending in .jsonl or .csv")
    if source is not None and path.exists() and path.resolve() == source.resolve():
        raise ValueError(f"{path}: is the input file; expected another file for the results")
    return kind


def labelled(row: Row, result: dict) -> dict[str, Any]:
    """The output record of ``row``: every input column, then the labels and scores (as ``--json`` prints them)."""
    taken = [k for k in (LABELS_COLUMN, SCORES_COLUMN) if k in row.fields]
    if taken:  # refused rather than overwritten: it may hold the gold labels
        raise _taken(row.where, taken[0])
    return {**row.fields, LABELS_COLUMN: result["labels"], SCORES_COLUMN: result["scores"]}


class ResultWriter:
    """Writes labelled rows to an open text file as .jsonl or .csv, one chunk at a time."""

    def __init__(self, fh: TextIO, kind: str, label_names: Sequence[str], columns: Sequence[str] | None) -> None:
        self._fh = fh
        self._kind = kind
        self._names = list(label_names)
        self._columns = list(columns) if columns is not None else None  # None: .jsonl input, fixed by its first row
        self._csv: Any = None

    def write(self, rows: Iterable[Row], results: Iterable[dict]) -> None:
        """Append ``rows`` with their ``results``, in the order given."""
        for row, result in zip(rows, results, strict=True):
            record = labelled(row, result)
            if self._kind == ".jsonl":
                self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            else:
                self._write_csv(row, record)

    def finish(self) -> None:
        """Complete the file: a CSV output of no rows still gets its header."""
        if self._kind == ".csv" and self._csv is None:
            self._start_csv(self._columns or [], "the input")

    def _start_csv(self, columns: list[str], where: str) -> None:
        taken = [c for c in columns if c.startswith(SCORE_PREFIX) and c[len(SCORE_PREFIX):] in self._names]
        if taken:
            raise _taken(where, taken[0])
        self._columns = columns
        self._csv = csv.writer(self._fh)
        self._csv.writerow([*columns, LABELS_COLUMN, *(SCORE_PREFIX + n for n in self._names)])

    def _write_csv(self, row: Row, record: dict[str, Any]) -> None:
        if self._csv is None:
            self._start_csv(self._columns if self._columns is not None else list(row.fields), row.where)
        assert self._columns is not None
        extra = [k for k in row.fields if k not in self._columns]
        if extra:
            raise ValueError(f"{row.where}: a key {extra[0]!r} that the first row lacks; expected the keys of "
                             f"the first row ({_shown(self._columns)}) for a CSV output, or a .jsonl output")
        cells = [_cell(row.fields.get(c)) for c in self._columns]
        scores = record[SCORES_COLUMN]
        self._csv.writerow([*cells, LABEL_SEPARATOR.join(record[LABELS_COLUMN]), *(scores[n] for n in self._names)])


def _cell(value: Any) -> str:
    """A JSON value as a CSV cell: strings as they are, nothing as empty, the rest as JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
