"""Run-config keys that used to pass validation and then crash or mislead: report_to's forms and names,
and a source weight so large that the trainer overflowed computing its rows."""

from __future__ import annotations

import pytest

from trainer.config import MAX_SOURCE_WEIGHT, ConfigError, load_config, parse_override, validate_config
from trainer.contract import TRACKERS


@pytest.mark.parametrize("value, resolved", [
    ("tensorboard", ["tensorboard"]),  # one name, as Hugging Face takes it
    (["none"], "none"),
    (["all"], "all"),
    ("none", "none"),
    ("all", "all"),
    (["tensorboard", "mlflow"], ["tensorboard", "mlflow"]),
])
def test_report_to_takes_hugging_faces_forms(value, resolved):
    assert validate_config({"report_to": value}, "run.toml").report_to == resolved


def test_report_to_as_one_name_from_the_command_line():
    assert load_config(None, [parse_override("report_to=tensorboard")]).report_to == ["tensorboard"]


@pytest.mark.parametrize("value", [["foo"], "foo", ["tensorboard", "foo"]])
def test_an_unknown_tracker_is_named_with_the_valid_ones(value):
    with pytest.raises(ConfigError) as err:
        validate_config({"report_to": value}, "run.toml")
    line = str(err.value)
    assert line.startswith("run.toml: key 'report_to': unknown tracker 'foo'") and "\n" not in line
    assert all(name in line for name in TRACKERS)


@pytest.mark.parametrize("value, says", [(["none", "mlflow"], "stand alone"), (3, "a tracker's name"),
                                         ([1], "a tracker's name")])
def test_other_report_to_mistakes_are_one_line(value, says):
    with pytest.raises(ConfigError) as err:
        validate_config({"report_to": value}, "run.toml")
    line = str(err.value)
    assert "key 'report_to'" in line and says in line and "literal" not in line and "\n" not in line


@pytest.mark.parametrize("weight", [1e300, MAX_SOURCE_WEIGHT * 1.5])
def test_a_source_weight_has_an_upper_bound(weight):
    with pytest.raises(ConfigError) as err:
        validate_config({"sources": [{"kind": "goemotions", "weight": weight}]}, "run.toml")
    line = str(err.value)
    assert "key 'sources.0.weight'" in line and "less than or equal to 100" in line and "\n" not in line


def test_a_source_weight_up_to_the_bound_is_accepted():
    config = validate_config({"sources": [{"kind": "goemotions", "weight": MAX_SOURCE_WEIGHT}]}, "run.toml")
    assert config.sources[0].weight == MAX_SOURCE_WEIGHT
