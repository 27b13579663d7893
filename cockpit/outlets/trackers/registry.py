"""The trackers by name: which libraries each needs, whether they are installed, and ``report_to`` resolution.

Nothing here imports a tracker library; an adapter module is imported only when a run of its tracker opens.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any, Callable

from trainer.contract import TRACKERS

# The import names a tracker needs to write (the pip extra of the same name installs them, and for
# TensorBoard also `tensorboard` itself, to view the logs).
LIBRARIES: dict[str, tuple[str, ...]] = {
    "tensorboard": ("tensorboardX",),
    "mlflow": ("mlflow",),
    "trackio": ("trackio",),
    "wandb": ("wandb",),
}
# Adapter classes as "module:Class", imported lazily (or a class: tests register fakes here).
ADAPTERS: dict[str, Any] = {
    "tensorboard": "cockpit.outlets.trackers.tensorboard:TensorBoardRun",
    "mlflow": "cockpit.outlets.trackers.mlflow:MlflowRun",
    "trackio": "cockpit.outlets.trackers.trackio:TrackioRun",
    "wandb": "cockpit.outlets.trackers.wandb:WandbRun",
}


def pip_extra(tracker: str) -> str:
    return f"pip install 'goemo-cockpit[{tracker}]'"


def is_installed(tracker: str) -> bool:
    """All of a tracker's libraries can be imported (found on the path; nothing is imported)."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in LIBRARIES[tracker])
    except (ImportError, ValueError):  # a broken half-installed package
        return False


def installed_trackers() -> list[str]:
    """The trackers whose libraries are installed, in ``TRACKERS`` order."""
    return [name for name in TRACKERS if is_installed(name)]


def resolve_lenient(value: str | list[str] | tuple[str, ...] | None,
                    installed: list[str] | None = None) -> tuple[list[str], list[str]]:
    """``report_to`` as (trackers to use, one line per problem): never raises, for the live fan-out."""
    installed = installed_trackers() if installed is None else installed
    if value is None or value == "none":
        return [], []
    if value == "all":
        return list(installed), []
    names = [value] if isinstance(value, str) else list(value)
    chosen: list[str] = []
    problems: list[str] = []
    for name in names:
        if name == "none":
            continue
        if name not in TRACKERS:
            problems.append(f"report_to: unknown tracker {name!r} (expected 'all', 'none' or some of "
                            f"{', '.join(TRACKERS)})")
        elif name not in installed:
            problems.append(f"report_to: {name!r} is not installed ({pip_extra(name)})")
        elif name not in chosen:
            chosen.append(name)
    return chosen, problems


def resolve_report_to(value: str | list[str]) -> list[str]:
    """``"none"`` -> ``[]``; ``"all"`` -> every installed tracker (Hugging Face semantics); a list -> that list.

    Raises ValueError (one line) for an unknown name or a listed tracker whose library is not installed.
    """
    chosen, problems = resolve_lenient(value)
    if problems:
        raise ValueError(problems[0])
    return chosen


def adapter_class(tracker: str) -> Callable[..., object]:
    """The adapter class of a tracker (importing its module, not yet its library)."""
    spec = ADAPTERS[tracker]
    if not isinstance(spec, str):
        return spec
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def make_tracker_run(tracker: str, pipeline_dir: Path, pipeline_id: str, run: str) -> object:
    """A closed tracker run for one training run; it opens on its first call."""
    return adapter_class(tracker)(pipeline_dir=Path(pipeline_dir), pipeline_id=pipeline_id, run=run)
