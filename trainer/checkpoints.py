"""Checkpoints: ``latest`` (everything to continue exactly, via accelerate's save_state) and
``best`` (weights only, chosen by dev macro-F1 at the primary threshold). Both are replaced
atomically so a kill mid-write never leaves a torn checkpoint behind."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

LATEST = "latest"
BEST = "best"
STATE_FILE = "trainer_state.json"


def _swap_in(tmp: Path, final: Path) -> None:
    """Replace ``final`` by ``tmp`` so that one complete copy exists at every moment."""
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)


def save_latest(accelerator: Any, root: Path, state: dict[str, Any]) -> Path:
    """Save model, optimizer, scheduler, RNG states and the trainer state to ``root/latest``."""
    final = root / LATEST
    tmp = root / (LATEST + ".tmp")
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(output_dir=str(tmp), safe_serialization=True)
    if accelerator.is_main_process:
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=1))
        _swap_in(tmp, final)
    accelerator.wait_for_everyone()
    return final


def find_latest(root: Path) -> Path | None:
    """The newest complete ``latest`` checkpoint (or the previous one if a swap was interrupted)."""
    for name in (LATEST, LATEST + ".old"):
        path = root / name
        if (path / STATE_FILE).exists():
            return path
    return None


def read_state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / STATE_FILE).read_text())


def save_best(model_state: dict[str, Any], root: Path, meta: dict[str, Any]) -> Path:
    """Save weights only (safetensors) and what made them best."""
    from safetensors.torch import save_file

    final = root / BEST
    tmp = root / (BEST + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model_state.items()}, str(tmp / "model.safetensors"))
    (tmp / "best.json").write_text(json.dumps(meta, indent=1))
    _swap_in(tmp, final)
    return final


def load_best(root: Path) -> dict[str, Any] | None:
    from safetensors.torch import load_file

    path = root / BEST / "model.safetensors"
    return load_file(str(path)) if path.exists() else None
