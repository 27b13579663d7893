"""How one run's process is started on this machine: ``goemo-train`` (or ``accelerate launch`` for a
multi-GPU slot) in its own session, with its output in the run folder."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cockpit.pipeline.slots import Slot
from trainer.contract import RunPaths


def process_start_time(pid: int) -> float | None:
    """The kernel's start time of a process, which (with the pid) names it uniquely across pid reuse."""
    try:
        import psutil

        return round(psutil.Process(pid).create_time(), 2)
    except Exception:  # gone, or not ours to see
        return None


@dataclass
class RunProcess:
    """A started run: its process and the files its output goes to."""

    proc: subprocess.Popen
    start_time: float | None
    files: tuple

    @property
    def pid(self) -> int:
        return self.proc.pid

    def close_files(self) -> None:
        for fh in self.files:
            fh.close()


def trainer_command(slot: Slot, args: list[str]) -> list[str]:
    if slot.device == "cuda" and len(slot.gpus) > 1:
        return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
                "--num_processes", str(len(slot.gpus)), "-m", "trainer.cli", *args]
    return [sys.executable, "-m", "trainer.cli", *args]


def start_local(paths: RunPaths, slot: Slot, args: list[str], env_extra: dict[str, str],
                drop_env: tuple[str, ...] = ()) -> RunProcess:
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
        proc = subprocess.Popen(trainer_command(slot, args), stdout=stdout, stderr=stderr,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                cwd=Path.cwd())
    except BaseException:
        stdout.close()
        stderr.close()
        raise
    return RunProcess(proc, process_start_time(proc.pid), (stdout, stderr))
