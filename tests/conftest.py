"""Shared fixtures: a session-wide token cache, a goemo-train subprocess runner, and the one smoke pipeline
that several end-to-end tests read (run as Slurm jobs where a cluster is up)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _token_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    # One tokenisation cache for the whole session keeps every subprocess run fast and the
    # user's ~/.cache untouched.
    os.environ.setdefault("GOEMO_CACHE_DIR", str(tmp_path_factory.mktemp("goemo-cache")))


def train_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOEMO_FAULT")}
    env.update({"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    env.update(extra)
    return env


def run_train(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run goemo-train in a real subprocess (as users and the supervisor do)."""
    return subprocess.run([sys.executable, "-m", "trainer.cli", *args], capture_output=True, text=True,
                          env=env or train_env(), timeout=timeout, cwd=REPO)


# Small, fast settings shared by the end-to-end trainer tests. fp32 pinned: "auto" is bf16 on a CPU with
# native bf16, and the tests' exact comparisons (resume, two processes against one) assume fp32.
TINY = ["--model", "tiny-deberta", "--max-eval-samples", "200", "--set", "torch_threads=2", "--set", "precision='no'"]


# -- Slurm (tests/slurm/up.sh brings up a one-node cluster as root) --------------------------------------------
def slurm_up() -> bool:
    """Whether sbatch is here and a controller answers."""
    return shutil.which("sbatch") is not None and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0


NO_SLURM = "no Slurm cluster here (sbatch/sinfo missing or no controller); tests/slurm/up.sh brings one up as root"
# One job at a time on this machine's cores: two torch processes on two cores thrash.
SLURM_SETTINGS = ["--set", "pipeline.launcher=slurm", "--set", f"slurm.cpus_per_run={os.cpu_count() or 1}"]


class QueueWatch:
    """The job names squeue showed while it watched."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self.stop.is_set():
            out = subprocess.run(["squeue", "-h", "-o", "%j %T"], capture_output=True, text=True).stdout
            self.names |= {line.split()[0] for line in out.splitlines() if line.strip()}
            time.sleep(0.5)

    def __enter__(self) -> "QueueWatch":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


@pytest.fixture(scope="session")
def smoke_pipeline(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path, set[str] | None]:
    """The smoke preset end to end, headless, once per session: (result, pipeline folder, the job names
    squeue showed, or None when it ran locally). Where a Slurm cluster is up it runs as Slurm jobs, so that
    one pipeline serves both the contract tests and the Slurm launcher's (it is the suite's longest run);
    the local launcher's pipelines are tested end to end by every other pipeline test."""
    runs = tmp_path_factory.mktemp("smoke-runs")
    slurm = slurm_up()
    cmd = [sys.executable, "-m", "cockpit.cli", "--headless", "--preset", "smoke", "--runs-dir", str(runs),
           *(SLURM_SETTINGS if slurm else [])]
    with QueueWatch() if slurm else _NoWatch() as queue:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO, env=train_env())
    dirs = [p for p in runs.iterdir() if p.is_dir()]
    assert len(dirs) == 1, (dirs, res.stdout[-2000:], res.stderr[-2000:])
    return res, dirs[0], queue.names if slurm else None


class _NoWatch:
    names: set[str] = set()

    def __enter__(self) -> "_NoWatch":
        return self

    def __exit__(self, *exc: object) -> None:
        pass
