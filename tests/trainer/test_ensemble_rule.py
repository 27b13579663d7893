"""The ensemble's averaging rule: mean of probabilities (the default, and every ensemble.json without the key) or
mean of logits (a seed ensemble's, issue 19), from the config through goemo-train --ensemble-from to goemo-predict.

Tolerances: the average is float32, so a hand computation in float64 agrees within 1e-6; goemo-predict against
the sigmoid of the mean of the members' own float32 logits within 1e-5 (batches padded differently move float32
logits by ~1e-6, and reading a logit back from its probability adds 2.4e-7 * max(1, e^x):
trainer/ensemble_average.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY, run_train
from trainer.contract import (ENSEMBLE_FILE, ENSEMBLE_MEAN_LOGIT, ENSEMBLE_MEAN_PROB, ENSEMBLE_RULES, EVENTS_FILE,
                              EXIT_BAD_INPUT, EXPORT_DIR, MEMBERS_DIR, RUN_CONFIG_FILE, THRESHOLDS_FILE)
from trainer.ensemble_average import LOGIT_BOUND, average_members, logits_of
from trainer.export_files import EnsembleError, ensemble_rule

HAND_TOLERANCE = 1e-6
PREDICT_TOLERANCE = 1e-5


def _sigmoid32(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))).astype(np.float32)


def test_mean_logit_and_mean_prob_by_hand():
    # Two members, two labels: logits (2, -1) and (0, 3).
    a, b = _sigmoid32([[2.0, -1.0]]), _sigmoid32([[0.0, 3.0]])
    # The mean logits are (1, 1): sigmoid(1) = 0.7310586 for both labels.
    np.testing.assert_allclose(average_members([a, b], ENSEMBLE_MEAN_LOGIT), [[0.7310586, 0.7310586]],
                               atol=HAND_TOLERANCE)
    # The mean probabilities: (0.8807971 + 0.5) / 2 and (0.2689414 + 0.9525741) / 2.
    np.testing.assert_allclose(average_members([a, b], ENSEMBLE_MEAN_PROB), [[0.6903985, 0.6107578]],
                               atol=HAND_TOLERANCE)
    assert average_members([a, b], ENSEMBLE_MEAN_LOGIT).dtype == np.float32
    # One member: either rule gives it back.
    for rule in ENSEMBLE_RULES:
        np.testing.assert_allclose(average_members([a], rule), a, atol=HAND_TOLERANCE)


def test_mean_prob_is_the_float64_sum_the_export_always_took():
    """Today's ensembles are unchanged: the same sum, in the same order, rounded to float32 once."""
    rng = np.random.default_rng(0)
    members = [rng.random((50, 28), dtype=np.float32) for _ in range(3)]
    total = members[0].astype(np.float64)
    for probs in members[1:]:
        total = total + probs
    np.testing.assert_array_equal(average_members(members, ENSEMBLE_MEAN_PROB), (total / 3).astype(np.float32))


def test_logits_read_back_within_the_stated_bound_and_clipped_where_float32_saturates():
    x = np.linspace(-16, 16, 200_001, dtype=np.float32)
    err = np.abs(logits_of(_sigmoid32(x)) - x.astype(np.float64))
    assert (err <= 2.4e-7 * np.maximum(1.0, np.exp(x.astype(np.float64)))).all()
    np.testing.assert_allclose(logits_of(np.array([0.0, 1.0], dtype=np.float32)), [-LOGIT_BOUND, LOGIT_BOUND])
    assert LOGIT_BOUND == pytest.approx(16.6355, abs=1e-4)
    # A certain "yes" and a certain "no" cancel out: both clip to the same size.
    assert average_members([np.float32([1.0]), np.float32([0.0])], ENSEMBLE_MEAN_LOGIT)[0] == 0.5


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="ensemble rule 'median': expected one of mean_prob, mean_logit"):
        average_members([np.zeros(2, dtype=np.float32)], "median")


@pytest.mark.parametrize("body, expected", [
    ({"members": []}, ENSEMBLE_MEAN_PROB),  # written before the key: those ensembles averaged probabilities
    ({"ensemble_rule": "mean_logit"}, ENSEMBLE_MEAN_LOGIT),
    ({"ensemble_rule": "mean_prob"}, ENSEMBLE_MEAN_PROB),
])
def test_ensemble_json_names_its_rule(tmp_path, body, expected):
    assert ensemble_rule(tmp_path, body) == expected


@pytest.mark.parametrize("value", ["median", ["mean_logit"], None])
def test_ensemble_json_with_an_unknown_rule_is_one_line(tmp_path, value):
    with pytest.raises(EnsembleError) as err:
        ensemble_rule(tmp_path, {"ensemble_rule": value})
    assert str(err.value) == (f"{tmp_path / ENSEMBLE_FILE}: 'ensemble_rule' is {value!r}; expected one of "
                              "mean_prob, mean_logit")


def test_the_config_key_defaults_to_mean_prob_and_set_reaches_it(tmp_path, capfd):
    from trainer.cli import build_parser, main, resolve_config
    from trainer.config import RunConfig

    assert RunConfig().ensemble_rule == ENSEMBLE_MEAN_PROB
    args = build_parser().parse_args(["--out", str(tmp_path / "r"), "--set", "ensemble_rule=mean_logit"])
    assert resolve_config(args).ensemble_rule == ENSEMBLE_MEAN_LOGIT
    assert main(["--out", str(tmp_path / "bad"), "--set", "ensemble_rule=logits"]) == EXIT_BAD_INPUT
    _, err = capfd.readouterr()
    assert err.splitlines() == ["goemo-train: error: goemo-train (with flags): key 'ensemble_rule': input should be "
                                "'mean_prob' or 'mean_logit' (got 'logits')"]
    assert not (tmp_path / "bad").exists()


# -- through goemo-train --ensemble-from ---------------------------------------------------------------------------
SEEDS = (1, 2)
TEXTS = ["thanks so much!", "this is awful", "I have no idea what you mean, could you explain that again?", "ok"]


@pytest.fixture(scope="module")
def seed_ensemble(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """Two tiny members of one config with different seeds, averaged by goemo-train --ensemble-from with
    --set ensemble_rule=mean_logit (as the pipeline's seed_ensemble final launches it)."""
    root = tmp_path_factory.mktemp("seed-ensemble")
    members = []
    for seed in SEEDS:
        out = root / f"p1-bce-s{seed}"
        res = run_train(*TINY, "--loss", "bce", "--max-train-samples", "64", "--batch-size", "16", "--max-steps", "4",
                        "--lr", "3e-3", "--seed", str(seed), "--out", str(out))
        assert res.returncode == 0, res.stderr
        members.append(out)
    final = root / "p4-final"
    flags = [arg for m in members for arg in ("--ensemble-from", str(m))]
    res = run_train("--config", str(members[0] / RUN_CONFIG_FILE), "--out", str(final), *flags,
                    "--set", "run='p4-final'", "--set", "ensemble_rule=mean_logit")
    assert res.returncode == 0, res.stderr
    return final, members


def test_a_seed_ensemble_averages_logits_and_its_test_f1_recomputes_from_the_arrays(seed_ensemble):
    from trainer.events import read_events
    from trainer.metrics import evaluate_probs, tune_thresholds, tuned_summary

    final, members = seed_ensemble
    export = final / EXPORT_DIR
    ensemble = json.loads((export / ENSEMBLE_FILE).read_text())
    assert ensemble["ensemble_rule"] == ENSEMBLE_MEAN_LOGIT
    assert ensemble["rule"] == ENSEMBLE_RULES[ENSEMBLE_MEAN_LOGIT] == "sigmoid of the mean of the members' logits"
    assert [m["run"] for m in ensemble["members"]] == [m.name for m in members]
    load = lambda folder, name: np.load(folder / name)  # noqa: E731
    for split in ("dev", "test"):
        own = [load(export / MEMBERS_DIR / m.name, f"{split}_probs.npy") for m in members]
        logits = [np.log(p.astype(np.float64) / (1.0 - p)) for p in own]  # by hand: no member is near 0 or 1
        average = load(export, f"{split}_probs.npy")
        np.testing.assert_allclose(average, 1.0 / (1.0 + np.exp(-np.mean(logits, axis=0))), atol=HAND_TOLERANCE)
        # ... and not the mean of probabilities: members this alike (p ~ 0.46) part from it by ~5e-5 at most
        assert np.abs(average - np.mean(own, axis=0)).max() > 10 * HAND_TOLERANCE
    dev_p, dev_y = load(export, "dev_probs.npy"), load(export, "dev_labels.npy")
    test_p, test_y = load(export, "test_probs.npy"), load(export, "test_labels.npy")
    shipped = json.loads((export / THRESHOLDS_FILE).read_text())
    thresholds = np.array(shipped["thresholds"])
    np.testing.assert_allclose(thresholds, tune_thresholds(dev_p, dev_y, default=0.2))
    evals = [e for e in read_events(final / EVENTS_FILE) if e["type"] == "eval" and e.get("final")]
    test = next(e for e in evals if e["split"] == "test")
    assert test["tuned"]["f1_macro"] == pytest.approx(tuned_summary(test_p, test_y, thresholds)["f1_macro"])
    again = evaluate_probs(test_p, test_y, [0.2, 0.5], shipped["labels"])
    assert test["f1_macro"]["0.2"] == pytest.approx(again["f1_macro"]["0.2"])


def _member_logits(member: Path, texts: list[str]) -> np.ndarray:
    """A member's own float32 logits, straight from its model (no probability in between)."""
    import torch

    from trainer.export_files import read_max_length
    from trainer.models import load_exported

    model, tokenizer, _ = load_exported(member)
    enc = tokenizer(texts, truncation=True, max_length=read_max_length(member), padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(enc["input_ids"], enc["attention_mask"]).numpy()


def test_goemo_predict_gives_the_sigmoid_of_the_members_mean_logit(seed_ensemble, capfd):
    from trainer.predict import Predictor, main

    final, members = seed_ensemble
    export = final / EXPORT_DIR
    logits = [_member_logits(export / MEMBERS_DIR / m.name, TEXTS) for m in members]
    expected = 1.0 / (1.0 + np.exp(-np.mean(np.asarray(logits, dtype=np.float64), axis=0)))
    predictor = Predictor(export, batch_size=2)  # batches of 2: other padding than the members' own pass above
    assert predictor.rule == ENSEMBLE_MEAN_LOGIT
    np.testing.assert_allclose(predictor.probabilities(TEXTS), expected, atol=PREDICT_TOLERANCE)
    assert main(["--model", str(export), "--json", *TEXTS]) == 0
    out, _ = capfd.readouterr()
    for row, want in zip((json.loads(line) for line in out.splitlines()), expected):
        assert list(row["scores"].values()) == pytest.approx(list(want), abs=5e-5 + PREDICT_TOLERANCE)  # 4 decimals


def test_an_ensemble_json_without_the_rule_averages_probabilities_and_a_bad_one_is_one_line(seed_ensemble, tmp_path,
                                                                                             capfd):
    from trainer.predict import Predictor, main

    final, members = seed_ensemble
    old = Path(shutil.copytree(final / EXPORT_DIR, tmp_path / "old"))
    body = json.loads((old / ENSEMBLE_FILE).read_text())
    del body["ensemble_rule"]
    (old / ENSEMBLE_FILE).write_text(json.dumps(body))
    predictor = Predictor(old)
    assert predictor.rule == ENSEMBLE_MEAN_PROB
    own = predictor.member_probabilities(TEXTS)
    np.testing.assert_allclose(predictor.probabilities(TEXTS), np.mean(own, axis=0), atol=HAND_TOLERANCE)
    (old / ENSEMBLE_FILE).write_text(json.dumps({**body, "ensemble_rule": "median"}))
    assert main(["--model", str(old), "--json", "hi"]) == EXIT_BAD_INPUT
    out, err = capfd.readouterr()
    assert out == "" and err.splitlines() == [f"goemo-predict: error: {old / ENSEMBLE_FILE}: 'ensemble_rule' is "
                                              "'median'; expected one of mean_prob, mean_logit"]
