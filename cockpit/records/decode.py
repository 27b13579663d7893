"""`decode(origin, event)`: the one place an event dict becomes a record.

``origin`` says which file the event came from: `trainer.contract.PIPELINE_ORIGIN` ("pipeline") for
pipeline.jsonl, a run id for that run's events.jsonl. The contract's table for that file decides which types
exist and which keys each must carry; a record then reads its values with the leniency of
`cockpit.records.values`. An event that breaks the contract, or garbles a value its meaning rests on, raises
`BadEvent`, so each consumer can skip and count it the same way.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Union

from cockpit.records import pipeline_events as pe
from cockpit.records import run_events as re_
from cockpit.records import search_events as se
from cockpit.records.evals import EvalRecord, decode_eval
from cockpit.records.values import BadEvent, number
from trainer.contract import PIPELINE_EVENTS, PIPELINE_ORIGIN, TRAINER_EVENTS, Event, missing_keys

RunRecord = Union[re_.RunStart, re_.DataRecord, re_.StepRecord, re_.ActivityRecord, EvalRecord,
                  re_.CheckpointRecord, re_.Alert, re_.RunEnd, re_.DeviceRecord]
PipelineRecord = Union[pe.PipelineStart, pe.PhaseStart, pe.RunLaunch, pe.RunExit, pe.Stall, pe.Restart,
                       pe.Requeue, pe.RunPending, pe.RunDone, re_.Alert, pe.PhaseEnd, pe.PipelineEnd, se.SearchTrial,
                       se.SearchReport, se.SearchEnd]
Record = Union[RunRecord, PipelineRecord]


def _decode_eval(event: dict[str, Any], t: float) -> EvalRecord:
    return decode_eval(event)


RUN_DECODERS: dict[str, Callable[[dict[str, Any], float], Any]] = {
    Event.RUN_START: re_.decode_run_start, Event.DATA: re_.decode_data, Event.STEP: re_.decode_step,
    Event.ACTIVITY: re_.decode_activity, Event.EVAL: _decode_eval, Event.CHECKPOINT: re_.decode_checkpoint,
    Event.ALERT: re_.decode_alert, Event.RUN_END: re_.decode_run_end, Event.DEVICE: re_.decode_device,
}
"""events.jsonl event type -> its decoder; the keys are exactly the contract's TRAINER_EVENTS."""

PIPELINE_DECODERS: dict[str, Callable[[dict[str, Any], float], Any]] = {
    Event.PIPELINE_START: pe.decode_pipeline_start, Event.PHASE_START: pe.decode_phase_start,
    Event.RUN_LAUNCH: pe.decode_run_launch, Event.RUN_EXIT: pe.decode_run_exit, Event.STALL: pe.decode_stall,
    Event.RESTART: pe.decode_restart, Event.REQUEUE: pe.decode_requeue, Event.RUN_PENDING: pe.decode_run_pending,
    Event.RUN_DONE: pe.decode_run_done, Event.ALERT: re_.decode_alert, Event.PHASE_END: pe.decode_phase_end,
    Event.PIPELINE_END: pe.decode_pipeline_end, Event.SEARCH_TRIAL: se.decode_search_trial,
    Event.SEARCH_REPORT: se.decode_search_report, Event.SEARCH_END: se.decode_search_end,
}
"""pipeline.jsonl event type -> its decoder; the keys are exactly the contract's PIPELINE_EVENTS."""


def decode(origin: str, event: Any) -> Record | None:
    """The record one event stands for; None for a type this file does not hold (a newer writer's: readers
    ignore it rather than count it as bad); `BadEvent` when it is not an object with a type, lacks a key the
    contract requires, or garbles a required value. A trainer's alert names its run (``origin``)."""
    if not isinstance(event, dict):
        raise BadEvent(f"expected a JSON object, got {type(event).__name__}")
    from_pipeline = origin == PIPELINE_ORIGIN
    table, decoders = (PIPELINE_EVENTS, PIPELINE_DECODERS) if from_pipeline else (TRAINER_EVENTS, RUN_DECODERS)
    kind = event.get("type")
    if not isinstance(kind, str):
        raise BadEvent(f"type: expected a string, got {kind!r}")
    decoder = decoders.get(kind)
    if decoder is None:
        return None
    missing = missing_keys(event, table)
    if missing:
        raise BadEvent(f"{kind}: missing {', '.join(missing)}")
    try:
        record = decoder(event, number(event.get("t")) or 0.0)
    except BadEvent:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:  # a shape no decoder foresaw
        raise BadEvent(f"{kind}: {exc}") from None
    if isinstance(record, re_.Alert) and not from_pipeline:
        record = re_.Alert(record.t, record.level, record.code, record.message, origin)
    return record


def event_time(event: dict[str, Any]) -> float | None:
    """The event's ``t``, a finite number, or None."""
    return number(event.get("t"))


def decode_all(origin: str, events: Iterable[Any]) -> tuple[list[Record], int]:
    """Every event of one file as records, in order, and how many the contract refused (skipped); types the
    file does not hold are dropped."""
    records, bad = [], 0
    for event in events:
        try:
            record = decode(origin, event)
        except BadEvent:
            bad += 1
            continue
        if record is not None:
            records.append(record)
    return records, bad
