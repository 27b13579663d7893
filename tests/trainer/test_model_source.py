import json

import pytest

from trainer.model_source import ModelError, resolve_model


def _model_folder(root, pooling: str | None = '{"pooling_mode_mean_tokens": true}'):
    root.mkdir()
    (root / "config.json").write_text('{"model_type": "bert"}')
    if pooling is not None:
        (root / "1_Pooling").mkdir()
        (root / "1_Pooling" / "config.json").write_text(pooling)
    return root


def test_local_folder_pooling_is_read_from_its_sentence_transformers_config(tmp_path):
    assert resolve_model(str(_model_folder(tmp_path / "st"))).pooling == "mean"
    assert resolve_model(str(_model_folder(tmp_path / "plain", None))).pooling == "head"
    assert resolve_model(str(tmp_path / "st"), pooling="head").pooling == "head"


@pytest.mark.parametrize("pooling, problem", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "found an array, expected a JSON object"),
    ("null", "found null, expected a JSON object"),
    (b"\xff\xfe{}", "not UTF-8 text"),
], ids=["not-json", "array", "null", "not-utf8"])
def test_broken_pooling_config_is_one_line_naming_the_file(tmp_path, pooling, problem):
    folder = _model_folder(tmp_path / "m", "{}")
    cfg = folder / "1_Pooling" / "config.json"
    cfg.write_bytes(pooling if isinstance(pooling, bytes) else pooling.encode())
    with pytest.raises(ModelError) as err:
        resolve_model(str(folder))
    msg = str(err.value)
    assert msg.startswith(f"{cfg}: ") and problem in msg and "pooling config" in msg and "\n" not in msg


def test_broken_model_config_and_odd_folders_are_one_line(tmp_path):
    folder = _model_folder(tmp_path / "m", None)
    (folder / "config.json").write_text('"just a string"')
    with pytest.raises(ModelError, match=r"m/config\.json: found a string, expected a JSON object"):
        resolve_model(str(folder))
    with pytest.raises(ModelError, match="no config.json in this folder"):
        resolve_model(str(tmp_path))
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ModelError, match="expected a Hugging Face model folder, found a file"):
        resolve_model(str(tmp_path / "weights.bin"))


@pytest.mark.parametrize("name, suggestion", [
    ("minlm", "did you mean 'minilm'?"), ("MiniLM", "did you mean 'minilm'?"),
    ("tiny_deberta", "did you mean 'tiny-deberta'?"), ("bert-base-uncased", ""), ("", ""), ("owner/..", ""),
])
def test_unknown_model_names_are_rejected_with_the_valid_choices(name, suggestion):
    with pytest.raises(ModelError) as err:
        resolve_model(name)
    msg = str(err.value)
    assert msg.startswith(f"model {name!r}: not a known model (") and suggestion in msg
    assert "'minilm', 'tiny-deberta', a local folder, or a hub id like microsoft/deberta-v3-large" in msg


@pytest.mark.parametrize("hub_id", ["microsoft/deberta-v3-large", "hf-internal-testing/tiny-random-bert",
                                    "FacebookAI/roberta-base", "owner/model_v1.5"])
def test_hub_ids_resolve_without_a_network_check(hub_id, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no local folder of that name
    src = resolve_model(hub_id)
    assert (src.name, src.path, src.tokenizer_path, src.pooling) == (hub_id, hub_id, hub_id, "head")


def test_missing_paths_still_say_path_not_found(tmp_path):
    for name in ("./no/such/model", str(tmp_path / "nope"), "a/b/c"):
        with pytest.raises(ModelError, match="path not found"):
            resolve_model(name)


def test_json_of_a_real_sentence_transformers_folder_is_accepted(tmp_path):
    folder = _model_folder(tmp_path / "m", json.dumps({"word_embedding_dimension": 384,
                                                       "pooling_mode_mean_tokens": False}))
    assert resolve_model(str(folder)).pooling == "head"
