"""The search phase (issue 21): an Optuna study whose trials are runs.

- `space`: the preset's ``[search]`` table (pydantic) and what a sampled point means for a run; no Optuna;
- `trials`: the glue to a preset: its configs and losses as the space sees them, a trial's RunConfig, the
  objective read from eval records; no Optuna;
- `study`: the study itself (Optuna's samplers, pruners and journal storage), asked and told by the supervisor.

Only `study` imports Optuna (the ``search`` extra), so a preset is validated, and a bad space named in one line,
whether or not it is installed.
"""
