"""Checkpoints without pickle, swaps that never lose a copy, and failed writes that leave the old one."""

from __future__ import annotations

import errno
import json
import os
import pathlib
import pickle
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from trainer import checkpoints, contract, durable
from trainer.contract import (BEST, BEST_META_FILE, LATEST, OLD_SUFFIX, TMP_SUFFIX, TRAINER_STATE_FILE, WEIGHTS_FILE,
                              CheckpointStateError, find_best, find_latest)


class FakeAccelerator:
    """The part of accelerate.Accelerator that trainer.checkpoints uses, for one process."""

    is_main_process = True
    num_processes = 1
    process_index = 0
    device = torch.device("cpu")
    scaler = None

    def __init__(self) -> None:
        self.step = 0

    def get_state_dict(self, model):
        return model.state_dict()

    def unwrap_model(self, model):
        return model

    def reduce(self, tensor, reduction="sum"):
        return tensor


class Marker:
    """Unpickling this creates ``path``: what a crafted checkpoint file would do, harmlessly."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (self.path,))


def _trained(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (s + 1))
    for _ in range(3):
        model(torch.randn(5, 4)).pow(2).mean().backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return model, optimizer, scheduler


def _state(step: int) -> dict:
    return {"step": step, "epoch": step / 10, "seed": 1, "total_steps": 10, "steps_per_epoch": 10,
            "best": {"metric": "dev_f1_macro@0.2", "value": None, "step": None}, "nonfinite_skipped": 0}


def _save(root: Path, step: int, fault=None):
    model, optimizer, scheduler = _trained(step)
    checkpoints.save_latest(FakeAccelerator(), root, _state(step), model, optimizer, scheduler, fault=fault)
    return model, optimizer, scheduler


def _disk_full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_latest_round_trip_restores_weights_optimizer_scheduler_and_rng(tmp_path):
    model, optimizer, scheduler = _trained()
    random.seed(3), np.random.seed(3), torch.manual_seed(3)
    acc = FakeAccelerator()
    acc.step = 12
    checkpoints.save_latest(acc, tmp_path, _state(6), model, optimizer, scheduler)
    expected = (random.random(), np.random.rand(), torch.rand(2))

    fresh = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 3))
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-2, betas=(0.8, 0.95))
    fresh_sched = torch.optim.lr_scheduler.LambdaLR(fresh_opt, lambda s: 1.0 / (s + 1))
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    acc2 = FakeAccelerator()
    state = checkpoints.load_latest(acc2, tmp_path / LATEST, fresh, fresh_opt, fresh_sched)

    assert state["step"] == 6 and acc2.step == 12
    assert (random.random(), np.random.rand()) == expected[:2] and torch.equal(torch.rand(2), expected[2])
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    want, got = optimizer.state_dict(), fresh_opt.state_dict()
    assert got["param_groups"] == want["param_groups"] and got["param_groups"][0]["betas"] == (0.8, 0.95)
    for pid, entries in want["state"].items():
        for name, value in entries.items():
            assert torch.equal(got["state"][pid][name], value), (pid, name)
    assert fresh_sched.state_dict()["last_epoch"] == 3 and fresh_sched.get_last_lr() == scheduler.get_last_lr()
    assert not (tmp_path / (LATEST + TMP_SUFFIX)).exists() and not (tmp_path / (LATEST + OLD_SUFFIX)).exists()


def test_tied_weights_save_and_load(tmp_path):
    model = torch.nn.Sequential(torch.nn.Embedding(5, 3), torch.nn.Linear(3, 5, bias=False))
    model[1].weight = model[0].weight  # shared storage, which safetensors refuses as such
    checkpoints.save_weights(model.state_dict(), tmp_path / WEIGHTS_FILE)
    model.load_state_dict(checkpoints.load_weights(tmp_path / WEIGHTS_FILE))


def test_resume_never_unpickles_files_planted_in_the_checkpoint(tmp_path):
    _save(tmp_path, 4)
    latest = tmp_path / LATEST
    marker = tmp_path / "pwned"
    # accelerate's names, and the ones a torch.load-based loader would open
    for name in ("custom_checkpoint_0.pkl", "random_states_0.pkl", "optimizer.bin", "scheduler.bin",
                 "scaler.pt", "pytorch_model.bin"):
        (latest / name).write_bytes(pickle.dumps(Marker(marker)))
    model, optimizer, scheduler = _trained(1)
    state = checkpoints.load_latest(FakeAccelerator(), latest, model, optimizer, scheduler)
    assert state["step"] == 4
    assert not marker.exists()


def test_an_accelerate_era_checkpoint_is_refused_in_one_line_without_unpickling(tmp_path):
    latest = tmp_path / LATEST
    latest.mkdir()
    (latest / TRAINER_STATE_FILE).write_text(json.dumps(_state(5)))
    marker = tmp_path / "pwned"
    for name in ("random_states_0.pkl", "optimizer.bin"):
        (latest / name).write_bytes(pickle.dumps(Marker(marker)))
    with pytest.raises(CheckpointStateError) as err:
        checkpoints.validate_latest(latest)
    assert str(err.value).count("\n") == 0 and str(latest) in str(err.value)
    assert not marker.exists()


def test_no_pickle_loader_in_the_trainer():
    for path in (REPO / "trainer").glob("*.py"):
        text = path.read_text()
        assert not re.search(r"\.load_state\(|torch\.load\(|pickle\.loads?\(|allow_pickle=True", text), path.name


@pytest.mark.parametrize("text, needle", [
    ('{"step": 4, "epoch": 0.4, "se', "not valid JSON"),
    (json.dumps({k: v for k, v in _state(4).items() if k != "best"}), "missing key 'best'"),
])
def test_torn_or_changed_trainer_state_is_one_line_naming_the_file(tmp_path, text, needle):
    _save(tmp_path, 4)
    (tmp_path / LATEST / TRAINER_STATE_FILE).write_text(text)
    with pytest.raises(CheckpointStateError) as err:
        checkpoints.validate_latest(tmp_path / LATEST)
    message = str(err.value)
    assert needle in message and TRAINER_STATE_FILE in message and "\n" not in message


def test_interrupted_best_swap_falls_back_to_best_old(tmp_path):
    weights = {"w": torch.arange(4.0)}
    checkpoints.save_best(weights, tmp_path, {"value": 0.3, "step": 2})
    # A kill between the two renames of a later swap: best.old is the only complete copy.
    os.replace(tmp_path / BEST, tmp_path / (BEST + OLD_SUFFIX))
    assert find_best(tmp_path) == tmp_path / (BEST + OLD_SUFFIX)
    loaded, meta = checkpoints.load_best(tmp_path)
    assert torch.equal(loaded["w"], weights["w"]) and meta["step"] == 2

    # The next swap keeps best.old until the new best is in place, even if it dies before that.
    (tmp_path / (BEST + TMP_SUFFIX)).mkdir()
    checkpoints.save_weights({"w": torch.ones(4)}, tmp_path / (BEST + TMP_SUFFIX) / WEIGHTS_FILE)
    real_replace = os.replace

    def replace(src, dst):
        if Path(src).name == BEST + TMP_SUFFIX:
            raise KeyboardInterrupt  # the kill, right before tmp becomes best
        real_replace(src, dst)

    os.replace = replace
    try:
        with pytest.raises(KeyboardInterrupt):
            durable.swap_folder(tmp_path / (BEST + TMP_SUFFIX), tmp_path / BEST)
    finally:
        os.replace = real_replace
    assert find_best(tmp_path) == tmp_path / (BEST + OLD_SUFFIX)

    checkpoints.save_best({"w": torch.ones(4)}, tmp_path, {"value": 0.4, "step": 3})
    assert find_best(tmp_path) == tmp_path / BEST
    assert sorted(p.name for p in tmp_path.iterdir()) == [BEST]
    assert json.loads((tmp_path / BEST / BEST_META_FILE).read_text())["step"] == 3


def test_interrupted_latest_swap_falls_back_to_latest_old(tmp_path):
    _save(tmp_path, 4)
    os.replace(tmp_path / LATEST, tmp_path / (LATEST + OLD_SUFFIX))
    found = find_latest(tmp_path)
    assert found == tmp_path / (LATEST + OLD_SUFFIX) and checkpoints.validate_latest(found)["step"] == 4
    _save(tmp_path, 6)
    assert find_latest(tmp_path) == tmp_path / LATEST and checkpoints.validate_latest(tmp_path / LATEST)["step"] == 6
    assert not (tmp_path / (LATEST + OLD_SUFFIX)).exists()


def test_disk_full_while_saving_latest_keeps_the_previous_one_and_no_tmp(tmp_path):
    _save(tmp_path, 4)
    with pytest.raises(OSError) as err:
        _save(tmp_path, 6, fault=_disk_full)  # after the weights are written into latest.tmp
    assert err.value.errno == errno.ENOSPC
    assert sorted(p.name for p in tmp_path.iterdir()) == [LATEST]
    assert checkpoints.validate_latest(tmp_path / LATEST)["step"] == 4


def test_disk_full_on_the_trainer_state_write_keeps_the_previous_latest(tmp_path, monkeypatch):
    _save(tmp_path, 4)
    monkeypatch.setattr(checkpoints, "write_json_atomic", _disk_full)
    with pytest.raises(OSError):
        _save(tmp_path, 6)
    assert sorted(p.name for p in tmp_path.iterdir()) == [LATEST]
    assert checkpoints.validate_latest(tmp_path / LATEST)["step"] == 4


def test_io_error_inside_the_swap_leaves_a_loadable_copy_and_no_tmp(tmp_path, monkeypatch):
    _save(tmp_path, 4)
    real_replace = os.replace

    def replace(src, dst):
        if Path(src).name == LATEST + TMP_SUFFIX:
            raise OSError(errno.EIO, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(checkpoints.os, "replace", replace)
    with pytest.raises(OSError):
        _save(tmp_path, 6)
    monkeypatch.setattr(checkpoints.os, "replace", real_replace)
    assert not (tmp_path / (LATEST + TMP_SUFFIX)).exists()
    found = find_latest(tmp_path)
    assert found is not None and checkpoints.validate_latest(found)["step"] == 4


def test_disk_full_while_saving_best_keeps_the_previous_best(tmp_path, monkeypatch):
    checkpoints.save_best({"w": torch.zeros(2)}, tmp_path, {"step": 1})
    monkeypatch.setattr(checkpoints, "write_json_atomic", _disk_full)  # weights written, meta fails
    with pytest.raises(OSError):
        checkpoints.save_best({"w": torch.ones(2)}, tmp_path, {"step": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == [BEST]
    loaded, meta = checkpoints.load_best(tmp_path)
    assert meta["step"] == 1 and torch.equal(loaded["w"], torch.zeros(2))


def test_a_failure_on_one_process_raises_on_all(tmp_path):
    class Peer(FakeAccelerator):
        num_processes = 2
        is_main_process = False

        def reduce(self, tensor, reduction="sum"):
            return tensor + 1  # the other process reported a failure

    with pytest.raises(OSError, match="another process"):
        checkpoints.raise_if_any_failed(Peer(), None)
    checkpoints.raise_if_any_failed(FakeAccelerator(), None)  # nobody failed: no error


def test_torn_weights_or_another_models_checkpoint_is_one_line_naming_the_file(tmp_path):
    _save(tmp_path, 4)
    latest = tmp_path / LATEST
    other = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Linear(5, 3))
    opt = torch.optim.AdamW(other.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    with pytest.raises(CheckpointStateError) as err:
        checkpoints.load_latest(FakeAccelerator(), latest, other, opt, sched)
    assert str(latest / WEIGHTS_FILE) in str(err.value) and "\n" not in str(err.value)

    model, optimizer, scheduler = _trained()
    data = (latest / contract.OPTIMIZER_FILE).read_bytes()
    (latest / contract.OPTIMIZER_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointStateError) as err:
        checkpoints.load_latest(FakeAccelerator(), latest, model, optimizer, scheduler)
    assert str(latest / contract.OPTIMIZER_FILE) in str(err.value) and "\n" not in str(err.value)
