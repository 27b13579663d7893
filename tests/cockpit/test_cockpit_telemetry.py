"""Telemetry never raises; without NVIDIA GPUs it says so and still reports CPU and RAM."""

from __future__ import annotations

import os

import pytest

from trainer.devices import NO_GPU, TelemetrySampler


def test_sample_reports_machine_and_trainer_processes() -> None:
    sampler = TelemetrySampler()
    try:
        snap = sampler.sample({os.getpid(): "p1-me", 2**22 + 12345: "p1-gone"})
    finally:
        sampler.close()
    assert snap.gpus or snap.gpu_error == NO_GPU
    assert snap.cpu_pct is not None and snap.ram_total_mb and snap.ram_total_mb > 0
    (me,) = snap.processes  # the dead pid is skipped
    assert me.run == "p1-me" and me.rss_mb and me.rss_mb > 1


def test_nvml_failure_reads_as_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    pynvml = pytest.importorskip("pynvml")

    def fail() -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", fail)
    snap = TelemetrySampler().sample({})
    assert snap.gpus == () and snap.gpu_error == NO_GPU and snap.cpu_pct is not None


def test_gpu_query_errors_never_escape(monkeypatch: pytest.MonkeyPatch) -> None:
    sampler = TelemetrySampler()
    monkeypatch.setattr(sampler, "_sample_gpus", lambda pids: 1 / 0)
    snap = sampler.sample({})
    assert snap.gpus == () and "ZeroDivisionError" in (snap.gpu_error or "")
