"""The Slurm launcher: each run is a batch job whose script, and Slurm's own stdout/stderr, live in the
run folder; the supervisor watches the run's files as for a local run (a shared filesystem is all it
needs) and asks Slurm only for the job's state.

Why hand-written rather than submitit: submitit reads job states with ``sacct``, which needs Slurm's
accounting database; many clusters (and our test cluster) have none, and submitit's maintainers say
its states are then unreliable (facebookincubator/submitit#1720). ``squeue`` and ``scontrol show job``
answer without accounting: squeue while the job is queued or running, scontrol for a few minutes
after it ended (MinJobAge), which the supervisor's sub-second polling never outlives.

The job script ``exec``s the trainer, so the trainer itself is the batch step's process and receives
``--signal=B:TERM@90`` (a bash batch shell would not pass the signal on to a child): it checkpoints
and exits before the time limit. Jobs are submitted with ``--requeue``; a requeued job runs the same
script again, which resumes from the run folder's checkpoint (``--resume`` once events.jsonl exists),
with the same step numbers.

A query that fails (a busy or restarting controller, a timeout) means "unknown", never "ended": the job
keeps its last known state, queries back off, and an outage is alerted only once it lasts
``outage_alert_s`` (the jobs are still watched after that). A job is gone only when ``scontrol`` says
"Invalid job id" and ``squeue`` agrees; a run is never submitted while Slurm still lists a job of it.
"""

from __future__ import annotations

import getpass
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cockpit.pipeline import launcher as local
from cockpit.pipeline.launcher import LaunchError
from cockpit.pipeline.slots import Slot
from cockpit.pipeline.presets import SlurmSettings
from cockpit.records import RunEnd, RunLaunch, decode_run
from trainer.contract import EXIT_FAILED, EXIT_OK, SLURM_SCRIPT_FILE, RunPaths
from trainer.events import read_events

# Job states in which the job will still run (or is running); any other is an end.
ALIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
         "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"}
# Alive but not started: a queue wait, however long, is no stall.
WAITING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED", "RESV_DEL_HOLD"}
WARN_BEFORE_LIMIT_S = 90  # the trainer gets SIGTERM this long before the job's time limit
STATE_TTL_S = 1.0  # one squeue per job per second at most, whatever the supervisor's poll rate
COMMAND_TIMEOUT_S = 30.0
MAIN_PORT = 29500  # the rendezvous port on the first node of a multi-node job
OUTAGE_ALERT_S = 300.0  # Slurm silent this long is alerted (and the jobs are still watched)
BACKOFF_MAX_S = 30.0  # queries that keep failing are retried at most this far apart
CONFIRM_WAIT_S = 60.0  # after scancel: how long terminate() waits for Slurm to confirm the end
INVALID_JOB = "invalid job id"  # what scontrol and squeue say of a job they no longer know (any case)
# What Slurm's commands say when the controller is away (down, restarting, overloaded): try again later.
CONTROLLER_AWAY = ("unable to contact", "timed out", "connection refused", "zero bytes were transmitted",
                   "temporarily unable", "not responding", "communication connection failure",
                   "resource temporarily unavailable")
Alert = Callable[[str, str, str], None]  # (level, code, message), the supervisor's alert()


class SlurmError(LaunchError):
    """A Slurm command failed or refused (sbatch refused the job): one line, with Slurm's own reason."""


class SlurmUnavailable(SlurmError):
    """Slurm did not answer (timeout, controller down): the state is unknown; ask again later."""


def _reason(text: str) -> str:
    """Slurm's own words on one line: its stderr lines without the ``sbatch: error:`` prefixes."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for prefix in ("sbatch: error: ", "scontrol: error: ", "squeue: error: ", "sbatch: ", "error: "):
        lines = [line[len(prefix):] if line.startswith(prefix) else line for line in lines]
    return "; ".join(dict.fromkeys(lines)) or "no reason given"


def _run(cmd: list[str], timeout: float = COMMAND_TIMEOUT_S, env: dict[str, str] | None = None,
         query: bool = True) -> str:
    """A Slurm command's stdout. SlurmUnavailable when it cannot be asked or does not answer; SlurmError, with
    Slurm's reason, when it answers no. A query's failure (scontrol, squeue, scancel) is the controller's
    trouble unless Slurm says "Invalid job id"; sbatch's is a refusal unless it says the controller is away."""
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except FileNotFoundError:
        raise SlurmUnavailable(f"{cmd[0]}: not found on PATH (is this a Slurm login node?)") from None
    except subprocess.TimeoutExpired:
        raise SlurmUnavailable(f"{' '.join(cmd[:2])}: no answer in {timeout:.0f} s") from None
    if res.returncode != 0:
        reason = _reason(res.stderr or res.stdout)
        said = f"{' '.join(cmd[:2])}: {reason}"
        if INVALID_JOB in reason.lower():
            raise SlurmError(said)
        if query or any(words in reason.lower() for words in CONTROLLER_AWAY):
            raise SlurmUnavailable(said)
        raise SlurmError(said)
    return res.stdout


def _scancel(job_id: str, health: "ControllerHealth", *options: str) -> None:
    """scancel, best effort: whether the job ended is confirmed through its state, not by scancel."""
    try:
        _run(["scancel", *options, job_id], query=False)
    except SlurmUnavailable as exc:
        health.failed(str(exc))
    except SlurmError:
        pass  # "already completing or completed"


class ControllerHealth:
    """How Slurm has answered lately, shared by one launcher's jobs: failed queries back off (doubling up to
    BACKOFF_MAX_S), and an outage is alerted once it has lasted ``alert_after_s``, then again when it ends."""

    def __init__(self, on_alert: Alert | None = None, alert_after_s: float = OUTAGE_ALERT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.on_alert = on_alert or (lambda level, code, message: None)
        self.alert_after_s = alert_after_s
        self.clock = clock
        self.down_since: float | None = None
        self.failures = 0
        self.alerted = False

    def answered(self) -> None:
        if self.alerted and self.down_since is not None:
            self.on_alert("info", "slurm", f"Slurm answers again after {self.clock() - self.down_since:.0f} s")
        self.down_since, self.failures, self.alerted = None, 0, False

    def failed(self, error: str) -> None:
        now = self.clock()
        if self.down_since is None:
            self.down_since = now
        self.failures += 1
        if not self.alerted and now - self.down_since >= self.alert_after_s:
            self.alerted = True
            self.on_alert("error", "slurm", f"Slurm has not answered for {now - self.down_since:.0f} s ({error}); "
                                            "the jobs are still watched")

    def retry_in(self) -> float:
        """Seconds before the next query: STATE_TTL_S while Slurm answers; 2, 4, 8, … s while it does not."""
        return min(BACKOFF_MAX_S, 2.0 ** min(self.failures, 8)) if self.failures else STATE_TTL_S

    def wait(self, what: Callable[[], Any]) -> Any:
        """``what()``'s answer, asked again (with backoff, alerting a long outage) until Slurm answers."""
        while True:
            try:
                answer = what()
            except SlurmUnavailable as exc:
                self.failed(str(exc))
                time.sleep(self.retry_in())
                continue
            self.answered()
            return answer


def job_info(job_id: str) -> dict[str, str]:
    """``scontrol show job -o``'s Key=Value fields for one job; {} when scontrol says "Invalid job id" (ask
    ``squeue`` too before believing it: ``job_gone``). Raises SlurmUnavailable when Slurm does not answer."""
    try:
        out = _run(["scontrol", "show", "job", "-o", job_id])
    except SlurmUnavailable:
        raise
    except SlurmError:
        return {}  # "Invalid job id specified"
    fields: dict[str, str] = {}
    for token in out.split():
        key, sep, value = token.partition("=")
        if sep:
            fields.setdefault(key, value)
    return fields


def squeue_state(job_id: str) -> str:
    """The job's state as squeue lists it, "" when squeue lists no such job (ended and purged, or never
    known). Raises SlurmUnavailable when Slurm does not answer."""
    try:
        return _run(["squeue", "-h", "-j", job_id, "-o", "%T"]).strip()
    except SlurmUnavailable:
        raise
    except SlurmError:
        return ""  # "Invalid job id specified": squeue agrees the job is gone


def queued_jobs(name: str) -> list[str]:
    """Ids of this user's jobs named ``name`` that squeue still lists (queued, running or completing)."""
    out = _run(["squeue", "-h", "--name", name, "--user", getpass.getuser(), "-o", "%i"])
    return [line.strip() for line in out.splitlines() if line.strip()]


def exit_code(info: dict[str, str]) -> int:
    """The trainer's exit code from scontrol's ``ExitCode=code:signal`` (a signal counts as -signal)."""
    code, _, sig = info.get("ExitCode", f"{EXIT_FAILED}:0").partition(":")
    if sig.isdigit() and int(sig):
        return -int(sig)
    return int(code) if code.isdigit() else EXIT_FAILED


def batch_script(paths: RunPaths, settings: SlurmSettings, job_name: str, slot: Slot, args: list[str],
                 env: dict[str, str], python: str, accelerate_config: str | None = None) -> str:
    """The job script: sbatch options, the preset's setup lines, and the trainer ``exec``'d so that it
    receives the time-limit warning itself."""
    multi_node = settings.nodes > 1
    # One node: the batch shell execs the trainer, which gets the warning itself (B:). Several nodes: the
    # trainers are srun step tasks, and Slurm signals step tasks when the B: prefix is left out.
    warning = f"--signal=TERM@{WARN_BEFORE_LIMIT_S}" if multi_node else f"--signal=B:TERM@{WARN_BEFORE_LIMIT_S}"
    options = [f"--job-name={job_name}", f"--output={paths.stdout}", f"--error={paths.stderr}",
               "--open-mode=append", "--requeue", warning, f"--nodes={settings.nodes}", "--ntasks-per-node=1",
               f"--cpus-per-task={settings.cpus_per_run}"]
    if settings.partition:
        options.append(f"--partition={settings.partition}")
    if settings.account:
        options.append(f"--account={settings.account}")
    if settings.gpus_per_run:
        options.append(f"--gpus={settings.gpus_per_run}")
    if settings.mem:
        options.append(f"--mem={settings.mem}")
    if settings.time:
        options.append(f"--time={settings.time}")
    options += settings.extra
    args = [a for a in args if a != "--resume"]
    if multi_node:
        command = node_command(settings, python, args, accelerate_config)
    else:
        command = local.trainer_command(slot, args, accelerate_config=accelerate_config)
        if command[0] == sys.executable:  # the nodes' Python may live elsewhere ([slurm] python)
            command[0] = python
    lines = ["#!/bin/bash", *(f"#SBATCH {opt}" for opt in options), "",
             "# Written by goemo-cockpit's Slurm launcher. A requeued job runs this again: it resumes.",
             f"cd {shlex.quote(str(Path.cwd()))}"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    if settings.setup.strip():
        lines += ["", settings.setup.strip(), ""]
    lines += [f'RESUME=""; [ -s {shlex.quote(str(paths.events))} ] && RESUME="--resume"',
              "echo \"goemo: job $SLURM_JOB_ID on $(hostname), restart ${SLURM_RESTART_COUNT:-0}\" >&2"]
    if multi_node:
        # One launcher per node (srun: one task per node); the first node of the allocation is the main one.
        inner = " ".join(shlex.quote(c) if not c.startswith("$") else c for c in command) + " $RESUME"
        lines += ['export MAIN_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)', "export RESUME",
                  f"exec srun --kill-on-bad-exit=1 bash -c {shlex.quote('exec ' + inner)}", ""]
    else:
        lines += [f"exec {' '.join(shlex.quote(c) for c in command)} $RESUME", ""]
    return "\n".join(lines)


def node_command(settings: SlurmSettings, python: str, args: list[str], accelerate_config: str | None) -> list[str]:
    """What each node of a multi-node job runs: accelerate launch over its GPUs (NCCL), or torchrun over
    its CPU processes (gloo; accelerate's multi-CPU path needs MPI); ``$SLURM_NODEID`` and ``$MAIN_NODE``
    are filled in on the node."""
    nodes = str(settings.nodes)
    if settings.gpus_per_run:
        total = str(settings.nodes * settings.gpus_per_run)
        launch = [python, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", nodes,
                  "--machine_rank", "$SLURM_NODEID", "--main_process_ip", "$MAIN_NODE",
                  "--main_process_port", str(MAIN_PORT), "--num_processes", total]
        if accelerate_config:
            launch += ["--config_file", accelerate_config]
        return [*launch, "-m", "trainer.cli", *args]
    return [python, "-m", "torch.distributed.run", "--nnodes", nodes, "--node_rank", "$SLURM_NODEID",
            "--master_addr", "$MAIN_NODE", "--master_port", str(MAIN_PORT), "--nproc_per_node",
            str(settings.processes_per_node), "-m", "trainer.cli", *args]


@dataclass
class SlurmJob:
    """A run's batch job. Its state is Slurm's last answer: a query that fails leaves it as it was."""

    job_id: str
    paths: RunPaths
    health: ControllerHealth = field(default_factory=ControllerHealth)
    _state: str = ""
    _checked: float = float("-inf")
    _info: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        return None  # the trainer runs on a node; its stacks come through scancel --signal=USR1

    def launch_fields(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "launcher": "slurm"}

    def state(self, fresh: bool = False) -> str:
        """The job's state (PENDING, RUNNING, COMPLETED, …), asked at most once per STATE_TTL_S (further apart
        while Slurm does not answer); "" until Slurm has answered once."""
        now = time.monotonic()
        if fresh or now - self._checked >= self.health.retry_in():
            self._checked = now
            try:
                self._query()
            except SlurmUnavailable as exc:
                self.health.failed(str(exc))  # unknown: keep the last known state
            else:
                self.health.answered()
        return self._state

    def known_state(self) -> str:
        """The job's state once Slurm has answered (asked again, with backoff, while it does not)."""
        self.health.wait(self._query)
        self._checked = time.monotonic()
        return self._state

    def _query(self) -> None:
        info = job_info(self.job_id)
        if info.get("JobState"):
            self._info, self._state = info, info["JobState"]
            return
        # scontrol no longer knows the job. It is gone only if squeue agrees; else Slurm is in two minds.
        listed = squeue_state(self.job_id)
        if listed:
            raise SlurmUnavailable(f"scontrol does not know job {self.job_id} but squeue lists it {listed}")
        self._info, self._state = {}, self._forgotten_state()

    def _forgotten_state(self) -> str:
        """Slurm no longer knows the job (its record aged out): the run's own events say how it ended."""
        ends = [r for r in decode_run(read_events(self.paths.events)).records if isinstance(r, RunEnd)]
        return "COMPLETED" if ends and ends[-1].status == "completed" else "FAILED"

    def poll(self) -> int | None:
        state = self.state()
        if not state or state in ALIVE:
            return None  # still queued or running, or not known yet
        if state == "COMPLETED":
            return EXIT_OK
        return exit_code(self._info) if self._info else EXIT_FAILED

    def restarts(self) -> int:
        self.state()
        value = self._info.get("Restarts", "0")
        return int(value) if value.isdigit() else 0

    def waiting(self) -> bool:
        return self.state() in WAITING

    def pending_reason(self) -> str | None:
        """Why Slurm keeps the job waiting (``Resources``, ``Priority``, ``JobHeldUser``, …), or None."""
        if self.state() not in WAITING:
            return None
        reason = self._info.get("Reason", "")
        return reason if reason and reason != "None" else None

    def dump_stack(self) -> None:
        try:
            _run(["scancel", "--signal=USR1", "--full", self.job_id])
        except SlurmError:
            pass  # the job may have just ended

    def _wait_for_end(self, seconds: float) -> bool:
        """Whether Slurm confirmed within ``seconds`` that the job no longer runs."""
        deadline = time.monotonic() + seconds
        while True:
            state = self.state(fresh=True)
            if state and state not in ALIVE:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5 if not self.health.failures else min(self.health.retry_in(), 5.0))

    def terminate(self, grace_s: float) -> int:
        """SIGTERM to the trainer (it checkpoints), then scancel after grace_s; the exit code once Slurm
        confirms the end (the launcher refuses to submit the run again while Slurm still lists the job)."""
        _scancel(self.job_id, self.health, "--signal=TERM", "--full")
        if not self._wait_for_end(grace_s):
            _scancel(self.job_id, self.health)
            self._wait_for_end(CONFIRM_WAIT_S)
        code = self.poll()
        return code if code is not None else 1

    def close(self) -> None:
        pass  # Slurm writes the output files itself


def submit_env(drop_env: tuple[str, ...], env_extra: dict[str, str]) -> dict[str, str]:
    """The environment sbatch exports to the job: this one, minus what the run must not inherit."""
    return {k: v for k, v in os.environ.items() if k not in drop_env or k in env_extra}


def preflight(settings: SlurmSettings, pipeline: str, slot: Slot) -> None:
    """Before anything is created: sbatch and scontrol are on PATH, ``[slurm] python`` exists when it is a
    path, and ``sbatch --test-only`` accepts the first job script. Raises SlurmError with Slurm's reason."""
    for tool in ("sbatch", "scontrol", "squeue", "scancel"):
        if shutil.which(tool) is None:
            raise SlurmError(f"[pipeline] launcher = \"slurm\": {tool} is not on PATH (is this a Slurm login node?)")
    python = settings.python
    if python and os.sep in python and not os.access(python, os.X_OK):
        raise SlurmError(f"[slurm] python = {python!r}: no such executable here (expected the nodes' Python on the "
                         "shared filesystem, e.g. /project/me/venv/bin/python)")
    with tempfile.TemporaryDirectory(prefix="goemo-slurm-check-") as tmp:
        paths = RunPaths(Path(tmp) / "p1-check")
        script = Path(tmp) / SLURM_SCRIPT_FILE
        script.write_text(batch_script(paths, settings, f"goemo-{pipeline}-check", slot,
                                       ["--out", str(paths.root)], {}, python or sys.executable), encoding="utf-8")
        try:
            _run(["sbatch", "--test-only", str(script)], env=submit_env((), {}), query=False)
        except SlurmError as exc:
            reason = str(exc).partition(": ")[2] or str(exc)
            raise SlurmError(f"[slurm]: sbatch --test-only refused the job script: {reason}") from None


class SlurmLauncher:
    """Runs become batch jobs; the supervisor keeps the files and asks squeue/scontrol for states."""

    name = "slurm"

    def __init__(self, settings: SlurmSettings, pipeline: str, on_alert: Alert | None = None) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.python = settings.python or sys.executable
        self.health = ControllerHealth(on_alert)

    def job_name(self, paths: RunPaths) -> str:
        return f"goemo-{self.pipeline}-{paths.root.name}"

    def start(self, paths: RunPaths, slot: Slot, args: list[str], env_extra: dict[str, str],
              drop_env: tuple[str, ...] = (), accelerate_config: str | None = None) -> SlurmJob:
        # Only what the run needs travels in the script; the rest of the node's environment is the
        # cluster's (sbatch exports the submitting environment by default, minus what we drop).
        env = {"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", **env_extra}
        if slot.threads:
            env["OMP_NUM_THREADS"] = str(slot.threads)
        name = self.job_name(paths)
        self._clear_the_way(name)
        script = paths.root / SLURM_SCRIPT_FILE
        script.write_text(batch_script(paths, self.settings, name, slot, args, env, self.python, accelerate_config),
                          encoding="utf-8")
        out = self.health.wait(lambda: _run(["sbatch", "--parsable", str(script)],
                                            env=submit_env(drop_env, env_extra), query=False))
        job_id = out.strip().split(";")[0]
        return SlurmJob(job_id, paths, self.health)

    def _clear_the_way(self, name: str) -> None:
        """Never two jobs on one run folder: cancel any job of this run that Slurm still lists (a cancelled
        job whose end was not yet confirmed, a job an earlier supervisor left) and wait until it is gone."""
        while True:
            alive = self.health.wait(lambda: queued_jobs(name))
            if not alive:
                return
            for job_id in alive:
                _scancel(job_id, self.health)
            time.sleep(1.0)

    def adopt(self, launch: RunLaunch, paths: RunPaths) -> SlurmJob | None:
        job_id = launch.job_id
        if job_id is None:
            return None
        job = SlurmJob(job_id, paths, self.health)
        return job if job.known_state() in ALIVE else None
