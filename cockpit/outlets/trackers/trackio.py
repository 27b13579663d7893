"""trackio (Hugging Face's local-first tracker): a SQLite database per project in ``<pipeline>/trackio``.

Project = pipeline id, run name ``<pipeline-id>/<run-id>``, group = the phase (``p1-screen``).
``trackio show --project <pipeline-id>`` with ``TRACKIO_DIR=runs/<id>/trackio`` opens the dashboard.

trackio keeps its current run in a context variable, which is per thread, so runs forwarded from
different threads do not collide; each run is driven through the ``Run`` object ``trackio.init``
returns. Its folder, though, is process-wide: trackio reads ``TRACKIO_DIR`` once at import into module
constants. Unless the user set ``TRACKIO_DIR``, this adapter points those constants at the pipeline's
folder, under one lock that also serialises ``init`` and ``finish``; a second pipeline folder in the
same process is refused while runs of the first are open.
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from cockpit.outlets.trackers.base import REPLAY_TAG, StepRows, TrackerRun
from cockpit.outlets.trackers.events_to_calls import Params, Scalar, Table, Text
from trainer.contract import PHASE_NAMES, split_run_id

_lock = threading.Lock()
_open_runs: dict[Path, int] = {}  # folder this module pointed trackio at -> runs open there


def _supported(function: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments this trackio version's function accepts (auto_log_cpu came in 0.27)."""
    accepted = inspect.signature(function).parameters
    return {k: v for k, v in kwargs.items() if k in accepted}


def _point_trackio_at(folder: Path) -> None:
    """Rebase every module-level path trackio derived from its folder (``TRACKIO_DIR``, media, artifacts...)."""
    import trackio.utils

    old = Path(trackio.utils.TRACKIO_DIR)
    if old == folder:
        return
    busy = [f for f, n in _open_runs.items() if n > 0 and f != folder]
    if busy:
        raise RuntimeError(f"trackio already writes to {busy[0]} in this process (one folder per process)")
    for name, module in list(sys.modules.items()):
        if name == "trackio" or name.startswith("trackio."):
            for attr, value in list(vars(module).items()):
                if isinstance(value, Path) and (value == old or old in value.parents):
                    setattr(module, attr, folder / value.relative_to(old))


def _phase_group(run: str) -> str | None:
    phase, _ = split_run_id(run)
    return f"p{phase}-{PHASE_NAMES[phase]}" if phase in PHASE_NAMES else None


class TrackioRun(TrackerRun):
    tracker = "trackio"

    @classmethod
    def import_library(cls) -> None:
        import trackio  # noqa: F401

    def open(self, *, continue_existing: bool, wall_time: float | None) -> None:
        import trackio

        folder = None if os.environ.get("TRACKIO_DIR") else self.store.resolve()
        with _lock:
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
                _point_trackio_at(folder)
            kwargs = {"project": self.pipeline_id, "name": self.name, "group": _phase_group(self.run),
                      "resume": "allow" if continue_existing else "never", "embed": False,
                      "auto_log_cpu": False, "auto_log_gpu": False}
            if self.replayed_at:
                kwargs["config"] = {REPLAY_TAG: self.replayed_at}
            self.trackio_run = trackio.init(**_supported(trackio.init, kwargs))
            if folder is not None:
                _open_runs[folder] = _open_runs.get(folder, 0) + 1
        self._folder = folder
        if self.replaying and hasattr(self.trackio_run, "_webhook_url"):
            self.trackio_run._webhook_url = None
        self._rows = StepRows()

    def _write(self, done: tuple[dict[str, Any], int] | None) -> None:
        if done is not None:
            row, step = done
            self.trackio_run.log(row, step=step)

    def _log_row(self) -> None:
        self._write(self._rows.take())

    def _add(self, key: str, value: Any, step: int) -> None:
        self._write(self._rows.add(key, value, step))

    def params(self, call: Params) -> None:
        # the run's config, written with its first log row
        self.trackio_run.config.update(call.values)

    def scalar(self, call: Scalar) -> None:
        self._add(call.tag, call.value, call.step)

    def text(self, call: Text) -> None:
        import trackio

        self._log_row()
        level = {"info": trackio.AlertLevel.INFO, "error": trackio.AlertLevel.ERROR}.get(call.level,
                                                                                         trackio.AlertLevel.WARN)
        self.trackio_run.alert(**_supported(self.trackio_run.alert, {"title": call.tag, "text": call.text,
                                                                      "level": level, "step": call.step}))

    def table(self, call: Table) -> None:
        import trackio

        self._add(call.tag, trackio.Table(columns=list(call.columns), data=[list(r) for r in call.rows]), call.step)

    def flush(self) -> None:
        self._log_row()

    def finish(self, status: str, wall_time: float | None) -> None:
        import trackio

        self._log_row()
        with _lock:
            try:
                trackio.finish()  # this thread's current run: ours (it also clears trackio's current run)
            except RuntimeError:
                self.trackio_run.finish()
            finally:
                if self._folder is not None:
                    _open_runs[self._folder] -= 1
