"""The pipeline supervisor: owns one pipeline folder, runs the phases from an explicit table, and
turns what the scheduler reports (exits, stalls) and what the control channel asks into decisions.

Its parts: the scheduler (slots, queue, processes), the restart policy (what an exit means), the
reaper (acts on exits and stalls, ``reaping.py``), the results publisher (leaderboard, summary.json,
final/, report). It never imports torch: it launches ``goemo-train`` processes and reads their files.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable

from cockpit.pipeline import control
from cockpit.pipeline.launcher import LaunchError, Launcher
from cockpit.pipeline.launchers import make_launcher
from cockpit.pipeline.lock import PipelineLock
from cockpit.judgements.devices import GPU_UNDERUSED, GpuRule, GpuWatch
from cockpit.judgements.learning import NOT_LEARNING, LearningRule, LearningWatch
from cockpit.outlets import Outlet, build_outlets, close_all, drain, fan_out
from cockpit.pipeline.publisher import ResultsPublisher
from cockpit.pipeline.reaping import RunReaper, end_leftover_trainers, launches_of
from cockpit.pipeline.search_phase import SearchPhase
from cockpit.pipeline.restarts import RestartPolicy
from cockpit.pipeline.scheduler import ActiveRun, EventSink, Exited, RunRecord, Scheduler
from cockpit.pipeline.slots import Slot, plan_slots
from cockpit.pipeline.presets import PlannedRun, Preset, phase1_plan, seed_runs
from cockpit.pipeline.watchdog import StallWatchdog
from cockpit.records import RunDone, RunLaunch, decode_all
from trainer.config import config_to_toml
from trainer.contract import (ENV_ATTEMPT, ENV_FAULT, ENV_STARTUP_GRACE, EXIT_ABORTED, EXIT_FAILED, EXIT_INTERRUPTED,
                              EXIT_OK, FINAL_PHASE, FINAL_RUN, PHASE_NAMES, PIPELINE_ORIGIN, PipelinePaths, run_id,
                              split_run_id)
from trainer.contract import ENSEMBLE_MEAN_LOGIT, SEARCH_PHASE, Event
from trainer.durable import write_atomic
from trainer.events import EventReader, EventWriter, read_events

# Re-exported for callers that place runs (the CLI, the picker, tests).
__all__ = ["Supervisor", "Slot", "plan_slots", "RunRecord", "PipelineIOError"]


class PipelineIOError(RuntimeError):
    """The disk filled up or failed under the supervisor: one line, runs ended, exit 1 (EXIT_FAILED)."""


class PipelineLaunchError(RuntimeError):
    """A run could not be launched (sbatch refused its job): one line, the other runs ended, exit 1 (EXIT_FAILED)."""


class Supervisor:
    """Runs a pipeline in ``pipeline_dir`` to the end (or until interrupted); ``run()`` returns the exit code.

    ``run()`` raises PipelineLocked (another supervisor owns the folder) or ControlError (an unsafe
    control folder) before it writes anything, and PipelineIOError when the disk fails under it.
    """

    def __init__(self, pipeline_dir: Path, preset: Preset, phases: list[int], configs: list[str],
                 on_event: EventSink | None = None, on_tick: Callable[["Supervisor"], None] | None = None,
                 poll_s: float = 0.25, slots: list[Slot] | None = None,
                 outlets: list[Outlet] | None = None) -> None:
        self.dir = pipeline_dir
        self.paths = PipelinePaths(pipeline_dir)
        self.preset = preset
        self.settings = preset.pipeline
        self.phases = phases
        self.configs = list(dict.fromkeys(configs))  # --configs bce,bce runs bce once
        self.view_sink = on_event or (lambda source, event: None)
        # Trackers and notifications see every event the view sees (run events and pipeline events).
        self.outlets = outlets if outlets is not None else build_outlets(pipeline_dir, self.settings)
        self.on_tick = on_tick or (lambda sup: None)
        self.poll_s = poll_s
        self.records: dict[str, RunRecord] = {}
        self.policy = RestartPolicy(self.settings.max_restarts, self.settings.on_run_failure)
        self.publisher = ResultsPublisher(self.paths, preset)
        self.launcher: Launcher = make_launcher(preset, pipeline_dir.name, on_alert=self.alert)
        self.scheduler = Scheduler(slots if slots is not None else plan_slots(preset), self._launch,
                                   self.on_event, self.settings.term_grace_s)
        self.reaper = RunReaper(self.paths, self.scheduler, self.policy, self.emit, self.alert, self._write_summary)
        self.interrupted: str | None = None
        self.current_phase: int | None = None
        self.log: EventWriter | None = None
        self._history: list[Record] = []  # pipeline.jsonl as it was when run() started (resume), as records
        self._pending_said: dict[str, str | None] = {}  # run -> the queue's reason last written (Slurm)
        self.learning = LearningWatch(LearningRule(after_evals=self.settings.not_learning_after_evals,
                                                   after_fraction=self.settings.not_learning_after_fraction))
        self._not_learning: list[str] = []  # runs judged not learning, to stop (on_not_learning = "stop")
        self.gpus = GpuWatch(GpuRule(self.settings.gpu_underused_pct, self.settings.gpu_underused_window_s))
        # The phases, in the order a pipeline runs them.
        self.phase_table: dict[int, Callable[[], None]] = {
            SEARCH_PHASE: lambda: self.search.run(self._history) if self.search else None,
            1: self.screen, 2: self.analyse, 3: self.extend, 4: self.finalise,
        }
        # The search phase's study (a preset's [search]): its trials are runs; it drives them through tick().
        self.search = SearchPhase(self) if SEARCH_PHASE in phases else None

    @property
    def active(self) -> dict[str, ActiveRun]:
        return self.scheduler.active

    @property
    def slots(self) -> list[Slot]:
        return self.scheduler.slots
    # -- events -------------------------------------------------------------------------------
    def on_event(self, origin: str, event: dict[str, Any]) -> None:
        self.view_sink(origin, event)
        fan_out(self.outlets, origin, event)
        if self.search is not None:
            self.search.observe(origin, event)
        idle = self.gpus.observe(origin, event)
        if idle is not None:
            self.alert("warn", GPU_UNDERUSED, idle, origin)
        verdict = self.learning.observe(origin, event) if self.settings.on_not_learning != "off" else None
        if verdict is not None:
            stop = self.settings.on_not_learning == "stop"
            self.alert("warn", NOT_LEARNING, verdict.message + ("; stopping it (on_not_learning = stop)" if stop else ""),
                       origin)
            if stop:
                self._not_learning.append(origin)

    def _outlet_alerts(self) -> None:
        """Write the outlets' failures (a tracker dropped, a notification not sent) into pipeline.jsonl."""
        for a in drain(self.outlets):
            self.alert(a.get("level", "warn"), a.get("code", "outlet"), a.get("message", ""), a.get("run"))

    def emit(self, type_: str, **fields: Any) -> None:
        event = self.log.emit(type_, **fields) if self.log else {"type": type_, **fields}
        self.on_event(PIPELINE_ORIGIN, event)

    def alert(self, level: str, code: str, message: str, run: str | None = None) -> None:
        self.emit(Event.ALERT, level=level, code=code, message=message, **({"run": run} if run else {}))

    # -- the pipeline -------------------------------------------------------------------------
    def run(self) -> int:
        with PipelineLock(self.paths):
            control.check_control_dir(self.dir)
            stale = control.discard_pending(self.dir)
            self._history = decode_all(PIPELINE_ORIGIN, read_events(self.paths.events))[0]
            resumed = bool(self._history)
            previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
            for sig in previous:
                signal.signal(sig, self._on_signal)
            try:
                return self._run(resumed, stale)
            except OSError as exc:
                raise self._io_failure(exc) from None
            except PipelineLaunchError as exc:
                self._launch_failure(str(exc))
                raise
            finally:
                close_all(self.outlets, self.settings.notify_timeout_s)
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
                if self.log:
                    self.log.close()

    def _run(self, resumed: bool, stale: int) -> int:
        self.log = EventWriter(self.paths.events)
        self.emit(Event.PIPELINE_START, pipeline=self.dir.name, preset=self.preset.name, phases=self.phases,
                  configs=self.configs, devices=[s.name for s in self.slots], resumed=resumed, pid=os.getpid(),
                  primary_threshold=self.settings.primary_threshold, max_restarts=self.settings.max_restarts,
                  target_f1=self.settings.target_f1)
        if stale:
            self.alert("info", "control", f"discarded {stale} control command(s) left from before this start")
        if resumed:
            end_leftover_trainers(self._history, self.alert, self.settings.term_grace_s)
        self.publisher.restore_interrupted_final()
        self._write_summary("running")
        for phase in self.phases:
            if self.interrupted or self.reaper.aborted:
                break
            self.current_phase = phase
            self.phase_table[phase]()
        code, status = self._outcome()
        self._write_summary(status)
        problem = self.publisher.write_report()
        if problem:
            self.alert("warn", "report", f"report not written: {problem}")
        self.emit(Event.PIPELINE_END, status=status, exit_code=code)
        # The end is what users wait for: let the notification (and the trackers' last writes) go out.
        close_all(self.outlets, self.settings.notify_timeout_s)
        self._outlet_alerts()
        return code

    def _io_failure(self, exc: OSError) -> PipelineIOError:
        """End every run, say so in pipeline.jsonl if the disk still takes a line, and explain in one line."""
        for exit_ in self.scheduler.end_all("pipeline"):
            self.scheduler.release(exit_.active)
        what = errno.errorcode.get(exc.errno or 0, "I/O error")
        line = f"{self.dir}: {what}: {exc.strerror or exc} ({exc.filename or 'pipeline folder'}); runs were ended, " \
               f"their checkpoints are on disk; free space and run goemo-cockpit --resume {self.dir}"
        try:
            if self.log:
                self.alert("error", "io", line)
                self.emit(Event.PIPELINE_END, status="failed", exit_code=EXIT_FAILED)
        except OSError:
            pass
        return PipelineIOError(line)

    def _launch_failure(self, line: str) -> None:
        """A launch refused: end the other runs (they checkpoint), alert, and end the pipeline as failed."""
        for exit_ in self.scheduler.end_all("pipeline"):
            self.scheduler.release(exit_.active)
        self.scheduler.queue.clear()
        if self.log:
            self.alert("error", "launch", line)
            self._write_summary("failed")
            self.emit(Event.PIPELINE_END, status="failed", exit_code=EXIT_FAILED)

    def _outcome(self) -> tuple[int, str]:
        if self.interrupted:
            return EXIT_INTERRUPTED, "interrupted"
        if self.reaper.aborted:
            return EXIT_ABORTED, "aborted"
        # A run stopped because it was not learning (on_not_learning = "stop") is the policy working, not a failure.
        policy = set(self.learning.judged) | (self.search.pruned if self.search is not None else set())
        if any(r.status == "failed" or (r.status == "stopped" and r.run_id not in policy)
               for r in self.records.values()):
            return EXIT_FAILED, "failed"
        return EXIT_OK, "completed"

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.interrupted = signal.Signals(signum).name

    # -- the phases ---------------------------------------------------------------------------
    def screen(self) -> None:
        self._run_phase(1, phase1_plan(self.preset, self.configs))

    def analyse(self) -> None:
        self.emit(Event.PHASE_START, phase=2, name=PHASE_NAMES[2], runs=[])
        board = self.publisher.leaderboard(self.records.values())
        order = {run: i for i, run in enumerate(row["run"] for row in board)}
        # The configs by the selection rule (over seeds), each config's runs in the leaderboard's order.
        ranking = [run for group in self.publisher.groups(board) if group["phase"] == 1
                   for run in sorted(group["runs"], key=order.__getitem__)
                   if next(r for r in board if r["run"] == run)["status"] == "completed"]
        self._write_summary("running")
        self.emit(Event.PHASE_END, phase=2, ranking=ranking)

    def extend(self) -> None:
        ranked = self.publisher.ranked_configs(self.records.values(), 1) or list(self.configs)
        top = ranked[: self.settings.top_k]
        self._run_phase(3, seed_runs(self.preset, 3, top))

    def finalise(self) -> None:
        ranked = (self.publisher.ranked_configs(self.records.values(), 3)
                  or self.publisher.ranked_configs(self.records.values(), 1) or list(self.configs))
        if not ranked:
            self.alert("error", "no_candidate", "no config to finalise")
            return
        best = ranked[0]
        export_from, ensemble_from, config = None, [], best
        if self.settings.final == "reuse":
            export_from = self.publisher.trained_run(self.records.values(), best)
        elif self.settings.final == "ensemble":
            members = [(name, self.publisher.trained_run(self.records.values(), name))
                       for name in ranked[: self.settings.top_k]]
            members = [(name, run) for name, run in members if run is not None]
            if not members:
                self.alert("error", "no_candidate", "no completed run to average for the ensemble final")
                return
            config, ensemble_from = "+".join(name for name, _ in members), [run for _, run in members]
        announced = False
        if self.settings.final == "seed_ensemble":
            ensemble_from, announced = self._seed_members(best)
            if not ensemble_from:
                self.alert("error", "no_candidate", f"no seed of {best} completed: nothing to average")
                if announced:
                    self.emit(Event.PHASE_END, phase=FINAL_PHASE)
                return
        self._run_phase(FINAL_PHASE, [PlannedRun(FINAL_RUN, FINAL_PHASE, config)], export_from=export_from,
                        ensemble_from=ensemble_from, announce=not announced)
        if self.records[FINAL_RUN].status == "completed":
            self.publisher.publish_final(config, "+".join(ensemble_from) or export_from or FINAL_RUN)
            if self.publisher.wants_onnx():
                self.alert("info", "onnx", "exporting final/ to ONNX (goemo-export-onnx: the int8 copy is scored)")
                problem = self.publisher.add_onnx()
                self.alert("warn" if problem else "info", "onnx",
                           f"final/ has no ONNX copy: {problem}; goemo-predict uses torch (goemo-export-onnx "
                           f"--model {self.paths.final} makes one)" if problem else "final/ has its ONNX copies")

    def _seed_members(self, config: str) -> tuple[list[str], bool]:
        """The seed ensemble's members: the config trained with phase 4's seeds. Phase 3's seed group is reused
        where it trained exactly what phase 4 would (same keys but the run id); otherwise the seeds are trained
        now as runs of phase 4 (p4-bce-s42, ...), which starts phase 4. Members that failed for good are left out.
        Returns the members and whether phase 4 has started."""
        loss = self.preset.config(config)
        seeds = self.preset.run_seeds(FINAL_PHASE, loss)
        phase3 = [self.records.get(run_id(3, config, seed)) for seed in seeds]
        if all(rec is not None and rec.status == "completed" for rec in phase3) and \
                self.preset.same_training(3, FINAL_PHASE, loss, seeds[0]):
            return [rec.run_id for rec in phase3 if rec is not None], False
        plans = [PlannedRun(run_id(FINAL_PHASE, config, seed), FINAL_PHASE, config, seed) for seed in seeds]
        records = [self.plan_run(plan) for plan in plans]
        # Phase 4 starts with its members: the views show phase 4 while they train, then p4-final.
        self.emit(Event.PHASE_START, phase=FINAL_PHASE, name=PHASE_NAMES[FINAL_PHASE],
                  runs=[r.run_id for r in records] + [FINAL_RUN])
        self._execute([r for r in records if r.status not in ("completed", "failed", "stopped")])
        self._write_summary("running")
        return [r.run_id for r in records if r.status == "completed"], True

    def _run_phase(self, phase: int, plans: list[PlannedRun], export_from: str | None = None,
                   ensemble_from: list[str] | None = None, announce: bool = True) -> None:
        """Run a phase's planned runs; ``announce``: emit its phase_start (False: the phase already began)."""
        records = [self.plan_run(p, export_from, ensemble_from) for p in plans]
        if announce:
            self.emit(Event.PHASE_START, phase=phase, name=PHASE_NAMES[phase], runs=[r.run_id for r in records])
        self._execute([r for r in records if r.status not in ("completed", "failed", "stopped")])
        self._write_summary("running")
        self.emit(Event.PHASE_END, phase=phase)

    # -- runs ---------------------------------------------------------------------------------
    def plan_run(self, plan: PlannedRun, export_from: str | None = None,
                ensemble_from: list[str] | None = None) -> RunRecord:
        if plan.run_id not in self.records:
            rec = self.records[plan.run_id] = RunRecord(plan.run_id, plan.phase, plan.config, export_from=export_from,
                                                        ensemble_from=list(ensemble_from or []), seed=plan.seed)
            for event in self._history:  # what an earlier supervisor of this folder decided
                if isinstance(event, RunDone) and event.run == plan.run_id:
                    rec.status = event.status
                elif isinstance(event, RunLaunch) and event.run == plan.run_id:
                    rec.attempts = max(rec.attempts, event.attempt)
        return self.records[plan.run_id]

    def _run_config(self, record: RunRecord, slot: Slot) -> tuple[Path, Any]:
        """Resolve and write the run's run.toml (atomically: a restart may read it while we write)."""
        run = self.paths.run(record.run_id)
        run.root.mkdir(parents=True, exist_ok=True)
        if record.exports_only:
            # Reuse or ensemble: the final export starts from the (first) chosen run's own resolved config,
            # evaluated on what Phase 4 evaluates (its max_eval_samples: full dev and test by default).
            from trainer.config import read_toml, validate_config

            source = self.paths.run(record.export_from or record.ensemble_from[0]).config
            phase4 = self.preset.run_config(FINAL_PHASE, self.preset.config(self._first_config(record)), record.run_id)
            # A seed ensemble averages logits: members of one config share a calibration (trainer/ensemble.py).
            rule = {"ensemble_rule": ENSEMBLE_MEAN_LOGIT} if self.settings.final == "seed_ensemble" else {}
            config = validate_config({**read_toml(source), "run": record.run_id,
                                      "max_eval_samples": phase4.max_eval_samples, **rule}, str(source))
        else:
            config = (self.search.run_config(record) if self.search is not None else None) or \
                self.preset.run_config(record.phase, self.preset.config(record.config), record.run_id, record.seed)
        config.device = slot.device
        config.torch_threads = slot.threads
        if record.run_id == FINAL_RUN:  # not the seed runs a seed ensemble trains in phase 4: p4-final scores them
            config.export = True
        write_atomic(run.config, config_to_toml(config))
        return run.config, config

    @staticmethod
    def _first_config(record: RunRecord) -> str:
        """The preset config behind an export-only final: the reused run's, or the first member's."""
        return split_run_id(record.export_from or record.ensemble_from[0])[1]

    def _launch(self, record: RunRecord, slot: Slot) -> ActiveRun:
        run = self.paths.run(record.run_id)
        config_path, config = self._run_config(record, slot)
        record.attempts += 1
        args = ["--config", str(config_path), "--out", str(run.root)]
        if run.events.exists():
            args.append("--resume")
        if record.export_from:
            args += ["--export-from", str(self.paths.run(record.export_from).root)]
        for member in record.ensemble_from:
            args += ["--ensemble-from", str(self.paths.run(member).root)]
        env = {ENV_ATTEMPT: str(record.attempts), ENV_STARTUP_GRACE: f"{self.settings.startup_grace_s:g}"}
        fault = None if record.exports_only else self.preset.config(record.config).fault
        if fault:
            env[ENV_FAULT] = fault
        try:
            process = self.launcher.start(run, slot, args, env, drop_env=(ENV_FAULT,),
                                          accelerate_config=config.accelerate_config)
        except LaunchError as exc:
            record.attempts -= 1  # nothing was launched: a --resume tries this attempt again
            raise PipelineLaunchError(f"{record.run_id}: launch failed: {exc}") from None
        record.status = "running"
        self.emit(Event.RUN_LAUNCH, run=record.run_id, device=slot.name, attempt=record.attempts, phase=record.phase,
                  config=record.config, **{"pid": None, **process.launch_fields()})
        return self._watch(record, slot, process)

    def _watch(self, record: RunRecord, slot: Slot, process: Any) -> ActiveRun:
        reader = EventReader(self.paths.run(record.run_id).events)
        reader.read_new()  # skip what earlier attempts (or the adopted job, before we came back) wrote
        watchdog = StallWatchdog(self.settings.stall_floor_s, self.settings.stall_factor, self.settings.startup_grace_s)
        return ActiveRun(record, slot, process, watchdog, reader, restarts_seen=process.restarts())

    def _adopt_alive(self, queue: list[RunRecord]) -> list[RunRecord]:
        """Resume under Slurm: watch again the jobs an earlier supervisor submitted that are still queued or
        running (found by the job ids in pipeline.jsonl) instead of submitting them twice; the rest queue."""
        launches, exited = launches_of(self._history)
        free = [slot for slot in self.slots if slot.name not in {a.slot.name for a in self.active.values()}]
        rest = []
        for record in queue:
            launch = launches.get(record.run_id)
            job = None
            if launch and (record.run_id, launch.attempt) not in exited and free:
                job = self.launcher.adopt(launch, self.paths.run(record.run_id))
            if job is None:
                rest.append(record)
                continue
            slot = next((s for s in free if s.name == launch.device), free[0])
            free.remove(slot)
            record.status = "running"
            self.scheduler.adopt(self._watch(record, slot, job))
            self.alert("info", "adopted", f"{record.run_id}: watching {job.launch_fields()} again "
                                          "(still queued or running; not submitted twice)", record.run_id)
        return rest

    # -- scheduling ---------------------------------------------------------------------------
    def _execute(self, queue: list[RunRecord]) -> None:
        self.scheduler.submit(self._adopt_alive(queue))
        while self.scheduler.busy and not self.reaper.aborted:
            if not self.tick():
                return
        self.scheduler.queue.clear()  # an abort leaves the rest unlaunched

    def tick(self) -> bool:
        """One scheduling step: obey control, fill free slots, read every run, apply exits and stalls. False once
        interrupted (the runs were ended and the queue cleared)."""
        self._obey_control()
        if self.interrupted:
            self.reaper.apply_all(self.scheduler.end_all("pipeline"))
            self.scheduler.queue.clear()
            return False
        self.scheduler.fill_slots()
        exited, stalled = self.scheduler.poll()
        for active, restarts in self.scheduler.requeued():
            self.emit(Event.REQUEUE, run=active.record.run_id, attempt=active.record.attempts, restarts=restarts)
            active.watchdog = StallWatchdog(self.settings.stall_floor_s, self.settings.stall_factor,
                                            self.settings.startup_grace_s)  # it starts up again
        self._report_pending()
        for active in stalled:
            exited.append(self.reaper.end_stalled(active))
        self.reaper.apply_all(exited)
        self._outlet_alerts()
        self.on_tick(self)
        time.sleep(self.poll_s)
        return True

    def _report_pending(self) -> None:
        """Say why the scheduler keeps a run waiting (Slurm's pending reason), each time the reason changes."""
        for active in list(self.active.values()):
            run = active.record.run_id
            reason = active.process.pending_reason() if active.watchdog.last_progress is None else None
            if reason and reason != self._pending_said.get(run):
                self.emit(Event.RUN_PENDING, run=run, attempt=active.record.attempts, reason=reason)
            self._pending_said[run] = reason

    # -- control channel ----------------------------------------------------------------------
    def _obey_control(self) -> None:
        exits: list[Exited] = []
        for command in control.take_commands(self.dir):
            cmd, run = command.get("cmd"), command.get("run")
            self.alert("info", "control", f"received {cmd} {run or ''}".strip())
            if cmd == "stop_pipeline":
                self.interrupted = "stop_pipeline"
            elif run in self.scheduler.active and cmd in ("stop_run", "restart_run"):
                exits.append(self.scheduler.end(self.scheduler.active[run], "stop" if cmd == "stop_run" else "restart"))
        for run in self.search.take_prunes() if self.search is not None else ():  # the study's pruner
            if run in self.scheduler.active:
                exits.append(self.scheduler.end(self.scheduler.active[run], "pruned"))
        # Runs judged not learning under on_not_learning = "stop" end as stopped (intent "not_learning").
        while self._not_learning:
            run = self._not_learning.pop(0)
            if run in self.scheduler.active:
                exits.append(self.scheduler.end(self.scheduler.active[run], "not_learning"))
        self.reaper.apply_all(exits)

    # -- results ------------------------------------------------------------------------------
    def _write_summary(self, status: str) -> None:
        self.publisher.write_summary(self.records.values(), status, self.current_phase)

