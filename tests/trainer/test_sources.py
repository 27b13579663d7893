"""Several sources onto one label space: mapping, masks, the leakage guard, weights, taxonomies, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trainer.config import ConfigError, RunConfig, apply_overrides, validate_config
from trainer.data import DataError, balanced_class_weights, load_splits
from trainer.sources import fold, load_sources, normalise_text, training_data
from trainer.taxonomy import goemotions_labels, taxonomy_labels

NAMES = goemotions_labels()


def write_table(folder: Path, rows: dict[str, list[tuple[str, list[str]]]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, items in rows.items():
        with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as fh:
            for text, labels in items:
                fh.write(json.dumps({"text": text, "labels": labels}) + "\n")
    return folder


def two_label_map(path: Path) -> Path:
    path.write_text('[labels]\nhappy = ["joy"]\ncross = ["anger", "annoyance"]\nmeh = []\n', encoding="utf-8")
    return path


@pytest.fixture()
def table(tmp_path: Path) -> Path:
    train = [(f"a happy sentence number {i}", ["happy"]) for i in range(6)]
    train += [(f"a cross sentence number {i}", ["cross"]) for i in range(4)]
    train += [("nothing in particular here", []), ("only a meh here", ["meh"])]
    dev = [("a happy dev sentence", ["happy"]), ("a cross dev sentence", ["cross"])]
    return write_table(tmp_path / "mine", {"train": train, "dev": dev})


def config(tmp_path: Path, table: Path, **keys) -> RunConfig:
    sources = [{"kind": "goemotions"},
               {"kind": "table", "name": "mine", "path": str(table), "label_map": str(two_label_map(tmp_path / "m.toml"))}]
    return validate_config({"sources": sources, "max_train_samples": 0, **keys}, "test")


def test_a_table_source_observes_what_its_map_can_produce(tmp_path, table):
    loaded = load_sources(config(tmp_path, table))
    ge, mine = loaded.sources
    assert mine.observed == sorted(NAMES.index(n) for n in ("joy", "anger", "annoyance"))
    train = mine.splits["train"]
    assert len(train) == 11  # "only a meh here" maps to nothing of ours: dropped, counted
    assert mine.dropped == {"placeholder": 0, "duplicate": 0, "empty": 0, "unmapped_only": 1}
    cross = train.texts.index("a cross sentence number 0")
    assert [NAMES[i] for i in np.flatnonzero(train.labels[cross])] == ["anger", "annoyance"]
    assert train.mask.shape == (11, 28) and (train.mask.sum(axis=1) == 3).all()
    none = train.texts.index("nothing in particular here")
    assert train.labels[none].sum() == 0 and train.mask[none].sum() == 3  # a negative for the three it observes
    assert ge.splits["train"].mask.all()


def test_training_data_masks_weights_and_event(tmp_path, table):
    cfg = config(tmp_path, table, oversampling="none")
    data = training_data(load_sources(cfg), cfg)
    n_ge = 43410 - data.event["sources"][0]["dropped"]["duplicate"]
    assert len(data.train) == n_ge + 11
    assert data.train.mask is not None and data.train.mask[-11:].sum() == 33
    event = data.event
    assert [s["name"] for s in event["sources"]] == ["goemotions", "mine"]
    assert event["sources"][1]["rows"] == {"train_before": 11, "train_after": 11, "dev": 2, "test": 0}
    assert event["sources"][1]["observed_labels"] == ["anger", "annoyance", "joy"]
    joy = next(r for r in event["per_class"] if r["label"] == "joy")
    grief = next(r for r in event["per_class"] if r["label"] == "grief")
    assert joy["observed"] == n_ge + 11 and grief["observed"] == n_ge
    # Class weights count a label only over rows that observe it.
    weights = balanced_class_weights(data.train.labels, data.train.mask)
    counts = data.train.labels.sum(axis=0)
    g = NAMES.index("grief")
    assert weights[g] == pytest.approx(n_ge / (28 * counts[g]))
    assert "mine" in data.source_devs and data.source_devs["mine"][1] == sorted(
        NAMES.index(n) for n in ("joy", "anger", "annoyance"))


def test_label_masks_false_counts_unobserved_as_negatives(tmp_path, table):
    cfg = config(tmp_path, table, label_masks=False, oversampling="none")
    assert training_data(load_sources(cfg), cfg).train.mask is None


def test_one_goemotions_source_is_the_old_single_source(tmp_path):
    old = training_data(load_sources(RunConfig(max_train_samples=300)), RunConfig(max_train_samples=300))
    assert old.train.mask is None  # every entry observed: the losses' unmasked path
    assert [s["name"] for s in old.event["sources"]] == ["goemotions"]
    assert old.event["sources"][0]["dropped"]["duplicate"] == 168  # GoEmotions train rows that are in dev/test


def test_leakage_guard_removes_dev_and_test_texts_from_every_train_split(tmp_path):
    ge = load_splits("embedded")
    dev_text, test_text = ge["dev"].texts[3], ge["test"].texts[5]
    table = write_table(tmp_path / "leaky", {
        "train": [(f"  {dev_text.upper()}  https://example.com/x", ["joy"]),  # case, spaces, a URL
                  (f"@someone {test_text}", ["joy"]),  # a user mention
                  ("a clean sentence", ["joy"]), ("its own dev text", ["anger"])],
        "dev": [("ITS OWN   dev text", ["anger"])]})
    cfg = validate_config({"sources": [{"kind": "goemotions"}, {"kind": "table", "name": "leaky", "path": str(table)}]},
                          "test")
    loaded = load_sources(cfg)
    leaky = loaded.sources[1]
    assert leaky.splits["train"].texts == ["a clean sentence"]
    assert leaky.dropped["duplicate"] == 3
    assert normalise_text("Hi @bob  see https://x.y/z u/carl [NAME]!") == "hi see !"


def test_source_weights_draw_rows_more_or_less_often(tmp_path, table):
    twice = config(tmp_path, table, oversampling="none")
    twice.sources[1].weight = 2.0
    data = training_data(load_sources(twice), twice)
    assert data.event["sources"][1]["rows"]["train_before"] == 22
    half = config(tmp_path, table, oversampling="none")
    half.sources[0].weight = 0.5
    data = training_data(load_sources(half), half)
    assert data.event["sources"][0]["rows"]["train_before"] == round(0.5 * (43410 - 168))


def test_per_source_cap(tmp_path, table):
    cfg = config(tmp_path, table, oversampling="none")
    cfg.sources[0].max_train_samples = 500
    data = training_data(load_sources(cfg), cfg)
    assert data.event["sources"][0]["rows"]["train_before"] == 500 and len(data.train) == 511


def test_ekman_folds_labels_and_masks(tmp_path, table):
    cfg = config(tmp_path, table, taxonomy="ekman", oversampling="none")
    loaded = load_sources(cfg)
    data = training_data(loaded, cfg)
    assert data.names == taxonomy_labels("ekman") == ["anger", "disgust", "fear", "joy", "sadness", "surprise",
                                                       "neutral"]
    assert data.train.labels.shape[1] == 7
    # The table observes joy, anger, annoyance: the ekman groups anger and joy, nothing else.
    assert data.event["sources"][1]["observed_labels"] == ["anger", "joy"]
    assert data.train.mask[-1].tolist() == [1, 0, 0, 1, 0, 0, 0]
    ge_dev = loaded.eval_splits["dev"]
    folded = fold(ge_dev, "ekman")
    grief = NAMES.index("grief")
    rows = np.flatnonzero(ge_dev.labels[:, grief])
    assert (folded.labels[rows, data.names.index("sadness")] == 1).all()
    sentiment = fold(ge_dev, "sentiment")
    assert sentiment.labels.shape[1] == 4 and (sentiment.labels.sum(axis=1) >= 1).all()


def test_a_map_onto_a_name_that_is_not_ours_is_one_line(tmp_path, table):
    bad = tmp_path / "bad.toml"
    bad.write_text('[labels]\nhappy = ["joy"]\ncross = ["rage"]\n', encoding="utf-8")
    cfg = validate_config({"sources": [{"kind": "table", "path": str(table), "label_map": str(bad)}]}, "test")
    with pytest.raises(DataError) as err:
        load_sources(cfg)
    assert str(err.value).startswith(f"{bad}:3: key 'cross': 'rage' is not one of our 28 labels")
    assert "\n" not in str(err.value)


def test_an_unknown_source_label_names_file_and_line(tmp_path, table):
    (table / "train.jsonl").write_text(json.dumps({"text": "x y", "labels": ["happy"]}) + "\n"
                                       + json.dumps({"text": "z w", "labels": ["gleeful"]}) + "\n")
    cfg = config(tmp_path, table)
    with pytest.raises(DataError) as err:
        load_sources(cfg)
    assert str(err.value).startswith(f"{table / 'train.jsonl'}:2: label 'gleeful' is not in the label map")


def test_a_missing_file_is_an_error_never_a_substitute(tmp_path):
    cfg = validate_config({"sources": [{"kind": "isear", "path": str(tmp_path / "nope.csv")}]}, "test")
    with pytest.raises(DataError) as err:
        load_sources(cfg)
    assert str(tmp_path / "nope.csv") in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("data", "needle"), [
    ({"source": "hub", "sources": [{"kind": "goemotions"}]}, "set either 'source' or 'sources'"),
    ({"sources": [{"kind": "isear"}]}, "key 'sources.0': source kind 'isear' needs a 'path'"),
    ({"sources": [{"kind": "goemotions"}, {"kind": "goemotions", "name": "b"}]}, "at most one goemotions"),
    ({"sources": [{"kind": "meld", "path": "x", "text": "t"}]}, "'text' and 'labels' name columns"),
    ({"sources": [{"kind": "meld", "path": "x", "pth": "t"}]}, "unknown key 'sources.0.pth' (valid keys: kind,"),
    ({"sources": [{"kind": "semeval"}]}, "key 'sources.0.kind'"),
    ({"taxonomy": "plutchik"}, "key 'taxonomy'"),
])
def test_bad_source_keys_are_one_line(data, needle):
    with pytest.raises(ConfigError) as err:
        validate_config(data, "run.toml")
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_set_reaches_into_the_sources_list():
    data = {"sources": [{"kind": "goemotions"}, {"kind": "isear"}]}
    out = apply_overrides(data, [("sources.1.path", "data/isear.csv"), ("sources.0.weight", 2.0)])
    assert out["sources"] == [{"kind": "goemotions", "weight": 2.0}, {"kind": "isear", "path": "data/isear.csv"}]
    assert data["sources"][1] == {"kind": "isear"}  # a copy, not the caller's dict
    with pytest.raises(ConfigError, match="'7' is not an index of 'sources'"):
        apply_overrides(data, [("sources.7.path", "x")])


def test_a_screening_subset_keeps_every_source_in_proportion(tmp_path, table):
    """max_train_samples over several sources: each keeps its share (at least its labels' rows), so a
    small source is not lost in a 160-row screen of 43k GoEmotions rows."""
    cfg = config(tmp_path, table, max_train_samples=160, oversampling="none")
    rows = [s["rows"]["train_before"] for s in training_data(load_sources(cfg), cfg).event["sources"]]
    assert rows[1] == 2  # its share rounds to one row, and seeded_subset keeps each of its labels (2 rows carry all 3)
    assert 155 <= rows[0] <= 160
    single = RunConfig(max_train_samples=160, oversampling="none")
    assert len(training_data(load_sources(single), single).train) == 160
