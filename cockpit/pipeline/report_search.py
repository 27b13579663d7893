"""The report's "Search" section (issue 21): the search phase's trials, its best trial and a best-so-far plot, read
from pipeline.jsonl's search records through the views' own fold (`cockpit.study_state`), so the report and the
cockpit's study screen show the same trials and the same best one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cockpit.snapshots import StudyView
from cockpit.state import PipelineState
from cockpit.study_state import param_text
from trainer.contract import PIPELINE_ORIGIN, PipelinePaths
from trainer.events import read_events

SEARCH_PLOT = "search_best_so_far.png"


def study_of(pipeline_dir: Path) -> StudyView | None:
    """The study pipeline.jsonl records; None when the pipeline ran no search phase."""
    state = PipelineState()
    state.apply_batch(PIPELINE_ORIGIN, read_events(PipelinePaths(Path(pipeline_dir)).events))
    return state.study.snapshot()


def _value(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def search_markdown(study: StudyView, plot: str | None = None) -> list[str]:
    """The section's lines: the study's outcome, its best trial's parameters, a table of every trial."""
    ended = f"ended ({study.reason})" if study.ended else "did not end"
    counts = ", ".join(f"{n} {state}" for n, state in ((study.complete, "complete"), (study.pruned, "pruned"),
                                                       (study.failed, "failed"), (study.running, "running")) if n)
    parts = ["## Search", "", f"The study {ended}: {counts or 'no trials'}. The objective is each trial's best dev "
             "score (a pruned trial: its last reported one); only complete trials can be best.", ""]
    if study.best_trial is not None:
        parts += [f"Best: trial {study.best_trial} (`{study.best_run}`), objective {_value(study.best_value)}.", "",
                  "| parameter | value |", "| --- | --- |",
                  *(f"| {name} | {param_text(value)} |" for name, value in study.best_params), ""]
    if study.importances:
        parts += ["Importances (fANOVA over the complete trials): " +
                  ", ".join(f"{name} {share:.2f}" for name, share in study.importances) + ".", ""]
    parts += ["| trial | run | state | objective | pruned at step | parameters |",
              "| ---: | --- | --- | ---: | ---: | --- |"]
    parts += [f"| {r.trial} | {r.run} | {r.state} | {_value(r.value)} | "
              f"{r.step if r.step is not None and r.state == 'pruned' else '–'} | {r.params or '–'} |"
              for r in study.trials]
    parts.append("")
    if plot:
        parts += [f"![best so far]({plot})", ""]
    return parts


def plot_best_so_far(pipeline_dir: Path, plt: Any, study: StudyView) -> str | None:
    """The best complete trial's objective after each finished trial, as a step line; the PNG's name, or None."""
    series = study.best_so_far
    if not series.xs:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.step(series.xs, series.ys, where="post", label="best so far")
    done = [(r.trial, r.value, r.state) for r in study.trials if r.value is not None and r.state != "running"]
    for state, marker in (("complete", "o"), ("pruned", "x")):
        points = [(x, y) for x, y, s in done if s == state]
        if points:
            ax.scatter(*zip(*points), marker=marker, label=state)
    ax.set(title="search: best objective so far", xlabel="trial", ylabel="objective")
    ax.legend()
    fig.tight_layout()
    fig.savefig(Path(pipeline_dir) / SEARCH_PLOT, dpi=110)
    plt.close(fig)
    return SEARCH_PLOT


def search_section(pipeline_dir: Path, plt: Any) -> list[str]:
    """The report's "Search" section with its plot; [] when the pipeline ran no search phase."""
    study = study_of(pipeline_dir)
    if study is None:
        return []
    return search_markdown(study, plot_best_so_far(pipeline_dir, plt, study))
