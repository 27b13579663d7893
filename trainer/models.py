"""Models: the embedded MiniLM, a tiny random DeBERTa-v2 for tests, or any hub id / local path,
wrapped as one multi-label classifier that returns 28 logits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer.model_source import ModelError, ModelSource

EXPORT_SPEC = "goemo_model.json"
HEAD_WEIGHTS = "classifier_head.safetensors"


def tiny_deberta_config(vocab_size: int, pad_token_id: int) -> Any:
    """A 2-layer, hidden-64 DeBERTa-v2 with v3's relative attention (same code path as deberta-v3-large)."""
    from transformers import DebertaV2Config

    return DebertaV2Config(
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
            config = tiny_deberta_config(len(tokenizer), tokenizer.pad_token_id)
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


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def export_classifier(model: EmotionClassifier, tokenizer: Any, out_dir: Path) -> None:
    """Write a self-contained model folder (safetensors + config + tokenizer) that load_exported reads."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    model.backbone.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    spec = {"pooling": model.pooling, "labels": list(model.backbone.config.id2label.values())}
    if model.pooling == "mean":
        head = {k: v.detach().cpu().contiguous() for k, v in model.classifier.state_dict().items()}
        save_file(head, str(out_dir / HEAD_WEIGHTS))
    (out_dir / EXPORT_SPEC).write_text(json.dumps(spec, indent=2))


def load_exported(model_dir: Path) -> tuple[EmotionClassifier, Any, list[str]]:
    """Load a folder written by export_classifier: the classifier, its tokenizer and label names."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    spec_path = model_dir / EXPORT_SPEC
    if not spec_path.exists():
        raise ModelError(f"{model_dir}: no {EXPORT_SPEC} (expected a folder exported by goemo-cockpit)")
    spec = json.loads(spec_path.read_text())
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if spec["pooling"] == "head":
        backbone = AutoModelForSequenceClassification.from_pretrained(model_dir)
        model = EmotionClassifier(backbone, "head", len(spec["labels"]))
    else:
        backbone = AutoModel.from_pretrained(model_dir)
        model = EmotionClassifier(backbone, "mean", len(spec["labels"]))
        model.classifier.load_state_dict(load_file(str(model_dir / HEAD_WEIGHTS)))
    model.eval()
    return model, tokenizer, spec["labels"]
