"""Where runs execute: one slot per GPU (or one for all GPUs under DDP), else CPU slots that share
the cores. Bad placement requests (CUDA without a GPU) are bad input, found before anything starts."""

from __future__ import annotations

import os
from dataclasses import dataclass

from cockpit.pipeline.presets import Preset, PresetError


@dataclass(frozen=True)
class Slot:
    """Where a run executes: a GPU (or all of them, for DDP) or a share of the CPU cores."""

    name: str
    device: str  # "cpu" or "cuda"
    gpus: tuple[int, ...] = ()
    threads: int | None = None
    processes: int = 1  # CPU: training processes of one run (torchrun, gloo); GPUs: one per GPU


def detect_gpus() -> list[int]:
    """Visible NVIDIA GPUs (NVML), restricted by CUDA_VISIBLE_DEVICES when it is set."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            count = pynvml.nvmlDeviceGetCount()
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no driver, no GPU
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [int(x) for x in visible.split(",") if x.strip().isdigit() and int(x) < count]
    return list(range(count))


def plan_slots(preset: Preset, gpus: list[int] | None = None) -> list[Slot]:
    """One slot per GPU (or one for all GPUs under DDP), else ``cpu_slots`` CPU slots that share the cores;
    under Slurm, ``max_concurrent_jobs`` slots whose jobs the cluster places.

    Raises PresetError when the preset asks for CUDA (``device = "cuda"`` in any run, or an explicit
    ``gpus`` list) and the GPUs are not there.
    """
    settings = preset.pipeline
    if settings.launcher == "slurm":
        # The cluster places the jobs: a slot is a place in this pipeline's share of the queue.
        slurm = preset.slurm
        device = "cuda" if slurm.gpus_per_run else "cpu"
        return [Slot(f"slurm{i}", device, (), slurm.cpus_per_run) for i in range(slurm.max_concurrent_jobs)]
    found = detect_gpus() if gpus is None else gpus
    if isinstance(settings.gpus, list):
        missing = [g for g in settings.gpus if g not in found]
        if missing:
            have = ", ".join(map(str, found)) or "none"
            raise PresetError(f"preset {preset.name}: key 'pipeline.gpus' asks for GPU {missing[0]}, "
                              f"but the visible NVIDIA GPUs are: {have}")
        found = list(settings.gpus)
    elif settings.gpus == "none":
        found = []
    devices = preset.run_devices()
    if found and devices != {"cpu"}:
        if settings.ddp:
            return [Slot("cuda:" + ",".join(map(str, found)), "cuda", tuple(found))]
        return [Slot(f"cuda:{g}", "cuda", (g,)) for g in found]
    if "cuda" in devices:
        raise PresetError(f"preset {preset.name}: key 'device' is 'cuda' but no NVIDIA GPU was found "
                          "(expected 'auto' or 'cpu' on this machine)")
    # Two torch processes on the same cores thrash each other: split the cores between slots.
    threads = max(1, (os.cpu_count() or 1) // settings.cpu_slots)
    procs = settings.cpu_processes
    return [Slot(f"cpu{i}", "cpu", (), max(1, threads // procs), procs) for i in range(settings.cpu_slots)]
