"""What the supervisor writes into pipeline.jsonl, decoded once: one frozen record per event type (``alert`` is
shared with the trainer's, in `cockpit.records.run_events`). Each carries the event's time ``t``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cockpit.records.values import (integer, number, optional_text, required_id, required_integer, required_text,
                                    strings, text, threshold)


@dataclass(frozen=True)
class PipelineStart:
    t: float
    pipeline: str
    preset: str
    phases: tuple[int, ...]
    configs: tuple[str, ...]
    """The phase-1 configs the pipeline screens (what --resume selects again)."""
    devices: tuple[str, ...]
    resumed: bool
    max_restarts: int | None
    target_f1: float | None
    primary_threshold: float | None


@dataclass(frozen=True)
class PhaseStart:
    t: float
    phase: int
    name: str
    runs: tuple[str, ...]


@dataclass(frozen=True)
class PhaseEnd:
    t: float
    phase: int | None
    ranking: tuple[str, ...] | None
    """The runs ranked best first (phase 2 only); None when the phase ranks nothing."""


@dataclass(frozen=True)
class RunLaunch:
    t: float
    run: str
    attempt: int
    device: str
    pid: int | None
    job_id: str | None
    """A Slurm run's job id."""
    proc_start: float | None = None
    """The local process's start time: with the pid, it recognises a trainer a dead supervisor left running."""


@dataclass(frozen=True)
class RunExit:
    t: float
    run: str
    code: int | None
    attempt: int | None
    reason: str


@dataclass(frozen=True)
class RunPending:
    t: float
    run: str
    reason: str | None


@dataclass(frozen=True)
class Stall:
    t: float
    run: str
    attempt: int
    silent_s: float
    allowed_s: float | None
    dump: str
    """The stack dump, relative to the pipeline folder."""
    action: str
    """"restart" or "fail" (the restart limit is reached)."""


@dataclass(frozen=True)
class Restart:
    t: float
    run: str
    attempt: int
    """The new attempt: attempt 2 is restart 1."""
    from_step: int | None
    reason: str


@dataclass(frozen=True)
class Requeue:
    t: float
    run: str
    restarts: int | None


@dataclass(frozen=True)
class RunDone:
    t: float
    run: str
    status: str
    attempts: int | None


@dataclass(frozen=True)
class PipelineEnd:
    t: float
    status: str
    exit_code: int | None


def decode_pipeline_start(e: dict[str, Any], t: float) -> PipelineStart:
    phases = e.get("phases")
    return PipelineStart(
        t, required_text(e, "pipeline"), required_text(e, "preset"),
        tuple(p for p in (integer(p) for p in phases) if p is not None) if isinstance(phases, list) else (),
        strings(e.get("configs")), strings(e.get("devices")), e.get("resumed") is True, integer(e.get("max_restarts")),
        number(e.get("target_f1")), threshold(e.get("primary_threshold")))


def decode_phase_start(e: dict[str, Any], t: float) -> PhaseStart:
    return PhaseStart(t, required_integer(e, "phase"), text(e.get("name")), strings(e.get("runs")))


def decode_phase_end(e: dict[str, Any], t: float) -> PhaseEnd:
    return PhaseEnd(t, integer(e.get("phase")), strings(e["ranking"]) if isinstance(e.get("ranking"), list) else None)


def decode_run_launch(e: dict[str, Any], t: float) -> RunLaunch:
    return RunLaunch(t, required_id(e), required_integer(e, "attempt"), required_text(e, "device"),
                     integer(e.get("pid")), optional_text(e.get("job_id")), number(e.get("proc_start")))


def decode_run_exit(e: dict[str, Any], t: float) -> RunExit:
    return RunExit(t, required_id(e), integer(e.get("code")), integer(e.get("attempt")), text(e.get("reason")))


def decode_run_pending(e: dict[str, Any], t: float) -> RunPending:
    return RunPending(t, required_id(e), optional_text(e.get("reason")))


def decode_stall(e: dict[str, Any], t: float) -> Stall:
    return Stall(t, required_id(e), required_integer(e, "attempt"), number(e.get("silent_s")) or 0.0,
                 number(e.get("allowed_s")), text(e.get("dump")), text(e.get("action")))


def decode_restart(e: dict[str, Any], t: float) -> Restart:
    return Restart(t, required_id(e), required_integer(e, "attempt"), integer(e.get("from_step")),
                   text(e.get("reason")))


def decode_requeue(e: dict[str, Any], t: float) -> Requeue:
    return Requeue(t, required_id(e), integer(e.get("restarts")))


def decode_run_done(e: dict[str, Any], t: float) -> RunDone:
    return RunDone(t, required_id(e), required_text(e, "status"), integer(e.get("attempts")))


def decode_pipeline_end(e: dict[str, Any], t: float) -> PipelineEnd:
    return PipelineEnd(t, required_text(e, "status"), integer(e.get("exit_code")))
