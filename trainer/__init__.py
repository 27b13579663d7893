"""goemo-train: one GoEmotions multi-label training run, from a config to events, checkpoints and metrics."""

__version__ = "0.1.0"
