"""The records layer: what events mean, decoded once, for every consumer (the view model, the supervisor's
results, headless, notifications, trackers, export, compare, report). Stdlib only, below both the pipeline
and the views; it imports nothing of the cockpit's outside this package.

- `values`: how a number, an integer, a string or a threshold is read out of an event (the one leniency
  rule: an optional value of the wrong kind reads as missing; a required one raises `BadEvent`);
- `evals`: `EvalRecord`, an ``eval`` event decoded, and the rules about which evals are a run's own;
- `run_events` and `pipeline_events`: one frozen record per other event type of events.jsonl and
  pipeline.jsonl;
- `search_events`: the search phase's records in pipeline.jsonl (a trial's state, its reports, the study's end);
- `decode`: `decode(origin, event)`, the contract's tables applied once;
- `history`: `RunHistory`, a run's events.jsonl as records, and what readers ask of it (its dev evals,
  final evals, config, curve);
- `ranking`: the one ranking rule (the chosen score, then the other, missing last) and the selection rule's
  tie-breaks between runs or configs (calibration, then the simpler loss).
"""

from cockpit.records.decode import PIPELINE_DECODERS, RUN_DECODERS, Record, decode, decode_all
from cockpit.records.history import RunHistory, decode_run, read_run_history
from cockpit.records.evals import ClassScore, EvalRecord, decode_eval, eval_source, is_run_eval
from cockpit.records.pipeline_events import (PhaseEnd, PhaseStart, PipelineEnd, PipelineStart, Requeue, Restart,
                                             RunDone, RunExit, RunLaunch, RunPending, Stall)
from cockpit.records.ranking import best_eval, rank_key, rank_place, selection_place
from cockpit.records.run_events import (ActivityRecord, Alert, BestMargin, CheckpointRecord, DataRecord,
                                        DeviceRecord, GpuReading, OversampleCount, RunEnd, RunStart, SourceCount,
                                        StepRecord)
from cockpit.records.values import BadEvent, integer, number, scores, text, threshold

__all__ = ["ActivityRecord", "Alert", "BadEvent", "BestMargin", "CheckpointRecord", "ClassScore", "DataRecord",
           "DeviceRecord", "EvalRecord", "GpuReading", "OversampleCount", "PIPELINE_DECODERS", "PhaseEnd",
           "PhaseStart", "PipelineEnd", "PipelineStart", "RUN_DECODERS", "Record", "Requeue", "Restart", "RunDone",
           "RunEnd", "RunExit", "RunHistory", "RunLaunch", "RunPending", "RunStart", "SourceCount", "Stall",
           "StepRecord", "best_eval", "decode", "decode_all", "decode_eval", "decode_run", "eval_source", "integer",
           "is_run_eval", "number", "rank_key", "rank_place", "read_run_history", "scores", "selection_place",
           "text", "threshold"]
