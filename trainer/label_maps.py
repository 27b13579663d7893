"""Label maps: how one source's label names become zero or more of our 28 GoEmotions labels.

A map is a TOML file with a ``[labels]`` table, ``source label = [our labels]``; ``[]`` says the
source label is known but not mapped (its rows teach nothing about it). The maps for SemEval-2018 E-c,
ISEAR and MELD ship in ``trainer/resources/label_maps``; a source's ``label_map`` key overrides them.
A source observes exactly the labels its map can produce: those are the entries its rows may teach.
Stdlib only, so the cockpit validates maps before anything starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from trainer.file_reads import decode_utf8, parse_toml
from trainer.input_files import ENV_MAX_LABEL_MAP_BYTES, InputFileError, max_label_map_bytes, read_input_file
from trainer.taxonomy import goemotions_labels

# The source kinds whose labels are not already ours, and so ship a map.
MAPPED_KINDS = ("semeval2018-ec", "isear", "meld")


class LabelMapError(ValueError):
    """A bad map file or a source label a map does not know: one line naming the file and key or line."""


@dataclass(frozen=True)
class LabelMap:
    """One source's labels, lower-cased, each to a tuple of our label ids (empty: known, not mapped)."""

    path: str
    targets: dict[str, tuple[int, ...]]  # in the map file's order
    # What a row's label may be, for the error on one it is not; None: the map's keys, in file order.
    known: str | None = None

    def observed_ids(self) -> list[int]:
        """Our label ids this source can teach, ascending."""
        return sorted({i for ids in self.targets.values() for i in ids})

    def observed_names(self) -> list[str]:
        names = goemotions_labels()
        return [names[i] for i in self.observed_ids()]

    def map_labels(self, labels: list[str], where: str) -> list[int]:
        """Our label ids for a row's source labels; an unknown source label is an error naming ``where``."""
        out: set[int] = set()
        for label in labels:
            key = label.strip().lower()
            if key not in self.targets:
                if self.known:
                    raise LabelMapError(f"{where}: label {label.strip()!r} is not one of {self.known}")
                raise LabelMapError(f"{where}: label {label.strip()!r} is not in the label map {self.path} "
                                    f"(expected one of: {_listed(list(self.targets))}; add it there, mapped "
                                    f"to [] to ignore it)")
            out.update(self.targets[key])
        return sorted(out)


def shipped_map_path(kind: str) -> Path:
    return Path(str(resources.files("trainer") / "resources" / "label_maps")) / f"{kind}.toml"


def load_label_map(path: str | Path) -> LabelMap:
    """Read and check a label map file: every target must be one of our 28 label names."""
    path = Path(path).expanduser()
    expected = "a TOML label map with a [labels] table"
    try:
        raw = read_input_file(path, expected, max_label_map_bytes(), ENV_MAX_LABEL_MAP_BYTES)
    except InputFileError as exc:
        raise LabelMapError(str(exc)) from None
    text = decode_utf8(raw, path, expected, LabelMapError)
    data = parse_toml(text, path, expected, LabelMapError)
    table = data.get("labels")
    if not isinstance(table, dict) or not table:
        raise LabelMapError(f"{path}: expected a non-empty [labels] table, source label = [our labels]")
    ours = {n: i for i, n in enumerate(goemotions_labels())}
    targets: dict[str, tuple[int, ...]] = {}
    for key, value in table.items():
        line = _line_of(text, key)
        where = f"{path}:{line}" if line else str(path)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise LabelMapError(f"{where}: key '{key}': expected a list of GoEmotions label names "
                                f"(got {value!r})")
        bad = [v for v in value if v not in ours]
        if bad:
            raise LabelMapError(f"{where}: key '{key}': {bad[0]!r} is not one of our 28 labels "
                                f"(expected names from: {', '.join(ours)})")
        if key.strip().lower() in targets:
            raise LabelMapError(f"{where}: key '{key}' is mapped twice (keys are compared lower-cased)")
        targets[key.strip().lower()] = tuple(sorted(ours[v] for v in value))
    if not any(targets.values()):
        raise LabelMapError(f"{path}: no source label maps onto any of our labels (expected at least one)")
    return LabelMap(str(path), targets)


def map_for(kind: str, override: str | None) -> LabelMap | None:
    """The map a source uses: its ``label_map`` file, else the shipped one, else None (labels are ours)."""
    if override:
        return load_label_map(override)
    if kind in MAPPED_KINDS:
        return load_label_map(shipped_map_path(kind))
    return None


def _listed(keys: list[str], most: int = 30) -> str:
    """Keys in their own order, the first ``most`` of them: an error line stays readable."""
    shown = ", ".join(keys[:most])
    return shown if len(keys) <= most else f"{shown}, ... ({len(keys)} in all)"


def _line_of(text: str, key: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip().strip('"')
        if stripped.startswith(f"{key} ") or stripped.startswith(f"{key}=") or stripped.startswith(f'{key}"'):
            return number
    return None
