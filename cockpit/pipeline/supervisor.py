"""The pipeline supervisor: runs the four phases, places runs on devices, watches them, restarts
them from their checkpoints, obeys the control channel, and keeps summary.json current.

It never imports torch: it launches ``goemo-train`` processes and reads their files.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import tomli_w

from cockpit.pipeline import control
from cockpit.pipeline.results import final_scores, leaderboard, read_run_events, run_scores, write_json_atomic
from cockpit.pipeline.spec import PHASE_NAMES, PlannedRun, Preset, PresetError, phase1_plan
from cockpit.pipeline.watchdog import StallWatchdog, write_stall_forensics
from trainer.config import config_to_toml
from trainer.events import EventReader, EventWriter, read_events, threshold_key

EXIT_OK, EXIT_RUN_FAILED, EXIT_BAD_INPUT, EXIT_ABORTED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EventSink = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Slot:
    """Where a run executes: a GPU (or all of them, for DDP) or a share of the CPU cores."""

    name: str
    device: str  # "cpu" or "cuda"
    gpus: tuple[int, ...] = ()
    threads: int | None = None


def detect_gpus() -> list[int]:
    """Visible NVIDIA GPUs (NVML), restricted by CUDA_VISIBLE_DEVICES when it is set."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [int(x) for x in visible.split(",") if x.strip().isdigit()]
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return list(range(pynvml.nvmlDeviceGetCount()))
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no driver, no GPU
        return []


def plan_slots(preset: Preset, gpus: list[int] | None = None) -> list[Slot]:
    """One slot per GPU (or one for all GPUs under DDP), else ``cpu_slots`` CPU slots that share the cores."""
    settings = preset.pipeline
    if settings.gpus == "none":
        found: list[int] = []
    elif isinstance(settings.gpus, list):
        found = settings.gpus
    else:
        found = detect_gpus() if gpus is None else gpus
    wants_cuda = preset.defaults.get("device") == "cuda"
    if found and preset.defaults.get("device") != "cpu":
        if settings.ddp:
            return [Slot("cuda:" + ",".join(map(str, found)), "cuda", tuple(found))]
        return [Slot(f"cuda:{g}", "cuda", (g,)) for g in found]
    if wants_cuda:
        raise PresetError(f"preset {preset.name}: defaults.device is 'cuda' but no NVIDIA GPU was found")
    # Two torch processes on the same cores thrash each other: split the cores between slots.
    threads = max(1, (os.cpu_count() or 1) // settings.cpu_slots)
    return [Slot(f"cpu{i}", "cpu", (), threads) for i in range(settings.cpu_slots)]


@dataclass
class RunRecord:
    """What the supervisor knows of one planned run."""

    run_id: str
    phase: int
    config: str
    status: str = "queued"  # queued, running, completed, failed, stopped
    attempts: int = 0
    export_from: str | None = None


@dataclass
class ActiveRun:
    record: RunRecord
    slot: Slot
    proc: subprocess.Popen
    watchdog: StallWatchdog
    reader: EventReader
    stalls: int = 0
    ended: dict[str, Any] | None = None
    intent: str | None = None  # why we are ending it: "stop", "restart", "stall", "pipeline"
    files: list[Any] = field(default_factory=list)


class Supervisor:
    """Runs a pipeline in ``pipeline_dir`` to the end (or until interrupted); ``run()`` returns the exit code."""

    def __init__(self, pipeline_dir: Path, preset: Preset, phases: list[int], configs: list[str],
                 on_event: EventSink | None = None, on_tick: Callable[["Supervisor"], None] | None = None,
                 poll_s: float = 0.25, slots: list[Slot] | None = None) -> None:
        self.dir = pipeline_dir
        self.preset = preset
        self.settings = preset.pipeline
        self.phases = phases
        self.configs = configs
        self.on_event = on_event or (lambda source, event: None)
        self.on_tick = on_tick or (lambda sup: None)
        self.poll_s = poll_s
        self.slots = slots if slots is not None else plan_slots(preset)
        self.records: dict[str, RunRecord] = {}
        self.active: dict[str, ActiveRun] = {}
        self.interrupted: str | None = None
        self.aborted = False
        self.current_phase: int | None = None
        self.log: EventWriter | None = None
        self._history: list[dict[str, Any]] = []  # pipeline.jsonl as it was when run() started (resume)

    # -- events -------------------------------------------------------------------------------
    def emit(self, type_: str, **fields: Any) -> None:
        event = self.log.emit(type_, **fields) if self.log else {"type": type_, **fields}
        self.on_event("pipeline", event)

    # -- state from disk (resume) -------------------------------------------------------------
    def _record(self, plan: PlannedRun, export_from: str | None = None) -> RunRecord:
        if plan.run_id not in self.records:
            self.records[plan.run_id] = RunRecord(plan.run_id, plan.phase, plan.config, export_from=export_from)
            self._load_history_for(plan.run_id)
        return self.records[plan.run_id]

    def _load_history_for(self, run_id: str) -> None:
        for event in self._history:
            if event.get("run") != run_id:
                continue
            rec = self.records[run_id]
            if event["type"] == "run_done":
                rec.status = event["status"]
            elif event["type"] == "run_launch":
                rec.attempts = max(rec.attempts, int(event["attempt"]))

    def _end_orphans(self) -> None:
        """Trainers launched by a supervisor that died keep running (own session): end them first,
        so that a resumed run never has two writers. They checkpoint on SIGTERM."""
        import psutil

        launched = {e["run"]: e for e in self._history if e["type"] == "run_launch"}
        exited = {(e["run"], e["attempt"]) for e in self._history if e["type"] == "run_exit"}
        for run, launch in launched.items():
            if (run, launch["attempt"]) in exited:
                continue
            try:
                proc = psutil.Process(launch["pid"])
                if str(self.dir / run) not in " ".join(proc.cmdline()):
                    continue  # the pid was reused by something else
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            self.emit("alert", level="warn", code="orphan", run=run,
                      message=f"{run}: ending pid {launch['pid']} left running by the previous supervisor")
            try:
                os.killpg(launch["pid"], signal.SIGTERM)
                proc.wait(timeout=self.settings.term_grace_s)
            except (ProcessLookupError, psutil.TimeoutExpired):
                try:
                    os.killpg(launch["pid"], signal.SIGKILL)
                except ProcessLookupError:
                    pass

    # -- the pipeline -------------------------------------------------------------------------
    def run(self) -> int:
        self._history = read_events(self.dir / "pipeline.jsonl")
        resumed = bool(self._history)
        self.log = EventWriter(self.dir / "pipeline.jsonl")
        if resumed:
            self._end_orphans()
        previous = {signal.SIGINT: signal.getsignal(signal.SIGINT), signal.SIGTERM: signal.getsignal(signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, self._on_signal)
        try:
            self.emit("pipeline_start", pipeline=self.dir.name, preset=self.preset.name, phases=self.phases,
                      configs=self.configs, devices=[s.name for s in self.slots], resumed=resumed,
                      pid=os.getpid())
            self._write_summary("running")
            for phase in self.phases:
                if self.interrupted or self.aborted:
                    break
                self.current_phase = phase
                getattr(self, f"_phase{phase}")()
            code, status = self._outcome()
            self._write_summary(status)
            self._write_report()
            self.emit("pipeline_end", status=status, exit_code=code)
            return code
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.log.close()

    def _outcome(self) -> tuple[int, str]:
        if self.interrupted:
            return EXIT_INTERRUPTED, "interrupted"
        if self.aborted:
            return EXIT_ABORTED, "aborted"
        if any(r.status in ("failed", "stopped") for r in self.records.values()):
            return EXIT_RUN_FAILED, "failed"
        return EXIT_OK, "completed"

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.interrupted = signal.Signals(signum).name

    def _phase1(self) -> None:
        plans = phase1_plan(self.preset, self.configs)
        self._run_phase(1, plans)

    def _phase2(self) -> None:
        self.emit("phase_start", phase=2, name=PHASE_NAMES[2], runs=[])
        ranking = [row["run"] for row in self._leaderboard() if row["phase"] == 1 and row["status"] == "completed"]
        self._write_summary("running")
        self.emit("phase_end", phase=2, ranking=ranking)

    def _ranked_configs(self, phase: int) -> list[str]:
        return [row["config"] for row in self._leaderboard()
                if row["phase"] == phase and row["status"] == "completed"
                and row.get(self._key) is not None]

    def _phase3(self) -> None:
        ranked = self._ranked_configs(1) or list(self.configs)
        top = ranked[: self.settings.top_k]
        self._run_phase(3, [PlannedRun(f"p3-{name}", 3, name) for name in top])

    def _phase4(self) -> None:
        ranked = self._ranked_configs(3) or self._ranked_configs(1) or list(self.configs)
        if not ranked:
            self.emit("alert", level="error", code="no_candidate", message="no config to finalise")
            return
        best = ranked[0]
        plan = PlannedRun("p4-final", 4, best)
        export_from = None
        if self.settings.final == "reuse":
            source = next((f"p{p}-{best}" for p in (3, 1) if self.records.get(f"p{p}-{best}", None)
                           and self.records[f"p{p}-{best}"].status == "completed"), None)
            export_from = source
        self._run_phase(4, [plan], export_from=export_from)
        if self.records["p4-final"].status == "completed":
            self._publish_final(best)

    def _run_phase(self, phase: int, plans: list[PlannedRun], export_from: str | None = None) -> None:
        records = [self._record(p, export_from) for p in plans]
        self.emit("phase_start", phase=phase, name=PHASE_NAMES[phase], runs=[r.run_id for r in records])
        self._execute([r for r in records if r.status not in ("completed", "failed", "stopped")])
        self._write_summary("running")
        self.emit("phase_end", phase=phase)

    # -- scheduling ---------------------------------------------------------------------------
    def _execute(self, queue: list[RunRecord]) -> None:
        queue = list(queue)
        while (queue or self.active) and not self.aborted:
            self._obey_control()
            if self.interrupted:
                self._end_all("pipeline")
                return
            busy = {a.slot.name for a in self.active.values()}
            for slot in self.slots:
                if queue and slot.name not in busy:
                    self._launch(queue.pop(0), slot)
            for active in list(self.active.values()):
                self._poll(active)
            self.on_tick(self)
            time.sleep(self.poll_s)

    def _run_config_path(self, record: RunRecord, slot: Slot) -> Path:
        run_dir = self.dir / record.run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        config = self.preset.run_config(record.phase, self.preset.config(record.config), record.run_id)
        if record.export_from:
            # Reuse: the final export starts from the chosen run's own resolved config.
            from trainer.config import read_toml, validate_config

            data = read_toml(self.dir / record.export_from / "run.toml")
            config = validate_config({**data, "run": record.run_id}, str(self.dir / record.export_from / "run.toml"))
        config.device = slot.device
        config.torch_threads = slot.threads
        if record.phase == 4:
            config.export = True
        path = run_dir / "run.toml"
        path.write_text(config_to_toml(config))
        return path

    def _launch(self, record: RunRecord, slot: Slot) -> None:
        run_dir = self.dir / record.run_id
        config_path = self._run_config_path(record, slot)
        record.attempts += 1
        args = ["--config", str(config_path), "--out", str(run_dir)]
        if (run_dir / "events.jsonl").exists():
            args.append("--resume")
        if record.export_from:
            args += ["--export-from", str(self.dir / record.export_from)]
        if slot.device == "cuda" and len(slot.gpus) > 1:
            cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
                   "--num_processes", str(len(slot.gpus)), "-m", "trainer.cli", *args]
        else:
            cmd = [sys.executable, "-m", "trainer.cli", *args]
        env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false",
                   GOEMO_ATTEMPT=str(record.attempts))
        env.pop("GOEMO_FAULT", None)
        fault = self.preset.config(record.config).fault
        if fault and not record.export_from:
            env["GOEMO_FAULT"] = fault
        if slot.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, slot.gpus))
        if slot.threads:
            env["OMP_NUM_THREADS"] = str(slot.threads)
        stdout = open(run_dir / "stdout.log", "ab")
        stderr = open(run_dir / "stderr.log", "ab")
        # Own session and process group: a terminal's Ctrl-C or hang-up never reaches the trainer
        # directly, and the whole group (accelerate's workers too) can be ended at once.
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
        reader = EventReader(run_dir / "events.jsonl")
        reader.read_new()  # skip what earlier attempts wrote
        watchdog = StallWatchdog(self.settings.stall_floor_s, self.settings.stall_factor,
                                 self.settings.startup_grace_s)
        self.active[record.run_id] = ActiveRun(record, slot, proc, watchdog, reader, files=[stdout, stderr])
        record.status = "running"
        self.emit("run_launch", run=record.run_id, device=slot.name, pid=proc.pid, attempt=record.attempts,
                  phase=record.phase, config=record.config)

    def _poll(self, active: ActiveRun) -> None:
        for event in active.reader.read_new():
            active.watchdog.observe(event)
            if event.get("type") == "run_end":
                active.ended = event
            self.on_event(active.record.run_id, event)
        code = active.proc.poll()
        if code is None:
            if active.intent is None and active.watchdog.stalled():
                self._handle_stall(active)
            return
        for event in active.reader.read_new():
            if event.get("type") == "run_end":
                active.ended = event
            self.on_event(active.record.run_id, event)
        self._handle_exit(active, code)

    def _handle_stall(self, active: ActiveRun) -> None:
        active.stalls += 1
        rec = active.record
        silent = active.watchdog.silent_s()
        n = len(list((self.dir / rec.run_id).glob("stall-*.txt"))) + 1
        dump = write_stall_forensics(self.dir / rec.run_id, n, active.proc.pid, silent,
                                     active.watchdog.allowance_s())
        self.emit("stall", run=rec.run_id, attempt=rec.attempts, silent_s=round(silent, 1),
                  dump=str(dump.relative_to(self.dir)), allowed_s=round(active.watchdog.allowance_s(), 1),
                  action="restart" if rec.attempts <= self.settings.max_restarts else "fail")
        active.intent = "stall"
        self._terminate(active)

    def _terminate(self, active: ActiveRun) -> None:
        """SIGTERM the run's process group (it checkpoints and exits), SIGKILL after the grace period."""
        try:
            os.killpg(active.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            active.proc.wait(timeout=self.settings.term_grace_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(active.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            active.proc.wait()

    def _handle_exit(self, active: ActiveRun, code: int) -> None:
        rec = active.record
        del self.active[rec.run_id]
        for fh in active.files:
            fh.close()
        status = (active.ended or {}).get("status")
        reason = (active.ended or {}).get("reason") or _describe_exit(code)
        if active.intent == "stall":
            reason = "stalled"
        self.emit("run_exit", run=rec.run_id, code=code, attempt=rec.attempts, reason=reason, status=status)
        if status == "completed" and code == 0:
            self._done(rec, "completed")
        elif active.intent == "stop":
            self._done(rec, "stopped")
        elif active.intent == "pipeline":
            rec.status = "queued"  # interrupted with the pipeline: --resume continues it
        elif code == EXIT_BAD_INPUT:
            self._done(rec, "failed")
        elif active.intent == "restart" or rec.attempts <= self.settings.max_restarts:
            self.emit("restart", run=rec.run_id, attempt=rec.attempts + 1, from_step=self._checkpoint_step(rec),
                      reason="requested" if active.intent == "restart" else reason)
            self._launch(rec, active.slot)
        else:
            self._done(rec, "failed")
            self.emit("alert", level="error", code="run_failed", run=rec.run_id,
                      message=f"{rec.run_id} failed after {rec.attempts} attempts: {reason}")
            if self.settings.on_run_failure == "abort":
                self.aborted = True
                self._end_all("pipeline")
        self._write_summary("running")

    def _done(self, rec: RunRecord, status: str) -> None:
        rec.status = status
        self.emit("run_done", run=rec.run_id, status=status, attempts=rec.attempts)

    def _checkpoint_step(self, rec: RunRecord) -> int:
        for name in ("latest", "latest.old"):
            state = self.dir / rec.run_id / "checkpoints" / name / "trainer_state.json"
            if state.exists():
                return int(json.loads(state.read_text())["step"])
        return 0

    def _end_all(self, intent: str) -> None:
        for active in list(self.active.values()):
            active.intent = intent
            self._terminate(active)
            self._poll(active)

    # -- control channel ----------------------------------------------------------------------
    def _obey_control(self) -> None:
        for command in control.take_commands(self.dir):
            cmd, run = command.get("cmd"), command.get("run")
            self.emit("alert", level="info", code="control", message=f"received {cmd} {run or ''}".strip())
            if cmd == "stop_pipeline":
                self.interrupted = "stop_pipeline"
            elif run in self.active and cmd in ("stop_run", "restart_run"):
                active = self.active[run]
                active.intent = "stop" if cmd == "stop_run" else "restart"
                self._terminate(active)
                self._poll(active)

    # -- results ------------------------------------------------------------------------------
    @property
    def _key(self) -> str:
        return f"f1_macro@{threshold_key(self.settings.primary_threshold)}"

    def _rows(self) -> list[dict[str, Any]]:
        rows = []
        for rec in self.records.values():
            if rec.phase == 4:
                continue
            scores = run_scores(read_run_events(self.dir, rec.run_id), self.settings.primary_threshold) or {}
            rows.append({"run": rec.run_id, "phase": rec.phase, "config": rec.config, "status": rec.status,
                         "attempts": rec.attempts, self._key: None, **scores})
        return rows

    def _leaderboard(self) -> list[dict[str, Any]]:
        rows = self._rows()
        base = next((r for r in rows if r["run"] == "p1-bce"), None)
        baseline = base.get(self._key) if base else None
        return leaderboard(rows, self.settings.primary_threshold, baseline, self.settings.target_f1,
                           self.settings.reference_f1)

    def summary(self, status: str) -> dict[str, Any]:
        board = self._leaderboard()
        base = next((r for r in board if r["run"] == "p1-bce"), None)
        final_path = self.dir / "summary.final.json"
        return {
            "pipeline": self.dir.name, "preset": self.preset.name, "status": status,
            "primary_threshold": self.settings.primary_threshold,
            "baseline": {"run": "p1-bce", self._key: base.get(self._key) if base else None},
            "reference_f1": self.settings.reference_f1, "target_f1": self.settings.target_f1,
            "phase": self.current_phase, "leaderboard": board,
            "final": json.loads(final_path.read_text()) if final_path.exists() else None,
        }

    def _write_summary(self, status: str) -> None:
        write_json_atomic(self.dir / "summary.json", self.summary(status))

    def _publish_final(self, config: str) -> None:
        """Copy the export into final/, write the model card, and record summary.final."""
        run_dir = self.dir / "p4-final"
        final = self.dir / "final"
        tmp = self.dir / "final.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(run_dir / "export", tmp)
        scores = final_scores(read_events(run_dir / "events.jsonl"), self.settings.primary_threshold)
        source = self.records["p4-final"].export_from or "p4-final"
        record = {"run": "p4-final", "config": config, "trained_in": source, "dev": scores.get("dev"),
                  "test": scores.get("test"), "thresholds": "final/thresholds.json"}
        from cockpit.pipeline.report import model_card

        (tmp / "model_card.md").write_text(model_card(self.dir, self.preset, record))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        write_json_atomic(self.dir / "summary.final.json", record)

    def _write_report(self) -> None:
        try:
            from cockpit.pipeline.report import write_report

            write_report(self.dir)
        except Exception as exc:  # a report is never worth losing the pipeline's exit code over
            self.emit("alert", level="warn", code="report", message=f"report not written: {exc}")


def _describe_exit(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return {1: "failed", 2: "bad input", 130: "interrupted", 143: "terminated"}.get(code, f"exit code {code}")


def new_pipeline_dir(runs_dir: Path, preset_name: str) -> Path:
    """``runs/<YYYYmmdd-HHMMSS>-<preset>``; ids sort by start time."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        name = f"{stamp}-{preset_name}" + ("" if n == 1 else f"-{n}")
        try:
            (runs_dir / name).mkdir()
            return runs_dir / name
        except FileExistsError:
            continue
    raise RuntimeError("could not create a pipeline folder")


def save_preset(pipeline_dir: Path, data: dict[str, Any]) -> None:
    (pipeline_dir / "preset.toml").write_text(tomli_w.dumps(data))
