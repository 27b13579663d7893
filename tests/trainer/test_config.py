import pytest

from trainer.config import ConfigError, load_config, parse_override, read_toml, read_toml_text, validate_config


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


@pytest.mark.parametrize("item, key", [
    ("epochs=inf", "epochs"), ("oversampling_factor=inf", "oversampling_factor"), ("lr=nan", "lr"),
    ("head_lr=inf", "head_lr"), ("max_grad_norm=inf", "max_grad_norm"), ("weight_decay=nan", "weight_decay"),
    ("thresholds=[0.2, nan]", "thresholds.1"), ("seed=-1", "seed"), ("seed=4294967296", "seed"),
])
def test_non_finite_numbers_and_bad_seed_are_one_line_naming_the_key(item, key):
    with pytest.raises(ConfigError) as err:
        load_config(None, [parse_override(item)])
    msg = str(err.value)
    assert f"key '{key}'" in msg and "\n" not in msg


def test_non_finite_number_in_a_toml_file_names_the_file_and_key(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("epochs = inf\n")
    with pytest.raises(ConfigError, match=r"run\.toml.*key 'epochs'.*finite"):
        load_config(path)
    assert load_config(None, [parse_override("seed=0")]).seed == 0


@pytest.mark.parametrize("loss, params, key, expected", [
    ("asl", {"clip": 5}, "clip", "[0, 1)"),
    ("asl", {"clip": 1.0}, "clip", "[0, 1)"),
    ("asl", {"gamma_neg": "abc"}, "gamma_neg", "a number >= 0"),
    ("asl", {"gamma_pos": -1}, "gamma_pos", "a number >= 0"),
    ("asl", {"gamma_neg": float("inf")}, "gamma_neg", "a number >= 0"),
    ("asl", {"eps": float("nan")}, "eps", "[0, 1)"),
    ("asl", {"reduction": "none"}, "reduction", "'mean' or 'sum'"),
    ("asl", {"gamma_neg": True}, "gamma_neg", "a number"),
    ("combined", {"ratio": 1.5}, "ratio", "[0, 1]"),
    ("combined", {"bce_weight": -0.1}, "bce_weight", "a number >= 0"),
    ("combined", {"alpha": 2}, "alpha", "[0, 1]"),
    ("focal", {"gamma": [2]}, "gamma", "a number >= 0"),
    ("bce", {"pos_weight": "yes"}, "pos_weight", "true or false"),
])
def test_loss_parameter_values_are_checked_without_torch(loss, params, key, expected):
    with pytest.raises(ConfigError) as err:
        validate_config({"loss": loss, "loss_params": params}, "preset.toml")
    msg = str(err.value)
    assert msg.startswith("preset.toml: ") and f"loss_params.{key}" in msg and expected in msg
    assert "\n" not in msg


def test_loss_parameter_values_at_the_edges_are_accepted():
    ok = {"asl": {"gamma_neg": 0, "gamma_pos": 2.5, "clip": 0, "eps": 0.5, "reduction": "sum"},
          "combined": {"ratio": 1, "bce_weight": 0, "clip": 0.99, "gamma": 0, "alpha": 0.0},
          "focal": {"gamma": 5, "alpha": 1, "reduction": "mean"}, "bce": {"pos_weight": True}}
    for loss, params in ok.items():
        assert validate_config({"loss": loss, "loss_params": params}, "x").loss_params == params


def test_every_loss_parameter_has_a_value_rule():
    from trainer.loss_names import LOSS_PARAMS, PARAM_RULES

    assert {p for params in LOSS_PARAMS.values() for p in params} == set(PARAM_RULES)


def test_loss_rules_agree_with_the_torch_losses():
    """The losses check their arguments with the same table: what the config rejects, they reject."""
    torch_losses = pytest.importorskip("trainer.losses")
    from trainer.loss_names import LOSS_PARAMS, param_problem

    samples = [-1, 0, 0.5, 1, 2, float("inf"), float("nan"), "abc", True, "mean", "none", None]
    for loss, names in LOSS_PARAMS.items():
        for name in names:
            for value in samples:
                rejected = param_problem(name, value) is not None
                if name == "pos_weight" and value is True:
                    continue  # needs class weights, which the trainer supplies
                try:
                    torch_losses.build_loss(loss, {name: value}, None)
                except ValueError as exc:
                    assert rejected and name in str(exc), (loss, name, value, exc)
                else:
                    assert not rejected, (loss, name, value)


def test_non_utf8_toml_is_one_line(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('run = "café"\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as err:
        read_toml(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: not UTF-8 text (") and "\n" not in msg
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(path)


def test_read_toml_text_returns_text_and_data_and_drops_a_bom(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbfname = 'x'\nlr = 1e-4\n")
    text, data = read_toml_text(path)
    assert data == {"name": "x", "lr": 1e-4} and text.splitlines()[0] == "name = 'x'"
    with pytest.raises(ConfigError, match="found a folder"):
        read_toml_text(tmp_path)
