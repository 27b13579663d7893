"""The label spaces a model can speak: the 28 GoEmotions labels, or the paper's Ekman or sentiment
groupings of them. Stdlib only: presets are validated (and views label columns) without numpy or torch.

Every source is mapped onto the 28 labels first; a taxonomy then folds the 28 into its groups. A group
is positive when any member is, and observed when any member is observed.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path

TAXONOMIES = ("goemotions", "ekman", "sentiment")
NUM_GOEMOTIONS_LABELS = 28


def _resource_dir() -> Path:
    return Path(str(resources.files("trainer") / "resources" / "goemotions"))


@lru_cache(maxsize=1)
def goemotions_labels() -> tuple[str, ...]:
    """The 28 GoEmotions label names in id order (27 = neutral)."""
    names = tuple((_resource_dir() / "labels.txt").read_text(encoding="utf-8").split())
    assert len(names) == NUM_GOEMOTIONS_LABELS
    return names


@lru_cache(maxsize=1)
def _groupings() -> dict[str, dict[str, list[str]]]:
    # groupings.toml is the dataset's own file (Demszky et al. 2020), shipped unchanged.
    with open(_resource_dir() / "groupings.toml", "rb") as fh:
        data = tomllib.load(fh)
    ours = set(goemotions_labels())
    for name, groups in data.items():
        members = [m for ms in groups.values() for m in ms]
        assert set(members) == ours and len(members) == len(ours), f"groupings.toml [{name}] must cover the 28"
    return data


def taxonomy_labels(taxonomy: str) -> list[str]:
    """The label names a model of this taxonomy predicts, in output order."""
    if taxonomy == "goemotions":
        return list(goemotions_labels())
    if taxonomy not in TAXONOMIES:
        raise ValueError(f"unknown taxonomy {taxonomy!r} (expected one of: {', '.join(TAXONOMIES)})")
    return list(_groupings()[taxonomy])


def taxonomy_members(taxonomy: str) -> list[list[int]]:
    """For each label of the taxonomy, the ids of the GoEmotions labels it groups (identity for goemotions)."""
    ids = {n: i for i, n in enumerate(goemotions_labels())}
    if taxonomy == "goemotions":
        return [[i] for i in range(NUM_GOEMOTIONS_LABELS)]
    taxonomy_labels(taxonomy)  # validates the name
    return [[ids[m] for m in members] for members in _groupings()[taxonomy].values()]
