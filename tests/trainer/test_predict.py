"""goemo-predict on exported model folders: a good one predicts; a broken one exits 2 with one line naming the file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import REPO, train_env
from trainer.contract import (EXIT_BAD_INPUT, EXIT_OK, HEAD_WEIGHTS_FILE, MODEL_META_FILE, THRESHOLDS_FILE,
                              WEIGHTS_FILE)
from trainer.predict import main

LABELS = [f"label_{i}" for i in range(28)]
TOKENIZER_JSON = "tokenizer.json"  # what transformers' fast tokenizers save
TOKENIZER_CONFIG = "tokenizer_config.json"
CONFIG = "config.json"


def _export(out: Path, pooling: str) -> Path:
    """A real export of a tiny random DeBERTa (head pooling, or mean pooling with its own head file)."""
    import torch
    from transformers import AutoModel

    from trainer.model_source import resolve_model
    from trainer.models import (EmotionClassifier, build_classifier, export_classifier, load_tokenizer,
                                tiny_deberta_config)

    source = resolve_model("tiny-deberta")
    tokenizer = load_tokenizer(source)
    if pooling == "head":
        model = build_classifier(source, LABELS, tokenizer, dropout=0.1, seed=0)
    else:  # tiny-deberta builds a head model; the mean-pooled one wraps the bare encoder, as MiniLM's does
        torch.manual_seed(0)
        config = tiny_deberta_config(len(tokenizer), tokenizer.pad_token_id)
        config.id2label = dict(enumerate(LABELS))
        config.label2id = {n: i for i, n in enumerate(LABELS)}
        model = EmotionClassifier(AutoModel.from_config(config), "mean", len(LABELS))
    export_classifier(model, tokenizer, out)
    # as trainer/loop.py's export writes it
    (out / THRESHOLDS_FILE).write_text(json.dumps({"labels": LABELS, "thresholds": [0.5] * len(LABELS),
                                                   "tuned_on": "dev"}))
    return out


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    return {pooling: _export(root / pooling, pooling) for pooling in ("head", "mean")}


@pytest.fixture
def folder(exports: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    """A fresh copy of an export, free to break."""
    def copy(pooling: str = "head") -> Path:
        return Path(shutil.copytree(exports[pooling], tmp_path / pooling))
    return copy


def _predict(capfd: pytest.CaptureFixture[str], model: Path, *texts: str) -> tuple[int, str, str]:
    code = main(["--model", str(model), "--json", *(texts or ("thanks so much!",))])
    out, err = capfd.readouterr()
    return code, out, err


def _assert_one_line_error(code: int, out: str, err: str, path: Path) -> str:
    assert code == EXIT_BAD_INPUT, (out, err)
    assert out == ""  # no labels printed for a broken model
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"goemo-predict: error: {path}"), err
    assert "Traceback" not in err
    return lines[0]


def _spec(model: Path) -> dict:
    return json.loads((model / MODEL_META_FILE).read_text())


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("pooling", ["head", "mean"])
def test_a_good_export_predicts_every_label(folder, capfd, pooling):
    model = folder(pooling)
    assert (model / HEAD_WEIGHTS_FILE).is_file() == (pooling == "mean")
    assert _spec(model)["tokenizer_files"]  # export records what a loader must find
    code, out, err = _predict(capfd, model, "thanks so much!", "this is awful")
    assert code == EXIT_OK, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in rows] == ["thanks so much!", "this is awful"]
    assert all(list(r["scores"]) == LABELS and set(r["labels"]) <= set(LABELS) for r in rows)


@pytest.mark.parametrize("name", [TOKENIZER_JSON, TOKENIZER_CONFIG])
def test_a_missing_tokenizer_file_is_named(folder, capfd, name):
    model = folder("head")
    (model / name).unlink()
    line = _assert_one_line_error(*_predict(capfd, model), model / name)
    assert "file not found" in line and TOKENIZER_JSON in line  # says which files export wrote


def test_a_truncated_tokenizer_file_is_named(folder, capfd):
    model = folder("head")
    _truncate(model / TOKENIZER_JSON)
    line = _assert_one_line_error(*_predict(capfd, model), model / TOKENIZER_JSON)
    assert "not valid JSON" in line


def test_a_tokenizer_without_vocabulary_is_refused_even_in_old_exports(folder, capfd):
    """Older exports do not list their tokenizer files: transformers then builds a tokenizer that maps
    every word to [UNK], and predictions would look fine while meaning nothing."""
    model = folder("mean")
    spec = _spec(model)
    del spec["tokenizer_files"]
    (model / MODEL_META_FILE).write_text(json.dumps(spec))
    for name in (TOKENIZER_JSON, TOKENIZER_CONFIG):
        (model / name).unlink()
    line = _assert_one_line_error(*_predict(capfd, model), model)
    assert "tokenizer knows no word" in line


def test_an_old_export_without_the_tokenizer_list_still_predicts(folder, capfd):
    model = folder("head")
    spec = _spec(model)
    del spec["tokenizer_files"]
    (model / MODEL_META_FILE).write_text(json.dumps(spec))
    code, _, err = _predict(capfd, model)
    assert code == EXIT_OK, err


@pytest.mark.parametrize("pooling, name", [("head", WEIGHTS_FILE), ("mean", WEIGHTS_FILE),
                                           ("mean", HEAD_WEIGHTS_FILE)])
@pytest.mark.parametrize("keep", [0.0, 0.5, 0.999])
def test_a_truncated_safetensors_file_is_named(folder, capfd, pooling, name, keep):
    model = folder(pooling)
    _truncate(model / name, keep)
    line = _assert_one_line_error(*_predict(capfd, model), model / name)
    assert "truncated or not a safetensors file" in line


@pytest.mark.parametrize("pooling, name", [("head", WEIGHTS_FILE), ("mean", HEAD_WEIGHTS_FILE)])
def test_a_missing_weights_file_is_named(folder, capfd, pooling, name):
    model = folder(pooling)
    (model / name).unlink()
    line = _assert_one_line_error(*_predict(capfd, model), model / name)
    assert "file not found" in line


def test_weights_lacking_a_tensor_are_refused(folder, capfd):
    from safetensors.torch import load_file, save_file

    model = folder("head")
    weights = load_file(str(model / WEIGHTS_FILE))
    dropped = sorted(k for k in weights if "classifier" in k)[0]
    del weights[dropped]
    save_file(weights, str(model / WEIGHTS_FILE), metadata={"format": "pt"})
    line = _assert_one_line_error(*_predict(capfd, model), model / WEIGHTS_FILE)
    assert "lacks 1 weight" in line and dropped in line


def test_a_head_for_other_labels_is_refused(folder, capfd):
    from safetensors.torch import load_file, save_file

    model = folder("mean")
    head = {k: v[:5].contiguous() for k, v in load_file(str(model / HEAD_WEIGHTS_FILE)).items()}
    save_file(head, str(model / HEAD_WEIGHTS_FILE))
    _assert_one_line_error(*_predict(capfd, model), model / HEAD_WEIGHTS_FILE)


@pytest.mark.parametrize("text, says", [
    ("", "not valid JSON"),
    ('{"pooling": "head", "labels": [', "not valid JSON"),
    ("\xff\xfe", "not UTF-8 text"),  # a UTF-16 byte-order mark: said as such, not lumped with bad JSON
    ("[1, 2]", "found list"),
    ('{"labels": ["a"]}', "'pooling'"),
    ('{"pooling": "max", "labels": ["a"]}', "'pooling'"),
    ('{"pooling": "head"}', "'labels'"),
    ('{"pooling": "head", "labels": []}', "'labels'"),
    ('{"pooling": "head", "labels": "joy"}', "'labels'"),
    ('{"pooling": "head", "labels": ["a", 1]}', "'labels'"),
    ('{"pooling": "head", "labels": ["a", "a"]}', "twice"),
    ('{"pooling": "head", "labels": ["a"], "tokenizer_files": "tokenizer.json"}', "'tokenizer_files'"),
    ('{"pooling": "head", "labels": ["a"], "tokenizer_files": ["../x.json"]}', "'tokenizer_files'"),
])
def test_a_broken_model_spec_is_named(folder, capfd, text, says):
    model = folder("head")
    (model / MODEL_META_FILE).write_bytes(text.encode("latin-1"))
    line = _assert_one_line_error(*_predict(capfd, model), model / MODEL_META_FILE)
    assert says in line


@pytest.mark.parametrize("pooling", ["head", "mean"])
def test_a_spec_with_fewer_labels_than_the_model_outputs_is_refused(folder, capfd, pooling):
    model = folder(pooling)
    spec = _spec(model)
    spec["labels"] = spec["labels"][:27]
    (model / MODEL_META_FILE).write_text(json.dumps(spec))
    # head: the spec disagrees with config.json; mean: the head file holds 28 outputs
    named = model / (MODEL_META_FILE if pooling == "head" else HEAD_WEIGHTS_FILE)
    _assert_one_line_error(*_predict(capfd, model), named)


@pytest.mark.parametrize("change", ["missing", "truncated"])
def test_a_broken_config_is_named(folder, capfd, change):
    model = folder("head")
    if change == "missing":
        (model / CONFIG).unlink()
    else:
        _truncate(model / CONFIG)
    _assert_one_line_error(*_predict(capfd, model), model / CONFIG)


@pytest.mark.parametrize("data, says", [
    (None, "file not found"),
    ("", "not valid JSON"),
    ([0.5] * 28, "'thresholds'"),
    ({"labels": LABELS}, "'thresholds'"),
    ({"thresholds": [0.5] * 27}, "27 thresholds for 28 labels"),
    ({"thresholds": 0.5}, "'thresholds'"),
    ({"thresholds": "0.5" * 28}, "'thresholds'"),
    ({"thresholds": ["0.5"] * 28}, "not a number"),
    ({"thresholds": [True] * 28}, "not a number"),
    ({"thresholds": [None] * 28}, "not a number"),
    ({"thresholds": [float("nan")] * 28}, "not a number"),
    ({"thresholds": [1.5] * 28}, "not a number"),
    ({"labels": LABELS[::-1], "thresholds": [0.5] * 28}, "'labels' differ"),
])
def test_broken_thresholds_are_named(folder, capfd, data, says):
    model = folder("head")
    path = model / THRESHOLDS_FILE
    if data is None:
        path.unlink()
    else:
        path.write_text(data if isinstance(data, str) else json.dumps(data))
    line = _assert_one_line_error(*_predict(capfd, model), path)
    assert says in line


def test_a_folder_that_is_no_export_fails_before_reading_stdin(tmp_path, capfd, monkeypatch):
    monkeypatch.setattr(sys, "stdin", None)  # reading it would raise
    code = main(["--model", str(tmp_path)])  # no texts: they would come from stdin
    out, err = capfd.readouterr()
    _assert_one_line_error(code, out, err, tmp_path)
    assert MODEL_META_FILE in err


def test_the_command_prints_one_line_and_no_traceback(folder):
    """As users run it: a real process, with whatever transformers and safetensors print on their own."""
    model = folder("mean")
    _truncate(model / HEAD_WEIGHTS_FILE)
    res = subprocess.run([sys.executable, "-m", "trainer.predict", "--model", str(model), "thanks so much!"],
                         capture_output=True, text=True, cwd=REPO, env=train_env(), timeout=120)
    assert res.returncode == EXIT_BAD_INPUT
    assert res.stdout == ""
    assert res.stderr.splitlines() == [res.stderr.strip()], res.stderr
    assert res.stderr.startswith(f"goemo-predict: error: {model / HEAD_WEIGHTS_FILE}: ")
    assert "Traceback" not in res.stderr


def _ensemble(exports: dict[str, Path], root: Path, members: dict | None = None) -> Path:
    """An ensemble folder of the head and mean exports, laid out as trainer/ensemble.py writes it."""
    from trainer.contract import ENSEMBLE_FILE, MEMBERS_DIR

    for pooling, path in exports.items():
        shutil.copytree(path, root / MEMBERS_DIR / f"p3-{pooling}")
    (root / THRESHOLDS_FILE).write_text(json.dumps({"labels": LABELS, "thresholds": [0.5] * len(LABELS)}))
    body = members if members is not None else {"members": [{"run": "p3-head"}, {"run": "p3-mean"}]}
    (root / ENSEMBLE_FILE).write_text(json.dumps(body))
    return root


def test_an_ensemble_averages_its_members(exports, tmp_path, capfd):
    model = _ensemble(exports, tmp_path / "ensemble")
    code, out, err = _predict(capfd, model, "thanks so much!")
    assert code == EXIT_OK, err
    together = json.loads(out)["scores"]
    alone = []
    for pooling in ("head", "mean"):
        code, out, err = _predict(capfd, exports[pooling], "thanks so much!")
        alone.append(json.loads(out)["scores"])
    assert together == pytest.approx({n: (alone[0][n] + alone[1][n]) / 2 for n in LABELS}, abs=2e-4)
    assert together != pytest.approx(alone[0], abs=1e-3)  # both members count


@pytest.mark.parametrize("body, says", [
    ({"members": []}, "non-empty 'members' list"),
    ({"rule": "mean"}, "non-empty 'members' list"),
    ({"members": [{"run": "p3-gone"}]}, "p3-gone"),
    ({"members": [{"run": "p3-head"}, {"run": "/etc"}]}, "'/etc' is not a run id"),
    ({"members": [{"run": ".."}]}, "'..' is not a run id"),
])
def test_a_broken_ensemble_is_named(exports, tmp_path, capfd, body, says):
    model = _ensemble(exports, tmp_path / "ensemble", body)
    code, out, err = _predict(capfd, model)
    line = _assert_one_line_error(code, out, err, model)
    assert says in line


def test_an_ensemble_member_outside_members_is_not_followed(exports, tmp_path, capfd):
    """A member named '../../elsewhere' would load (and run) whatever model lies there."""
    shutil.copytree(exports["head"], tmp_path / "elsewhere")
    model = _ensemble(exports, tmp_path / "ensemble", {"members": [{"run": "../../elsewhere"}]})
    line = _assert_one_line_error(*_predict(capfd, model), model)
    assert "'../../elsewhere' is not a run id" in line


def test_an_ensemble_of_a_folder_that_is_no_run_id_is_refused_before_training(tmp_path):
    from trainer.config import RunConfig
    from trainer.ensemble import EnsembleError, check_members

    with pytest.raises(EnsembleError, match="'my run' is not a run id"):
        check_members(RunConfig(), [tmp_path / "my run"])


def _thresholds_with(model: Path, **keys: object) -> None:
    path = model / THRESHOLDS_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), **keys}))


# Two texts whose first tokens agree and whose ends differ.
SAME_START = ("thanks so much, you made my day and I will never forget it",
              "thanks so much, you made my day but the rest of the week was awful")


def test_predict_truncates_at_the_max_length_the_export_records(folder, capfd):
    model = folder("mean")
    code, out, err = _predict(capfd, model, *SAME_START)
    assert code == EXIT_OK, err
    whole = [json.loads(line)["scores"] for line in out.splitlines()]
    assert whole[0] != whole[1]  # an older export: 128 tokens, both ends are read
    _thresholds_with(model, max_length=8)
    code, out, err = _predict(capfd, model, *SAME_START)
    assert code == EXIT_OK, err
    first8 = [json.loads(line)["scores"] for line in out.splitlines()]
    assert first8[0] == first8[1]  # trained on 8 tokens: only the common start is read


@pytest.mark.parametrize("value, says", [(3, "greater than or equal to 8"), (10**6, "less than or equal to 4096"),
                                         ("128", "whole number"), (True, "whole number")])
def test_a_bad_max_length_is_named(folder, capfd, value, says):
    model = folder("head")
    _thresholds_with(model, max_length=value)
    line = _assert_one_line_error(*_predict(capfd, model), model / THRESHOLDS_FILE)
    assert "max_length" in line and says in line


def test_a_huge_text_is_cut_before_the_tokenizer_sees_it(folder, capfd, monkeypatch):
    """The tokenizer encodes a whole text before truncating: 12 MB took 2.27 GB. It now sees what
    max_length tokens can come from, and the scores are those of the whole text."""
    import trainer.models
    from trainer.predict import CHARS_PER_TOKEN_BOUND

    model = folder("head")
    _thresholds_with(model, max_length=16)
    huge = "thanks so much, you made my day! " * 30_000  # about 1 MB
    code, out, err = _predict(capfd, model, huge[:16 * 8])  # well past 16 tokens, far below the cut
    assert code == EXIT_OK, err
    expected = json.loads(out)["scores"]
    seen: list[int] = []
    load = trainer.models.load_exported

    def spying(member: Path):
        net, tokenizer, names = load(member)

        def tokenize(texts, **kwargs):
            seen.extend(len(t) for t in texts)
            return tokenizer(texts, **kwargs)
        return net, tokenize, names

    monkeypatch.setattr(trainer.models, "load_exported", spying)
    code, out, err = _predict(capfd, model, huge)
    assert code == EXIT_OK, err
    assert seen == [16 * CHARS_PER_TOKEN_BOUND]
    assert json.loads(out)["scores"] == expected
    assert json.loads(out)["text"] == huge  # the output still names the whole text


def test_an_export_records_the_max_length_predict_reads(tmp_path):
    import numpy as np

    from trainer.export_files import LEGACY_MAX_LENGTH, read_max_length, write_thresholds

    write_thresholds(tmp_path, LABELS, np.full(len(LABELS), 0.5), 0.2, max_length=256, best_step=3)
    assert json.loads((tmp_path / THRESHOLDS_FILE).read_text())["max_length"] == 256
    assert read_max_length(tmp_path) == 256
    (tmp_path / THRESHOLDS_FILE).write_text(json.dumps({"labels": LABELS, "thresholds": [0.5] * len(LABELS)}))
    assert read_max_length(tmp_path) == LEGACY_MAX_LENGTH == 128  # an older export: what predict always used
