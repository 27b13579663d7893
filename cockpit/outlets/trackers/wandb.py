"""Weights & Biases: offline run folders in ``<pipeline>/wandb`` unless the user is logged in.

Mode: ``$WANDB_MODE`` when set, else ``online`` with an API key (``WANDB_API_KEY`` or a netrc entry for the
W&B host), else ``offline`` (``wandb sync runs/<id>/wandb/offline-run-*`` uploads later). Project
``goemo-cockpit`` (or ``$WANDB_PROJECT``), group = pipeline id, run name ``<pipeline-id>/<run-id>``; several
runs live at once in one process through ``reinit="create_new"``. Every metric is plotted against
``trainer/step`` (a logged key, not W&B's own ``_step``), so out-of-order steps (the final test evaluation
at the best step, a restart from a checkpoint) are kept instead of dropped.
"""

from __future__ import annotations

import hashlib
import netrc
import os
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cockpit.outlets.trackers.base import REPLAY_TAG, StepRows, TrackerRun
from cockpit.outlets.trackers.events_to_calls import Params, Scalar, Summary, Table, Text
from trainer.contract import PHASE_NAMES, split_run_id

PROJECT = "goemo-cockpit"
STEP_KEY = "trainer/step"
# Keep the supervisor's console, machine and code out of every run: the run is the trainer's, not ours.
QUIET_SETTINGS = {"console": "off", "x_disable_stats": True, "save_code": False, "disable_git": True,
                  "silent": True, "disable_job_creation": True, "x_save_requirements": False,
                  "x_disable_machine_info": True, "x_disable_meta": True}


def logged_in() -> bool:
    """An API key in the environment or in netrc for the W&B host (no network)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    path = os.environ.get("NETRC") or str(Path.home() / ".netrc")
    try:
        return bool(host and netrc.netrc(path).authenticators(host))
    except (OSError, netrc.NetrcParseError):
        return False


def run_key(name: str) -> str:
    """A W&B run id from a run name: letters, digits, ``-`` and ``_``, at most 64 characters."""
    key = re.sub(r"[^A-Za-z0-9_-]", "-", name)
    if len(key) > 64:
        key = key[:55] + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return key


class WandbRun(TrackerRun):
    tracker = "wandb"

    @classmethod
    def import_library(cls) -> None:
        import wandb  # noqa: F401

    def open(self, *, continue_existing: bool, wall_time: float | None) -> None:
        import wandb

        root = os.environ.get("WANDB_DIR")
        if not root:
            self.store.mkdir(parents=True, exist_ok=True)
            root = str(self.store.parent)  # wandb writes its runs into <dir>/wandb
        known = getattr(wandb.Settings, "model_fields", QUIET_SETTINGS)
        settings = wandb.Settings(**{k: v for k, v in QUIET_SETTINGS.items() if k in known})
        phase, _ = split_run_id(self.run)
        kwargs: dict[str, Any] = {
            "project": os.environ.get("WANDB_PROJECT") or PROJECT, "group": self.pipeline_id, "name": self.name,
            "job_type": f"p{phase}-{PHASE_NAMES[phase]}" if phase in PHASE_NAMES else None,
            "dir": root, "reinit": "create_new", "settings": settings}
        if "WANDB_MODE" not in os.environ:
            kwargs["mode"] = "online" if logged_in() else "offline"
        if self.replayed_at:
            kwargs.update(tags=["replay"], config={REPLAY_TAG: self.replayed_at})
        replay_id = getattr(self, "_replay_id", None)
        if continue_existing:  # a replay's restart continues that replay's run
            kwargs.update(id=replay_id or run_key(self.name), resume="allow")
        else:  # a replay is a new run: a run of the same id may already exist online
            kwargs["id"] = self._replay_id = run_key(f"{self.name}-{secrets.token_hex(3)}")
        self.wandb_run = wandb.init(**kwargs)
        self.wandb_run.define_metric(STEP_KEY)
        self.wandb_run.define_metric("*", step_metric=STEP_KEY)
        self._rows = StepRows()

    def _write(self, done: tuple[dict[str, Any], int] | None) -> None:
        if done is not None:
            row, step = done
            self.wandb_run.log({STEP_KEY: step, **row})

    def _log_row(self) -> None:
        self._write(self._rows.take())

    def _add(self, key: str, value: Any, step: int) -> None:
        self._write(self._rows.add(key, value, step))

    def params(self, call: Params) -> None:
        self.wandb_run.config.update(call.nested, allow_val_change=True)

    def scalar(self, call: Scalar) -> None:
        self._add(call.tag, call.value, call.step)

    def text(self, call: Text) -> None:
        self._add(call.tag, call.text, call.step)

    def table(self, call: Table) -> None:
        import wandb

        self._add(call.tag, wandb.Table(columns=list(call.columns), data=[list(r) for r in call.rows]), call.step)

    def summary(self, call: Summary) -> None:
        self._log_row()
        self.wandb_run.summary.update(dict(call.values))

    def flush(self) -> None:
        self._log_row()

    def finish(self, status: str, wall_time: float | None) -> None:
        self._log_row()
        self.wandb_run.finish(exit_code=0 if status == "completed" else 1)
