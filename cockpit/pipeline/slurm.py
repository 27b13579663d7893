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
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.pipeline import launcher as local
from cockpit.pipeline.slots import Slot
from cockpit.pipeline.spec import SlurmSettings
from trainer.contract import EVENTS_FILE, SLURM_SCRIPT_FILE, RunPaths
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


class SlurmError(RuntimeError):
    """A Slurm command failed (sbatch refused the job, the controller did not answer)."""


def _run(cmd: list[str], timeout: float = COMMAND_TIMEOUT_S) -> str:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise SlurmError(f"{cmd[0]}: not found (is this a Slurm login node?)") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{' '.join(cmd[:2])}: no answer in {timeout:.0f} s") from None
    if res.returncode != 0:
        raise SlurmError(f"{' '.join(cmd[:2])}: {(res.stderr or res.stdout).strip().splitlines()[-1:] or 'failed'}")
    return res.stdout


def job_info(job_id: str) -> dict[str, str]:
    """``scontrol show job -o``'s Key=Value fields for one job ({} once Slurm has forgotten it)."""
    try:
        out = _run(["scontrol", "show", "job", "-o", job_id])
    except SlurmError:
        return {}
    fields: dict[str, str] = {}
    for token in out.split():
        key, sep, value = token.partition("=")
        if sep:
            fields.setdefault(key, value)
    return fields


def exit_code(info: dict[str, str]) -> int:
    """The trainer's exit code from scontrol's ``ExitCode=code:signal`` (a signal counts as -signal)."""
    code, _, sig = info.get("ExitCode", "1:0").partition(":")
    if sig.isdigit() and int(sig):
        return -int(sig)
    return int(code) if code.isdigit() else 1


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
    """A run's batch job."""

    job_id: str
    paths: RunPaths
    _state: str = ""
    _checked: float = 0.0
    _info: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        return None  # the trainer runs on a node; its stacks come through scancel --signal=USR1

    def launch_fields(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "launcher": "slurm"}

    def state(self, fresh: bool = False) -> str:
        """The job's state (PENDING, RUNNING, COMPLETED, …), asked at most once per STATE_TTL_S."""
        now = time.monotonic()
        if fresh or now - self._checked >= STATE_TTL_S:
            self._checked = now
            self._info = job_info(self.job_id)
            self._state = self._info.get("JobState", "") or self._forgotten_state()
        return self._state

    def _forgotten_state(self) -> str:
        """Slurm no longer knows the job (its record aged out): the run's own events say how it ended."""
        ends = [e for e in read_events(self.paths.events) if e.get("type") == "run_end"] \
            if self.paths.events.exists() else []
        return "COMPLETED" if ends and ends[-1].get("status") == "completed" else "FAILED"

    def poll(self) -> int | None:
        state = self.state()
        if state in ALIVE:
            return None
        if state == "COMPLETED":
            return 0
        return exit_code(self._info) if self._info else 1

    def restarts(self) -> int:
        self.state()
        value = self._info.get("Restarts", "0")
        return int(value) if value.isdigit() else 0

    def waiting(self) -> bool:
        return self.state() in WAITING

    def dump_stack(self) -> None:
        try:
            _run(["scancel", "--signal=USR1", "--full", self.job_id])
        except SlurmError:
            pass  # the job may have just ended

    def terminate(self, grace_s: float) -> int:
        """SIGTERM to the trainer (it checkpoints), then scancel after grace_s; the exit code."""
        try:
            _run(["scancel", "--signal=TERM", "--full", self.job_id])
        except SlurmError:
            pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if self.state(fresh=True) not in ALIVE:
                break
            time.sleep(0.5)
        if self.state(fresh=True) in ALIVE:
            try:
                _run(["scancel", self.job_id])
            except SlurmError:
                pass
            for _ in range(60):
                if self.state(fresh=True) not in ALIVE:
                    break
                time.sleep(0.5)
        code = self.poll()
        return code if code is not None else 1

    def close(self) -> None:
        pass  # Slurm writes the output files itself


class SlurmLauncher:
    """Runs become batch jobs; the supervisor keeps the files and asks squeue/scontrol for states."""

    name = "slurm"

    def __init__(self, settings: SlurmSettings, pipeline: str) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.python = settings.python or sys.executable

    def start(self, paths: RunPaths, slot: Slot, args: list[str], env_extra: dict[str, str],
              drop_env: tuple[str, ...] = (), accelerate_config: str | None = None) -> SlurmJob:
        # Only what the run needs travels in the script; the rest of the node's environment is the
        # cluster's (sbatch exports the submitting environment by default, minus what we drop).
        env = {"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", **env_extra}
        if slot.threads:
            env["OMP_NUM_THREADS"] = str(slot.threads)
        script = paths.root / SLURM_SCRIPT_FILE
        script.write_text(batch_script(paths, self.settings, f"goemo-{self.pipeline}-{paths.root.name}", slot,
                                       args, env, self.python, accelerate_config), encoding="utf-8")
        submit_env = {k: v for k, v in os.environ.items() if k not in drop_env or k in env_extra}
        try:
            res = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True,
                                 timeout=COMMAND_TIMEOUT_S, env=submit_env)
        except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
            raise SlurmError(f"sbatch {script}: {exc}") from None
        if res.returncode != 0:
            raise SlurmError(f"sbatch {script}: {res.stderr.strip() or 'refused the job'}")
        job_id = res.stdout.strip().split(";")[0]
        return SlurmJob(job_id, paths)

    def adopt(self, launch: dict[str, Any], paths: RunPaths) -> SlurmJob | None:
        job_id = launch.get("job_id")
        if not isinstance(job_id, str) or not job_id:
            return None
        job = SlurmJob(job_id, paths)
        return job if job.state(fresh=True) in ALIVE else None
