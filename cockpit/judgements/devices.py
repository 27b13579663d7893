"""Is the GPU waiting? The ``gpu_underused`` rule, read from a run's own device events.

GoEmotions rows are about 16 tokens, so a step on a large GPU is bound by kernel launches and the host, not by
the tensor cores: on the H200 the trainer used the card at 19 % at most, which only someone reading NVML
numbers saw. While a run trains (after its first step, before its run_end), its device events' GPU
utilisation (the mean over the GPUs the run sees) staying under ``below_pct`` for ``window_s`` of event time
raises the alert once per run.
"""

from __future__ import annotations

from dataclasses import dataclass

from cockpit.records import BadEvent, DeviceRecord, RunEnd, RunStart, StepRecord, decode
from trainer.contract import ALERT_GPU_UNDERUSED, PIPELINE_ORIGIN

GPU_UNDERUSED = ALERT_GPU_UNDERUSED  # the alert's code


@dataclass(frozen=True)
class GpuRule:
    below_pct: float = 30.0
    window_s: float = 120.0


@dataclass
class _Run:
    training: bool = False
    low_since: float | None = None
    streak_max: float = 0.0  # the highest utilisation seen in the current low streak


class GpuWatch:
    """Follows the runs' events and says, once per run, when its GPUs wait while it trains."""

    def __init__(self, rule: GpuRule = GpuRule()) -> None:
        self.rule = rule
        self._runs: dict[str, _Run] = {}
        self.fired: set[str] = set()

    def observe(self, origin: str, event: dict) -> str | None:
        """The alert's message this event brings about (once per run), else None."""
        if origin == PIPELINE_ORIGIN or origin in self.fired:
            return None
        try:
            record = decode(origin, event)
        except BadEvent:
            return None
        run = self._runs.setdefault(origin, _Run())
        if isinstance(record, RunStart):  # a new attempt: it has not trained yet
            run.training, run.low_since = False, None
        elif isinstance(record, StepRecord):
            run.training = True
        elif isinstance(record, RunEnd):
            run.training, run.low_since = False, None
        elif isinstance(record, DeviceRecord) and run.training:
            return self._sample(origin, run, record)
        return None

    def _sample(self, origin: str, run: _Run, record: DeviceRecord) -> str | None:
        utils = [g.util_pct for g in record.gpus if g.util_pct is not None]
        if not utils:
            return None  # no GPU (a CPU run), or NVML could not read it
        mean = sum(utils) / len(utils)
        if mean >= self.rule.below_pct:
            run.low_since, run.streak_max = None, 0.0
            return None
        if run.low_since is None:
            run.low_since, run.streak_max = record.t, mean
            return None
        run.streak_max = max(run.streak_max, mean)
        if record.t - run.low_since < self.rule.window_s:
            return None
        self.fired.add(origin)
        names = ", ".join(sorted({g.name for g in record.gpus})) or "GPU"
        return (f"GPU underused: {names} at {run.streak_max:.0f} % utilisation or less for "
                f"{record.t - run.low_since:.0f} s while training (below {self.rule.below_pct:.0f} %). Likely small "
                f"batches of short rows (a step is bound by kernel launches and the host), the data loader or the "
                f"CPU; try a larger batch_size or a token budget per batch, and check the CPU in the device panel")
