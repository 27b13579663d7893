"""Models: the embedded MiniLM, a tiny random DeBERTa-v2 for tests, or any hub id / local path,
wrapped as one multi-label classifier that returns 28 logits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer.contract import HEAD_WEIGHTS_FILE, MODEL_META_FILE, WEIGHTS_FILE
from trainer.durable import write_json_atomic
from trainer.export_files import read_export_spec
from trainer.file_reads import read_json
from trainer.model_source import ModelError, ModelSource


def tiny_deberta_config(vocab_size: int, pad_token_id: int, dropout: float = 0.1) -> Any:
    """A 2-layer, hidden-64 DeBERTa-v2 with v3's relative attention (same code path as deberta-v3-large).

    Random weights have no pretrained dropout to keep, so the run's ``dropout`` sets all of it (the
    encoder's and the head's): with 0 a run is deterministic given its batches, which the multi-process
    tests rely on."""
    from transformers import DebertaV2Config

    return DebertaV2Config(
        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
        vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, max_position_embeddings=512, type_vocab_size=0,
        relative_attention=True, max_relative_positions=-1, position_buckets=256,
        norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type=["p2c", "c2p"],
        position_biased_input=False, layer_norm_eps=1e-7, pooler_hidden_size=64,
        pooler_hidden_act="gelu", pooler_dropout=0.0, pad_token_id=pad_token_id,
    )


class EmotionClassifier(nn.Module):
    """A transformer encoder with a 28-way multi-label head; ``forward`` returns logits.

    ``pooling="head"`` uses the model's own sequence-classification head (DeBERTa's
    context pooler, BERT's CLS pooler); ``"mean"`` mean-pools token states over the
    attention mask into a new linear layer, which is what sentence-transformers
    checkpoints such as MiniLM were trained for.
    """

    def __init__(self, backbone: nn.Module, pooling: str, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        if pooling == "mean":
            self.dropout = nn.Dropout(dropout)
            self.classifier = nn.Linear(backbone.config.hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "head":
            return self.backbone(input_ids=input_ids, attention_mask=attention_mask).logits
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self.classifier(self.dropout(pooled))

    def head_parameter_names(self) -> set[str]:
        """Parameters that start from scratch (the classifier, and the pooler of a head model)."""
        return {n for n, _ in self.named_parameters() if "classifier" in n or "pooler" in n}


def _label_kwargs(label_names: list[str]) -> dict[str, Any]:
    return {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {n: i for i, n in enumerate(label_names)},
        "problem_type": "multi_label_classification",
    }


def load_tokenizer(source: ModelSource) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source.tokenizer_path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"model {source.name!r}: cannot load its tokenizer ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def build_classifier(source: ModelSource, label_names: list[str], tokenizer: Any, dropout: float,
                     seed: int) -> EmotionClassifier:
    """Instantiate the classifier (pretrained weights, or seeded random ones for tiny-deberta)."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    torch.manual_seed(seed)  # the new head (and tiny-deberta) start from the same weights for a seed
    labels = _label_kwargs(label_names)
    try:
        if source.path is None:
            config = tiny_deberta_config(len(tokenizer), tokenizer.pad_token_id, dropout)
            for key, value in labels.items():
                setattr(config, key, value)
            backbone = AutoModelForSequenceClassification.from_config(config)
        elif source.pooling == "head":
            backbone = AutoModelForSequenceClassification.from_pretrained(
                source.path, ignore_mismatched_sizes=True, **labels
            )
        else:
            backbone = AutoModel.from_pretrained(source.path, add_pooling_layer=False) \
                if _is_bert_like(source.path) else AutoModel.from_pretrained(source.path)
            for key, value in labels.items():
                setattr(backbone.config, key, value)
    except (OSError, ValueError) as exc:
        raise ModelError(f"model {source.name!r}: cannot load ({_first_line(exc)})") from None
    return EmotionClassifier(backbone, source.pooling, len(label_names), dropout)


def _is_bert_like(path: str) -> bool:
    cfg = Path(path) / "config.json"
    return cfg.exists() and json.loads(cfg.read_text()).get("model_type") == "bert"


def compile_in_place(model: nn.Module, backend: str = "inductor") -> None:
    """torch.compile the model's forward with dynamic shapes (batch widths change every step).

    In place (``nn.Module.compile``), not ``torch.compile(model)``: checkpoints must save and load the plain
    module's state_dict, and a wrapper would prefix every key with ``_orig_mod.``, so that a compiled run's
    checkpoint would not load into an eager model (an export, goemo-predict, a resume with compile off).
    """
    model.compile(dynamic=True, backend=backend)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def export_classifier(model: EmotionClassifier, tokenizer: Any, out_dir: Path) -> None:
    """Write a self-contained model folder (safetensors + config + tokenizer) that load_exported reads."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    model.backbone.save_pretrained(out_dir, safe_serialization=True)
    saved = tokenizer.save_pretrained(out_dir)
    # Recorded so a loader can tell a folder that lost its tokenizer files from one that never had them
    tokenizer_files = sorted({Path(f).name for f in saved if (out_dir / Path(f).name).is_file()})
    spec = {"pooling": model.pooling, "labels": list(model.backbone.config.id2label.values()),
            "tokenizer_files": tokenizer_files}
    if model.pooling == "mean":
        head = {k: v.detach().cpu().contiguous() for k, v in model.classifier.state_dict().items()}
        save_file(head, str(out_dir / HEAD_WEIGHTS_FILE))
    write_json_atomic(out_dir / MODEL_META_FILE, spec)  # last: its presence marks a complete export


# Plain English words every tokenizer of an English model knows: all of them unknown means lost vocab files
TOKENIZER_PROBE = "thank you so much, this is great"


def _check_safetensors(path: Path, what: str) -> None:
    """Open a safetensors file's header: a truncated file fails here, named, instead of deep in a loader."""
    from safetensors import safe_open

    if not path.is_file():
        raise ModelError(f"{path}: file not found (expected {what})")
    try:
        with safe_open(str(path), framework="pt") as fh:
            fh.keys()
    except Exception as exc:  # SafetensorError, OSError: whatever the reader says, the file is unusable
        raise ModelError(f"{path}: truncated or not a safetensors file ({_first_line(exc)}); expected {what}") from None


def _weight_files(model_dir: Path) -> list[Path]:
    """The safetensors files holding the backbone: one file, or the shards its index names."""
    from transformers.utils import SAFE_WEIGHTS_INDEX_NAME

    single, index = model_dir / WEIGHTS_FILE, model_dir / SAFE_WEIGHTS_INDEX_NAME
    if single.exists() or not index.exists():
        return [single]
    expected = "the weight map export wrote"
    data = read_json(index, expected, ModelError)
    try:
        shards = sorted(set(data["weight_map"].values()))
    except (KeyError, TypeError, AttributeError):
        raise ModelError(f"{index}: no 'weight_map' table of shard files; expected {expected}") from None
    return [model_dir / str(s) for s in shards]


def _load_tokenizer_from(model_dir: Path, spec: dict[str, Any]) -> Any:
    from transformers import AutoTokenizer

    files = spec.get("tokenizer_files")
    expected = f"the tokenizer files export wrote: {', '.join(files)}" if files else "the tokenizer files export wrote"
    for name in files or ():
        if not (model_dir / name).is_file():
            raise ModelError(f"{model_dir / name}: file not found; expected {expected}")
        if name.endswith(".json"):  # a truncated one would fail deep inside transformers, unnamed
            read_json(model_dir / name, expected, ModelError)
    try:
        return AutoTokenizer.from_pretrained(model_dir)
    except Exception as exc:  # a broken file surfaces as JSON, type or attribute errors from deep inside
        raise ModelError(f"{model_dir}: cannot load the tokenizer ({_first_line(exc)}); expected {expected}") from None


def _check_tokenizer(tokenizer: Any, model: EmotionClassifier, model_dir: Path) -> None:
    """The tokenizer knows plain English words and yields ids the model has embeddings for.

    Without its vocabulary files transformers still builds a tokenizer, one that maps every word
    to the unknown token, and predictions would look fine while meaning nothing.
    """
    try:
        words = tokenizer(TOKENIZER_PROBE, add_special_tokens=False)["input_ids"]
        ids = tokenizer(TOKENIZER_PROBE)["input_ids"]
    except Exception as exc:
        raise ModelError(f"{model_dir}: the tokenizer fails on plain text ({_first_line(exc)}); "
                         "expected the tokenizer files export wrote") from None
    unk = tokenizer.unk_token_id
    if not words or (unk is not None and all(i == unk for i in words)):
        raise ModelError(f"{model_dir}: the tokenizer knows no word of {TOKENIZER_PROBE!r} (its vocabulary "
                         "files are missing or broken); expected the tokenizer files export wrote")
    rows = model.backbone.get_input_embeddings().num_embeddings
    if max(ids) >= rows:
        raise ModelError(f"{model_dir}: the tokenizer yields token id {max(ids)} but the model has {rows} "
                         "embeddings; expected the tokenizer the model was trained with")


def _load_backbone(model_dir: Path, spec: dict[str, Any]) -> nn.Module:
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification
    from transformers.utils import CONFIG_NAME

    config_path = model_dir / CONFIG_NAME
    if not config_path.is_file():
        raise ModelError(f"{config_path}: file not found (expected the model config export wrote)")
    try:
        config = AutoConfig.from_pretrained(model_dir)
    except Exception as exc:
        raise ModelError(f"{config_path}: cannot read it ({_first_line(exc)}); "
                         "expected the model config export wrote") from None
    n_labels = len(spec["labels"])
    if spec["pooling"] == "head" and config.num_labels != n_labels:
        raise ModelError(f"{model_dir / MODEL_META_FILE}: {n_labels} labels, but {config_path} gives the model "
                         f"{config.num_labels} outputs; expected one output per label")
    weights = _weight_files(model_dir)
    for path in weights:
        _check_safetensors(path, "the model weights export wrote")
    loader = AutoModelForSequenceClassification if spec["pooling"] == "head" else AutoModel
    try:
        backbone, info = loader.from_pretrained(model_dir, config=config, output_loading_info=True)
    except Exception as exc:
        raise ModelError(f"{model_dir}: cannot load the model weights ({_first_line(exc)}); "
                         "expected the weights and config export wrote") from None
    # Mean pooling never reads a pooler: one missing from a sentence-transformers export is fine
    missing = sorted(k for k in info.get("missing_keys", ())
                     if not (spec["pooling"] == "mean" and k.startswith("pooler.")))
    wrong = sorted(str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys", ()))
    if missing or wrong:
        what = f"lacks {len(missing)} weight(s) the model needs (first: {missing[0]})" if missing \
            else f"has {len(wrong)} weight(s) of the wrong shape (first: {wrong[0]})"
        raise ModelError(f"{weights[0] if len(weights) == 1 else model_dir}: {what}; "
                         "expected the full weights export wrote")
    return backbone


def _load_head(model: EmotionClassifier, model_dir: Path) -> None:
    from safetensors.torch import load_file

    path = model_dir / HEAD_WEIGHTS_FILE
    what = "the classifier head that export writes for a mean-pooled model"
    _check_safetensors(path, what)
    try:
        head = load_file(str(path))
    except Exception as exc:
        raise ModelError(f"{path}: cannot read it ({_first_line(exc)}); expected {what}") from None
    want = {k: tuple(v.shape) for k, v in model.classifier.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in head.items()}
    if got != want:
        raise ModelError(f"{path}: holds {got}, expected {want} ({what}, one output per label)")
    model.classifier.load_state_dict(head)


def load_exported(model_dir: Path) -> tuple[EmotionClassifier, Any, list[str]]:
    """Load a folder written by export_classifier: the classifier, its tokenizer and label names.

    Every defect of the folder (a missing or truncated file, a wrong-shaped goemo_model.json, a
    tokenizer without its vocabulary) raises ModelError, one line naming the file, before any
    prediction is made.
    """
    spec = read_export_spec(model_dir)
    labels: list[str] = spec["labels"]
    backbone = _load_backbone(model_dir, spec)  # first: the tokenizer loader reads config.json too
    model = EmotionClassifier(backbone, spec["pooling"], len(labels))
    if spec["pooling"] == "mean":
        _load_head(model, model_dir)
    tokenizer = _load_tokenizer_from(model_dir, spec)
    _check_tokenizer(tokenizer, model, model_dir)
    model.eval()
    return model, tokenizer, labels
