"""`goemo-cockpit compare`: pipelines side by side, and mean ± std over pipelines that differ only in seed.

`compare_pipelines(dirs)` is the model both views render: dev macro-F1 (at the primary threshold, tuned, and
tuned cross-fitted) per config, matched across pipelines by phase and config name; each pipeline's final test
numbers; per-label test F1 with deltas against the first pipeline; and, for every group of two or more pipelines
whose saved preset.toml files are equal once each `seed` key is removed and whose seeds differ, the
mean ± sample standard deviation of those numbers over the group. `comparison_tables` turns the model
into plain text tables; `--headless` prints them with rich, the TUI shows them in DataTables.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from cockpit.cli_errors import BadArguments, OneLineParser, fail
from cockpit.export import PipelineFolderError, PipelineRecord, read_pipeline
from cockpit.judgements.seeds import seed_stats
from cockpit.snapshots import TUNED_CV_LABEL, LeaderRow, f1_at
from trainer.contract import EXIT_OK, split_run_id

PROG = "goemo-cockpit compare"
SEED_KEY = "seed"  # removed at any depth of preset.toml before presets are compared
DASH = "–"
UNREADABLE = "unreadable"  # the status of a pipeline whose files cannot be read: never "running"
UNBOUNDED_WIDTH = 10_000  # how wide a table printed to a file or a pipe may be


def fmt_float(value: float | None) -> str:
    return DASH if value is None else f"{value:.4f}"


def fmt_delta(value: float | None) -> str:
    return DASH if value is None else f"{value:+.4f}"


class CompareError(ValueError):
    """Bad input to a comparison (a folder that is not a pipeline folder, one given twice): one line."""


@dataclass(frozen=True)
class ComparedPipeline:
    """One pipeline of a comparison, with its final test numbers."""

    label: str  # "#1", "#2", ...: what column headers call it
    name: str  # the folder name (the pipeline id)
    path: Path
    preset: str
    seed: str | None  # the seed(s) its preset.toml names, as text; None when it names none
    status: str  # the pipeline's own status, or "unreadable" when its files cannot be read
    primary: float
    final_run: str | None
    test_f1: float | None  # macro-F1 at its primary threshold
    test_tuned: float | None
    test_tuned_text: str = DASH  # with its 95 % bootstrap interval, where the trainer gave one


@dataclass(frozen=True)
class ConfigRow:
    """One (phase, config) across pipelines: best dev macro-F1 at the primary threshold, tuned and tuned cv
    (cross-fitted), per pipeline."""

    phase: int | None
    config: str
    dev_f1: tuple[float | None, ...]
    dev_tuned: tuple[float | None, ...]
    dev_tuned_cv: tuple[float | None, ...]


@dataclass(frozen=True)
class LabelRow:
    """One label's test F1 in each pipeline's final run, and its change against the first pipeline."""

    label: str
    test_f1: tuple[float | None, ...]

    @property
    def deltas(self) -> tuple[float | None, ...]:
        """Against the first pipeline; None for the first itself and where either value is unknown."""
        first = self.test_f1[0] if self.test_f1 else None
        return tuple(None if i == 0 or f1 is None or first is None else f1 - first for i, f1 in enumerate(self.test_f1))


@dataclass(frozen=True)
class Spread:
    """Mean, sample standard deviation and the 95 % t-interval of the mean of the values known (the spread needs
    two): the leaderboard's statistics over seeds (cockpit/judgements/seeds.py `seed_stats`)."""

    n: int
    mean: float | None
    std: float | None
    low: float | None = None
    high: float | None = None

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Spread:
        stats = seed_stats([v for v in values if v is not None])
        if stats is None:
            return cls(0, None, None)
        return cls(stats.n, stats.mean, stats.std, stats.low, stats.high)

    def text(self) -> str:
        """``0.4312 ± 0.0040 [0.3953, 0.4671]``; the mean alone from one value; a dash from none."""
        if self.mean is None:
            return DASH
        if self.std is None or self.low is None or self.high is None:
            return fmt_float(self.mean)
        return f"{self.mean:.4f} ± {self.std:.4f} [{self.low:.4f}, {self.high:.4f}]"


@dataclass(frozen=True)
class SeedRow:
    """A seed group's spread of one config's dev numbers (split "dev") or of the final test numbers ("test")."""

    group: str  # "#1 #2": the pipelines of the group
    seeds: str
    split: str
    phase: int | None
    config: str
    f1: Spread
    tuned: Spread


@dataclass(frozen=True)
class RunLabelRow:
    """One label in two runs' per-label dev F1 (each run's label eval: its final dev eval, else its last one)."""

    label: str
    support: int | None
    f1: tuple[float | None, float | None]

    @property
    def delta(self) -> float | None:
        a, b = self.f1
        return None if a is None or b is None else b - a


@dataclass(frozen=True)
class Comparison:
    pipelines: tuple[ComparedPipeline, ...]
    configs: tuple[ConfigRow, ...]
    labels: tuple[LabelRow, ...]
    seed_rows: tuple[SeedRow, ...]
    notes: tuple[str, ...]  # caveats a reader should see (thresholds that differ, pipelines still running,
    # unreadable files, skipped lines)
    run_pair: tuple[str, str] | None = None  # --runs A B: the two runs compared per label ("#n:run" names)
    groups: tuple[tuple[str, LeaderRow], ...] = ()  # (pipeline label, config over seeds) of pipelines with seeds = k
    run_labels: tuple[RunLabelRow, ...] = ()  # their labels, the largest difference first

    @property
    def primary(self) -> float | None:
        """The primary threshold every pipeline shares, or None when they differ."""
        thresholds = {p.primary for p in self.pipelines}
        return thresholds.pop() if len(thresholds) == 1 else None


def without_seeds(value: Any) -> Any:
    """A preset (parsed TOML) with every `seed` key removed, at any depth."""
    if isinstance(value, dict):
        return {k: without_seeds(v) for k, v in value.items() if k != SEED_KEY}
    if isinstance(value, list):
        return [without_seeds(v) for v in value]
    return value


def seeds_in(value: Any) -> tuple[str, ...]:
    """Every `seed` value of a preset, in order of appearance, each once (as text)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                if key == SEED_KEY and not isinstance(child, (dict, list)):
                    found.append(str(child))
                else:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(value)
    return tuple(dict.fromkeys(found))


def _compared(label: str, record: PipelineRecord) -> ComparedPipeline:
    view, final = record.view, record.view.final
    seeds = seeds_in(record.preset) if record.preset is not None else ()
    return ComparedPipeline(label, record.path.name, record.path, view.preset or DASH, ", ".join(seeds) or None,
                            view.status if record.readable else UNREADABLE, view.primary,
                            final.run if final else None,
                            final.test_f1_primary if final else None, final.test_tuned if final else None,
                            final.tuned_text if final else DASH)


DevScores = tuple[float | None, float | None, float | None]  # F1 at the primary threshold, tuned, tuned cv
NO_SCORES: DevScores = (None, None, None)


def _config_scores(record: PipelineRecord) -> dict[tuple[int | None, str], DevScores]:
    """(phase, config) -> (dev F1 at the primary threshold, tuned, tuned cv) from the leaderboard (first row of a
    config); a pipeline that ran configs over seeds gives each config's means over its seeds."""
    scores: dict[tuple[int | None, str], DevScores] = {}
    for row in (*record.view.groups, *record.view.leaderboard):
        scores.setdefault((row.phase, row.config), (row.f1_primary, row.tuned, row.tuned_cv))
    return scores


def _test_labels(record: PipelineRecord) -> dict[str, float | None]:
    """label -> test F1 of the final run's final test eval (the pipeline's published number)."""
    final = record.view.final
    history = record.runs.get(final.run) if final is not None else None
    test = [e for e in history.label_evals() if e.split == "test"] if history is not None else []
    return {score.label: score.f1 for score in test[-1].per_class} if test else {}


def _seed_groups(records: Sequence[PipelineRecord]) -> list[list[int]]:
    """Indexes of pipelines whose presets are equal without their seeds, two or more with different seeds."""
    groups: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        if record.preset is not None and seeds_in(record.preset):
            key = json.dumps(without_seeds(record.preset), sort_keys=True, default=str)
            groups.setdefault(key, []).append(i)
    return [members for members in groups.values()
            if len(members) > 1 and len({seeds_in(records[i].preset) for i in members}) > 1]


def _seed_rows(records: Sequence[PipelineRecord], pipelines: Sequence[ComparedPipeline],
               configs: Sequence[ConfigRow]) -> tuple[SeedRow, ...]:
    """Per seed group: the spread of each config's dev numbers, then of the final test numbers."""
    seed_rows = []
    for members in _seed_groups(records):
        group = " ".join(pipelines[i].label for i in members)
        seeds = ", ".join(pipelines[i].seed or DASH for i in members)
        for row in configs:
            if any(row.dev_f1[i] is not None or row.dev_tuned[i] is not None for i in members):
                seed_rows.append(SeedRow(group, seeds, "dev", row.phase, row.config,
                                         Spread.of(row.dev_f1[i] for i in members),
                                         Spread.of(row.dev_tuned[i] for i in members)))
        finals = [pipelines[i] for i in members]
        if any(p.test_f1 is not None or p.test_tuned is not None for p in finals):
            runs = [split_run_id(run) for run in sorted({p.final_run for p in finals if p.final_run})]
            phases = {phase for phase, _ in runs}
            seed_rows.append(SeedRow(group, seeds, "test", phases.pop() if len(phases) == 1 else None,
                                     ", ".join(config for _, config in runs), Spread.of(p.test_f1 for p in finals),
                                     Spread.of(p.test_tuned for p in finals)))
    return tuple(seed_rows)


def _run_labels(records: Sequence[PipelineRecord],
                names: Sequence[str]) -> tuple[tuple[str, str], tuple[RunLabelRow, ...]]:
    """Two runs named ``RUN`` (of the first pipeline) or ``#N:RUN``, per label, the largest |Δ F1| first."""
    chosen = []
    for name in names:
        index, _, run = name.rpartition(":") if name.startswith("#") else ("#1", ":", name)
        try:
            record = records[int(index.lstrip("#")) - 1]
        except (ValueError, IndexError):
            raise CompareError(f"--runs {name}: expected RUN or #N:RUN with N from 1 to {len(records)}") from None
        history = record.runs.get(run)
        if history is None:
            known = ", ".join(sorted(record.runs)) or "none"
            raise CompareError(f"--runs {name}: no run {run!r} in {record.path} (it has: {known})")
        dev = [e for e in history.label_evals() if e.split == "dev"]
        chosen.append(({s.label: s for s in dev[-1].per_class} if dev else {}, f"{index}:{run}"))
    (a, name_a), (b, name_b) = chosen
    rows = [RunLabelRow(label, (a.get(label) or b[label]).support,
                        (a[label].f1 if label in a else None, b[label].f1 if label in b else None))
            for label in dict.fromkeys([*a, *b])]
    rows.sort(key=lambda r: -abs(r.delta) if r.delta is not None else 0.0)
    return (name_a, name_b), tuple(rows)


def compare_pipelines(dirs: Sequence[str | Path], runs: Sequence[str] = ()) -> Comparison:
    """Read each pipeline folder once and put them side by side; the first is the reference for deltas.
    ``runs``: two runs to compare label by label (``RUN`` of the first pipeline, or ``#N:RUN``).

    CompareError when no folder is given, a folder is not a pipeline folder, or one is given twice.
    """
    if not dirs:
        raise CompareError("no pipeline folders to compare (expected one or more, e.g. runs/<id>)")
    seen: dict[Path, str] = {}
    for folder in dirs:
        resolved = Path(folder).resolve()
        if resolved in seen:
            raise CompareError(f"{folder}: given twice (as {seen[resolved]} too); expected different pipeline folders")
        seen[resolved] = str(folder)
    try:
        records = [read_pipeline(folder) for folder in dirs]
    except PipelineFolderError as exc:
        raise CompareError(str(exc)) from None
    pipelines = tuple(_compared(f"#{i}", record) for i, record in enumerate(records, 1))

    scores = [_config_scores(record) for record in records]
    keys = sorted({key for s in scores for key in s}, key=lambda k: (k[0] if k[0] is not None else 99, k[1]))
    rows = []
    for phase, config in keys:
        per_pipeline = [s.get((phase, config), NO_SCORES) for s in scores]
        rows.append(ConfigRow(phase, config, *map(tuple, zip(*per_pipeline))))  # per score: one value per pipeline
    configs = tuple(rows)

    tests = [_test_labels(record) for record in records]
    order = list(dict.fromkeys(label for t in tests for label in t))  # the first pipeline's order, then the rest
    labels = tuple(LabelRow(label, tuple(t.get(label) for t in tests)) for label in order)

    seed_rows = _seed_rows(records, pipelines, configs)

    notes = []
    thresholds = {p.primary for p in pipelines}
    if len(thresholds) > 1:
        notes.append("primary thresholds differ (" + ", ".join(f"{p.label} {p.primary:g}" for p in pipelines)
                     + "): each F1 is at its own pipeline's threshold")
    live = [p.label for p in pipelines if p.status in ("running", "waiting")]
    if live:
        notes.append(f"{', '.join(live)} still running: numbers may change")
    for p, record in zip(pipelines, records):
        if record.problem is not None:
            notes.append(f"{p.label} {UNREADABLE}: {record.problem}")
        elif record.bad_lines:
            notes.append(f"{p.label}: {record.bad_lines} bad line{'s' if record.bad_lines != 1 else ''} skipped")
    run_pair, run_labels = _run_labels(records, runs) if runs else (None, ())
    groups = tuple((p.label, row) for p, record in zip(pipelines, records) for row in record.view.groups)
    return Comparison(pipelines, configs, labels, seed_rows, tuple(notes), run_pair=run_pair, run_labels=run_labels,
                      groups=groups)


def pipelines_to_compare(first: Sequence[Path], runs_dir: Path | None) -> list[Path]:
    """`first`, then every other pipeline folder under runs_dir (newest first), each folder once."""
    from cockpit.tail import find_pipelines

    chosen: dict[Path, Path] = {}
    for folder in [*first, *(find_pipelines(runs_dir) if runs_dir is not None else ())]:
        chosen.setdefault(Path(folder).resolve(), Path(folder))
    return list(chosen.values())


@dataclass(frozen=True)
class TextTable:
    """A table as both views show it: a title, headers, which columns are numbers (right-aligned), text rows,
    and what to say instead when there are no rows."""

    title: str
    columns: tuple[str, ...]
    numeric: tuple[bool, ...]
    rows: tuple[tuple[str, ...], ...]
    empty: str = "none"


def _phase(phase: int | None) -> str:
    return DASH if phase is None else str(phase)


def comparison_tables(c: Comparison) -> tuple[TextTable, ...]:
    """Pipelines (with final test numbers), dev by config, per-label test F1, mean ± std over seeds and two runs
    per label (--runs), in that order; headers name pipelines by their `#n` label."""
    f1 = f1_at(c.primary) if c.primary is not None else "F1@primary"
    tables = [TextTable(
        "pipelines and final test", ("#", "pipeline", "preset", "seed", "status", "final run", f"test {f1}",
                                     "test tuned"),
        (False, False, False, True, False, False, True, True),
        tuple((p.label, p.name, p.preset, p.seed or DASH, p.status, p.final_run or DASH, fmt_float(p.test_f1),
               p.test_tuned_text) for p in c.pipelines))]
    per_pipeline = [(f"{p.label} {f1}", f"{p.label} tuned", f"{p.label} {TUNED_CV_LABEL}") for p in c.pipelines]
    tables.append(TextTable(
        f"dev {f1} by config (best dev eval of each run; configs over seeds: the mean)",
        ("phase", "config") + tuple(h for triple in per_pipeline for h in triple),
        (True, False) + (True,) * (3 * len(c.pipelines)),
        tuple((_phase(r.phase), r.config) + tuple(fmt_float(v) for triple in zip(r.dev_f1, r.dev_tuned, r.dev_tuned_cv)
                                                  for v in triple)
              for r in c.configs),
        "no dev evals yet"))
    first, others = (c.pipelines[0], c.pipelines[1:]) if c.pipelines else (None, ())
    tables.append(TextTable(
        f"per-label test F1, Δ against {first.label if first else DASH}",
        ("label", f"{first.label if first else DASH} F1") + tuple(h for p in others for h in (f"{p.label} F1",
                                                                                            f"Δ {p.label}")),
        (False, True) + (True,) * (2 * len(others)),
        tuple((r.label, fmt_float(r.test_f1[0])) + tuple(text for f1_value, delta in zip(r.test_f1[1:], r.deltas[1:])
                                                        for text in (fmt_float(f1_value), fmt_delta(delta)))
              for r in c.labels),
        "no final test scores yet"))
    tables.append(TextTable(
        "mean ± std [95% of the mean] over seeds (pipelines whose presets differ only in seed)",
        ("pipelines", "seeds", "split", "phase", "config", "n", f1, "tuned"),
        (False, False, False, True, False, True, True, True),
        tuple((r.group, r.seeds, r.split, _phase(r.phase), r.config, str(max(r.f1.n, r.tuned.n)), r.f1.text(),
               r.tuned.text()) for r in c.seed_rows),
        "no two pipelines share a preset that differs only in seed"))
    if c.groups:  # within a pipeline: its configs over seeds, as its leaderboard ranks them
        tables.append(TextTable(
            "configs over seeds within a pipeline (seeds = k): means, sd and 95 % interval of the ranking score, "
            "pooled paired Δ",
            ("#", "config", "seeds", f1, "tuned", TUNED_CV_LABEL, "± sd [95%]", "Δ base [95%]", "Δ leader [95%]"),
            (False, False, False, True, True, True, True, True, True),
            tuple((label, row.run, row.seeds_text, fmt_float(row.f1_primary), fmt_float(row.tuned),
                   fmt_float(row.tuned_cv), row.spread or DASH, row.vs_baseline or DASH, row.vs_leader or DASH)
                  for label, row in c.groups)))
    a, b = c.run_pair or ("A", "B")
    tables.append(TextTable(
        f"per-label dev F1 of two runs, the largest differences first: {a} against {b}",
        ("label", "dev support", f"{a} F1", f"{b} F1", f"Δ {b}"), (False, True, True, True, True),
        tuple((r.label, DASH if r.support is None else str(r.support), fmt_float(r.f1[0]), fmt_float(r.f1[1]),
               fmt_delta(r.delta)) for r in c.run_labels),
        "pick two runs with --runs A B (RUN of the first pipeline, or #N:RUN)"))
    return tuple(tables)


def print_comparison(c: Comparison, file: Any = None) -> None:
    """The comparison as rich tables on stdout (or `file`), notes last."""
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table

    console = Console(file=file or sys.stdout)
    for spec in comparison_tables(c):
        if not spec.rows:
            console.print(f"{spec.title}: {spec.empty}", highlight=False, soft_wrap=True)
            continue
        table = Table(title=spec.title, title_justify="left")
        for i, (header, numeric) in enumerate(zip(spec.columns, spec.numeric)):
            # Numbers never wrap or lose digits: on a narrow terminal the text columns give way.
            widest = max([len(row[i]) for row in spec.rows] + [0])
            table.add_column(header, justify="right" if numeric else "left", no_wrap=numeric,
                             min_width=widest if numeric else None)
        for row in spec.rows:
            table.add_row(*row)
        if not console.is_terminal:  # a terminal keeps its width; a file or a pipe gets each table whole
            console.width = Measurement.get(console, console.options.update(max_width=UNBOUNDED_WIDTH),
                                            table).maximum
        console.print(table)
    for note in c.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="Put pipeline folders side by side: dev F1 per config, final test "
                     "numbers, per-label test F1 against the first, and mean ± std over pipelines that differ only "
                     "in seed.")
    parser.add_argument("pipeline_dirs", nargs="+", type=Path, metavar="PIPELINE_DIR",
                        help="pipeline folders, e.g. runs/A runs/B; the first is the reference for deltas")
    parser.add_argument("--headless", action="store_true", help="print tables instead of opening the TUI")
    parser.add_argument("--runs", nargs=2, metavar=("A", "B"), default=(),
                        help="two runs to compare label by label, e.g. p1-bce p1-asl (of the first pipeline) or "
                             "#2:p3-asl; the labels where their dev F1 differs most come first")
    return parser


def main_compare(argv: list[str], open_tui: Callable[[Comparison], None] | None = None) -> int:
    """`goemo-cockpit compare DIR [DIR ...] [--headless]`: 0 when shown, 2 on bad input (one line).

    ``open_tui`` shows the comparison in the TUI (cockpit.cli passes it: this module stays below the screens);
    without it, or with --headless, the tables are printed."""
    try:
        args = build_parser().parse_args(argv)
        comparison = compare_pipelines(args.pipeline_dirs, args.runs)
    except (BadArguments, CompareError) as exc:
        return fail(PROG, str(exc))
    if args.headless or open_tui is None:
        print_comparison(comparison)
    else:
        open_tui(comparison)
    return EXIT_OK
