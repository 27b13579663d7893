"""A run's events.jsonl as records, in file order: `RunHistory`, and the questions every reader of a finished
or live run asks of it (its own dev evals, its final evals, the evals its per-label scores come from, the
config it trained with, its step curve). The supervisor's results, the report, export and compare read runs
through it, so they all skip the same malformed events and pick the same evals.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

from cockpit.records.decode import RunRecord, decode_all
from cockpit.records.evals import EvalRecord
from cockpit.records.run_events import DataRecord, RunEnd, RunStart, StepRecord
from trainer.contract import PipelinePaths
from trainer.events import read_events_counted

RUN_ORIGIN = "run"  # what decodes a run's events when the caller does not name the run


@dataclass(frozen=True)
class RunHistory:
    """One run's records in file order (every attempt's), and how many events were skipped as malformed."""

    records: tuple[RunRecord, ...]
    bad_events: int = 0
    """Events that parsed but that the contract refuses (a missing key, a garbled required value)."""
    bad_lines: int = 0
    """Lines that did not parse as JSON (garbage, a torn last line)."""

    def _all(self, kind: type) -> list[Any]:
        return [r for r in self.records if isinstance(r, kind)]

    def evals(self) -> list[EvalRecord]:
        """The run's own evals (per-source evals score one source's labels only: they never count here)."""
        return [r for r in self._all(EvalRecord) if r.source is None]

    def dev_evals(self) -> list[EvalRecord]:
        """Periodic dev evaluations (not the final export's)."""
        return [r for r in self.evals() if r.is_periodic_dev]

    def final_evals(self, split: str | None = None) -> list[EvalRecord]:
        """The final export's evaluations, of one split or of both."""
        return [r for r in self.evals() if r.final and (split is None or r.split == split)]

    def label_evals(self) -> list[EvalRecord]:
        """The evals whose per-label scores a run is known by: on dev the final export's (else its last periodic
        one), on test the final export's."""
        chosen = []
        for split in ("dev", "test"):
            evals = self.final_evals(split) or (self.dev_evals() if split == "dev" else [])
            if evals:
                chosen.append(evals[-1])
        return chosen

    def config(self) -> dict[str, Any]:
        """The resolved config of the run's latest attempt ({} before its first run_start)."""
        starts = self._all(RunStart)
        return starts[-1].config if starts else {}

    def last_end(self) -> RunEnd | None:
        """The run_end of the run's latest attempt that wrote one."""
        ends = self._all(RunEnd)
        return ends[-1] if ends else None

    def first_data(self) -> DataRecord | None:
        data = self._all(DataRecord)
        return data[0] if data else None

    def steps(self) -> list[StepRecord]:
        """Every step record, attempts included (`curve` keeps one per step)."""
        return self._all(StepRecord)

    def curve(self) -> list[StepRecord | EvalRecord]:
        """The run's history as its last attempt sees it: a resumed attempt drops what came after its checkpoint.
        Step and periodic dev eval records in file order."""
        out: list[StepRecord | EvalRecord] = []
        for record in self.records:
            if isinstance(record, RunStart) and record.resumed_from_step is not None:
                out = [r for r in out if r.step <= record.resumed_from_step]
            elif isinstance(record, StepRecord) or (isinstance(record, EvalRecord) and record.is_periodic_dev):
                out.append(record)
        return out


def read_run_history(pipeline_dir: Path, run_id: str) -> RunHistory:
    """A run's events.jsonl as records, through the same reader as the live tail (`trainer.events`), with its
    bad lines and bad events counted; a run without the file has an empty history."""
    events, bad_lines = read_events_counted(PipelinePaths(pipeline_dir).run(run_id).events)
    return replace(decode_run(events, run_id), bad_lines=bad_lines)


def decode_run(events: Iterable[dict[str, Any]], run: str = RUN_ORIGIN) -> RunHistory:
    """A run's events as a history; malformed events are skipped and counted, types it does not hold dropped."""
    records, bad = decode_all(run, events)
    return RunHistory(tuple(records), bad)  # type: ignore[arg-type] - a run's origin decodes to run records
