"""Checkpoints: ``latest`` (everything to continue exactly) and ``best`` (weights only, chosen by
dev macro-F1 at the primary threshold), in formats that load without unpickling anything.

``latest/`` holds
  model.safetensors       the unwrapped model's weights
  optimizer.safetensors   the optimizer's state tensors; its metadata holds the rest as JSON
  scheduler.json          the LR scheduler's state_dict
  scaler.json             the fp16 grad scaler's state (fp16 runs only)
  rng-<rank>.json         python, numpy, torch CPU (and CUDA) RNG states of each process
  trainer_state.json      step, epoch, seed, schedule, best, data order, resolved config
``best/`` holds model.safetensors and best.json.

A save writes ``<name>.tmp/`` (every file fsynced), then swaps it in: the previous copy becomes
``<name>.old`` until the new one is in place, so one complete copy exists at every moment and
readers (contract.find_latest / find_best) fall back to ``.old`` after a kill inside the swap.
A failed save (disk full, I/O error) removes its ``.tmp`` and leaves the previous copy alone.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np

from trainer.contract import (BEST, BEST_META_FILE, LATEST, OPTIMIZER_FILE, PROBS_FILES, SCALER_FILE, SCHEDULER_FILE,
                              TMP_SUFFIX, TRAINER_STATE_FILE, WEIGHTS_FILE, CheckpointStateError, find_best,
                              read_checkpoint_state, rng_file)
from trainer.durable import folder_file_mode, swap_folder, write_atomic, write_json_atomic
from trainer.file_reads import read_json

# Keys inside the optimizer file's metadata.
_OPTIMIZER_META_KEY = "goemo_optimizer"
_TENSOR_REF = "__tensor__"


def required_files(rank: int = 0) -> tuple[str, ...]:
    """Files every ``latest`` checkpoint has (scaler.json only exists for fp16 runs)."""
    return (TRAINER_STATE_FILE, WEIGHTS_FILE, OPTIMIZER_FILE, SCHEDULER_FILE, rng_file(rank))


# -- durable folder swaps -------------------------------------------------------------------------
def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- tensors ------------------------------------------------------------------------------------------
def plain_tensors(state: dict[str, Any]) -> dict[str, Any]:
    """CPU, contiguous tensors that share no storage (safetensors refuses shared ones, e.g. tied weights)."""
    out: dict[str, Any] = {}
    seen: set[tuple[int, int]] = set()
    for key, value in state.items():
        tensor = value.detach().cpu().contiguous()
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset())
        if tensor.numel() and ident in seen:
            tensor = tensor.clone()
        seen.add(ident)
        out[key] = tensor
    return out


def _save_tensors(tensors: dict[str, Any], path: Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=metadata)
    os.chmod(path, folder_file_mode(path.parent))  # like every other file of the run folder
    _fsync_file(path)


def save_weights(model_state: dict[str, Any], path: Path) -> None:
    _save_tensors(plain_tensors(model_state), path)


def load_weights(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(path))


# -- optimizer ------------------------------------------------------------------------------------------
def save_optimizer(optimizer_state: dict[str, Any], path: Path) -> None:
    """An optimizer state_dict as safetensors: tensors by ``state.<param>.<name>``, the rest as JSON metadata."""
    tensors: dict[str, Any] = {}
    state: dict[str, dict[str, Any]] = {}
    for pid, entries in optimizer_state["state"].items():
        row: dict[str, Any] = {}
        for name, value in entries.items():
            if hasattr(value, "detach"):
                key = f"state.{pid}.{name}"
                tensors[key] = value.detach().cpu().contiguous()
                row[name] = {_TENSOR_REF: key}
            else:
                row[name] = value
        state[str(pid)] = row
    meta = {"state": state, "param_groups": optimizer_state["param_groups"]}
    _save_tensors(tensors, path, metadata={_OPTIMIZER_META_KEY: json.dumps(meta)})


def load_optimizer(path: Path, like: dict[str, Any]) -> dict[str, Any]:
    """The state_dict written by save_optimizer. ``like`` (the live optimizer's state_dict) restores
    tuples that JSON turned into lists (AdamW's betas)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta_text = (fh.metadata() or {}).get(_OPTIMIZER_META_KEY)
        tensors = {key: fh.get_tensor(key) for key in fh.keys()}
    if meta_text is None:
        raise CheckpointStateError(f"{path}: no optimizer metadata (expected a file written by goemo-train)")
    meta = json.loads(meta_text)

    def value(v: Any) -> Any:
        if isinstance(v, dict) and set(v) == {_TENSOR_REF}:
            return tensors[v[_TENSOR_REF]]
        return v

    state = {int(pid): {name: value(v) for name, v in row.items()} for pid, row in meta["state"].items()}
    groups = meta["param_groups"]
    for group, live in zip(groups, like.get("param_groups", [])):
        for key, v in group.items():
            if isinstance(live.get(key), tuple) and isinstance(v, list):
                group[key] = tuple(v)
    return {"state": state, "param_groups": groups}


# -- RNG states ------------------------------------------------------------------------------------------
def _bytes_of(tensor: Any) -> str:
    return base64.b64encode(tensor.cpu().numpy().tobytes()).decode("ascii")


def _tensor_of(text: str) -> Any:
    import torch

    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


def capture_rng() -> dict[str, Any]:
    """This process's RNG states as plain JSON data."""
    import numpy as np
    import torch

    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
        "torch": _bytes_of(torch.get_rng_state()),
    }
    # Only a process that uses CUDA has CUDA RNG state worth keeping (and asking would start a context).
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [_bytes_of(s) for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(_tensor_of(state["torch"]))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([_tensor_of(s) for s in cuda])


# -- multi-process agreement -------------------------------------------------------------------------
def raise_if_any_failed(accelerator: Any, error: BaseException | None, cleanup: Path | None = None) -> None:
    """A collective: every process raises if any process failed, so none waits forever at a barrier
    for one that gave up. The main process removes ``cleanup`` (the half-written .tmp) first."""
    failed = error is not None
    if accelerator.num_processes > 1:
        import torch

        flag = torch.tensor([1 if failed else 0], device=accelerator.device)
        failed = bool(accelerator.reduce(flag, reduction="sum").item())
    if not failed:
        return
    if cleanup is not None and accelerator.is_main_process:
        _remove(cleanup)
    if error is not None:
        raise error
    raise OSError(errno.EIO, "checkpoint failed on another process")


# -- latest ---------------------------------------------------------------------------------------------
def save_latest(accelerator: Any, root: Path, state: dict[str, Any], model: Any, optimizer: Any, scheduler: Any,
                fault: Callable[[], None] | None = None) -> Path:
    """Save model, optimizer, scheduler, RNG states and the trainer state to ``root/latest``.

    Every process calls this (collectives inside). The main process writes the shared files, each
    process its own RNG file. ``fault`` (tests and drills) runs after the weights are written.
    Raises OSError when any process failed; the previous ``latest`` is then untouched.
    """
    final = root / LATEST
    tmp = root / (LATEST + TMP_SUFFIX)
    main = accelerator.is_main_process
    error: BaseException | None = None
    if main:
        try:
            root.mkdir(parents=True, exist_ok=True)
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir()
        except OSError as exc:
            error = exc
    raise_if_any_failed(accelerator, error)  # also the barrier: tmp exists for everyone from here
    model_state = accelerator.get_state_dict(model)  # a collective under sharded backends
    try:
        rng = {"accelerator_step": int(getattr(accelerator, "step", 0)), **capture_rng()}
        write_atomic(tmp / rng_file(accelerator.process_index), json.dumps(rng, allow_nan=False))
        if main:
            save_weights(model_state, tmp / WEIGHTS_FILE)
            if fault is not None:
                fault()
            save_optimizer(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
            write_json_atomic(tmp / SCHEDULER_FILE, scheduler.state_dict())
            scaler = getattr(accelerator, "scaler", None)
            if scaler is not None:
                write_json_atomic(tmp / SCALER_FILE, scaler.state_dict())
            write_json_atomic(tmp / TRAINER_STATE_FILE, state)  # last: its presence marks a finished folder
    except Exception as exc:  # noqa: BLE001 - reported to every process, re-raised below
        error = exc
    raise_if_any_failed(accelerator, error, cleanup=tmp)
    if main:
        try:
            swap_folder(tmp, final)
        except OSError as exc:
            error = exc
    raise_if_any_failed(accelerator, error, cleanup=tmp)
    return final


def validate_latest(checkpoint: Path, rank: int = 0) -> dict[str, Any]:
    """The trainer state of a ``latest`` checkpoint after checking its files are all there (cheap: no
    tensors are read). CheckpointStateError (one line naming the file) otherwise."""
    state = read_checkpoint_state(checkpoint)
    for name in required_files(rank):
        if not (checkpoint / name).is_file():
            raise CheckpointStateError(f"{checkpoint / name}: file not found (a checkpoint written by an older "
                                       "goemo-train, or an incomplete copy); cannot resume from it")
    return state


def load_latest(accelerator: Any, checkpoint: Path, model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    """Restore what save_latest wrote, on every process; returns the trainer state. Reads safetensors and
    JSON only: a stray pickle in the folder is never opened."""
    state = validate_latest(checkpoint, accelerator.process_index)
    path = checkpoint / WEIGHTS_FILE
    try:
        accelerator.unwrap_model(model).load_state_dict(load_weights(path))
        path = checkpoint / OPTIMIZER_FILE
        optimizer.load_state_dict(load_optimizer(path, optimizer.state_dict()))
        path = checkpoint / SCHEDULER_FILE
        scheduler.load_state_dict(_read_json(path))
        scaler = getattr(accelerator, "scaler", None)
        path = checkpoint / SCALER_FILE
        if scaler is not None and path.is_file():
            scaler.load_state_dict(_read_json(path))
        path = checkpoint / rng_file(accelerator.process_index)
        rng = _read_json(path)
        if hasattr(accelerator, "step"):
            accelerator.step = int(rng.get("accelerator_step", 0))
        restore_rng(rng)
    except (OSError, CheckpointStateError):
        raise
    except Exception as exc:  # torn tensors, another model's weights, a changed optimizer: one line, the file
        lines = str(exc).strip().splitlines()
        raise CheckpointStateError(f"{path}: cannot restore it ({type(exc).__name__}: "
                                   f"{lines[0] if lines else 'no detail'})") from None
    return state


def _read_json(path: Path) -> Any:
    return read_json(path, "the JSON that save_latest writes", CheckpointStateError)


# -- best -----------------------------------------------------------------------------------------------
def save_best(model_state: dict[str, Any], root: Path, meta: dict[str, Any],
              dev: tuple[np.ndarray, np.ndarray] | None = None) -> Path:
    """Save weights only (safetensors) and what made them best (main process only), with the dev
    probabilities and labels that scored them: what a paired comparison of two runs needs (issue 19).

    Raises OSError on a failed write; the previous ``best`` is then untouched and no .tmp is left.
    """
    final = root / BEST
    tmp = root / (BEST + TMP_SUFFIX)
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        save_weights(model_state, tmp / WEIGHTS_FILE)
        write_json_atomic(tmp / BEST_META_FILE, meta)
        if dev is not None:
            np.save(tmp / PROBS_FILES[0], np.asarray(dev[0], dtype=np.float32))
            np.save(tmp / PROBS_FILES[2], np.asarray(dev[1]).astype(np.uint8))
        swap_folder(tmp, final)
    except BaseException:
        _remove(tmp)
        raise
    return final


def load_best(root: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Weights and meta of ``root/best`` (or ``best.old`` after an interrupted swap); None without one."""
    folder = find_best(root)
    if folder is None:
        return None
    meta_path = folder / BEST_META_FILE
    meta = _read_json(meta_path) if meta_path.is_file() else {}
    return load_weights(folder / WEIGHTS_FILE), meta

