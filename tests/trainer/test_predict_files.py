"""goemo-predict --input/--output: each format in and out, other columns and the input's order kept, bad input
as one line with exit 2 and no file half-written."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import sys
from pathlib import Path

import pytest

from tests.trainer.test_predict import LABELS, _export
from trainer.contract import EXIT_BAD_INPUT, EXIT_OK
from trainer.predict import Predictor, main

ROWS = [
    {"id": "a1", "text": "thanks so much, you made my day", "gold": "gratitude"},
    {"id": "b2", "text": 'this is "awful", really', "gold": "disgust"},
    {"id": "c3", "text": "what?", "gold": "confusion"},
]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("export") / "head", "head")


@pytest.fixture(scope="module")
def expected(model: Path) -> dict[str, dict]:
    """Each text labelled alone (a batch of one: no padding, no sorting), to compare the files with."""
    predictor = Predictor(model, batch_size=1)
    return {r["text"]: r for r in predictor.predict([row["text"] for row in ROWS])}


def _write_input(path: Path, rows: list[dict], text_key: str = "text") -> Path:
    kind = path.suffix
    if kind == ".txt":
        path.write_text("".join(r["text"] + "\n\n" for r in rows))  # blank lines are skipped, as on stdin
    elif kind == ".jsonl":
        path.write_text("".join(json.dumps({**r, text_key: r["text"]} if text_key != "text" else r) + "\n"
                                for r in rows))
    else:
        if kind == ".tsv":  # no quoting, as GoEmotions writes it: quote characters stay in the text
            path.write_text("".join("\t".join(r) + "\n" for r in [list(rows[0]), *(list(r.values()) for r in rows)]))
        else:
            with path.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(list(rows[0]))
                writer.writerows([list(r.values()) for r in rows])
    return path


def _read_output(path: Path) -> list[dict]:
    """The output rows, CSV ones turned into the JSON shape (labels a list, scores a dict)."""
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for row in rows:
        scores = {n: float(row.pop(f"score_{n}")) for n in LABELS}
        labels = row.pop("labels")
        out.append({**row, "labels": labels.split(";") if labels else [], "scores": scores})
    return out


def _run(capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capfd.readouterr()
    return code, out, err


@pytest.mark.parametrize("out_kind", [".jsonl", ".csv"])
@pytest.mark.parametrize("in_kind", [".txt", ".jsonl", ".csv", ".tsv"])
def test_a_file_is_labelled_into_a_file_with_its_other_columns(model, expected, tmp_path, capfd, in_kind, out_kind):
    source = _write_input(tmp_path / f"in{in_kind}", ROWS)
    target = tmp_path / f"out{out_kind}"
    code, out, err = _run(capfd, "--model", str(model), "--input", str(source), "--output", str(target))
    assert (code, out, err) == (EXIT_OK, "", "")  # no progress bar: stderr is no terminal here
    rows = _read_output(target)
    assert [r["text"] for r in rows] == [r["text"] for r in ROWS]
    for got, row in zip(rows, ROWS):
        kept = {"text": row["text"]} if in_kind == ".txt" else row
        assert {k: got[k] for k in got if k not in ("labels", "scores")} == kept
        want = expected[row["text"]]
        assert list(got["scores"]) == LABELS
        assert got["scores"] == pytest.approx(want["scores"], abs=2e-4)
        assert got["labels"] == want["labels"]
    assert sorted(os.listdir(tmp_path)) == sorted([source.name, target.name])  # no temp file left


def test_the_text_column_is_chosen(model, expected, tmp_path, capfd):
    rows = [{"id": r["id"], "body": r["text"]} for r in ROWS]
    source = tmp_path / "in.csv"
    _write_input(source, rows)
    code, out, err = _run(capfd, "--model", str(model), "--input", str(source), "--text-column", "body", "--json")
    assert code == EXIT_OK, err
    got = [json.loads(line) for line in out.splitlines()]  # no --output: stdout, one object per row
    assert [g["body"] for g in got] == [r["text"] for r in ROWS]
    assert [g["id"] for g in got] == [r["id"] for r in ROWS]
    assert [g["labels"] for g in got] == [expected[r["text"]]["labels"] for r in ROWS]


def test_order_is_kept_across_chunks_sorted_by_length(model, tmp_path, capfd, monkeypatch):
    """50 texts of shuffled lengths, read 8 at a time and batched 3 at a time by length, come out in input order
    with their own scores."""
    import trainer.models
    import trainer.predict

    rng = random.Random(7)
    words = "thanks awful great sad wow love fear why ok fine".split()
    rows = [{"id": str(i), "text": " ".join(rng.choice(words) for _ in range(rng.randint(1, 40)))} for i in range(50)]
    source = _write_input(tmp_path / "in.jsonl", rows)
    monkeypatch.setattr(trainer.predict, "CHUNK_ROWS", 8)
    chunks: list[int] = []
    batches: list[list[int]] = []
    probabilities = Predictor.probabilities
    load = trainer.models.load_exported

    def counting(self, texts):
        chunks.append(len(texts))
        return probabilities(self, texts)

    def spying(member: Path):
        net, tokenizer, names = load(member)

        def tokenize(texts, **kwargs):
            batches.append([len(t) for t in texts])
            return tokenizer(texts, **kwargs)
        return net, tokenize, names

    monkeypatch.setattr(Predictor, "probabilities", counting)
    monkeypatch.setattr(trainer.models, "load_exported", spying)
    target = tmp_path / "out.jsonl"
    code, _, err = _run(capfd, "--model", str(model), "--input", str(source), "--output", str(target),
                        "--batch-size", "3")
    assert code == EXIT_OK, err
    assert chunks == [3, 6] + [8] * 5 + [1]  # the first results come after one batch
    batched = iter(batches)
    for size in chunks:  # within a chunk, batches of 3 go from the shortest text to the longest
        lengths: list[int] = []
        while len(lengths) < size:
            lengths += next(batched)
        assert lengths == sorted(lengths) and len(lengths) == size
    as_read = [len(r["text"]) for r in rows[:3]]
    assert as_read != sorted(as_read)  # so the sorting above was done, and undone below
    got = _read_output(target)
    assert [(g["id"], g["text"]) for g in got] == [(r["id"], r["text"]) for r in rows]
    monkeypatch.undo()
    alone = Predictor(model, batch_size=1).predict([r["text"] for r in rows])
    for g, a in zip(got, alone):
        assert g["scores"] == pytest.approx(a["scores"], abs=2e-4)


def test_stdin_can_go_to_a_file(model, expected, tmp_path, capfd, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(r["text"] + "\n" for r in ROWS)))
    target = tmp_path / "out.csv"
    code, out, err = _run(capfd, "--model", str(model), "--output", str(target))
    assert (code, out, err) == (EXIT_OK, "", "")
    assert [(g["text"], g["labels"]) for g in _read_output(target)] == \
        [(r["text"], expected[r["text"]]["labels"]) for r in ROWS]


def test_an_empty_input_gives_a_csv_with_its_header(model, tmp_path, capfd):
    source = tmp_path / "in.csv"
    source.write_text("id,text\n")
    target = tmp_path / "out.csv"
    code, _, err = _run(capfd, "--model", str(model), "--input", str(source), "--output", str(target))
    assert code == EXIT_OK, err
    assert target.read_text().splitlines() == [",".join(["id", "text", "labels", *(f"score_{n}" for n in LABELS)])]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_progress_bar_counts_rows_on_a_terminal_only(model, tmp_path, capfd, monkeypatch):
    source = _write_input(tmp_path / "in.csv", ROWS)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    code, _, _ = _run(capfd, "--model", str(model), "--input", str(source), "--output", str(tmp_path / "o.jsonl"))
    assert code == EXIT_OK
    assert "3/3" in terminal.getvalue() and "rows" in terminal.getvalue()


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


BAD_INPUTS = [
    # (name, file content or a maker, extra args, what the line says)
    ("gone.csv", None, [], "file not found"),
    ("folder.csv", lambda p: p.mkdir(), [], "found a folder"),
    ("pipe.txt", _fifo, [], "found a named pipe"),
    ("in.xlsx", "text\nhi\n", [], "unknown input type '.xlsx'; expected .txt, .jsonl, .csv or .tsv"),
    ("in.csv", "id,body\n1,hi\n", [], "in.csv:1: no column 'text' (columns found: 'id', 'body')"),
    ("in.tsv", "text\tid\nhi\t1\n", ["--text-column", "body"],
     "in.tsv:1: no column 'body' (columns found: 'text', 'id')"),
    ("in.csv", "", [], "no header line (the file is empty)"),
    ("in.csv", "id,text\n1,hi\n2,hi,extra\n", [], "in.csv:3: 3 fields; expected 2"),
    ("in.csv", 'id,text\n1,"never closed\n2,hi\n', [], "in.csv:2: not valid CSV (unexpected end of data; an unclosed"),
    ("in.csv", "text,labels\nhi,joy\n", [], "in.csv:1: the input already has a column 'labels'"),
    ("in.jsonl", '{"text": "hi"}\n{"text": "hi"\n', [], "in.jsonl:2: not valid JSON"),
    ("in.jsonl", '{"text": "hi"}\n["hi"]\n', [], "in.jsonl:2: found a JSON list"),
    ("in.jsonl", '{"body": "hi", "id": 1}\n', [], "in.jsonl:1: no key 'text' (keys found: 'body', 'id')"),
    ("in.jsonl", '{"text": 5}\n', [], "in.jsonl:1: 'text' is 5, not a string"),
    ("in.txt", b"fine\ncaf\xe9\n", [], "in.txt:2: not UTF-8 text"),
]


@pytest.mark.parametrize("name, content, extra, says", BAD_INPUTS, ids=[c[3][:30] for c in BAD_INPUTS])
def test_bad_input_is_one_line_and_writes_nothing(model, tmp_path, capfd, name, content, extra, says):
    source = tmp_path / name
    if callable(content):
        content(source)
    elif content is not None:
        source.write_bytes(content if isinstance(content, bytes) else content.encode())
    target = tmp_path / "out.jsonl"
    target.write_text("an older result\n")
    code, out, err = _run(capfd, "--model", str(model), "--input", str(source), "--output", str(target), *extra)
    assert code == EXIT_BAD_INPUT, (out, err)
    assert out == "" and "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"goemo-predict: error: {source}"), err
    assert says in err, err
    assert target.read_text() == "an older result\n"  # untouched, and no temp file beside it
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_a_bad_row_after_many_good_ones_leaves_no_half_written_file(model, tmp_path, capfd, monkeypatch):
    import trainer.predict

    monkeypatch.setattr(trainer.predict, "CHUNK_ROWS", 4)
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(20)) + "{oops\n")
    target = tmp_path / "out.jsonl"
    code, out, err = _run(capfd, "--model", str(model), "--input", str(source), "--output", str(target))
    assert code == EXIT_BAD_INPUT and err.startswith(f"goemo-predict: error: {source}:21: not valid JSON"), err
    assert os.listdir(tmp_path) == ["in.jsonl"]


@pytest.mark.parametrize("output, says", [
    ("missing/out.csv", "the folder"),
    ("out.txt", "unknown output type '.txt'; expected .jsonl or .csv"),
    ("in.csv", "is the input file"),
])
def test_a_bad_output_path_is_one_line_before_the_model_loads(tmp_path, capfd, monkeypatch, output, says):
    source = _write_input(tmp_path / "in.csv", ROWS)
    monkeypatch.setattr(Predictor, "__init__", lambda *a: pytest.fail("the model loaded"))
    model = tmp_path / "model"
    model.mkdir()
    (model / "goemo_model.json").write_text("{}")  # passes the folder check; loading it would fail
    target = tmp_path / output
    code, out, err = _run(capfd, "--model", str(model), "--input", str(source), "--output", str(target))
    assert code == EXIT_BAD_INPUT and out == "" and len(err.splitlines()) == 1, err
    assert err.startswith(f"goemo-predict: error: {target}: ") and says in err, err
    assert source.read_text().startswith("id,text,gold")


def test_texts_and_input_together_are_refused(model, tmp_path, capfd):
    source = _write_input(tmp_path / "in.txt", ROWS)
    code, out, err = _run(capfd, "--model", str(model), "--input", str(source), "hello")
    assert code == EXIT_BAD_INPUT and len(err.splitlines()) == 1 and str(source) in err, err


def test_jsonl_values_become_csv_cells(model, tmp_path, capfd):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"text": "hi", "id": 5, "meta": {"a": 1}, "none": None}) + "\n")
    target = tmp_path / "out.csv"
    code, _, err = _run(capfd, "--model", str(model), "--input", str(source), "--output", str(target))
    assert code == EXIT_OK, err
    row = _read_output(target)[0]
    assert (row["text"], row["id"], row["meta"], row["none"]) == ("hi", "5", '{"a": 1}', "")


def test_a_jsonl_row_with_a_new_key_cannot_go_to_csv(model, tmp_path, capfd):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"text": "hi"}) + "\n" + json.dumps({"text": "ho", "extra": 1}) + "\n")
    code, _, err = _run(capfd, "--model", str(model), "--input", str(source), "--output", str(tmp_path / "o.csv"))
    assert code == EXIT_BAD_INPUT and len(err.splitlines()) == 1, err
    assert f"{source}:2: a key 'extra' that the first row lacks" in err
    assert os.listdir(tmp_path) == ["in.jsonl"]


class _ClosedPipe(io.StringIO):
    """A stdout whose reader has gone (goemo-predict ... | head -1)."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        return self._fd


def test_a_reader_that_leaves_ends_it_quietly(model, tmp_path, capfd, monkeypatch):
    source = _write_input(tmp_path / "in.txt", ROWS)
    fd = os.open(os.devnull, os.O_WRONLY)
    try:
        monkeypatch.setattr(sys, "stdout", _ClosedPipe(fd))
        code = main(["--model", str(model), "--input", str(source)])
    finally:
        os.close(fd)
    _, err = capfd.readouterr()
    assert code == 1 and err == ""  # no BrokenPipeError traceback
