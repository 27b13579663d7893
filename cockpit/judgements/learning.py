"""Is a run learning at all? The ``not_learning`` rule, read from a run's dev evals (their ``learning``
figures, `trainer/diagnostics.py`).

A run stuck on the label prior keeps every other badge green: its loss falls, its gradients are fine and its
steps flow. The rule fires once the run has had a fair chance (``after_evals`` dev evals, or
``after_fraction`` of its steps, whichever comes first) and either:

- its discrimination stays near chance: the best macro ROC-AUC of its dev evals so far is under
  ``auc_floor``; or
- its predictions stay at the prior: its latest eval predicts at most ``predicted_floor`` labels at the
  primary threshold and no eval so far moved its predictions ``gap_floor`` away from the training prior.

The floors were tuned on real runs (docs/results.md, "Not learning"): the MiniLM plateau (head lr = lr = 1e-4
on 2,000 rows) against every run of a finished `quick` and the tiny DeBERTa smoke runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from cockpit.records import BadEvent, EvalRecord, RunStart, decode
from trainer.contract import ALERT_NOT_LEARNING, PIPELINE_ORIGIN

NOT_LEARNING = ALERT_NOT_LEARNING  # the alert's code
ACTIONS = ("alert", "stop")


@dataclass(frozen=True)
class LearningRule:
    """When ``not_learning`` fires; the defaults are the tuned ones."""

    after_evals: int = 2
    after_fraction: float = 0.3
    auc_floor: float = 0.62
    predicted_floor: int = 1
    gap_floor: float = 0.02


@dataclass(frozen=True)
class Verdict:
    """Why a run is judged not to be learning, in words a user can act on."""

    step: int
    message: str


CAUSES = ("usual causes: a head learning rate too small for a fresh head (try head_lr 1e-2 to 3e-2), a frozen "
          "or mis-pooled encoder, or a loss whose sign or clipping is wrong")


def judge(evals: Iterable[EvalRecord], rule: LearningRule = LearningRule(),
          total_steps: int | None = None) -> Verdict | None:
    """The verdict on a run's periodic dev evals so far (in step order), or None while it learns or has not had
    its chance yet. Evals without ``learning`` figures (older trainers) are never judged."""
    seen = [e for e in evals if e.is_periodic_dev and e.learning is not None]
    if not seen:
        return None
    last = seen[-1]
    fraction = last.step / total_steps if total_steps else 0.0
    if len(seen) < rule.after_evals and fraction < rule.after_fraction:
        return None
    aucs = [e.learning.auc_macro for e in seen if e.learning.auc_macro is not None]
    gaps = [e.learning.prior_gap for e in seen if e.learning.prior_gap is not None]
    figures = last.learning
    if aucs and max(aucs) < rule.auc_floor:
        return Verdict(last.step, f"not learning: dev macro ROC-AUC has stayed near chance (best {max(aucs):.3f} "
                                  f"over {len(seen)} eval{'s' if len(seen) != 1 else ''} up to step {last.step}; "
                                  f"0.5 is chance); {CAUSES}")
    predicted = figures.labels_predicted
    if predicted is not None and predicted <= rule.predicted_floor and gaps and max(gaps) < rule.gap_floor:
        of = f" of {figures.labels}" if figures.labels else ""
        return Verdict(last.step, f"not learning: predictions stay at the label prior ({predicted}{of} labels "
                                  f"predicted at step {last.step}, mean |p − prior| at most {max(gaps):.3f}); {CAUSES}")
    return None


class LearningWatch:
    """Follows the runs' events (as the supervisor hands them over) and judges each run once: a run judged not
    learning is not judged again. Fed from one thread; never raises on a malformed event."""

    def __init__(self, rule: LearningRule = LearningRule()) -> None:
        self.rule = rule
        self._evals: dict[str, list[EvalRecord]] = {}
        self._total: dict[str, int | None] = {}
        self.judged: dict[str, Verdict] = {}

    def observe(self, origin: str, event: dict) -> Verdict | None:
        """The verdict this event brings about (once per run), else None."""
        if origin == PIPELINE_ORIGIN or origin in self.judged:
            return None
        try:
            record = decode(origin, event)
        except BadEvent:
            return None
        if isinstance(record, RunStart):
            self._total[origin] = record.total_steps or None
            if record.resumed_from_step is not None:  # the attempt goes on from its checkpoint
                self._evals[origin] = [e for e in self._evals.get(origin, []) if e.step <= record.resumed_from_step]
            return None
        if not isinstance(record, EvalRecord) or not record.is_periodic_dev:
            return None
        evals = self._evals.setdefault(origin, [])
        evals.append(record)
        verdict = judge(evals, self.rule, self._total.get(origin))
        if verdict is not None:
            self.judged[origin] = verdict
        return verdict
