"""goemo-export-onnx and goemo-predict's ONNX backends: a single model and a 2-member ensemble (by either averaging
rule) predict like torch, the default backend follows its rule, and a backend that cannot run is one line with exit 2.

Tolerances: the fp32 graph gives torch's probabilities within 1e-4 (float32 rounding, measured ~1e-7); the int8
copy within INT8_TOLERANCE on the tiny random model (measured ~1e-3; on MiniLM quick the largest difference over
the 5,427 test texts is ~0.14 and the mean ~0.002, which bench/predict.py and onnx.json record as test macro-F1).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, train_env
from trainer.contract import (ENSEMBLE_FILE, ENSEMBLE_MEAN_LOGIT, EXIT_BAD_INPUT, INT8_THRESHOLDS_FILE, MEMBERS_DIR,
                              MODEL_CARD_FILE, ONNX_INT8_FILE, ONNX_META_FILE, ONNX_MODEL_FILE, THRESHOLDS_FILE)
from trainer.onnx_backend import (BACKEND_INT8, BACKEND_ONNX, BACKEND_TORCH, BackendRecord, OnnxMeta,
                                  default_backend, onnxruntime_present)
from trainer.taxonomy import goemotions_labels

LABELS = list(goemotions_labels())  # the export scores on the shipped test split, so the labels are GoEmotions'
MAX_LENGTH = 32
FP32_TOLERANCE = 1e-4
INT8_TOLERANCE = 0.02
SCORED_TEXTS = 48  # the first texts of test and dev: enough to exercise scoring, fast on two cores
TEXTS = ["thanks so much!", "this is awful", "I have no idea what you mean, could you explain that again?",
         "wow " * 60, "ok"]  # one past max_length, one of two tokens: truncation and padding both in play
needs_onnx = pytest.mark.skipif(not (onnxruntime_present() and importlib.util.find_spec("onnx")),
                                reason="onnxruntime/onnx not installed: pip install 'goemo-cockpit[onnx]'")


def _torch_export(out: Path, pooling: str, seed: int = 0) -> Path:
    """A real export of a tiny random DeBERTa with the GoEmotions labels (head or mean pooling)."""
    import torch
    from transformers import AutoModel

    from trainer.export_files import write_thresholds
    from trainer.model_source import resolve_model
    from trainer.models import (EmotionClassifier, build_classifier, export_classifier, load_tokenizer,
                                tiny_deberta_config)

    source = resolve_model("tiny-deberta")
    tokenizer = load_tokenizer(source)
    if pooling == "head":
        model = build_classifier(source, LABELS, tokenizer, dropout=0.1, seed=seed)
    else:
        torch.manual_seed(seed)
        config = tiny_deberta_config(len(tokenizer), tokenizer.pad_token_id)
        config.id2label = dict(enumerate(LABELS))
        config.label2id = {n: i for i, n in enumerate(LABELS)}
        model = EmotionClassifier(AutoModel.from_config(config), "mean", len(LABELS))
    export_classifier(model, tokenizer, out)
    write_thresholds(out, LABELS, np.full(len(LABELS), 0.5), 0.2, max_length=MAX_LENGTH)
    return out


def _ensemble(root: Path, rule: str | None = None) -> Path:
    """A 2-member ensemble folder laid out as trainer/ensemble.py writes it (``rule``: its ensemble_rule; None: a
    file written before the key, which averages probabilities)."""
    from trainer.export_files import write_thresholds

    for pooling, seed in (("head", 1), ("mean", 2)):
        _torch_export(root / MEMBERS_DIR / f"p3-{pooling}", pooling, seed)
    write_thresholds(root, LABELS, np.full(len(LABELS), 0.4), 0.2, max_length=MAX_LENGTH)
    body: dict = {"members": [{"run": "p3-head"}, {"run": "p3-mean"}]}
    (root / ENSEMBLE_FILE).write_text(json.dumps(body if rule is None else {**body, "ensemble_rule": rule}))
    (root / MODEL_CARD_FILE).write_text("# card\n\n## Training config\n\nx\n")
    return root


@pytest.fixture(scope="module")
def torch_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _torch_export(tmp_path_factory.mktemp("torch") / "final", "mean")


@pytest.fixture(scope="module")
def single(torch_only: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.onnx_export import export_onnx

    model = Path(shutil.copytree(torch_only, tmp_path_factory.mktemp("single") / "final"))
    export_onnx(model, max_texts=SCORED_TEXTS)
    return model


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.onnx_export import export_onnx

    model = _ensemble(tmp_path_factory.mktemp("ensemble") / "final")
    export_onnx(model, max_texts=SCORED_TEXTS)
    return model


@pytest.fixture(scope="module")
def logit_ensemble(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.onnx_export import export_onnx

    model = _ensemble(tmp_path_factory.mktemp("logit-ensemble") / "final", ENSEMBLE_MEAN_LOGIT)
    export_onnx(model, max_texts=SCORED_TEXTS)
    return model


def _probs(model: Path, backend: str) -> np.ndarray:
    from trainer.predict import Predictor

    predictor = Predictor(model, batch_size=2, backend=backend)  # batches of 2: padding inside a batch
    assert predictor.backend == backend
    return predictor.probabilities(TEXTS)


def _assert_like_torch(model: Path) -> None:
    expected = _probs(model, BACKEND_TORCH)
    assert np.abs(_probs(model, BACKEND_ONNX) - expected).max() <= FP32_TOLERANCE
    assert np.abs(_probs(model, BACKEND_INT8) - expected).max() <= INT8_TOLERANCE


@needs_onnx
def test_an_exported_model_predicts_like_torch(single):
    assert (single / ONNX_MODEL_FILE).is_file() and (single / ONNX_INT8_FILE).is_file()
    meta = json.loads((single / ONNX_META_FILE).read_text())
    assert meta["max_length"] == MAX_LENGTH and meta["opset"] and meta["scored_on"]["texts"] == SCORED_TEXTS
    assert all(isinstance(meta["backends"][b]["test_f1_macro"], float)
               for b in (BACKEND_TORCH, BACKEND_ONNX, BACKEND_INT8))
    _assert_like_torch(single)


@needs_onnx
def test_an_exported_ensemble_predicts_like_its_torch_self(ensemble):
    for run in ("p3-head", "p3-mean"):  # a graph per member: the average stays in goemo-predict
        assert (ensemble / MEMBERS_DIR / run / ONNX_MODEL_FILE).is_file()
        assert (ensemble / MEMBERS_DIR / run / ONNX_INT8_FILE).is_file()
    assert not (ensemble / ONNX_MODEL_FILE).exists()
    _assert_like_torch(ensemble)
    card = (ensemble / MODEL_CARD_FILE).read_text()
    assert "## Backends" in card and "| onnx-int8 |" in card


@needs_onnx
def test_an_exported_mean_logit_ensemble_predicts_like_its_torch_self(logit_ensemble):
    """Every backend averages the members' logits, as ensemble.json says, read back from each member's float32
    probabilities (trainer/ensemble_average.py): within 1e-6 of the hand formula, whatever gave them."""
    from trainer.predict import Predictor

    _assert_like_torch(logit_ensemble)
    for backend in (BACKEND_TORCH, BACKEND_ONNX, BACKEND_INT8):
        predictor = Predictor(logit_ensemble, batch_size=2, backend=backend)
        assert predictor.rule == ENSEMBLE_MEAN_LOGIT
        logits = [np.log(p.astype(np.float64) / (1.0 - p)) for p in predictor.member_probabilities(TEXTS)]
        np.testing.assert_allclose(predictor.probabilities(TEXTS), 1.0 / (1.0 + np.exp(-np.mean(logits, axis=0))),
                                   atol=1e-6)
    scores = json.loads((logit_ensemble / ONNX_META_FILE).read_text())["backends"]
    assert scores[BACKEND_ONNX]["test_f1_macro"] == pytest.approx(scores[BACKEND_TORCH]["test_f1_macro"], abs=1e-3)


@needs_onnx
def test_the_onnx_tokenizer_gives_transformers_ids(single):
    """The ONNX path tokenises with `tokenizers` alone; truncation and padding must be transformers' own."""
    from trainer.models import load_exported
    from trainer.onnx_backend import OnnxMember, read_onnx_meta

    meta = read_onnx_meta(single)
    assert meta is not None
    ids, mask = OnnxMember(single, BACKEND_ONNX, meta, MAX_LENGTH).encode(TEXTS)
    _, tokenizer, _ = load_exported(single)
    enc = tokenizer(TEXTS, truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="np")
    assert ids.shape[1] == MAX_LENGTH  # the long text was cut
    np.testing.assert_array_equal(ids, enc["input_ids"])
    np.testing.assert_array_equal(mask, enc["attention_mask"])


@needs_onnx
def test_the_onnx_backend_labels_a_text_without_importing_torch(single):
    """The cold start: onnxruntime and tokenizers only, never torch or transformers."""
    code = ("import sys; from trainer.predict import main; "
            f"rc = main(['--model', {str(single)!r}, '--backend', 'onnx-int8', '--json', 'thanks so much!']); "
            "assert rc == 0, rc; assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'imported'")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=train_env(),
                         timeout=120)
    assert res.returncode == 0, res.stderr
    row = json.loads(res.stdout)
    assert row["text"] == "thanks so much!" and list(row["scores"]) == LABELS


def _one_line_error(capfd: pytest.CaptureFixture[str], argv: list[str], says: str) -> None:
    from trainer.predict import main

    code = main(argv)
    out, err = capfd.readouterr()
    assert code == EXIT_BAD_INPUT and out == ""
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert says in err, err


@pytest.mark.parametrize("backend", [BACKEND_ONNX, BACKEND_INT8])
def test_an_onnx_backend_without_the_files_is_one_line(torch_only, capfd, backend):
    _one_line_error(capfd, ["--model", str(torch_only), "--backend", backend, "hello"],
                    "goemo-export-onnx --model" if onnxruntime_present() else "onnxruntime is not installed")


@needs_onnx
def test_a_member_without_its_graph_is_named(ensemble, tmp_path, capfd):
    model = Path(shutil.copytree(ensemble, tmp_path / "final"))
    (model / MEMBERS_DIR / "p3-mean" / ONNX_INT8_FILE).unlink()
    _one_line_error(capfd, ["--model", str(model), "--backend", BACKEND_INT8, "hi"],
                    f"{model / MEMBERS_DIR / 'p3-mean' / ONNX_INT8_FILE}: file not found")
    assert default_backend_of(model) == BACKEND_ONNX  # the default skips a backend whose files are not all there


def _without_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("onnxruntime", "onnx") else find_spec(name, *a))


def test_an_onnx_backend_without_the_extra_is_one_line(single, capfd, monkeypatch):
    _without_onnxruntime(monkeypatch)
    _one_line_error(capfd, ["--model", str(single), "--backend", BACKEND_ONNX, "hello"],
                    "--backend onnx: onnxruntime is not installed; expected the onnx extra")
    assert default_backend_of(single) == BACKEND_TORCH  # without the extra the default is torch, silently


def test_the_export_without_the_extra_or_a_model_is_one_line(torch_only, tmp_path, capfd, monkeypatch):
    from trainer.onnx_export import main

    assert main(["--model", str(tmp_path)]) == EXIT_BAD_INPUT
    _, err = capfd.readouterr()
    assert err.splitlines() == [f"goemo-export-onnx: error: {tmp_path}: not an exported model folder "
                                f"(no goemo_model.json or ensemble.json)"]
    _without_onnxruntime(monkeypatch)
    assert main(["--model", str(torch_only)]) == EXIT_BAD_INPUT
    _, err = capfd.readouterr()
    assert len(err.splitlines()) == 1 and "onnx extra" in err, err


def default_backend_of(model: Path) -> str:
    from trainer.predict import choose_backend

    return choose_backend(model)


def _meta(torch: float | None, onnx: float | None, int8: float | None, int8_thresholds: str = THRESHOLDS_FILE):
    return OnnxMeta(MAX_LENGTH, 0, "[PAD]", {
        BACKEND_TORCH: BackendRecord(None, THRESHOLDS_FILE, torch),
        BACKEND_ONNX: BackendRecord(ONNX_MODEL_FILE, THRESHOLDS_FILE, onnx),
        BACKEND_INT8: BackendRecord(ONNX_INT8_FILE, int8_thresholds, int8)})


@pytest.mark.parametrize("f1, expected", [
    ((0.520, 0.520, 0.516), BACKEND_INT8),  # int8 within 0.005 of torch: the fastest wins
    ((0.520, 0.520, 0.514), BACKEND_ONNX),  # int8 0.006 below: the fp32 graph
    ((0.520, 0.510, 0.500), BACKEND_TORCH),  # neither close enough
    ((0.520, None, None), BACKEND_TORCH),  # exported but not scored (--no-score)
    ((None, 0.5, 0.5), BACKEND_TORCH),  # nothing to compare with
])
def test_the_default_backend_is_the_fastest_within_tolerance(tmp_path, monkeypatch, f1, expected):
    monkeypatch.setattr("trainer.onnx_backend.onnxruntime_present", lambda: True)
    for name in (ONNX_MODEL_FILE, ONNX_INT8_FILE):
        (tmp_path / name).write_bytes(b"")
    assert default_backend(_meta(*f1), [tmp_path]) == expected
    (tmp_path / ONNX_INT8_FILE).unlink()
    assert default_backend(_meta(*f1), [tmp_path]) == (BACKEND_ONNX if expected == BACKEND_INT8 else expected)
    assert default_backend(None, [tmp_path]) == BACKEND_TORCH  # no onnx.json: no ONNX export


def test_a_folder_without_an_onnx_export_defaults_to_torch(torch_only):
    assert default_backend_of(torch_only) == BACKEND_TORCH


@needs_onnx
def test_int8_gets_its_own_thresholds_when_the_shipped_ones_cost_it_f1(single, tmp_path, monkeypatch):
    """With the tolerance pushed below zero every int8 score is 'too low': thresholds are tuned on dev for it,
    shipped beside it and used by --backend onnx-int8; running the export again keeps one card section."""
    from trainer import onnx_export
    from trainer.predict import Predictor

    model = Path(shutil.copytree(single, tmp_path / "final"))
    (model / MODEL_CARD_FILE).write_text("# card\n")
    monkeypatch.setattr(onnx_export, "F1_TOLERANCE", -1.0)
    meta = onnx_export.export_onnx(model, max_texts=SCORED_TEXTS)
    record = meta["backends"][BACKEND_INT8]
    assert record["thresholds"] == INT8_THRESHOLDS_FILE and "test_f1_macro_shipped_thresholds" in record
    tuned = json.loads((model / INT8_THRESHOLDS_FILE).read_text())
    assert tuned["labels"] == LABELS and tuned["tuned_on"] == "dev"
    assert Predictor(model, backend=BACKEND_INT8).thresholds == tuned["thresholds"]
    assert Predictor(model, backend=BACKEND_ONNX).thresholds == [0.5] * len(LABELS)  # fp32 keeps the shipped ones
    monkeypatch.setattr(onnx_export, "F1_TOLERANCE", 0.005)
    onnx_export.export_onnx(model, max_texts=SCORED_TEXTS)
    assert (model / MODEL_CARD_FILE).read_text().count("## Backends") == 1
