"""Readers of SemEval-2018 E-c, ISEAR, MELD and generic tables: counts, quirk repairs, the seeded split,
and one test per kind of bad input (a one-line DataError naming the file and line).

The fixtures under tests/fixtures/sources are hand-written and committed as bytes: isear.csv is Windows-1252
(0xE1 0x20 line-break artefacts, a 0x92 apostrophe, “” as 0x93/0x94); the MELD files mix 0x92 apostrophes,
UTF-8 text and UTF-8 mojibake ("â€™"); the train file has CRLF line ends and a CRLF inside a quoted utterance.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import pytest

from trainer.data import DataError
from trainer.source_readers import (SEMEVAL_HEADER, SEMEVAL_LABELS, RawSource, held_out_sizes, read_isear, read_meld,
                                    read_semeval2018_ec, read_table, stratified_split)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"
SEMEVAL = FIXTURES / "semeval"
SEMEVAL_EC = SEMEVAL / "SemEval2018-Task1-all-data" / "English" / "E-c"
ISEAR = FIXTURES / "isear" / "isear.csv"
MELD = FIXTURES / "meld"
MELD_RAW = MELD / "MELD.Raw"
TABLE = FIXTURES / "table"
HEADER_TSV = "\t".join(SEMEVAL_HEADER)
MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime"


def error_of(read: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """The message of the DataError a reader raises; it must be one non-empty line."""
    with pytest.raises(DataError) as info:
        read(*args, **kwargs)
    message = str(info.value)
    assert message and "\n" not in message and "\r" not in message, message
    return message


def sizes(source: RawSource) -> dict[str, int]:
    return {name: len(split.texts) for name, split in source.splits.items()}


def by_line(source: RawSource, split: str) -> dict[int, tuple[str, list[str]]]:
    part = source.splits[split]
    assert len(part.texts) == len(part.labels) == len(part.lines)
    return {line: (text, labels) for line, text, labels in zip(part.lines, part.texts, part.labels)}


def all_texts(source: RawSource) -> list[str]:
    return [t for split in source.splits.values() for t in split.texts]


# -- SemEval-2018 E-c ---------------------------------------------------------------------------------
def test_semeval_counts_labels_and_origins() -> None:
    src = read_semeval2018_ec(SEMEVAL)
    assert sizes(src) == {"train": 12, "dev": 5, "test": 5}
    assert src.dropped == {"placeholder": 0, "empty": 1}  # the tweet that was only a "\n" escape
    assert src.label_names == list(SEMEVAL_LABELS)
    assert src.splits["train"].origin == str(SEMEVAL_EC / "2018-E-c-En-train.txt")
    assert src.splits["test"].origin == str(SEMEVAL_EC / "2018-E-c-En-test-gold.txt")
    assert all(split.labelled for split in src.splits.values())
    train = by_line(src, "train")
    assert train[2][1] == ["anticipation", "optimism", "trust"]
    assert train[4][1] == ["anger", "disgust"]
    assert train[8] == ("@united flight 1234 now boarding at gate B7, see you in Denver", [])  # all zeros: kept
    assert train[9][1] == ["anticipation", "trust"]  # only labels no GoEmotions label maps to
    assert train[10][1] == ["pessimism"]
    assert 13 not in train  # the empty tweet
    assert train[14][1] == ["joy", "love", "optimism"]
    assert by_line(src, "test")[5][1] == []


def test_semeval_text_quirks() -> None:
    src = read_semeval2018_ec(SEMEVAL)
    train = by_line(src, "train")
    assert train[7][0] == "Just got back from the vet 😢 Poor little guy needs surgery #sad #worried"
    assert by_line(src, "dev")[4][0] == "I blew that opportunity -__- #mad #sigh"
    assert not any("\\n" in t or "  " in t for t in all_texts(src))
    # QUOTE_NONE: an unbalanced quote is text, not CSV quoting that would swallow the next rows
    assert train[11][0] == 'He said "I\'ll be there at 8 and then never showed up. Typical. #fuming'
    assert train[12][0] == "Wait WHAT?! 😱 @taylorswift13 just dropped a new album?? #shook"


def test_semeval_unlabelled_test_release() -> None:
    src = read_semeval2018_ec(FIXTURES / "semeval_unlabelled")  # test file in another folder: found by rglob
    assert sizes(src) == {"train": 3, "dev": 2, "test": 3}
    test = src.splits["test"]
    assert test.origin.endswith("2018-E-c-En-test.txt")
    assert test.labels == [[], [], []] and not test.labelled
    assert src.splits["train"].labelled and src.splits["train"].labels[0] == ["anticipation", "optimism", "trust"]


def test_semeval_without_test(tmp_path: Path) -> None:
    for name in ("train", "dev"):
        shutil.copy(SEMEVAL_EC / f"2018-E-c-En-{name}.txt", tmp_path)
    src = read_semeval2018_ec(tmp_path)
    assert sizes(src) == {"train": 12, "dev": 5}


def write_semeval(folder: Path, train_rows: list[str], header: str = HEADER_TSV) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(SEMEVAL_EC / "2018-E-c-En-dev.txt", folder)
    path = folder / "2018-E-c-En-train.txt"
    path.write_text("\n".join([header, *train_rows]) + "\n", encoding="utf-8")
    return path


GOOD_ROW = "2017-En-1\tok tweet\t" + "\t".join("0" * 11)


def test_semeval_missing_files(tmp_path: Path) -> None:
    shutil.copy(SEMEVAL_EC / "2018-E-c-En-dev.txt", tmp_path)
    message = error_of(read_semeval2018_ec, tmp_path)
    assert message.startswith(f"{tmp_path}: ") and "2018-E-c-En-train.txt" in message
    assert "folder not found" in error_of(read_semeval2018_ec, tmp_path / "nope")


def test_semeval_file_found_twice(tmp_path: Path) -> None:
    first = write_semeval(tmp_path / "a", [GOOD_ROW])
    (tmp_path / "b").mkdir()
    second = shutil.copy(first, tmp_path / "b")
    message = error_of(read_semeval2018_ec, tmp_path)
    assert str(first) in message and str(second) in message


def test_semeval_wrong_header(tmp_path: Path) -> None:
    path = write_semeval(tmp_path, [GOOD_ROW], header=HEADER_TSV.replace("\tjoy", "\tJoy"))
    message = error_of(read_semeval2018_ec, tmp_path)
    assert message.startswith(f"{path}:1: ") and "ID Tweet anger anticipation" in message


def test_semeval_bad_label_cell(tmp_path: Path) -> None:
    bad = "2017-En-2\tsecond\t0\t0\t0\t0\t2\t0\t0\t0\t0\t0\t0"
    path = write_semeval(tmp_path, [GOOD_ROW, bad])
    assert error_of(read_semeval2018_ec, tmp_path) == f"{path}:3: column 'joy' is '2' (expected 0 or 1)"


def test_semeval_none_only_in_unlabelled_release(tmp_path: Path) -> None:
    path = write_semeval(tmp_path, ["2017-En-2\tx\t" + "\t".join(["NONE"] * 11)])
    assert error_of(read_semeval2018_ec, tmp_path).startswith(f"{path}:2: column 'anger' is 'NONE'")


def test_semeval_wrong_column_count(tmp_path: Path) -> None:
    path = write_semeval(tmp_path, [GOOD_ROW, "2017-En-2\ttab\tin tweet\t" + "\t".join("0" * 11)])
    assert error_of(read_semeval2018_ec, tmp_path) == f"{path}:3: 14 columns (expected 13, as in the header)"


def test_semeval_not_utf8(tmp_path: Path) -> None:
    path = write_semeval(tmp_path, [GOOD_ROW])
    path.write_bytes(path.read_bytes() + b"2017-En-3\tcan\x92t\t" + b"\t".join([b"0"] * 11) + b"\n")
    assert error_of(read_semeval2018_ec, tmp_path).startswith(f"{path}:3: byte 0x92 is not UTF-8")


# -- ISEAR ------------------------------------------------------------------------------------------
KEPT_PER_EMOTION = {"joy": 6, "fear": 5, "anger": 7, "sadness": 5, "disgust": 6, "shame": 5, "guilt": 6}


def test_isear_counts_and_drops() -> None:
    src = read_isear(ISEAR)
    assert sizes(src) == {"train": 26, "dev": 7, "test": 7}
    assert src.dropped == {"placeholder": 3, "empty": 1}
    assert src.label_names is None
    kept = Counter(labels[0] for split in src.splits.values() for labels in split.labels)
    assert kept == KEPT_PER_EMOTION
    assert all(split.origin == str(ISEAR) for split in src.splits.values())


def test_isear_text_repairs() -> None:
    src = read_isear(ISEAR)
    texts = all_texts(src)
    assert not any("á" in t or "  " in t or t != t.strip() for t in texts)
    rows = {line: text for split in src.splits.values() for line, text in zip(split.lines, split.texts)}
    assert rows[2] == ("On days when I feel close to my partner and other friends. When I feel at peace with myself "
                       "and also experience a close contact with people whom I regard greatly.")
    assert rows[16] == "When I got the letter saying I had been accepted at the university of my choice."
    # Windows-1252 bytes: 0xE9, 0x92 and 0x93/0x94
    assert "Meeting my sister again after two years abroad; we went to a café and talked all night." in texts
    assert "Before my driving test I couldn’t sleep." in texts
    assert "A politician lying openly on television about “facts”." in texts
    # a bracketed remark followed by an answer is an answer
    assert "[ Not sure if this counts.] When my father came home from hospital." in texts
    assert not any(t.startswith("[ ") and t.endswith("]") for t in texts)


def test_isear_same_rows_from_utf8(tmp_path: Path) -> None:
    utf8 = tmp_path / "isear.csv"
    utf8.write_bytes(ISEAR.read_bytes().decode("cp1252").encode("utf-8"))
    cp1252, converted = read_isear(ISEAR), read_isear(utf8)
    for name in ("train", "dev", "test"):
        assert cp1252.splits[name].texts == converted.splits[name].texts
        assert cp1252.splits[name].lines == converted.splits[name].lines


def test_isear_split_is_stratified_80_10_10() -> None:
    src = read_isear(ISEAR, split_seed=0)
    for emotion, n in KEPT_PER_EMOTION.items():
        counts = {name: sum(labels == [emotion] for labels in split.labels) for name, split in src.splits.items()}
        assert abs(counts["train"] - 0.8 * n) <= 1 and counts["train"] >= 1
        assert abs(counts["dev"] - 0.1 * n) <= 1 and counts["dev"] >= 1
        assert abs(counts["test"] - 0.1 * n) <= 1


def test_isear_split_is_seeded_disjoint_and_complete() -> None:
    first, again, other = read_isear(ISEAR, 0), read_isear(ISEAR, 0), read_isear(ISEAR, 1)
    assert first == again
    assert any(first.splits[n].lines != other.splits[n].lines for n in ("train", "dev", "test"))
    for src in (first, other):
        lines = [set(src.splits[n].lines) for n in ("train", "dev", "test")]
        assert not (lines[0] & lines[1] or lines[0] & lines[2] or lines[1] & lines[2])
        assert set.union(*lines) == set.union(*[set(first.splits[n].lines) for n in ("train", "dev", "test")])
        assert len(set.union(*lines)) == 40
        assert all(src.splits[n].lines == sorted(src.splits[n].lines) for n in ("train", "dev", "test"))
        assert {labels[0] for labels in src.splits["train"].labels} == set(KEPT_PER_EMOTION)


def isear_file(tmp_path: Path, rows: list[bytes], header: bytes | None = None) -> Path:
    lines = ISEAR.read_bytes().split(b"\r\n")
    path = tmp_path / "isear.csv"
    path.write_bytes(b"\r\n".join([header or lines[0], *lines[1:3], *rows]) + b"\r\n")
    return path


def test_isear_missing_column(tmp_path: Path) -> None:
    header = ISEAR.read_bytes().split(b"\r\n")[0].replace(b"|SIT|", b"|SITUATION|")
    path = isear_file(tmp_path, [], header=header)
    assert error_of(read_isear, path).startswith(f"{path}:1: no column 'SIT'")


def test_isear_undecodable_and_short_rows(tmp_path: Path) -> None:
    row = ISEAR.read_bytes().split(b"\r\n")[1]
    assert b"On days" in row
    path = isear_file(tmp_path, [row.replace(b"On days", b"On d\x81ays")])
    assert error_of(read_isear, path).startswith(f"{path}:4: bytes 81 are neither UTF-8 nor Windows-1252")
    path = isear_file(tmp_path, [b"|".join(row.split(b"|")[:20]) + b"|"])
    assert error_of(read_isear, path) == f"{path}:4: 21 columns (expected 42, as in the header)"  # with the trailing |
    assert "file not found" in error_of(read_isear, tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_bytes(b"")
    assert error_of(read_isear, tmp_path / "empty.csv").startswith(f"{tmp_path / 'empty.csv'}: empty file")


def test_isear_row_without_its_trailing_bar(tmp_path: Path) -> None:
    row = ISEAR.read_bytes().split(b"\r\n")[1]
    path = isear_file(tmp_path, [row.removesuffix(b"|")])
    src = read_isear(path)
    lines = sorted(line for split in src.splits.values() for line in split.lines)
    assert lines == [2, 3, 4] and src.dropped == {"placeholder": 0, "empty": 0}


def test_isear_rejects_a_negative_seed() -> None:
    assert error_of(read_isear, ISEAR, -1) == "split_seed -1: expected a non-negative integer"


def test_split_sizes_and_purity() -> None:
    assert [held_out_sizes(n) for n in (1, 2, 3, 4, 5, 14, 15, 100)] == \
        [(0, 0), (0, 0), (1, 0), (1, 0), (1, 1), (1, 1), (2, 2), (10, 10)]
    strata = ["a"] * 10 + ["b"] * 7
    split = stratified_split(strata, 3)
    # a label's rows split the same way whatever other labels the file holds
    alone = stratified_split(["a"] * 10, 3)
    assert {n: [i for i in rows if i < 10] for n, rows in split.items()} == alone


# -- MELD --------------------------------------------------------------------------------------------
def test_meld_counts_and_repairs() -> None:
    src = read_meld(MELD)
    assert sizes(src) == {"train": 10, "dev": 5, "test": 5}
    assert src.dropped == {"placeholder": 0, "empty": 1}
    assert src.label_names is None
    assert src.splits["dev"].origin == str(MELD_RAW / "dev_sent_emo.csv")
    train = by_line(src, "train")
    # 0x92 (Windows-1252) and "â€™" (UTF-8 read as Windows-1252) both read as the apostrophe they were
    assert train[2] == ("also I was the point person on my company's transition from the KL-5 to GR-6 system.",
                        ["neutral"])
    assert train[5][0] == "So let's talk a little bit about your duties."
    assert train[11] == ("Let's meet at the café at noon.", ["joy"])  # UTF-8 é next to 0x92 on one line
    assert train[12] == ("Well… Joey, you can't be serious!", ["anger"])
    assert train[13][0] == 'He said "How you doin\'?" and she laughed.'
    for text in all_texts(src):
        assert not any(junk in text for junk in ("Â", "â€", "â", "\x92", "\ufffd")), text


def test_meld_multiline_utterance() -> None:
    src = read_meld(MELD)
    train = by_line(src, "train")
    assert train[8] == ("Oh my God, he's lost it.\nHe's totally lost it.", ["sadness"])
    assert 10 not in train  # the empty utterance, after the two-line one
    assert by_line(src, "dev")[4] == ("I don't know, I just...\nI panicked!", ["fear"])
    assert by_line(src, "dev")[6][1] == ["disgust"]


def test_meld_test_optional(tmp_path: Path) -> None:
    for name in ("train", "dev"):
        shutil.copy(MELD_RAW / f"{name}_sent_emo.csv", tmp_path)
    assert sizes(read_meld(tmp_path)) == {"train": 10, "dev": 5}
    (tmp_path / "train_sent_emo.csv").unlink()
    message = error_of(read_meld, tmp_path)
    assert message.startswith(f"{tmp_path}: ") and "train_sent_emo.csv" in message


def write_meld(folder: Path, train: str) -> Path:
    shutil.copy(MELD_RAW / "dev_sent_emo.csv", folder)
    path = folder / "train_sent_emo.csv"
    path.write_text(train, encoding="utf-8")
    return path


def test_meld_missing_column(tmp_path: Path) -> None:
    path = write_meld(tmp_path, MELD_HEADER.replace("Emotion", "Emo") + "\n1,Hi.,Joey,joy,positive,0,0,1,1,a,b\n")
    assert error_of(read_meld, tmp_path).startswith(f"{path}:1: no column 'Emotion'")


def test_meld_bad_rows(tmp_path: Path) -> None:
    row = "1,Hi.,Joey,joy,positive,0,0,1,1,a,b"
    path = write_meld(tmp_path, f"{MELD_HEADER}\n{row}\n2,Hi.,Joey,,positive,0,0,1,1,a,b\n")
    assert error_of(read_meld, tmp_path).startswith(f"{path}:3: column 'Emotion' is empty")
    path = write_meld(tmp_path, f'{MELD_HEADER}\n{row}\n2,"Hi, Joey,joy,positive,0,0,1,1,a,b\n{row}\n')
    assert error_of(read_meld, tmp_path) == f"{path}:3: 2 columns (expected 11, as in the header; an unclosed quote?)"
    path.write_bytes(f"{MELD_HEADER}\n{row}\n".encode() + b"\x00\x01\x02\x81\n")
    assert error_of(read_meld, tmp_path).startswith(f"{path}:3: NUL byte, not text")


# -- tables ------------------------------------------------------------------------------------------
def test_table_csv_file() -> None:
    src = read_table(TABLE / "mine.csv", text="sentence", labels="emotions")
    assert sizes(src) == {"train": 16, "dev": 4, "test": 1}
    assert src.dropped == {"placeholder": 0, "empty": 1}
    assert src.label_names is None
    rows = {line: row for name in src.splits for line, row in by_line(src, name).items()}
    assert rows[2] == ("I can't believe we won the final!", ["joy", "surprise"])  # after a BOM'd header
    assert rows[5][1] == ["joy", "gratitude"]
    assert rows[10] == ('"Seriously?" she asked, laughing.', ["joy"])
    assert rows[13] == ("ok", [])
    assert rows[14][1] == ["anger"]  # "anger ; "
    assert rows[23][1] == ["3"]  # an id stays a token
    assert 16 not in rows  # blank text
    assert read_table(TABLE / "mine.csv", "sentence", "emotions", split_seed=0) == src


def test_table_jsonl_file() -> None:
    src = read_table(TABLE / "mine.jsonl", text="sentence", labels="emotions")
    assert sizes(src) == {"train": 12, "dev": 3, "test": 1}
    assert src.dropped == {"placeholder": 0, "empty": 1}
    rows = {line: row for name in src.splits for line, row in by_line(src, name).items()}
    assert rows[2] == ("This is so unfair.", ["anger", "sadness"])
    assert rows[3][1] == ["15"] and rows[4][1] == [] and rows[11][1] == ["11", "disgust"]
    assert rows[6] == ("Spiders everywhere 🕷️", ["fear", "disgust"])


def test_table_folder() -> None:
    src = read_table(TABLE / "split")
    assert sizes(src) == {"train": 6, "dev": 3, "test": 3}
    assert src.dropped == {"placeholder": 0, "empty": 1}
    train = by_line(src, "train")
    assert train[2] == ('My favourite "comedy" is on tonight', ["1", "17"])
    assert train[7] == ("Just checking in", [])
    assert train[8][1] == ["26", "17"]
    assert src.splits["test"].origin == str(TABLE / "split" / "test.tsv")


def test_table_folder_without_test(tmp_path: Path) -> None:
    for name in ("train", "dev"):
        shutil.copy(TABLE / "split" / f"{name}.tsv", tmp_path)
    assert sizes(read_table(tmp_path)) == {"train": 6, "dev": 3}
    (tmp_path / "dev.jsonl").write_text('{"text": "x", "labels": "joy"}\n', encoding="utf-8")
    assert "both dev.tsv and dev.jsonl" in error_of(read_table, tmp_path)


def test_table_missing_column(tmp_path: Path) -> None:
    message = error_of(read_table, TABLE / "mine.csv", text="text", labels="emotions")
    assert message.startswith(f"{TABLE / 'mine.csv'}:1: no column 'text'") and 'text = "..."' in message
    message = error_of(read_table, TABLE / "mine.jsonl", text="sentence", labels="labels")
    assert message.startswith(f"{TABLE / 'mine.jsonl'}:1: no key 'labels'") and 'labels = "..."' in message


def test_table_undecodable_and_garbage(tmp_path: Path) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,labels\nfine,joy\ncaf\xe9 au lait,joy\n".encode("cp1252"))
    assert error_of(read_table, latin) == f"{latin}:3: byte 0xe9 is not UTF-8 (expected UTF-8 text)"
    binary = tmp_path / "model.jsonl"
    binary.write_bytes(b"PK\x03\x04\x14\x00\x00\x00\x08\x00garbage")
    assert error_of(read_table, binary).startswith(f"{binary}:1: NUL byte, not text")
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "a", "labels": "joy"}\n[1, 2]\n{"text": "b", "labels": {"x": 1}}\n')
    assert error_of(read_table, bad_json) == f"{bad_json}:2: a JSON list (expected one object per line)"


def test_table_no_rows_and_unsupported(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("text,labels\n,joy\n", encoding="utf-8")
    assert error_of(read_table, empty) == (f"{empty}: no rows left after dropping 1 empty "
                                           "(expected at least one row with text)")
    odd = tmp_path / "data.xlsx"
    odd.write_bytes(b"x")
    assert error_of(read_table, odd).startswith(f"{odd}: unsupported file type '.xlsx'")
    assert "not found" in error_of(read_table, tmp_path / "missing.csv")
