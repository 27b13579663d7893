"""The restart policy: what a run's exit means for the run and for the pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from trainer.contract import EXIT_BAD_INPUT, EXIT_OK

# The shell could not run the trainer at all (not executable, or not found, e.g. a wrong
# ``[slurm] python``): the same command fails the same way, so a restart would only repeat it.
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127
EXIT_NOT_RUNNABLE = (EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND)


class Outcome(Enum):
    COMPLETED = "completed"
    STOPPED = "stopped"  # a user stopped it; done for good
    REQUEUED = "queued"  # ended with the pipeline (Ctrl-C, stop_pipeline): --resume continues it
    RESTART = "restart"  # launch again; it resumes from its checkpoint
    FAILED = "failed"  # done for good


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    abort_pipeline: bool = False


@dataclass(frozen=True)
class RestartPolicy:
    """``max_restarts`` restarts per run after crashes and stalls; ``on_run_failure`` decides whether a
    run that fails for good aborts the pipeline."""

    max_restarts: int
    on_run_failure: str = "continue"

    def decide(self, code: int, trainer_status: str | None, intent: str | None, attempts: int) -> Decision:
        """``attempts`` counts launches so far (1 after the first); ``intent`` is why we ended it, if we did."""
        if trainer_status == "completed" and code == EXIT_OK:
            return Decision(Outcome.COMPLETED)
        if intent in ("stop", "not_learning", "pruned"):  # a user's stop, on_not_learning = "stop", the pruner
            return Decision(Outcome.STOPPED)
        if intent == "pipeline":
            return Decision(Outcome.REQUEUED)
        if code == EXIT_BAD_INPUT or code in EXIT_NOT_RUNNABLE:  # the same input would fail the same way
            return self._failed()
        if intent == "restart" or attempts <= self.max_restarts:
            return Decision(Outcome.RESTART)
        return self._failed()

    def _failed(self) -> Decision:
        return Decision(Outcome.FAILED, abort_pipeline=self.on_run_failure == "abort")

    def stall_action(self, attempts: int) -> str:
        """What a stall of this attempt leads to, as the stall event says it."""
        return "restart" if attempts <= self.max_restarts else "fail"
