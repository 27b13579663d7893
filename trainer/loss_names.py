"""Loss names and their parameter names, torch-free, so configs and presets are validated up front
(the cockpit never imports torch). A test keeps this table equal to the classes in trainer/losses.py."""

LOSS_PARAMS: dict[str, tuple[str, ...]] = {
    "asl": ("gamma_neg", "gamma_pos", "clip", "eps", "reduction"),
    "bce": ("pos_weight",),
    "combined": ("ratio", "bce_weight", "gamma_neg", "gamma_pos", "clip", "gamma", "alpha"),
    "focal": ("gamma", "alpha", "reduction"),
}
