import pytest

from trainer.config import ConfigError, load_config, parse_override


def test_defaults_and_typed_overrides():
    cfg = load_config(None, [parse_override("lr=1e-4"), parse_override("thresholds=[0.3, 0.5]"),
                             parse_override("loss_params.ratio=0.5"), parse_override("model=tiny-deberta"),
                             parse_override("loss=combined")])
    assert cfg.lr == 1e-4 and cfg.thresholds == [0.3, 0.5]
    assert cfg.loss_params == {"ratio": 0.5} and cfg.model == "tiny-deberta"


def test_unknown_key_names_the_key_and_valid_ones(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('lrr = 3\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg and "'lrr'" in msg and "batch_size" in msg and "\n" not in msg


def test_wrong_type_and_range(tmp_path):
    with pytest.raises(ConfigError, match="key 'batch_size'"):
        load_config(None, [parse_override("batch_size=big")])
    with pytest.raises(ConfigError, match="key 'thresholds'"):
        load_config(None, [parse_override("thresholds=[1.5]")])


def test_broken_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("lr = = 3\n")
    with pytest.raises(ConfigError, match="invalid TOML.*line 1"):
        load_config(bad)
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "missing.toml")


def test_override_needs_key_value():
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_override("lr")
