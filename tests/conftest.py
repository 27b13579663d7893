"""Shared fixtures: a session-wide token cache and a goemo-train subprocess runner."""

from __future__ import annotations

import os
import subprocess
import sys
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


# Small, fast settings shared by the end-to-end trainer tests.
TINY = ["--model", "tiny-deberta", "--max-eval-samples", "200", "--set", "torch_threads=2"]
