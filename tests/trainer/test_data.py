import csv
import gzip
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from trainer.data import (MAX_TEXT_CHARS, DataError, balanced_class_weights, label_names, length_grouped_batches,
                          load_splits, oversample_rare_classes, pad_batch, read_split_file, seeded_subset)


@pytest.fixture(scope="module")
def splits():
    return load_splits("embedded")


def test_embedded_splits_have_the_documented_sizes(splits):
    assert {k: len(v) for k, v in splits.items()} == {"train": 43410, "dev": 5426, "test": 5427}
    assert splits["train"].labels.shape == (43410, 28)
    counts = splits["train"].labels.sum(axis=0)
    names = label_names()
    assert counts[names.index("grief")] == 77 and counts[names.index("neutral")] == 14219


def test_oversampling_full_train_matches_reference_figure(splits):
    over = oversample_rare_classes(splits["train"].labels, "below_median", 1.5, seed=0)
    assert len(over.indices) == 47786
    assert len(over.classes) == 14
    counts = splits["train"].labels.sum(axis=0)
    median = np.median(counts)
    assert all(counts[c] < median for c in over.classes)
    # added rows carry their label, so each oversampled label grows by at least the rule's amount
    after = splits["train"].labels[over.indices].sum(axis=0)
    for c in over.classes:
        assert after[c] >= counts[c] + int(0.5 * counts[c])


def test_oversampling_none_and_seeded(splits):
    labels = splits["train"].labels[:2000]
    assert len(oversample_rare_classes(labels, "none", 1.5, 0).indices) == 2000
    a = oversample_rare_classes(labels, "below_median", 2.0, 1).indices
    b = oversample_rare_classes(labels, "below_median", 2.0, 1).indices
    c = oversample_rare_classes(labels, "below_median", 2.0, 2).indices
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_subset_is_seeded_random_and_keeps_every_label(splits):
    labels = splits["train"].labels
    idx = seeded_subset(labels, 300, seed=3)
    assert len(idx) == 300 and len(set(idx)) == 300
    assert (labels[idx].sum(axis=0) > 0).all()
    assert not np.array_equal(idx, np.arange(300))  # never the first N rows
    assert np.array_equal(idx, seeded_subset(labels, 300, seed=3))
    assert not np.array_equal(idx, seeded_subset(labels, 300, seed=4))


def test_balanced_class_weights_formula():
    labels = np.zeros((10, 28), dtype=np.uint8)
    labels[:, 0] = 1
    labels[:5, 1] = 1
    w = balanced_class_weights(labels)
    assert w[0] == pytest.approx(10 / (28 * 10)) and w[1] == pytest.approx(10 / (28 * 5)) and w[2] == 0


@pytest.mark.parametrize("content, problem", [
    ("good text\t3\tid1\n\t4\tid2\n", ":2: empty text"),
    ("good text\t3\tid1\nbad label\t31\tid2\n", ":2: label id 31 outside 0..27"),
    ("good text\t3,x\tid1\n", ":1: labels '3,x' are not comma-separated integer ids"),
    ("only one column\n", ":1: expected 'text<TAB>label ids"),
])
def test_bad_rows_name_file_and_line(tmp_path, content, problem):
    path = tmp_path / "train.tsv"
    path.write_text(content)
    with pytest.raises(DataError) as err:
        read_split_file(path, "train")
    assert str(path) in str(err.value) and problem in str(err.value)


def test_jsonl_csv_and_gz_sources(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "a", "labels": [1, 2]}\n{"text": "b", "labels": [27]}\n')
    (tmp_path / "dev.csv").write_text('text,labels\n"hello, you","3,4"\n')
    with gzip.open(tmp_path / "test.tsv.gz", "wt") as fh:
        fh.write('quote " inside\t5\tx\n')
    s = load_splits(str(tmp_path))
    assert s["train"].labels[0, [1, 2]].tolist() == [1, 1]
    assert s["dev"].texts == ["hello, you"] and s["dev"].labels[0, [3, 4]].tolist() == [1, 1]
    assert s["test"].texts == ['quote " inside']


def test_missing_source_folder_is_one_line(tmp_path):
    with pytest.raises(DataError, match="data source not found"):
        load_splits(str(tmp_path / "nope"))
    with pytest.raises(DataError, match="no dev.tsv"):
        (tmp_path / "train.tsv").write_text("a\t1\n")
        load_splits(str(tmp_path))


def test_length_grouped_batches_cover_rows_once_and_depend_on_seed_and_epoch():
    lengths = np.random.default_rng(0).integers(3, 60, size=1000)
    b0 = length_grouped_batches(lengths, 16, seed=1, epoch=0)
    assert sorted(np.concatenate(b0).tolist()) == list(range(1000))
    assert all(np.array_equal(x, y) for x, y in zip(b0, length_grouped_batches(lengths, 16, 1, 0)))
    assert not all(np.array_equal(x, y) for x, y in zip(b0, length_grouped_batches(lengths, 16, 1, 1)))
    # grouping keeps padding low: mean padded width close to mean real length
    padded = sum(len(b) * lengths[b].max() for b in b0)
    assert padded / lengths.sum() < 1.2


def test_pad_batch_pads_to_longest_only():
    ids, mask = pad_batch([np.array([5, 6, 7]), np.array([8])], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    ids, _ = pad_batch([np.array([1, 2, 3])], pad_id=0, multiple_of=8)
    assert ids.shape == (1, 8)


def _one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_a_split_file_that_is_a_folder_is_named(tmp_path):
    (tmp_path / "train.tsv").mkdir()
    with pytest.raises(DataError) as err:
        load_splits(str(tmp_path))
    assert _one_line(err) == f"{tmp_path / 'train.tsv'}: expected a data file, found a folder"


def test_a_source_that_is_a_file_is_named(tmp_path):
    (tmp_path / "data.tsv").write_text("a\t1\n")
    with pytest.raises(DataError, match="expected a folder with train, dev and test files, found a file"):
        load_splits(str(tmp_path / "data.tsv"))


@pytest.mark.parametrize("payload, problem", [
    (b"this is not gzip at all", "not a gzip file"),
    (gzip.compress(b"hello\t1\n" * 200)[:30], "gzip data ends early"),
    (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff\x07" + b"\x00" * 40, "corrupt gzip data"),  # bad block type
], ids=["not-gzip", "truncated", "corrupt"])
def test_garbage_gz_is_one_line_naming_the_file(tmp_path, payload, problem):
    path = tmp_path / "train.tsv.gz"
    path.write_bytes(payload)
    with pytest.raises(DataError) as err:
        read_split_file(path, "train")
    msg = _one_line(err)
    assert msg.startswith(f"{path}: ") and problem in msg


def test_long_fields_are_read_and_absurd_ones_named_by_file_and_line(tmp_path):
    limit_before = csv.field_size_limit()
    long = "x" * 200_000  # over csv's default field limit, well within ours
    for name, content in (("a.tsv", f"ok\t1\n{long}\t2\n"), ("a.csv", f'text,labels\nok,1\n"{long}",2\n'),
                          ("a.jsonl", f'{{"text": "ok", "labels": [1]}}\n{{"text": "{long}", "labels": [2]}}\n')):
        path = tmp_path / name
        path.write_text(content)
        assert read_split_file(path, "train").texts[1] == long
    absurd = "y" * (MAX_TEXT_CHARS + 10)
    for name, content, problem in (
        ("b.tsv", f"ok\t1\n{absurd}\t2\n", f":2: a field longer than {MAX_TEXT_CHARS} characters"),
        ("b.csv", 'text,labels\nok,1\n"unclosed quote,2\n' + absurd + "\n", ":3: a field longer than"),
        ("b.jsonl", f'{{"text": "ok", "labels": [1]}}\n{{"text": "{absurd}", "labels": [2]}}\n',
         f":2: text of {len(absurd)} characters"),
    ):
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(DataError) as err:
            read_split_file(path, "train")
        msg = _one_line(err)
        assert msg.startswith(f"{path}:") and problem in msg, msg
    assert csv.field_size_limit() == limit_before  # the process-wide limit is restored after each read


def test_utf8_bom_is_accepted_in_every_format(tmp_path):
    bom = b"\xef\xbb\xbf"
    (tmp_path / "train.csv").write_bytes(bom + b"text,labels\nhello,3\n")
    (tmp_path / "dev.tsv").write_bytes(bom + b"hi there\t4\n")
    (tmp_path / "test.jsonl.gz").write_bytes(gzip.compress(bom + b'{"text": "yo", "labels": [5]}\n'))
    s = load_splits(str(tmp_path))
    assert s["train"].texts == ["hello"] and s["dev"].texts == ["hi there"] and s["test"].texts == ["yo"]


def test_non_utf8_and_odd_rows_name_file_and_line(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes("caf\xe9\t1\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"train\.tsv: not UTF-8 text"):
        read_split_file(path, "train")
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": 5, "labels": [1]}\n')
    with pytest.raises(DataError, match=r"train\.jsonl:1: text is not a string"):
        read_split_file(path, "train")
    path = tmp_path / "blank.tsv"
    path.write_text("a\t1\n\nb\t2\n")
    assert read_split_file(path, "train").texts == ["a", "b"]  # blank lines are skipped, as in .jsonl


_OFFLINE_PROBE = """
import socket, sys
def _no_network(*args, **kwargs):
    raise AssertionError("the hub test touched the network")
socket.socket.connect = _no_network
socket.create_connection = _no_network
from trainer.data import DataError, load_splits
try:
    load_splits("hub")
except DataError as exc:
    print(exc)
    sys.exit(0)
sys.exit("load_splits('hub') did not fail offline")
"""


def test_hub_source_offline_is_one_line_pointing_at_embedded(tmp_path):
    """In a child process: datasets reads HF_*_OFFLINE at import, and the empty HF_HOME keeps any cache away."""
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets")}
    res = subprocess.run([sys.executable, "-c", _OFFLINE_PROBE], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    line = res.stdout.strip()
    assert len(line.splitlines()) == 1
    assert line.startswith("source 'hub': the Hugging Face hub is unreachable (offline")
    assert 'use source = "embedded"' in line


def test_hub_source_failure_is_one_line(monkeypatch):
    """Any error of the hub call (no network, HTTP error, ...) becomes one line; no real datasets call."""
    def unreachable(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hub\nsecond line of detail")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=unreachable))
    for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(DataError) as err:
        load_splits("hub")
    msg = _one_line(err)
    assert msg.startswith("source 'hub': could not load google-research-datasets/go_emotions")
    assert "ConnectionError: Couldn't reach the Hub" in msg and 'use source = "embedded"' in msg
