"""GPU (NVML) and CPU/RAM sampling of a machine and of trainer processes: the cockpit samples the machine it runs on, and
a run's trainer samples the node it runs on (`device` events), with the same code.

`TelemetrySampler.sample(pids)` never raises: without NVIDIA GPUs (NVML fails to
initialise) it reports `gpu_error = "no NVIDIA GPU"` and still gives CPU and RAM figures.
`pids` maps a trainer pid to its run id so a GPU's processes can be named by run.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

import psutil

from trainer.contract import Event

NO_GPU = "no NVIDIA GPU"
MIB = 1024 * 1024


@dataclass(frozen=True)
class GpuSample:
    index: int
    name: str
    util_pct: float | None
    mem_used_mb: float | None
    mem_total_mb: float | None
    temp_c: float | None
    power_w: float | None
    pids: tuple[int, ...]
    runs: tuple[str, ...]
    throttle: tuple[str, ...] = ()  # NVML's clock throttle reasons that are set (idle left out)


@dataclass(frozen=True)
class ProcessSample:
    pid: int
    run: str
    cpu_pct: float | None  # of one core; children included
    rss_mb: float | None


@dataclass(frozen=True)
class TelemetrySnapshot:
    t: float
    gpus: tuple[GpuSample, ...]
    gpu_error: str | None
    processes: tuple[ProcessSample, ...]
    cpu_pct: float | None  # whole machine, 0-100
    ram_used_mb: float | None
    ram_total_mb: float | None


# NVML's clock throttle (clock event) reason bits and their names; "GPU idle" is not a problem and is left out.
THROTTLE_REASONS = ((0x2, "applications clocks"), (0x4, "software power cap"), (0x8, "hardware slowdown"),
                    (0x10, "sync boost"), (0x20, "software thermal"), (0x40, "hardware thermal"),
                    (0x80, "power brake"), (0x100, "display clocks"))


def throttle_names(mask: int | None) -> tuple[str, ...]:
    return tuple(name for bit, name in THROTTLE_REASONS if mask and mask & bit)


def _call(fn: Any, *args: Any) -> Any:
    """One NVML query; None when the GPU does not support it."""
    try:
        return fn(*args)
    except Exception:
        return None


class TelemetrySampler:
    """Samples GPUs and trainer processes; keeps psutil handles so CPU% is a delta."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._gpu_error: str | None = None
        self._procs: dict[int, psutil.Process] = {}
        self._children: dict[int, psutil.Process] = {}
        try:
            psutil.cpu_percent(None)  # primes the machine-wide delta
        except Exception:
            pass

    def _init_nvml(self) -> Any:
        if self._nvml is not None or self._gpu_error is not None:
            return self._nvml
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
        except Exception as error:  # NVMLError (no driver / no GPU), ImportError
            name = type(error).__name__
            self._gpu_error = NO_GPU if "NVML" in name or isinstance(error, ImportError) else f"{NO_GPU} ({name})"
        return self._nvml

    def sample(self, pids: Mapping[int, str] | None = None) -> TelemetrySnapshot:
        pids = dict(pids or {})
        try:
            gpus = self._sample_gpus(pids)
        except Exception as error:
            gpus, self._gpu_error = (), f"GPU sampling failed: {type(error).__name__}"
        try:
            memory = psutil.virtual_memory()
            cpu, used, total = psutil.cpu_percent(None), (memory.total - memory.available) / MIB, memory.total / MIB
        except Exception:
            cpu = used = total = None
        return TelemetrySnapshot(time.time(), gpus, self._gpu_error, self._sample_processes(pids), cpu, used, total)

    def _sample_gpus(self, pids: Mapping[int, str]) -> tuple[GpuSample, ...]:
        nv = self._init_nvml()
        if nv is None:
            return ()
        samples = []
        for index in range(nv.nvmlDeviceGetCount()):
            handle = nv.nvmlDeviceGetHandleByIndex(index)
            name = _call(nv.nvmlDeviceGetName, handle) or f"GPU {index}"
            util = _call(nv.nvmlDeviceGetUtilizationRates, handle)
            mem = _call(nv.nvmlDeviceGetMemoryInfo, handle)
            temp = _call(nv.nvmlDeviceGetTemperature, handle, 0)  # NVML_TEMPERATURE_GPU
            power = _call(nv.nvmlDeviceGetPowerUsage, handle)
            reasons = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
                nv, "nvmlDeviceGetCurrentClocksThrottleReasons", None)
            throttle = throttle_names(_call(reasons, handle) if reasons else None)
            procs = _call(nv.nvmlDeviceGetComputeRunningProcesses, handle) or []
            gpu_pids = tuple(sorted({int(p.pid) for p in procs}))
            runs = tuple(sorted({pids[p] for p in gpu_pids if p in pids} | self._runs_of_children(gpu_pids, pids)))
            samples.append(GpuSample(
                index, name.decode() if isinstance(name, bytes) else str(name),
                float(util.gpu) if util is not None else None,
                mem.used / MIB if mem is not None else None, mem.total / MIB if mem is not None else None,
                float(temp) if temp is not None else None, power / 1000.0 if power is not None else None,
                gpu_pids, runs, throttle))
        return tuple(samples)

    def _runs_of_children(self, gpu_pids: tuple[int, ...], pids: Mapping[int, str]) -> set[str]:
        """Runs whose trainer is a parent of a GPU process (accelerate launch spawns workers)."""
        runs = set()
        for pid in gpu_pids:
            try:
                parents = {p.pid for p in psutil.Process(pid).parents()}
            except Exception:
                continue
            runs.update(pids[p] for p in parents if p in pids)
        return runs

    def _process(self, cache: dict[int, psutil.Process], pid: int) -> psutil.Process | None:
        proc = cache.get(pid)
        if proc is None:
            try:
                proc = cache[pid] = psutil.Process(pid)
                proc.cpu_percent(None)
            except Exception:
                return None
        return proc

    def _sample_processes(self, pids: Mapping[int, str]) -> tuple[ProcessSample, ...]:
        out = []
        for pid, run in sorted(pids.items()):
            proc = self._process(self._procs, pid)
            if proc is None:
                continue
            try:
                family = [proc] + [self._process(self._children, c.pid) for c in proc.children(recursive=True)]
                family = [p for p in family if p is not None]
                cpu = sum(p.cpu_percent(None) for p in family)
                rss = sum(p.memory_info().rss for p in family) / MIB
            except Exception:
                self._procs.pop(pid, None)
                out.append(ProcessSample(pid, run, None, None))
                continue
            out.append(ProcessSample(pid, run, cpu, rss))
        for cache in (self._procs, self._children):
            for pid in [p for p, proc in cache.items() if not _alive(proc)]:
                del cache[pid]
        return tuple(out)

    def close(self) -> None:
        if self._nvml is not None:
            _call(self._nvml.nvmlShutdown)
            self._nvml = None


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running()
    except Exception:
        return False


def node_rank() -> int:
    """This process's node in a multi-node run: torchrun's GROUP_RANK (accelerate launch and srun start
    torchrun's agent per node), else the global rank over the ranks per node."""
    if os.environ.get("GROUP_RANK", "").isdigit():
        return int(os.environ["GROUP_RANK"])
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return int(os.environ.get("RANK", "0") or 0) // max(per_node, 1)


def device_fields(snapshot: TelemetrySnapshot, host: str, local_rank: int, node: int = 0) -> dict[str, Any]:
    """The fields of a ``device`` event: the node's GPUs (NVML) and the CPU % and RSS of the run's processes."""
    cpu = [p.cpu_pct for p in snapshot.processes if p.cpu_pct is not None]
    rss = [p.rss_mb for p in snapshot.processes if p.rss_mb is not None]
    gpus = [{k: v for k, v in asdict(g).items() if k not in ("pids", "runs")} for g in snapshot.gpus]
    return {"host": host, "node": node, "local_rank": local_rank, "gpus": gpus, "gpu_error": snapshot.gpu_error,
            "cpu_pct": round(sum(cpu), 1) if cpu else None, "rss_mb": round(sum(rss), 1) if rss else None}


class DeviceReporter:
    """A daemon thread in a run's trainer (rank 0 of its node) that emits a ``device`` event every
    ``interval_s``: the GPUs of the node it runs on and the CPU/RSS of the run's processes, so that a
    cockpit anywhere sees the devices of a run on a Slurm node or another host."""

    def __init__(self, emit: Callable[..., Any], interval_s: float, local_rank: int = 0,
                 sampler: TelemetrySampler | None = None, host: str | None = None,
                 pid: int | None = None, node: int = 0) -> None:
        self.emit, self.interval_s, self.local_rank, self.node = emit, interval_s, local_rank, node
        self.sampler = sampler or TelemetrySampler()
        self.host = host or socket.gethostname()
        self.pid = pid if pid is not None else os.getpid()  # its children (other local ranks) count too
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="device-reporter", daemon=True)

    def start(self) -> "DeviceReporter":
        self._thread.start()
        return self

    def report(self) -> None:
        snapshot = self.sampler.sample({self.pid: "run"})
        self.emit(Event.DEVICE, **device_fields(snapshot, self.host, self.local_rank, self.node))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.report()
            except Exception:  # telemetry must never end a run (a closed events file at exit included)
                pass

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval_s + 1)
        self.sampler.close()
