"""Several training processes on CPU (gloo): torchrun with two processes, a signal that reaches one rank
only, exact resume, agreement with one process at the same effective batch, and two "machines" on
localhost."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from safetensors.numpy import load_file

from tests.conftest import REPO, TINY, run_train, train_env
from trainer.contract import node_devices_file, rng_file
from trainer.events import read_events

pytestmark = pytest.mark.e2e
# dropout 0: the ranks' dropout masks would differ from one process's; oversampling off: the same rows.
COMMON = [*TINY, "--loss", "bce", "--max-train-samples", "256", "--batch-size", "16", "--max-steps", "8",
          "--set", "dropout=0.0", "--set", "oversampling='none'", "--set", "torch_threads=1",
          "--set", "checkpoint_every_steps=4", "--set", "device_every_s=0"]


def torchrun(*args: str, nproc: int = 2, extra: tuple[str, ...] = ("--standalone",),
             wait: bool = True) -> subprocess.CompletedProcess | subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", *extra, "--nproc_per_node", str(nproc),
           "-m", "trainer.cli", *args]
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, env=train_env(OMP_NUM_THREADS="1"), timeout=300,
                              cwd=REPO)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=train_env(OMP_NUM_THREADS="1"), cwd=REPO, start_new_session=True)


def weights(run: Path) -> dict[str, np.ndarray]:
    return load_file(str(run / "checkpoints" / "latest" / "model.safetensors"))


def steps(run: Path) -> list[int]:
    return [e["step"] for e in read_events(run / "events.jsonl") if e["type"] == "step"]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp") / "run"
    res = torchrun(*COMMON, "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def test_two_processes_write_one_event_log_and_one_checkpoint_per_save(two_process_run: Path) -> None:
    events = read_events(two_process_run / "events.jsonl")
    starts = [e for e in events if e["type"] == "run_start"]
    assert len(starts) == 1 and starts[0]["world_size"] == 2  # rank 0 only writes events
    assert steps(two_process_run) == list(range(1, 9))
    saves = [e for e in events if e["type"] == "checkpoint" and e.get("kind") != "export"]
    assert [e["step"] for e in saves] == [4, 8]  # one checkpoint per save, not one per rank
    latest = two_process_run / "checkpoints" / "latest"
    assert sorted(p.name for p in latest.glob(rng_file(0).replace("0", "*"))) == [rng_file(0), rng_file(1)]  # each rank's RNG state
    assert events[-1]["type"] == "run_end" and events[-1]["status"] == "completed"


def test_two_processes_match_one_process_with_the_same_effective_batch(two_process_run: Path, tmp_path: Path) -> None:
    # Rank r takes batches r, r+2, …; one process with grad_accum 2 takes the same two batches per step.
    one = tmp_path / "one"
    res = run_train(*COMMON, "--set", "grad_accum=2", "--out", str(one))
    assert res.returncode == 0, res.stderr
    a, b = weights(two_process_run), weights(one)
    # Tolerance: the same batches and mean gradients, summed in another order (an all-reduce of two
    # gradients against accumulating them), so only float32 rounding differs: 1e-5 absolute after 8 AdamW
    # steps at lr 5e-5 is far below a real divergence (one differing batch moves weights by ~1e-4).
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-5, err_msg=key)
    loss_two = [e["loss"] for e in read_events(two_process_run / "events.jsonl") if e["type"] == "step"]
    loss_one = [e["loss"] for e in read_events(one / "events.jsonl") if e["type"] == "step"]
    np.testing.assert_allclose(loss_two, loss_one, rtol=1e-4)


def _worker_pids(launcher: subprocess.Popen) -> list[int]:
    return [c.pid for c in psutil.Process(launcher.pid).children(recursive=True)
            if "trainer.cli" in " ".join(c.cmdline())]


def test_a_signal_to_one_rank_stops_both_at_the_same_step_and_resume_is_exact(two_process_run: Path,
                                                                             tmp_path: Path) -> None:
    out = tmp_path / "run"
    slow = [*COMMON, "--set", "checkpoint_every_steps=0"]
    launcher = torchrun(*slow, "--out", str(out), wait=False)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(steps(out) if (out / "events.jsonl").exists() else []) < 2:
            time.sleep(0.1)
        workers = _worker_pids(launcher)
        assert len(workers) == 2
        rank1 = max(workers)  # torchrun starts rank 0 first
        os.kill(rank1, signal.SIGTERM)  # one rank only: the other learns it through the shared trigger
        launcher.wait(timeout=120)  # no rank left waiting in the checkpoint barrier
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    events = read_events(out / "events.jsonl")
    end = events[-1]
    assert end["type"] == "run_end" and end["status"] == "stopped"
    stopped_at = steps(out)[-1]
    assert stopped_at < 8 and (out / "checkpoints" / "latest").is_dir()
    # Resume, two processes again: the run continues with the same step numbers and ends where an
    # uninterrupted run ends.
    res = torchrun("--out", str(out), "--resume")
    assert res.returncode == 0, res.stderr[-3000:]
    assert steps(out) == list(range(1, 9))
    a, b = weights(two_process_run), weights(out)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-5, err_msg=key)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_machines_on_localhost_train_as_one_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    port = str(_free_port())
    # every node's first process reports its devices: node 0 into events.jsonl, node 1 into its own file
    nodes = [torchrun(*COMMON, "--set", "device_every_s=0.5", "--out", str(out), nproc=1, wait=False,
                      extra=("--nnodes", "2", "--node_rank", str(rank), "--master_addr", "127.0.0.1",
                             "--master_port", port)) for rank in (0, 1)]
    for node in nodes:
        node.wait(timeout=300)
    assert [n.returncode for n in nodes] == [0, 0], [n.stderr.read()[-2000:] for n in nodes]
    events = read_events(out / "events.jsonl")
    assert [e["world_size"] for e in events if e["type"] == "run_start"] == [2]
    assert steps(out) == list(range(1, 9)) and events[-1]["status"] == "completed"
    node0 = [e for e in events if e["type"] == "device"]
    node1 = read_events(out / node_devices_file(1))
    assert node0 and {e["node"] for e in node0} == {0}
    assert node1 and {e["type"] for e in node1} == {"device"} and {e["node"] for e in node1} == {1}
    assert all(e["host"] == socket.gethostname() and e["rss_mb"] > 0 for e in node0 + node1)

