"""How a run's trainer is started and ended, wherever it runs: the launcher interface, and the local
launcher (``goemo-train``, or ``accelerate launch`` for a multi-GPU slot, in its own session on this
machine, with its output in the run folder). The Slurm launcher is in ``cockpit.pipeline.slurm``.

A launcher starts a run and hands back a ``RunHandle``: the supervisor polls it for an exit code,
asks it for a stack dump when the watchdog calls the run stalled, and ends it. ``adopt`` finds a run
that a supervisor which died had started and that is still alive (Slurm jobs keep running without us;
local trainers are ended instead, see ``Supervisor._end_leftover_trainers``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cockpit.pipeline.slots import Slot
from cockpit.records import RunLaunch
from trainer.contract import RunPaths

class LaunchError(RuntimeError):
    """A run could not be launched (sbatch refused the job): one line; the pipeline ends as failed."""


def process_start_time(pid: int) -> float | None:
    """The kernel's start time of a process, which (with the pid) names it uniquely across pid reuse."""
    try:
        import psutil

        return round(psutil.Process(pid).create_time(), 2)
    except Exception:  # gone, or not ours to see
        return None


class RunHandle(Protocol):
    """A started run, as the supervisor sees it."""

    @property
    def pid(self) -> int | None:
        """The trainer's process id on this machine, or None where it runs elsewhere (a Slurm node)."""

    def launch_fields(self) -> dict[str, Any]:
        """What the run_launch event records so that a later supervisor can find this run again."""

    def poll(self) -> int | None:
        """The exit code once the run has ended, else None."""

    def restarts(self) -> int:
        """How many times the scheduler started it again on its own (Slurm requeue); 0 for local runs."""

    def waiting(self) -> bool:
        """Queued and not yet started (a pending Slurm job): silence then is no stall."""

    def pending_reason(self) -> str | None:
        """Why the scheduler keeps it waiting (Slurm's ``Resources``, ``Priority``, …); None when not waiting."""

    def dump_stack(self) -> None:
        """Ask the trainer to write every thread's stack to the run's stderr file (SIGUSR1, faulthandler)."""

    def terminate(self, grace_s: float) -> int:
        """SIGTERM (the trainer checkpoints and exits), a hard kill after grace_s; the exit code."""

    def close(self) -> None:
        """Release what the handle holds open (output files)."""


class Launcher(Protocol):
    name: str

    def start(self, paths: RunPaths, slot: Slot, args: list[str], env_extra: dict[str, str],
              drop_env: tuple[str, ...] = (), accelerate_config: str | None = None) -> RunHandle:
        """Start ``goemo-train ARGS`` for one run (through ``accelerate launch --config_file`` when given)."""

    def adopt(self, launch: RunLaunch, paths: RunPaths) -> RunHandle | None:
        """The run a run_launch event describes, if it is still queued or running and can be watched again."""


@dataclass
class RunProcess:
    """A run started on this machine: its process and the files its output goes to."""

    proc: subprocess.Popen
    start_time: float | None
    files: tuple

    @property
    def pid(self) -> int:
        return self.proc.pid

    def launch_fields(self) -> dict[str, Any]:
        return {"pid": self.proc.pid, "proc_start": self.start_time}

    def poll(self) -> int | None:
        return self.proc.poll()

    def restarts(self) -> int:
        return 0

    def waiting(self) -> bool:
        return False

    def pending_reason(self) -> str | None:
        return None

    def dump_stack(self) -> None:
        try:
            os.kill(self.proc.pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass

    def terminate(self, grace_s: float) -> int:
        """SIGTERM the run's process group (accelerate's workers too), SIGKILL after the grace period."""
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            return self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return self.proc.wait()

    def close(self) -> None:
        for fh in self.files:
            fh.close()


def trainer_command(slot: Slot, args: list[str], accelerate_config: str | None = None) -> list[str]:
    """goemo-train for one slot: accelerate launch with the run's accelerate config (DeepSpeed, FSDP, …) or
    over a multi-GPU slot; torchrun for several CPU processes (accelerate's multi-CPU path needs MPI and
    otherwise quietly starts one process); else one process."""
    if accelerate_config:
        return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", accelerate_config,
                "-m", "trainer.cli", *args]
    if slot.device == "cuda" and len(slot.gpus) > 1:
        return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
                "--num_processes", str(len(slot.gpus)), "-m", "trainer.cli", *args]
    if slot.device == "cpu" and slot.processes > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                str(slot.processes), "-m", "trainer.cli", *args]
    return [sys.executable, "-m", "trainer.cli", *args]


def start_local(paths: RunPaths, slot: Slot, args: list[str], env_extra: dict[str, str],
                drop_env: tuple[str, ...] = (), accelerate_config: str | None = None) -> RunProcess:
    """Start ``goemo-train ARGS`` for one run in its own session and process group.

    Own session: a terminal's Ctrl-C or hang-up never reaches the trainer directly, and the whole
    group (accelerate's workers too) can be ended at once.
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false", **env_extra)
    for key in drop_env:
        if key not in env_extra:
            env.pop(key, None)
    if slot.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, slot.gpus))
    if slot.threads:
        env["OMP_NUM_THREADS"] = str(slot.threads)
    stdout = open(paths.stdout, "ab")
    stderr = open(paths.stderr, "ab")
    try:
        proc = subprocess.Popen(trainer_command(slot, args, accelerate_config=accelerate_config), stdout=stdout,
                                stderr=stderr,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                cwd=Path.cwd())
    except BaseException:
        stdout.close()
        stderr.close()
        raise
    return RunProcess(proc, process_start_time(proc.pid), (stdout, stderr))


class LocalLauncher:
    """Today's placement: each run a process group on this machine."""

    name = "local"

    def start(self, paths: RunPaths, slot: Slot, args: list[str], env_extra: dict[str, str],
              drop_env: tuple[str, ...] = (), accelerate_config: str | None = None) -> RunHandle:
        return start_local(paths, slot, args, env_extra, drop_env, accelerate_config)

    def adopt(self, launch: RunLaunch, paths: RunPaths) -> RunHandle | None:
        # A local trainer cannot be re-attached as a child of a new supervisor (no Popen, no exit
        # code): the supervisor ends it (it checkpoints) and starts it again instead.
        return None
