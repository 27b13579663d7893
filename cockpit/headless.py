"""The headless console view: one line per phase, launch, eval and exit; progress about every 30 s;
alerts and stalls on stderr; the final leaderboard as a table. Several data sources (or dropped rows)
get one block at the first data event, and each per-source dev eval a line that names its source.

It renders from the same `PipelineState` as the TUI: every event is folded in first, and the
lines, the progress (step, total steps, samples/s, ETA) and the final table read the state,
so both views agree on statuses, thresholds, totals and ETAs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import IO, Any, Callable, ClassVar

from cockpit.records import (Alert, DataRecord, EvalRecord, PhaseEnd, PhaseStart, PipelineEnd, PipelineStart, Restart,
                             RunDone, RunEnd, RunExit, RunLaunch, RunStart, Stall)
from cockpit.records.search_events import SearchEnd, SearchTrial
from cockpit.state import PIPELINE_ORIGIN, SUMMARY_ORIGIN, PipelineState
from cockpit.snapshots import (SECONDARY_THRESHOLD, TUNED_CV_LABEL, PipelineView, RunView, SourceRow, dropped_text,
                               f1_at, ranking_label, train_rows_text)
from trainer.contract import DEFAULT_PRIMARY_THRESHOLD, DEFAULT_SELECT_BY, SCHEMA_VERSION, PipelinePaths, selection_key

DASH = "–"
LOUD_LEVELS = ("warn", "error")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _score(value: float | None) -> str:
    return DASH if value is None else f"{value:.4f}"


def _count(value: int | None) -> str:
    return DASH if value is None else str(value)


def _param(value: Any) -> str:
    """A sampled parameter as a line shows it: floats with four significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def source_line(row: SourceRow) -> str:
    """``isear (isear, data/isear.csv): train 6100→6800, dev 760, test 760, 7/28 labels, dropped 52 placeholder``"""
    where = ", ".join(part for part in (row.kind, row.path) if part)
    return (f"{row.name}" + (f" ({where})" if where else "")
            + f": train {train_rows_text(row.train_before, row.train_after)}, dev {_count(row.dev)}, "
            f"test {_count(row.test)}, {row.observed_text} labels, dropped {dropped_text(row.dropped)}")


class HeadlessConsole:
    """Renders supervisor and trainer events as concise console lines."""

    def __init__(self, out: IO[str] = sys.stdout, err: IO[str] = sys.stderr, progress_every_s: float = 30.0,
                 primary: float = DEFAULT_PRIMARY_THRESHOLD, *, clock: Callable[[], float] = time.time,
                 select_by: str = DEFAULT_SELECT_BY) -> None:
        """primary: the preset's threshold, until pipeline_start or summary.json names one; select_by: what
        the preset ranks runs by, until summary.json says."""
        self.out, self.err = out, err
        self.every = progress_every_s
        self.clock = clock
        self.state = PipelineState(primary=primary, select_by=select_by)
        self.last_progress = clock()
        self.sources_said = False

    def _say(self, text: str, err: bool = False) -> None:
        stream = self.err if err else self.out
        stream.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        stream.flush()

    def _run(self, run_id: Any) -> RunView | None:
        run = self.state.runs.get(run_id) if isinstance(run_id, str) else None
        return self.state.run_view(run) if run is not None else None

    def on_event(self, origin: str, event: dict[str, Any]) -> None:
        """Fold one event (from "pipeline" or a run id) into the state, then print its record's line, if it has
        one; the state decodes it once (`cockpit.records`), and a malformed event is counted there."""
        record = self.state.apply(origin, event)
        if record is None:
            return
        lines = self.PIPELINE_LINES if origin == PIPELINE_ORIGIN else self.RUN_LINES
        line = lines.get(type(record))
        if line is not None:
            line(self, origin, record)

    # pipeline.jsonl

    def _ranking(self) -> str:
        """``F1@0.2`` or ``tuned cv``: the dev score the pipeline ranks runs by."""
        return ranking_label(self.state.select_by, self.state.primary)

    def _pipeline_start(self, origin: str, e: PipelineStart) -> None:
        st = self.state
        verb = "resumed" if e.resumed else "started"
        phases = ", ".join(map(str, st.phases)) or DASH
        self._say(f"pipeline {st.pipeline} ({st.preset}) {verb}: phases {phases} on {', '.join(st.devices) or DASH}; "
                  f"ranking by dev {self._ranking()}")

    def _phase_start(self, origin: str, e: PhaseStart) -> None:
        listed = f": {', '.join(e.runs)}" if e.runs else ""
        self._say(f"== phase {self.state.phase} ({self.state.phase_name}){listed}")

    def _phase_end(self, origin: str, e: PhaseEnd) -> None:
        if e.ranking is not None:
            self._say(f"== phase {e.phase} ranking by dev {self._ranking()}: {', '.join(e.ranking) or '(none)'}")

    def _run_launch(self, origin: str, e: RunLaunch) -> None:
        run = self._run(e.run)
        if run is not None:
            where = f"job {run.job_id}" if run.job_id else f"pid {run.pid}"
            self._say(f"[{run.run}] launched on {run.device} (attempt {run.attempt}, {where})")

    def _run_exit(self, origin: str, e: RunExit) -> None:
        if e.code != 0:
            self._say(f"!! [{e.run}] exited with {e.code}: {e.reason or None}", err=True)

    def _stall(self, origin: str, e: Stall) -> None:
        allowed = f" (allowed {e.allowed_s:.0f} s)" if e.allowed_s is not None else ""
        self._say(f"!! [{e.run}] stalled: silent {e.silent_s:.0f} s{allowed}; stacks in {e.dump}; "
                  f"action: {e.action or None}", err=True)

    def _restart(self, origin: str, e: Restart) -> None:
        run = self._run(e.run)
        if run is not None:
            self._say(f"[{run.run}] restarting from step {e.from_step} (restart {run.restarts} of "
                      f"{self.state.max_restarts}, attempt {e.attempt}): {e.reason or None}")

    def _run_done(self, origin: str, e: RunDone) -> None:
        run = self._run(e.run)
        if run is not None and run.status != "completed":
            self._say(f"!! [{run.run}] {run.status} after {e.attempts} attempt(s)", err=True)

    def _alert(self, origin: str, e: Alert) -> None:
        if e.level in LOUD_LEVELS:
            where = f"[{e.run}] " if e.run else ""
            self._say(f"!! {where}{e.level} {e.code}: {e.message}", err=True)

    def _search_trial(self, origin: str, e: SearchTrial) -> None:
        """One line per trial as it starts and as it ends (its value, or the step the pruner stopped it at)."""
        params = ", ".join(f"{k}={_param(v)}" for k, v in e.params.items())
        if e.state == "running":
            self._say(f"[{e.run}] trial {e.trial}{' (retry)' if e.retry_of is not None else ''}: {params}")
            return
        value = f" {e.value:.4f}" if e.value is not None else ""
        at = f" at step {e.step}" if e.state == "pruned" and e.step is not None else ""
        self._say(f"[{e.run}] trial {e.trial} {e.state}{at}{value}")

    def _search_end(self, origin: str, e: SearchEnd) -> None:
        best = (f"best trial {e.best_trial} ({e.best_run}) {e.best_value:.4f}: "
                + ", ".join(f"{k}={_param(v)}" for k, v in e.best_params.items())) \
            if e.best_trial is not None and e.best_value is not None else "no trial completed"
        weights = "; importances " + ", ".join(f"{k} {v:.2f}" for k, v in e.importances) if e.importances else ""
        self._say(f"== search: {e.trials} trials ({e.pruned or 0} pruned, {e.failed or 0} failed), {e.reason}; "
                  f"{best}{weights}")

    def _pipeline_end(self, origin: str, e: PipelineEnd) -> None:
        self._say(f"pipeline {self.state.status} (exit {self.state.exit_code})")

    # <run>/events.jsonl

    def _run_start(self, origin: str, e: RunStart) -> None:
        if e.resumed_from_step:
            self._say(f"[{origin}] resumed from step {e.resumed_from_step}")

    def _data(self, origin: str, e: DataRecord) -> None:
        st = self.state
        if self.sources_said or st.oversampling_run != origin or not st.sources:
            return
        self.sources_said = True
        if len(st.sources) < 2 and not any(n for s in st.sources for _, n in s.dropped):
            return  # one source and nothing dropped: the run's own lines say it all
        taxonomy = f"taxonomy {st.taxonomy}, " if st.taxonomy else ""
        count = len(st.sources)
        self._say(f"[{origin}] data: {taxonomy}{count} source{'s' if count != 1 else ''}")
        for row in st.sources:
            self._say(f"[{origin}]   {source_line(row)}")

    def _source_eval(self, origin: str, e: EvalRecord) -> None:
        """A per-source eval, worded apart from the run's own dev line: it covers one source's labels only."""
        over = f", {len(e.observed_labels)} labels" if e.observed_labels is not None else ""
        self._say(f"[{origin}] step {e.step} source {e.source} (own dev split{over}): "
                  f"{f1_at(self.state.primary)} {_score(e.f1(self.state.primary))}")

    def _eval(self, origin: str, e: EvalRecord) -> None:
        if e.source is not None:
            self._source_eval(origin, e)
            return
        run = self._run(origin)
        result = run.last_eval if run else None
        if result is None:
            return
        primary = self.state.primary
        label = f"{result.split} (final)" if result.final else result.split
        tuned = f"  tuned {result.tuned:.4f}" if result.tuned is not None else ""
        if result.tuned_cv is not None:
            tuned += f"  {TUNED_CV_LABEL} {result.tuned_cv:.4f}"
        self._say(f"[{origin}] step {result.step}"
                  + (f" epoch {e.epoch:.2f}" if e.epoch is not None else "")
                  + f" {label} {f1_at(primary)} {_score(result.f1_primary)}  {f1_at(SECONDARY_THRESHOLD)} "
                  f"{_score(result.f1_05)}  {f1_at(primary, 'µF1')} {_score(result.micro_primary)}{tuned}")

    def _run_end(self, origin: str, e: RunEnd) -> None:
        kept = f"; best step {e.best_step} {e.margin.text()}" if e.margin is not None else ""
        self._say(f"[{origin}] {e.status}: {e.reason} ({_duration(e.wall_s)}){kept}")

    PIPELINE_LINES: ClassVar[dict[type, Callable[[HeadlessConsole, str, Any], None]]] = {
        PipelineStart: _pipeline_start, PhaseStart: _phase_start, PhaseEnd: _phase_end, RunLaunch: _run_launch,
        RunExit: _run_exit, Stall: _stall, Restart: _restart, RunDone: _run_done, Alert: _alert,
        PipelineEnd: _pipeline_end, SearchTrial: _search_trial, SearchEnd: _search_end,
    }
    """pipeline.jsonl record type -> the line it prints (when it has something to say)."""

    RUN_LINES: ClassVar[dict[type, Callable[[HeadlessConsole, str, Any], None]]] = {
        RunStart: _run_start, DataRecord: _data, EvalRecord: _eval, Alert: _alert, RunEnd: _run_end,
    }
    """events.jsonl record type -> its line; steps show in the progress lines instead."""

    def on_tick(self, supervisor: Any = None) -> None:
        """About every progress_every_s: one progress line per running run (the supervisor is not consulted)."""
        now = self.clock()
        if now - self.last_progress < self.every:
            return
        self.last_progress = now
        for run in self.state.snapshot(now).runs:
            if run.status != "running":
                continue  # queued, finished (the process is only exiting), stalled or restarting: said already
            if not run.step or not run.total_steps:
                waiting = f" (queued in Slurm: {run.pending_reason})" if run.pending_reason else ""
                self._say(f"[{run.run}] starting…{waiting}")
                continue
            sps = f"{run.samples_per_s:.0f}" if run.samples_per_s is not None else DASH
            eta = f"  ETA {_duration(run.eta_s)}" if run.eta_s is not None else ""
            self._say(f"[{run.run}] step {run.step}/{run.total_steps} ({100 * run.step / run.total_steps:.0f}%)  "
                      f"{sps} samples/s{eta}")

    @staticmethod
    def _groups_table(snap: PipelineView) -> Any:
        """The leaderboard by config (seeds = k): means over seeds, n, the selection score's sd and 95 % interval,
        and the pooled paired Δs against phase 1's bce and against the phase's leader."""
        from rich.table import Table

        primary = snap.primary
        table = Table(title=f"by config over seeds (mean; ranked by {selection_key(snap.select_by, primary)})")
        columns = ("config", "seeds", f1_at(primary), "tuned", TUNED_CV_LABEL, "± sd [95% of the mean]",
                   "Δ base [95%]", "Δ leader [95%]", "status")
        for col in columns:
            table.add_column(col, justify="left" if col in ("config", "status") else "right", no_wrap=True)
        for row in snap.groups:
            table.add_row(row.run, row.seeds_text, _score(row.f1_primary), _score(row.tuned), _score(row.tuned_cv),
                          row.spread or DASH, row.vs_baseline or DASH, row.vs_leader or DASH, row.status)
        return table

    def final(self, summary: dict[str, Any], pipeline_dir: Path) -> None:
        """The leaderboard and the final test scores from summary.json, at the summary's primary threshold."""
        from rich.console import Console
        from rich.table import Table

        self.state.apply(SUMMARY_ORIGIN, {"v": SCHEMA_VERSION, "t": self.clock(), "type": SUMMARY_ORIGIN,
                                          "data": summary})
        snap = self.state.snapshot(self.clock())
        primary = snap.primary
        paths = PipelinePaths(Path(pipeline_dir))
        console = Console(file=self.out, width=None if self.out.isatty() else 150)
        ranked_by = selection_key(snap.select_by, primary)
        table = Table(title=f"{snap.pipeline}: {snap.status} (dev, ranked by {ranked_by})")
        columns = ("run", "status", f1_at(primary), f1_at(SECONDARY_THRESHOLD), f1_at(primary, "µF1"), "tuned",
                   TUNED_CV_LABEL, "Δ base", "target", f"test {f1_at(primary)}", "Δ leader [95%]")
        for col in columns:  # the paired Δ's interval is read whole or not at all: it never wraps
            table.add_column(col, justify="left" if col in ("run", "status") else "right", no_wrap=col == columns[-1])
        for row in snap.leaderboard:
            target = DASH if row.meets_target is None else "yes" if row.meets_target else "no"
            table.add_row(row.run, row.status, _score(row.f1_primary), _score(row.f1_05), _score(row.micro_primary),
                          _score(row.tuned), _score(row.tuned_cv), DASH if row.delta is None else f"{row.delta:+.4f}",
                          target, _score(row.test_f1), row.vs_leader or DASH)
        console.print(table)
        if snap.groups:
            console.print(self._groups_table(snap))
        for sentence in snap.decisions:  # one line each, as a log line is: grep finds it whole
            console.print(sentence, soft_wrap=True, highlight=False, markup=False)
        final = snap.final
        if final is not None:
            console.print(f"final ({final.model_text}) on held-out test: macro-F1 tuned {final.tuned_text}, "
                          f"{f1_at(primary, '')} {_score(final.test_f1_primary)}, "
                          f"{f1_at(SECONDARY_THRESHOLD, '')} {_score(final.test_f1_05)}")
            console.print(f"model: {paths.final}  (goemo-predict --model {paths.final} \"text\")")
        console.print(f"summary: {paths.summary}")
        if paths.report.exists():
            console.print(f"report:  {paths.report}")
