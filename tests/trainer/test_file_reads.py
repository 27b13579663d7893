"""trainer/file_reads.py: every way a whole-file read fails is one line naming the file and what was expected,
raised as the caller's own error class. Stdlib only, no torch: these run without the heavy lock."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest

from trainer.contract import TRAINER_STATE_FILE, CheckpointStateError, read_checkpoint_state
from trainer.file_reads import read_bytes, read_json, read_text, read_toml
from trainer.label_maps import LabelMapError, load_label_map


class OwnError(ValueError):
    """Stands in for a module's error class (ConfigError, ModelError, ...): callers catch that class."""


WHAT = "the thing a test wants"


def one_line(read, path: Path) -> str:
    with pytest.raises(OwnError) as err:
        read(path, WHAT, OwnError)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    assert err.value.__cause__ is None and err.value.__suppress_context__  # raised from None: no chained traceback
    return message


@pytest.mark.parametrize("read", [read_bytes, read_text, read_json, read_toml])
def test_a_missing_file_a_folder_and_a_path_through_a_file_are_one_line(tmp_path: Path, read) -> None:
    assert one_line(read, tmp_path / "missing") == f"{tmp_path / 'missing'}: file not found; expected {WHAT}"
    assert one_line(read, tmp_path) == f"{tmp_path}: expected {WHAT}, found a folder"
    (tmp_path / "plain").write_text("x")
    through = tmp_path / "plain" / "inside.json"
    assert one_line(read, through) == f"{through}: cannot read it (Not a directory); expected {WHAT}"


@pytest.mark.parametrize("exc, says", [
    (PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
    (OSError(errno.EIO, "Input/output error"), "cannot read it (Input/output error)"),
], ids=["permission", "io-error"])
def test_os_errors_root_cannot_provoke_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     exc: OSError, says: str) -> None:
    """Root reads a mode-000 file and a disk rarely fails on cue: the OSError is raised by hand."""
    def fail(self: Path) -> bytes:
        raise exc

    monkeypatch.setattr(Path, "read_bytes", fail)
    path = tmp_path / "state.json"
    for read in (read_bytes, read_text, read_json, read_toml):
        assert one_line(read, path) == f"{path}: {says}; expected {WHAT}"


def test_input_files_words_its_os_errors_the_same_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A capped user file (here a label map) read through input_files says "permission denied" in the same words
    (it said "expected a readable a TOML label map ..." before)."""
    label_map = tmp_path / "map.toml"
    label_map.write_text('[labels]\nhappy = ["joy"]\n', encoding="utf-8")
    real_open = os.open

    def refuse(path, *args, **kwargs):  # only the label map: pytest and the import system open files too
        if Path(path) == label_map:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    message = str(pytest.raises(LabelMapError, load_label_map, label_map).value)
    assert message == f"{label_map}: permission denied; expected a TOML label map with a [labels] table"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    locked = tmp_path / "locked.toml"
    locked.write_text("a = 1\n")
    locked.chmod(0)
    try:
        for read in (read_bytes, read_text, read_json, read_toml):
            assert one_line(read, locked) == f"{locked}: permission denied; expected {WHAT}"
        message = str(pytest.raises(LabelMapError, load_label_map, locked).value)
        assert message == f"{locked}: permission denied; expected a TOML label map with a [labels] table"
    finally:
        locked.chmod(0o600)


@pytest.mark.parametrize("read", [read_text, read_json, read_toml])
def test_bytes_that_are_not_utf8_are_one_line_with_the_offset(tmp_path: Path, read) -> None:
    latin1 = tmp_path / "latin1"
    latin1.write_bytes(b'name = "caf\xe9"\n')
    assert one_line(read, latin1) == (f"{latin1}: not UTF-8 text (invalid continuation byte at byte 11); "
                                      f"expected {WHAT}")
    bom = tmp_path / "bom"
    bom.write_bytes(b"\xef\xbb\xbf\xff")  # the offset counts the byte-order mark, so it points into the file
    assert "(invalid start byte at byte 3)" in one_line(read, bom)


def test_a_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}')
    assert read_text(path, WHAT) == '{"a": 1}' and read_json(path, WHAT) == {"a": 1}
    path.write_bytes(b"\xef\xbb\xbfa = 1\n")
    assert read_toml(path, WHAT) == {"a": 1}
    assert read_bytes(path, WHAT).startswith(b"\xef\xbb\xbf")  # bytes are the file's, untouched


@pytest.mark.parametrize("text, says", [
    ("", "not valid JSON (the file is empty)"),
    ("  \n", "not valid JSON (the file is empty)"),
    ('{"step": 4, "epo', "not valid JSON (Unterminated string at line 1 column 13; truncated?)"),
    ('{"step": 4, "epoch": ', "not valid JSON (Expecting value at line 1 column 22; truncated?)"),
    ('{"step": 4,, "epoch": 1}', "not valid JSON (Expecting property name enclosed in double quotes at line 1 "
                                 "column 12)"),
    ("[" * 100_000 + "]" * 100_000, "values nested too deeply to read"),
    ("7" * 5000, f"a number with more than {sys.get_int_max_str_digits()} digits"),
], ids=["empty", "blank", "truncated-string", "truncated-value", "broken", "too-deep", "5000-digits"])
def test_bad_json_is_one_line(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(text, encoding="utf-8")
    assert one_line(read_json, path) == f"{path}: {says}; expected {WHAT}"


@pytest.mark.parametrize("text, says", [
    ("lr = = 3\n", "invalid TOML (Invalid value (at line 1, column 6))"),
    ("x = " + "[" * 100_000 + "]" * 100_000 + "\n", "values nested too deeply to read"),
    ("x = " + "7" * 5000 + "\n", f"a number with more than {sys.get_int_max_str_digits()} digits"),
], ids=["broken", "too-deep", "5000-digits"])
def test_bad_toml_is_one_line(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "run.toml"
    path.write_text(text, encoding="utf-8")
    assert one_line(read_toml, path) == f"{path}: {says}; expected {WHAT}"


def test_a_checkpoint_state_nested_too_deeply_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """The contract's reader let json's RecursionError through as a traceback before it read through here."""
    (tmp_path / TRAINER_STATE_FILE).write_text("[" * 100_000 + "]" * 100_000)
    message = str(pytest.raises(CheckpointStateError, read_checkpoint_state, tmp_path).value)
    assert message == f"{tmp_path / TRAINER_STATE_FILE}: values nested too deeply to read; expected the trainer state"
