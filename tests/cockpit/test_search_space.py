"""The [search] table (issue 21): a bad space is one line naming its key, loss parameters are suggested only for a
loss that takes them, and a grid over a preset's own configs is exactly its phase-1 runs. No Optuna needed here
except where a test says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pytest

from cockpit.cli import main
from cockpit.pipeline.presets import Preset, PresetError, load_preset, phase1_plan
from cockpit.search import space as space_module
from cockpit.search.space import LOSS_PARAM_NAMES, SearchSpace
from cockpit.search.trials import SEARCH_CONFIG, best_objective, objective_value, trial_config, trial_run_config
from cockpit.records import decode_eval
from tests.conftest import REPO
from trainer.contract import search_run_id

QUICK = (REPO / "presets" / "quick.toml").read_text()
QUICK_CONFIGS = ["bce", "asl", "combined_07", "combined_05", "combined_03"]
SPACE = """
lr = { log_uniform = [1e-5, 1e-3] }
head_lr = { log_uniform = [1e-3, 1e-1] }
loss = { choice = ["bce", "asl", "combined"] }
gamma_neg = { uniform = [1, 6] }
ratio = { uniform = [0.3, 0.9] }
warmup_ratio = { uniform = [0, 0.2] }
batch_size = { choice = [16, 32] }
dropout = { uniform = [0, 0.3] }
"""


def preset_file(tmp_path: Path, params: str = SPACE, settings: str = "n_trials = 12", base: str = QUICK) -> str:
    path = tmp_path / "search.toml"
    path.write_text(f"{base}\n[search]\n{settings}\n\n[search.params]\n{params}\n")
    return str(path)


def load(tmp_path: Path, params: str = SPACE, settings: str = "n_trials = 12", base: str = QUICK) -> Preset:
    return load_preset(preset_file(tmp_path, params, settings, base))[0]


def space_of(preset: Preset) -> SearchSpace:
    space = preset.search_space()
    assert space is not None
    return space


class RecordingTrial:
    """A trial that answers every suggestion from fixed values and records what it was asked, in order."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values, self.asked = values, []

    def _answer(self, name: str) -> Any:
        self.asked.append(name)
        return self.values[name]

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float:
        assert low <= self.values[name] <= high
        return self._answer(name)

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return self._answer(name)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        assert self.values[name] in choices
        return self._answer(name)


POINT = {"lr": 1e-4, "head_lr": 3e-2, "warmup_ratio": 0.1, "batch_size": 16, "dropout": 0.2, "gamma_neg": 4.0,
         "ratio": 0.6}


# -- validation: one line naming the key -------------------------------------------------------------------
BAD_SPACES = {
    "unknown parameter": ('lr = { log_uniform = [1e-5, 1e-3] }\nlearning_rate = { uniform = [0, 1] }', "n_trials = 3",
                          "key 'search.params.learning_rate': unknown parameter (expected a run key: lr"),
    "empty range": ('lr = { uniform = [1e-3, 1e-3] }', "n_trials = 3",
                    "key 'search.params.lr': empty range: expected low < high"),
    "reversed range": ('dropout = { uniform = [0.3, 0.1] }', "n_trials = 3",
                       "key 'search.params.dropout': empty range"),
    "log range at zero": ('lr = { log_uniform = [0, 1e-3] }', "n_trials = 3",
                          "key 'search.params.lr': a log range must stay above zero"),
    "log range through zero": ('lr = { log_uniform = [-1e-3, 1e-3] }', "n_trials = 3",
                               "key 'search.params.lr': a log range must stay above zero"),
    "empty choice list": ('batch_size = { choice = [] }', "n_trials = 3",
                          "key 'search.params.batch_size': empty choice list"),
    "two kinds": ('lr = { uniform = [0.1, 1], choice = [1] }', "n_trials = 3",
                  "key 'search.params.lr': expected exactly one of uniform, log_uniform, int, choice"),
    "a range of an integer key": ('batch_size = { uniform = [16, 32] }', "n_trials = 3",
                                  "key 'search.params.batch_size': expected { int = [a, b] } or { choice = [...] }"),
    "a range past the key's own bound": ('dropout = { uniform = [0, 1.5] }', "n_trials = 3",
                                         "key 'search.params.dropout': 1.5 is not a valid 'dropout'"),
    "an unknown loss": ('loss = { choice = ["bce", "hinge"] }', "n_trials = 3",
                        "key 'search.params.loss': unknown loss 'hinge'"),
    "a loss parameter no loss takes": ('ratio = { uniform = [0.3, 0.9] }', "n_trials = 3",
                                       "key 'search.params.ratio': no loss of this search takes 'ratio'"),
    "a loss parameter out of its rule": ('loss = { choice = ["asl"] }\nclip = { uniform = [0, 1] }', "n_trials = 3",
                                         "key 'search.params.clip': expected a number in [0, 1) (got 1)"),
    "an unknown config": ('config = { choice = ["bce", "hinge"] }', "",
                          "key 'search.params.config': unknown config 'hinge'"),
    "config and loss": ('config = { choice = ["bce"] }\nloss = { choice = ["bce"] }', "",
                        "key 'search.params.loss': search either 'loss' or 'config'"),
    "grid over a range": ('lr = { log_uniform = [1e-5, 1e-3] }', 'sampler = "grid"',
                          "key 'search.params.lr': the grid sampler takes choices only"),
    "grid with a conditional parameter": ('loss = { choice = ["bce", "asl"] }\ngamma_neg = { choice = [2, 4] }',
                                          'sampler = "grid"', "key 'search.params.gamma_neg': with the grid sampler"),
    "grid with too many trials": ('config = { choice = ["bce", "asl"] }', 'sampler = "grid"\nn_trials = 3',
                                  "key 'search.n_trials': the grid has 2 points"),
    "a study without an end": ('lr = { log_uniform = [1e-5, 1e-3] }', 'sampler = "tpe"',
                               "key 'search.n_trials': expected a number of trials, or timeout_s"),
    "an unknown setting": ('lr = { log_uniform = [1e-5, 1e-3] }', 'n_trials = 3\nsampl = "tpe"',
                           "key 'search.sampl': unknown key (expected one of: params, sampler"),
    "an unknown sampler": ('lr = { log_uniform = [1e-5, 1e-3] }', 'n_trials = 3\nsampler = "cmaes"',
                           "key 'search.sampler': input should be 'tpe', 'grid' or 'random'"),
    "an unknown pruner": ('lr = { log_uniform = [1e-5, 1e-3] }', 'n_trials = 3\npruner = "asha"',
                          "key 'search.pruner'"),
    "no parameters": ("", "n_trials = 3", "key 'search.params': expected a [search.params] table"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPACES))
def test_a_bad_space_is_one_line_naming_the_key(tmp_path: Path, case: str) -> None:
    params, settings, needle = BAD_SPACES[case]
    with pytest.raises(PresetError) as caught:
        load(tmp_path, params, settings)
    line = str(caught.value)
    assert "\n" not in line and needle in line, line
    assert line.startswith(str(tmp_path / "search.toml"))


def test_the_line_named_is_the_search_tables_not_the_defaults(tmp_path: Path) -> None:
    """[defaults] sets lr too: the error points at [search.params]'s lr."""
    with pytest.raises(PresetError) as caught:
        load(tmp_path, 'lr = { log_uniform = [0, 1e-3] }', "n_trials = 3")
    number = int(str(caught.value).split(":")[1])
    assert (tmp_path / "search.toml").read_text().splitlines()[number - 1].startswith("lr = { log_uniform")


def test_bad_space_through_the_command_is_exit_2_and_nothing_is_created(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    code = main(["--headless", "--runs-dir", str(runs), "--preset",
                 preset_file(tmp_path, 'lr = { log_uniform = [0, 1e-3] }', "n_trials = 3")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "search.params.lr" in err[0], err
    assert not runs.exists()


def test_without_optuna_a_search_table_is_one_line_naming_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(space_module, "optuna_installed", lambda: False)
    runs = tmp_path / "runs"
    code = main(["--headless", "--runs-dir", str(runs), "--preset", preset_file(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "key 'search'" in err[0] and "pip install 'goemo-cockpit[search]'" in err[0]
    assert not runs.exists()
    assert load_preset("quick")[0].search is None  # a preset without [search] never asks for Optuna


def test_a_good_space_loads_and_set_reaches_it(tmp_path: Path) -> None:
    preset, _ = load_preset(preset_file(tmp_path), ["search.n_trials=6", "search.pruner=hyperband"])
    assert preset.search is not None and preset.search.n_trials == 6 and preset.search.pruner == "hyperband"
    assert preset.search.sampler == "tpe" and preset.search.parallel == 1 and preset.search.seed == 42
    assert space_of(preset).objective == "f1@primary"  # the pipeline's select_by, unless objective says
    # A dumped preset reads back the same (each parameter dumps as the table it was written as).
    assert Preset.model_validate(preset.model_dump()) == preset
    assert preset.model_dump()["search"]["params"]["lr"] == {"log_uniform": [1e-5, 1e-3]}


# -- conditional loss parameters ---------------------------------------------------------------------------
@pytest.mark.parametrize("loss, asked_loss_params, loss_params", [
    ("bce", [], {}),
    ("asl", ["gamma_neg"], {"gamma_neg": 4.0}),
    ("combined", ["gamma_neg", "ratio"], {"gamma_neg": 4.0, "ratio": 0.6}),  # combined passes gamma_neg to its ASL
])
def test_a_loss_parameter_is_suggested_only_after_a_loss_that_takes_it(tmp_path: Path, loss: str,
                                                                      asked_loss_params: list[str],
                                                                      loss_params: dict[str, float]) -> None:
    preset = load(tmp_path)
    trial = RecordingTrial({**POINT, "loss": loss})
    params = space_of(preset).suggest(trial)
    assert trial.asked[0] == "loss"  # the loss first: what follows depends on it
    assert [n for n in trial.asked if n in LOSS_PARAM_NAMES] == asked_loss_params
    settings = space_of(preset).trial_settings(params)
    assert settings.loss == loss and settings.loss_params == loss_params and settings.config is None
    assert settings.overrides == {k: POINT[k] for k in ("lr", "head_lr", "warmup_ratio", "batch_size", "dropout")}
    config = trial_run_config(preset, params, search_run_id(3))
    assert (config.run, config.loss, config.loss_params, config.lr, config.batch_size) == \
        ("s-003", loss, loss_params, 1e-4, 16)
    assert config.max_train_samples == 2000  # a trial trains as a phase-1 run: [defaults] < [phase1] < the point
    assert trial_config(preset, params).name == SEARCH_CONFIG


def test_optunas_fixed_trial_accepts_exactly_the_conditional_params(tmp_path: Path) -> None:
    """A FixedTrial refuses a parameter it was not given: bce's point holds no loss parameter at all."""
    optuna = pytest.importorskip("optuna")
    space = space_of(load(tmp_path))
    point = {k: v for k, v in POINT.items() if k not in LOSS_PARAM_NAMES}
    assert space.suggest(optuna.trial.FixedTrial({**point, "loss": "bce"})) == {**point, "loss": "bce"}
    with pytest.raises(ValueError):
        space.suggest(optuna.trial.FixedTrial({**point, "loss": "asl"}))  # asl asks for gamma_neg


def test_a_config_keeps_its_own_loss_params_unless_the_point_sets_them(tmp_path: Path) -> None:
    preset = load(tmp_path, 'config = { choice = ["combined_07", "asl"] }\ngamma_neg = { uniform = [1, 6] }')
    space = space_of(preset)
    assert space.trial_settings({"config": "combined_07", "gamma_neg": 2.0}).loss_params == \
        {"ratio": 0.7, "gamma_neg": 2.0}
    assert space.trial_settings({"config": "asl", "gamma_neg": 3.0}).loss_params == {"gamma_neg": 3.0}


# -- a grid over the preset's own configs is phase 1 -------------------------------------------------------
GRID = 'config = { choice = ["bce", "asl", "combined_07", "combined_05", "combined_03"] }'


def test_a_grid_over_the_configs_trains_exactly_phase_ones_runs(tmp_path: Path) -> None:
    preset = load(tmp_path, GRID, 'sampler = "grid"\npruner = "none"')
    space = space_of(preset)
    assert space.n_trials() == 5 and space.grid() == {"config": QUICK_CONFIGS}
    for plan in phase1_plan(preset):
        trial = trial_run_config(preset, {"config": plan.config}, search_run_id(7)).model_dump()
        phase1 = preset.run_config(1, preset.config(plan.config), plan.run_id, plan.seed).model_dump()
        assert {**trial, "run": plan.run_id} == phase1
        assert trial["seed"] == 42 and trial["eval_seed"] is None


def test_a_grid_over_configs_and_seeds_is_phase_one_with_seeds(tmp_path: Path) -> None:
    base = QUICK.replace("[phase1]\n", "[phase1]\nseeds = 2\n")
    preset = load(tmp_path, GRID + "\nseed = { choice = [42, 43] }", 'sampler = "grid"', base)
    plans = phase1_plan(preset)
    assert len(plans) == 10 == space_of(preset).n_trials()
    for plan in plans:
        trial = trial_run_config(preset, {"config": plan.config, "seed": plan.seed}, "s-001").model_dump()
        phase1 = preset.run_config(1, preset.config(plan.config), plan.run_id, plan.seed).model_dump()
        assert {**trial, "run": plan.run_id} == phase1 and trial["eval_seed"] == 42


# -- the objective ----------------------------------------------------------------------------------------
def dev(step: int, f1: float, cv: float | None) -> dict[str, Any]:
    return {"type": "eval", "split": "dev", "step": step, "f1_macro": {"0.2": f1}, "tuned_cv": cv}


def test_the_objective_is_read_from_dev_evals_by_the_ranking_rule() -> None:
    evals = [decode_eval(e) for e in (dev(10, 0.30, 0.35), dev(20, 0.42, 0.33), dev(30, 0.40, None))]
    assert [objective_value(e, "tuned_cv", 0.2) for e in evals] == [0.35, 0.33, None]
    assert [objective_value(e, "f1@primary", 0.2) for e in evals] == [0.30, 0.42, 0.40]
    assert best_objective(evals, "f1@primary", 0.2) == 0.42 and best_objective(evals, "tuned_cv", 0.2) == 0.35
    assert objective_value(decode_eval({**dev(5, 0.9, 0.9), "split": "test"}), "f1@primary", 0.2) is None


def test_a_trial_picks_its_best_checkpoint_by_the_studys_objective(tmp_path: Path) -> None:
    preset = load(tmp_path, settings='n_trials = 4\nobjective = "tuned_cv"')
    assert preset.pipeline.select_by == "f1@primary"
    assert trial_run_config(preset, {**POINT, "loss": "bce"}, "s-000").select_by == "tuned_cv"
