"""Fault injection for drills and tests: ``GOEMO_FAULT="hang@5,nan@3"`` (see docs/contract.md).

Kinds: ``hang@N`` (block forever at optimizer step N), ``nan@N`` (non-finite loss at step N),
``crash@N`` (SIGKILL at step N), ``slow@N`` (steps from N on take 3x longer) and ``diskfull@N``
(the first ``latest`` checkpoint saved at or after step N fails with ENOSPC after its weights are
written, as a full disk would: the run ends ``failed``, the previous checkpoint stays).

A fault fires on the first attempt of a run only (``GOEMO_ATTEMPT`` unset or 1),
unless ``GOEMO_FAULT_ALWAYS=1``.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Callable

from trainer.contract import ENV_ATTEMPT, ENV_FAULT, ENV_FAULT_ALWAYS

KINDS = ("hang", "nan", "crash", "slow", "diskfull")


class FaultSpecError(ValueError):
    pass


def parse_faults(spec: str) -> dict[str, int]:
    """``"hang@5,nan@3"`` → {"hang": 5, "nan": 3}."""
    out: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        kind, _, step = item.partition("@")
        if kind not in KINDS or not step.isdigit():
            raise FaultSpecError(f"GOEMO_FAULT {item!r}: expected KIND@STEP with KIND one of {', '.join(KINDS)}")
        out[kind] = int(step)
    return out


@dataclass
class FaultPlan:
    """The faults armed for this process."""

    faults: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> "FaultPlan":
        spec = os.environ.get(ENV_FAULT, "")
        first_attempt = os.environ.get(ENV_ATTEMPT, "1") == "1"
        if not spec or not (first_attempt or os.environ.get(ENV_FAULT_ALWAYS) == "1"):
            return cls()
        return cls(parse_faults(spec))

    def nan_at(self, step: int) -> bool:
        return self.faults.get("nan") == step

    def slow_factor(self, step: int) -> float:
        at = self.faults.get("slow")
        return 3.0 if at is not None and step >= at else 1.0

    def before_step(self, step: int) -> None:
        """Fire hang or crash faults due at this optimizer step."""
        if self.faults.get("crash") == step:
            os.kill(os.getpid(), signal.SIGKILL)  # abrupt: no cleanup, no run_end
        if self.faults.get("hang") == step:
            injected_hang()

    def checkpoint_fault(self, step: int) -> Callable[[], None] | None:
        """A callable that fails the checkpoint of this step with ENOSPC (diskfull@N), or None."""
        at = self.faults.get("diskfull")
        if at is None or step < at:
            return None

        def disk_full() -> None:
            self.faults.pop("diskfull", None)  # fires once
            raise OSError(errno.ENOSPC, f"No space left on device (injected: diskfull@{at})")

        return disk_full


def injected_hang() -> None:
    """Block the main thread forever while the process stays alive (the watchdog's drill)."""
    while True:
        time.sleep(3600)
