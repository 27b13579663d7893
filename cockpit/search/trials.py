"""A search trial as a run of the pipeline: the preset config it trains, its RunConfig, and the objective read from
its eval records. No Optuna: the study (`cockpit.search.study`) samples the params, this module says what they
mean for a run.

A trial trains as a phase-1 run does: ``[defaults]`` < ``[phase1]`` < the config's ``settings`` < the sampled run
keys. With the ``config`` parameter it *is* that config's phase-1 run (same loss, parameters, settings, fault
and seed; only the run id differs), which is how a grid over the preset's configs reproduces phase 1. A trial
picks its best checkpoint by the study's objective, so its ``run_end.best`` is the value the study is told.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from cockpit.pipeline.presets import LossConfig, Preset
from cockpit.records.evals import EvalRecord
from cockpit.records.ranking import best_eval
from cockpit.search.space import SearchSpace
from trainer.config import RunConfig
from trainer.contract import selection_scores

SEARCH_CONFIG = "search"  # the config name of a trial that names no preset config


def _space(preset: Preset) -> SearchSpace:
    space = preset.search_space()
    if space is None:
        raise ValueError(f"preset {preset.name} has no [search] table")
    return space


def trial_config(preset: Preset, params: Mapping[str, Any]) -> LossConfig:
    """The config a trial trains: the named preset config with the sampled keys, or ``[defaults]``' loss with
    them (config name ``search``)."""
    settings = _space(preset).trial_settings(params)
    if settings.config is not None:
        own = preset.config(settings.config)
        return LossConfig(name=own.name, loss=settings.loss, loss_params=settings.loss_params, fault=own.fault,
                          settings={**own.settings, **settings.overrides})
    return LossConfig(name=SEARCH_CONFIG, loss=settings.loss, loss_params=settings.loss_params,
                      settings=settings.overrides)


def trial_run_config(preset: Preset, params: Mapping[str, Any], run: str) -> RunConfig:
    """The resolved RunConfig of a trial's run (validated: a sampled point the trainer refuses fails here)."""
    space = _space(preset)
    config = preset.run_config(1, trial_config(preset, params), run, space.trial_settings(params).seed)
    config.select_by = space.objective
    return config


def objective_value(record: EvalRecord, objective: str, primary: float) -> float | None:
    """What a dev eval reports to the study under ``objective`` (f1@primary or tuned_cv); None for an eval that
    is not a periodic dev eval of the run, or lacks the score."""
    if not record.is_periodic_dev:
        return None
    return selection_scores(objective, record.f1(primary), record.tuned_cv)[0]


def best_objective(records: Iterable[EvalRecord], objective: str, primary: float) -> float | None:
    """A finished trial's value: its best dev eval under the objective (the ranking rule's), or None."""
    best = best_eval(records, primary, objective)
    return None if best is None else objective_value(best, objective, primary)
