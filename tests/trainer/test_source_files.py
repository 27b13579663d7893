"""Source paths that are not regular files, oversized or pathological files, and the wording of the errors they
give: every one is a one-line DataError (or ConfigError), never a hang, a traceback or memory running out.

A FIFO blocks whoever opens it for reading until a writer comes, so each FIFO case runs in a thread with a
deadline: a regression fails the test instead of hanging the suite (and the FIFO is then opened for writing
once, which releases the stuck reader).
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import pytest

from trainer.config import ConfigError, validate_config
from trainer.data import MAX_TEXT_CHARS, DataError, load_splits, read_split_file
from trainer.input_files import ENV_MAX_LABEL_MAP_BYTES, ENV_MAX_SOURCE_BYTES
from trainer.label_maps import LabelMapError, load_label_map
from trainer.source_readers import read_isear, read_meld, read_table
from trainer.sources import load_sources
from trainer.taxonomy import goemotions_labels

DEADLINE_S = 10.0
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"
GOOD_MAP = '[labels]\nhappy = ["joy"]\n'


def error_within_deadline(fifo: Path, call: Callable[[], Any], errors: type[Exception] = DataError) -> str:
    """The one-line message of the error ``call`` raises, which it must raise before the deadline."""
    outcome: dict[str, BaseException | None] = {}

    def target() -> None:
        try:
            call()
            outcome["error"] = None
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread as it is
            outcome["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(DEADLINE_S)
    if worker.is_alive():
        try:  # a writer's open releases a reader blocked in open(); closing it gives that reader EOF
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        worker.join(DEADLINE_S)
        pytest.fail(f"reading {fifo} blocked for {DEADLINE_S} s instead of refusing it")
    error = outcome["error"]
    assert isinstance(error, errors), repr(error)
    message = str(error)
    assert message and "\n" not in message, message
    return message


def fifo_at(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
needs_dev_zero = pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero on this system")


# -- not a regular file ----------------------------------------------------------------------------------
@needs_fifo
def test_a_fifo_as_a_table_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = fifo_at(tmp_path / "mine.csv")
    message = error_within_deadline(fifo, lambda: read_table(fifo))
    assert message.startswith(f"{fifo}: expected ") and "found a named pipe (FIFO)" in message


@needs_fifo
def test_a_fifo_in_a_table_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("text,labels\nhello,joy\n", encoding="utf-8")
    fifo = fifo_at(tmp_path / "dev.csv")
    message = error_within_deadline(fifo, lambda: read_table(tmp_path))
    assert message.startswith(f"{fifo}: ") and "FIFO" in message


@needs_fifo
def test_a_fifo_as_the_isear_file_is_refused(tmp_path: Path) -> None:
    fifo = fifo_at(tmp_path / "isear.csv")
    message = error_within_deadline(fifo, lambda: read_isear(fifo))
    assert message.startswith(f"{fifo}: expected the ISEAR databank export") and "FIFO" in message


@needs_fifo
def test_a_fifo_named_like_a_meld_file_is_not_read(tmp_path: Path) -> None:
    fifo = fifo_at(tmp_path / "MELD" / "train_sent_emo.csv")
    message = error_within_deadline(fifo, lambda: read_meld(tmp_path / "MELD"))
    assert "train_sent_emo.csv" in message  # not a file: reported as missing, never opened


@needs_fifo
def test_a_fifo_as_a_label_map_is_refused(tmp_path: Path) -> None:
    fifo = fifo_at(tmp_path / "map.toml")
    message = error_within_deadline(fifo, lambda: load_label_map(fifo), LabelMapError)
    assert message.startswith(f"{fifo}: expected a TOML label map") and "FIFO" in message
    table = tmp_path / "t.csv"
    table.write_text("text,labels\nhello,happy\n", encoding="utf-8")
    cfg = validate_config({"sources": [{"kind": "table", "path": str(table), "label_map": str(fifo)}]}, "run.toml")
    assert "FIFO" in error_within_deadline(fifo, lambda: load_sources(cfg))


@needs_fifo
def test_a_fifo_in_a_goemotions_folder_is_refused(tmp_path: Path) -> None:
    for split in ("dev", "test"):
        (tmp_path / f"{split}.tsv").write_text("fine text\t1\n", encoding="utf-8")
    fifo = fifo_at(tmp_path / "train.tsv")
    message = error_within_deadline(fifo, lambda: load_splits(str(tmp_path)))
    assert message == f"{fifo}: expected a data file, found a named pipe (FIFO)"


@needs_dev_zero
def test_dev_zero_directly_or_through_a_symlink_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "x.csv"
    link.symlink_to("/dev/zero")
    for path, read in ((Path("/dev/zero"), read_isear), (link, read_table)):
        with pytest.raises(DataError) as err:
            read(path)
        assert str(err.value).startswith(f"{path}: expected ") and "found a character device" in str(err.value)
    gz = tmp_path / "train.tsv.gz"
    gz.symlink_to("/dev/zero")
    with pytest.raises(DataError, match="found a character device"):
        read_split_file(gz, "train")


# -- the byte caps -----------------------------------------------------------------------------------------
def test_a_table_over_the_byte_cap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = tmp_path / "big.csv"
    table.write_text("text,labels\n" + "a fine sentence,joy\n" * 20, encoding="utf-8")
    size = table.stat().st_size
    monkeypatch.setenv(ENV_MAX_SOURCE_BYTES, str(size))
    assert len(read_table(table).splits["train"]) > 0  # exactly at the cap is fine
    monkeypatch.setenv(ENV_MAX_SOURCE_BYTES, str(size - 1))
    with pytest.raises(DataError) as err:
        read_table(table)
    assert str(err.value) == (f"{table}: {size} bytes, over the limit of {size - 1} "
                              f"(set {ENV_MAX_SOURCE_BYTES} to read larger files)")
    monkeypatch.setenv(ENV_MAX_SOURCE_BYTES, "lots")
    with pytest.raises(DataError, match=f"{ENV_MAX_SOURCE_BYTES}='lots': expected a positive number of bytes"):
        read_table(table)


def test_a_gzip_split_is_capped_once_decompressed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = tmp_path / "train.tsv.gz"
    bomb.write_bytes(gzip.compress(b"same text\t1\n" * 100_000))  # 1.2 MB of text in about 3 KB
    monkeypatch.setenv(ENV_MAX_SOURCE_BYTES, str(100_000))
    with pytest.raises(DataError) as err:
        read_split_file(bomb, "train")
    assert str(err.value).startswith(f"{bomb}: more than 100000 bytes once decompressed, over the limit")


def test_a_label_map_has_its_own_smaller_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    padded = tmp_path / "map.toml"
    padded.write_text(GOOD_MAP + "# padding\n" * 200_000, encoding="utf-8")  # 2 MB: over the 1 MiB default
    with pytest.raises(LabelMapError, match=f"over the limit of {1 << 20} \\(set {ENV_MAX_LABEL_MAP_BYTES}"):
        load_label_map(padded)
    monkeypatch.setenv(ENV_MAX_LABEL_MAP_BYTES, str(4 << 20))
    assert load_label_map(padded).targets == {"happy": (goemotions_labels().index("joy"),)}


# -- pathological contents ---------------------------------------------------------------------------------
def test_deeply_nested_json_is_one_line(tmp_path: Path) -> None:
    deep = '{"text": "hi", "labels": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    table = tmp_path / "deep.jsonl"
    table.write_text('{"text": "fine", "labels": "joy"}\n' + deep, encoding="utf-8")
    assert str(pytest.raises(DataError, read_table, table).value) == (
        f"{table}:2: JSON nested too deeply to read (expected one JSON object per line)")
    split = tmp_path / "train.jsonl"
    split.write_text(deep, encoding="utf-8")
    assert "train.jsonl:1: JSON nested too deeply" in str(pytest.raises(DataError, read_split_file, split, "t").value)


def test_deeply_nested_toml_in_a_label_map_is_one_line(tmp_path: Path) -> None:
    deep = tmp_path / "map.toml"
    deep.write_text(GOOD_MAP + "sad = " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    message = str(pytest.raises(LabelMapError, load_label_map, deep).value)
    assert message.startswith(f"{deep}: values nested too deeply to read") and "\n" not in message


def test_a_5000_digit_integer_is_not_called_invalid_json(tmp_path: Path) -> None:
    digits = sys.get_int_max_str_digits()
    table = tmp_path / "big.jsonl"
    table.write_text('{"text": "hi", "labels": ' + "7" * 5000 + "}\n", encoding="utf-8")
    message = str(pytest.raises(DataError, read_table, table).value)
    assert message.startswith(f"{table}:1: a number with more than {digits} digits") and "not valid JSON" not in message
    split = tmp_path / "train.jsonl"
    split.write_text('{"text": "hi", "labels": [' + "7" * 5000 + "]}\n", encoding="utf-8")
    assert f"a number with more than {digits} digits" in str(pytest.raises(DataError, read_split_file, split, "t").value)
    label_map = tmp_path / "map.toml"
    label_map.write_text(GOOD_MAP + "n = " + "7" * 5000 + "\n", encoding="utf-8")
    message = str(pytest.raises(LabelMapError, load_label_map, label_map).value)
    assert message.startswith(f"{label_map}: a number with more than {digits} digits")


def test_a_long_unquoted_field_is_not_blamed_on_a_quote(tmp_path: Path) -> None:
    long = "x" * (MAX_TEXT_CHARS + 10)
    for name in ("long.csv", "long.tsv"):
        sep = "," if name.endswith(".csv") else "\t"
        table = tmp_path / name
        table.write_text(f"text{sep}labels\nok{sep}joy\n{long}{sep}joy\n", encoding="utf-8")
        message = str(pytest.raises(DataError, read_table, table).value)
        assert message == (f"{table}:3: a field longer than {MAX_TEXT_CHARS} characters "
                           f"(expected a text of at most {MAX_TEXT_CHARS})"), message
    unclosed = tmp_path / "unclosed.csv"
    unclosed.write_text('text,labels\nok,joy\n"never closed,joy\n' + ("more words\n" * 120_000), encoding="utf-8")
    message = str(pytest.raises(DataError, read_table, unclosed).value)
    assert message.startswith(f"{unclosed}:3: a field longer than") and message.endswith("an unclosed quote?)")


# -- names and messages --------------------------------------------------------------------------------------
def test_an_unknown_label_lists_ours_in_label_order_and_compactly(tmp_path: Path) -> None:
    table = tmp_path / "mine"
    table.mkdir()
    (table / "train.jsonl").write_text(json.dumps({"text": "a b", "labels": ["gleeful"]}) + "\n", encoding="utf-8")
    (table / "dev.jsonl").write_text(json.dumps({"text": "c d", "labels": ["joy"]}) + "\n", encoding="utf-8")
    cfg = validate_config({"sources": [{"kind": "table", "path": str(table)}]}, "run.toml")
    message = str(pytest.raises(DataError, load_sources, cfg).value)
    names = goemotions_labels()
    assert message.startswith(f"{table / 'train.jsonl'}:1: label 'gleeful' is not one of our 28 labels")
    assert ", ".join(names) in message and "an id 0..27" in message  # admiration ... neutral, in id order
    assert "10, 11" not in message  # the ids are a range, not 28 more entries


def test_a_label_maps_keys_are_listed_in_file_order(tmp_path: Path) -> None:
    label_map = tmp_path / "map.toml"
    label_map.write_text('[labels]\nzesty = ["joy"]\nangry = ["anger"]\nmeh = []\n', encoding="utf-8")
    message = str(pytest.raises(LabelMapError, load_label_map(label_map).map_labels, ["odd"], "t.csv:2").value)
    assert "(expected one of: zesty, angry, meh;" in message


def test_a_source_named_goemotions_must_be_the_goemotions_source() -> None:
    with pytest.raises(ConfigError) as err:
        validate_config({"sources": [{"kind": "goemotions"},
                                     {"kind": "isear", "path": "isear.csv", "name": "goemotions"}]}, "run.toml")
    assert str(err.value) == ("run.toml: key 'sources.1.name': the name 'goemotions' belongs to the goemotions "
                              "source (expected another name for this 'isear' source)")
    assert validate_config({"sources": [{"kind": "goemotions", "name": "goemotions"}]}, "r").sources[0].name


def test_a_pattern_keeps_its_case_in_the_message() -> None:
    with pytest.raises(ConfigError) as err:
        validate_config({"sources": [{"kind": "goemotions", "name": "a/b"}]}, "run.toml")
    assert "string should match pattern '^[A-Za-z0-9][A-Za-z0-9._-]*$'" in str(err.value)
