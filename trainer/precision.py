"""Which mixed precision a run computes in: accelerate's ``mixed_precision`` from the config's ``precision``
and what the device does natively (docs/results.md, "bf16 autocast on CPU", has the measurements)."""

from __future__ import annotations

import torch

from trainer.config import RunConfig

__all__ = ["cpu_native_bf16", "mixed_precision"]


def cpu_native_bf16() -> bool:
    """The CPU computes bf16 natively (AVX512-BF16 or AMX), as oneDNN reports it; elsewhere bf16 is emulated."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def mixed_precision(config: RunConfig, use_cuda: bool) -> str:
    """accelerate's ``mixed_precision`` ("no", "bf16" or "fp16") for ``config.precision`` on this device."""
    if not use_cuda:
        # CPU: "auto" is bf16 autocast only where the CPU computes bf16 natively (AMX, AVX512-BF16). Measured
        # (docs/results.md, "bf16 autocast on CPU"): 1.28x faster there with dev tuned_cv within seed noise;
        # 0.11x where bf16 is emulated. fp16 autocast has no CPU kernels.
        if config.precision == "auto":
            return "bf16" if cpu_native_bf16() else "no"
        return "bf16" if config.precision == "bf16" else "no"
    if config.precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return config.precision
