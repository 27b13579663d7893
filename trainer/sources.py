"""Several training sources, one label space: read each source, map its labels onto the 28 GoEmotions
labels with a mask of what it can know, guard against dev/test leakage, fold into the run's taxonomy.

Selection and test stay on GoEmotions whatever else trains: dev and test always come from the
goemotions source (the embedded copy when none is listed). Each extra source keeps its own dev split
for an extra evaluation over the labels it observes.

``load_sources`` reads and checks files (torch-free: the cockpit calls it before a pipeline starts);
``training_data`` then draws the seeded subsets, source weights and oversampling of one run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trainer.config import RunConfig, SourceSpec
from trainer.data import (DataError, Oversampling, Split, balanced_class_weights, load_splits,
                          oversample_rare_classes, seeded_subset)
from trainer.label_maps import LabelMap, LabelMapError, map_for
from trainer.source_readers import RawSource, RawSplit, read_isear, read_meld, read_semeval2018_ec, read_table
from trainer.taxonomy import NUM_GOEMOTIONS_LABELS, goemotions_labels, taxonomy_labels, taxonomy_members

DROP_REASONS = ("placeholder", "duplicate", "empty", "unmapped_only")
EVAL_SPLITS = ("dev", "test")


# -- the leakage guard ------------------------------------------------------------------------------
_URL = re.compile(r"(?:https?://|www\.)\S+")
# @user (tweets), u/user and /u/user (Reddit), and GoEmotions' own [NAME] placeholder for a username
_USER = re.compile(r"(?<![\w/])(?:@\w+|/?u/[\w-]+|\[name\])")


def normalise_text(text: str) -> str:
    """The form two copies of a text share: lower case, no URLs or user mentions, single spaces."""
    text = _USER.sub(" ", _URL.sub(" ", text.lower()))
    return " ".join(text.split())


# -- one source, read and mapped ---------------------------------------------------------------------
@dataclass
class SourceRows:
    """One source's rows in the 28-label space, with its mask and what was dropped on the way."""

    spec: SourceSpec
    splits: dict[str, Split]  # "train", "dev" and, where the source has one, "test"
    observed: list[int]  # GoEmotions label ids the source can teach
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))

    @property
    def name(self) -> str:
        return self.spec.display_name


@dataclass
class LoadedSources:
    """Every source of a run, mapped and leakage-guarded, plus the GoEmotions dev/test of selection."""

    sources: list[SourceRows]
    eval_splits: dict[str, Split]  # GoEmotions dev and test, 28 labels


def _identity_map(origin: str) -> LabelMap:
    """A table without a label map: its labels are ours, by name or by id."""
    names = goemotions_labels()
    targets = {n: (i,) for i, n in enumerate(names)} | {str(i): (i,) for i in range(len(names))}
    # the 56 keys as our label order and an id range, not one by one
    known = (f"our {len(names)} labels (expected a name: {', '.join(names)}; or an id 0..{len(names) - 1}; "
             f"set label_map in the source for other labels)")
    return LabelMap(f"(our {len(names)} labels: {origin})", targets, known)


def _read_raw(spec: SourceSpec) -> RawSource:
    path = str(spec.path)
    if spec.kind == "semeval2018-ec":
        return read_semeval2018_ec(path)
    if spec.kind == "isear":
        return read_isear(path, spec.split_seed)
    if spec.kind == "meld":
        return read_meld(path)
    return read_table(path, spec.text or "text", spec.labels or "labels", spec.split_seed)


def _mapped_split(raw: RawSplit, label_map: LabelMap, observed: np.ndarray,
                  dropped: dict[str, int]) -> Split:
    texts: list[str] = []
    rows: list[list[int]] = []
    for text, labels, line in zip(raw.texts, raw.labels, raw.lines):
        ids = label_map.map_labels(labels, f"{raw.origin}:{line}")
        if labels and not ids:
            dropped["unmapped_only"] += 1  # only labels we do not have: it would teach "none of ours"
            continue
        texts.append(text)
        rows.append(ids)
    hot = np.zeros((len(texts), NUM_GOEMOTIONS_LABELS), dtype=np.uint8)
    for i, ids in enumerate(rows):
        hot[i, ids] = 1
    mask = np.broadcast_to(observed, hot.shape).copy()
    return Split(raw.name, texts, hot, raw.origin, mask)


def _read_mapped_source(spec: SourceSpec) -> SourceRows:
    raw = _read_raw(spec)
    try:
        label_map = map_for(spec.kind, spec.label_map) or _identity_map(str(spec.path))
    except LabelMapError as exc:
        raise DataError(str(exc)) from None
    observed = np.zeros(NUM_GOEMOTIONS_LABELS, dtype=np.uint8)
    observed[label_map.observed_ids()] = 1
    # A declared column the map does not know (a SemEval header label) is an error now, not on row 9000.
    for name in raw.label_names or ():
        label_map.map_labels([name], f"{raw.splits['train'].origin}:1")
    dropped = dict.fromkeys(DROP_REASONS, 0)
    dropped["placeholder"] = int(raw.dropped.get("placeholder", 0))
    dropped["empty"] = int(raw.dropped.get("empty", 0))
    try:
        splits = {name: _mapped_split(part, label_map, observed, dropped) for name, part in raw.splits.items()}
    except LabelMapError as exc:
        raise DataError(str(exc)) from None
    if not len(splits["train"]):
        raise DataError(f"{splits['train'].origin}: no train rows left after dropping "
                        f"{', '.join(f'{v} {k}' for k, v in dropped.items() if v)} (expected labelled rows)")
    return SourceRows(spec, splits, label_map.observed_ids(), dropped)


def _goemotions_source(spec: SourceSpec, splits: dict[str, Split]) -> SourceRows:
    full = np.ones(NUM_GOEMOTIONS_LABELS, dtype=np.uint8)
    with_masks = {name: Split(s.name, s.texts, s.labels, s.origin, np.broadcast_to(full, s.labels.shape).copy())
                  for name, s in splits.items()}
    return SourceRows(spec, with_masks, list(range(NUM_GOEMOTIONS_LABELS)))


def _drop_leaks(sources: list[SourceRows], eval_splits: dict[str, Split]) -> None:
    """Remove from every train split each text that appears (normalised) in any dev or test split."""
    held_out = {normalise_text(t) for s in eval_splits.values() for t in s.texts}
    for src in sources:
        for name in EVAL_SPLITS:
            if name in src.splits:
                held_out.update(normalise_text(t) for t in src.splits[name].texts)
    held_out.discard("")
    for src in sources:
        train = src.splits["train"]
        keep = np.array([normalise_text(t) not in held_out for t in train.texts], dtype=bool)
        src.dropped["duplicate"] += int((~keep).sum())
        src.splits["train"] = train.take(np.flatnonzero(keep))


def load_sources(config: RunConfig) -> LoadedSources:
    """Read, map and check every source of a run config; DataError (one line) on any bad file or map."""
    specs = config.resolved_sources()
    goemotions = next((s for s in specs if s.kind == "goemotions"), None)
    ge_splits = load_splits(goemotions.path or "embedded") if goemotions else load_splits("embedded")
    sources = [_goemotions_source(s, ge_splits) if s.kind == "goemotions" else _read_mapped_source(s)
               for s in specs]
    # Dev and test of the goemotions source, or of the embedded copy when none trains.
    eval_source = next((s for s in sources if s.spec.kind == "goemotions"), None) \
        or _goemotions_source(SourceSpec(kind="goemotions"), ge_splits)
    eval_splits = {n: eval_source.splits[n] for n in EVAL_SPLITS}
    _drop_leaks(sources, eval_splits)
    return LoadedSources(sources, eval_splits)


# -- one run's data -----------------------------------------------------------------------------------
def fold(split: Split, taxonomy: str) -> Split:
    """A 28-label split in a taxonomy's labels: a group is positive (observed) when any member is."""
    if taxonomy == "goemotions":
        return split
    members = taxonomy_members(taxonomy)
    projection = np.zeros((NUM_GOEMOTIONS_LABELS, len(members)), dtype=np.int64)
    for group, ids in enumerate(members):
        projection[ids, group] = 1
    labels = (split.labels.astype(np.int64) @ projection > 0).astype(np.uint8)
    mask = None if split.mask is None else (split.mask.astype(np.int64) @ projection > 0).astype(np.uint8)
    return Split(split.name, split.texts, labels, split.origin, mask, split.source)


def _observed_names(observed: list[int], taxonomy: str) -> list[str]:
    """The taxonomy's labels a source observes (a group when any member is)."""
    names = taxonomy_labels(taxonomy)
    return [n for n, members in zip(names, taxonomy_members(taxonomy)) if set(members) & set(observed)]


def _concat(parts: list[Split], name: str) -> Split:
    source = np.concatenate([np.full(len(p), i, dtype=np.int64) for i, p in enumerate(parts)])
    return Split(name, [t for p in parts for t in p.texts], np.concatenate([p.labels for p in parts]),
                 "+".join(p.origin for p in parts), np.concatenate([p.mask for p in parts]), source)


def _proportional_subsets(trains: list[Split], n: int, seed: int) -> list[Split]:
    """A seeded subset of ``n`` train rows over all sources, each source keeping its share of the rows
    (at least one row each), so a small source is not lost in a screening subset of a large one."""
    sizes = np.array([len(t) for t in trains], dtype=np.float64)
    if n >= sizes.sum():
        return trains
    if len(trains) == 1:
        return [trains[0].take(seeded_subset(trains[0].labels, n, seed))]
    share = np.maximum(1, np.floor(n * sizes / sizes.sum())).astype(np.int64)
    share = np.minimum(share, sizes.astype(np.int64))
    for i in np.argsort(-(n * sizes / sizes.sum() - share), kind="stable"):  # largest remainders first
        if share.sum() >= n:
            break
        if share[i] < sizes[i]:
            share[i] += 1
    return [t.take(seeded_subset(t.labels, int(k), seed)) for t, k in zip(trains, share)]


def _weighted_rows(source: np.ndarray, weights: list[float], seed: int) -> np.ndarray:
    """Row indices after source weights: weight w keeps round(w * n) rows of a source (a seeded subset
    below 1, added draws with replacement above 1), so a source is seen w times as often per epoch."""
    rng = np.random.default_rng([seed, 7])
    keep: list[np.ndarray] = []
    added: list[np.ndarray] = []
    for index, weight in enumerate(weights):
        rows = np.flatnonzero(source == index)
        target = max(1, int(round(weight * len(rows)))) if len(rows) else 0
        if target <= len(rows):
            keep.append(np.sort(rng.choice(rows, size=target, replace=False)) if target < len(rows) else rows)
        else:
            keep.append(rows)
            added.append(rng.choice(rows, size=target - len(rows), replace=True))
    return np.concatenate(keep + added)


@dataclass
class TrainingData:
    """One run's rows: train (after subsets, weights and oversampling), dev/test, extra source devs."""

    names: list[str]
    train: Split  # before oversampling (oversampling.indices picks the rows); mask None: all observed
    dev: Split
    test: Split
    source_devs: dict[str, tuple[Split, list[int]]]  # extra source -> (its dev, observed taxonomy ids)
    class_weights: np.ndarray
    oversampling: Oversampling
    event: dict[str, Any]  # the ``data`` event's keys


def training_data(loaded: LoadedSources, cfg: RunConfig) -> TrainingData:
    """Caps, taxonomy, seeded subset, source weights, oversampling and class weights of one run."""
    names = taxonomy_labels(cfg.taxonomy)
    trains: list[Split] = []
    for src in loaded.sources:
        train = src.splits["train"]
        if src.spec.max_train_samples:
            train = train.take(seeded_subset(train.labels, src.spec.max_train_samples, cfg.seed))
        trains.append(fold(train, cfg.taxonomy))
    if cfg.max_train_samples:
        trains = _proportional_subsets(trains, cfg.max_train_samples, cfg.seed)
    train = _concat(trains, "train")
    weights = [s.spec.weight for s in loaded.sources]
    if any(w != 1.0 for w in weights):
        train = train.take(_weighted_rows(train.source, weights, cfg.seed))
    dev, test = (fold(loaded.eval_splits[n], cfg.taxonomy) for n in EVAL_SPLITS)
    if cfg.max_eval_samples:
        dev = dev.take(seeded_subset(dev.labels, cfg.max_eval_samples, cfg.evaluation_seed + 1))
        test = test.take(seeded_subset(test.labels, cfg.max_eval_samples, cfg.evaluation_seed + 2))
    assert train.mask is not None and train.source is not None
    # Oversampling and class weights count a label only over the rows that observe it.
    over = oversample_rare_classes(train.labels * train.mask, cfg.oversampling, cfg.oversampling_factor, cfg.seed)
    after = train.take(over.indices)
    class_weights = balanced_class_weights(after.labels, after.mask)
    source_devs: dict[str, tuple[Split, list[int]]] = {}
    for i, src in enumerate(loaded.sources):
        if src.spec.kind == "goemotions" or not len(src.splits["dev"]):
            continue
        sdev = fold(src.splits["dev"], cfg.taxonomy)
        if cfg.max_eval_samples:
            sdev = sdev.take(seeded_subset(sdev.labels, cfg.max_eval_samples, cfg.evaluation_seed + 3 + i))
        seen = set(_observed_names(src.observed, cfg.taxonomy))
        observed = [j for j, n in enumerate(names) if n in seen]
        source_devs[src.name] = (sdev, observed)
    event = _data_event(loaded, cfg, names, train, after, dev, test, over, class_weights)
    if train.mask.all() or not cfg.label_masks:
        train.mask = None  # the losses' unmasked path: identical numbers, no extra work
    return TrainingData(names, train, dev, test, source_devs, class_weights, over, event)


def _data_event(loaded: LoadedSources, cfg: RunConfig, names: list[str], before: Split, after: Split,
                dev: Split, test: Split, over: Oversampling, weights: np.ndarray) -> dict[str, Any]:
    """The ``data`` event: sizes, per-class counts (with how many rows observe each label), sources."""
    assert before.mask is not None and before.source is not None and after.source is not None
    counts_before, counts_after = before.labels.sum(axis=0), after.labels.sum(axis=0)
    observing = before.mask.sum(axis=0)
    sources = []
    for i, src in enumerate(loaded.sources):
        eval_rows = {n: (len(dev) if n == "dev" else len(test)) if src.spec.kind == "goemotions"
                     else len(src.splits[n]) if n in src.splits else 0 for n in EVAL_SPLITS}
        sources.append({
            "name": src.name, "kind": src.spec.kind, "path": src.spec.path or "embedded",
            "weight": src.spec.weight,
            "rows": {"train_before": int((before.source == i).sum()), "train_after": int((after.source == i).sum()),
                     **eval_rows},
            "observed_labels": _observed_names(src.observed, cfg.taxonomy),
            "dropped": dict(src.dropped),
        })
    return {
        "train_size_before": len(before), "train_size_after": len(after), "dev_size": len(dev),
        "test_size": len(test), "source": "+".join(s["path"] for s in sources) if len(sources) > 1
        else loaded.sources[0].splits["train"].origin,
        "taxonomy": cfg.taxonomy, "label_masks": cfg.label_masks, "sources": sources,
        "per_class": [{"label": n, "before": int(b), "after": int(a), "weight": float(w), "observed": int(o)}
                      for n, b, a, w, o in zip(names, counts_before, counts_after, weights, observing)],
        "oversampling": {"rule": over.rule, "factor": over.factor, "classes": [names[i] for i in over.classes],
                         "added_rows": {names[k]: v for k, v in over.added_per_class.items()}},
    }
