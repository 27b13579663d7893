"""What the search phase writes into pipeline.jsonl, decoded once: a trial's state changes (``search_trial``), each
dev eval a trial reports to the pruner (``search_report``), and the study's end (``search_end``). Each record
carries the event's time ``t``. The supervisor writes them from `cockpit.search.study` (``trial_fields``,
``end_fields``); views, headless, the report and export read these records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cockpit.records.values import integer, number, optional_text, required_id, required_integer, required_number, \
    required_text, text


@dataclass(frozen=True)
class SearchTrial:
    t: float
    trial: int
    """The trial's number in the Optuna study (0, 1, ...)."""
    run: str
    """The trial's run id (``s-017``); a retried trial keeps the run of the trial it retries."""
    state: str
    """"running", "complete", "pruned" or "failed" (SEARCH_TRIAL_STATES)."""
    params: dict[str, Any]
    """The sampled parameters, by name, as the study holds them ({} when the event's are not an object)."""
    value: float | None = None
    """The objective: the run's best dev score (complete), or its last reported one (pruned)."""
    step: int | None = None
    """A pruned trial's step: the dev eval at which the pruner stopped it."""
    retry_of: int | None = None
    """The trial this one retries (a trial left running by a supervisor that died)."""
    importances: tuple[tuple[str, float], ...] | None = None
    """fANOVA importances over the complete trials so far, most important first; None below two trials."""


@dataclass(frozen=True)
class SearchReport:
    t: float
    trial: int
    step: int
    value: float
    """The objective's value at this dev eval."""
    run: str | None = None


@dataclass(frozen=True)
class SearchEnd:
    t: float
    trials: int
    """Finished trials (complete and pruned)."""
    best_trial: int | None
    best_value: float | None
    best_run: str | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    importances: tuple[tuple[str, float], ...] | None = None
    reason: str = ""
    """Why the study ended: "n_trials", "timeout", "failures" or "interrupted"."""
    pruned: int | None = None
    failed: int | None = None


def importances_of(value: Any) -> tuple[tuple[str, float], ...] | None:
    """A ``{param: importance}`` object as pairs, most important first (finite numbers only); None if not one."""
    if not isinstance(value, dict):
        return None
    pairs = [(str(k), v) for k, v in ((k, number(v)) for k, v in value.items()) if v is not None]
    return tuple(sorted(pairs, key=lambda kv: (-kv[1], kv[0])))


def _params(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def decode_search_trial(e: dict[str, Any], t: float) -> SearchTrial:
    return SearchTrial(t, required_integer(e, "trial"), required_id(e), required_text(e, "state"), _params(e["params"]),
                       number(e.get("value")), integer(e.get("step")), integer(e.get("retry_of")),
                       importances_of(e.get("importances")))


def decode_search_report(e: dict[str, Any], t: float) -> SearchReport:
    return SearchReport(t, required_integer(e, "trial"), required_integer(e, "step"), required_number(e, "value"),
                        optional_text(e.get("run")))


def decode_search_end(e: dict[str, Any], t: float) -> SearchEnd:
    return SearchEnd(t, integer(e.get("trials")) or 0, integer(e.get("best_trial")), number(e.get("best_value")),
                     optional_text(e.get("best_run")), _params(e.get("best_params")),
                     importances_of(e.get("importances")), text(e.get("reason")), integer(e.get("pruned")),
                     integer(e.get("failed")))
