"""GpuPanel: per-GPU utilisation, memory, temperature, power and owning runs; CPU/RAM of trainers; then
the devices of other hosts where the pipeline's runs run (Slurm nodes), grouped by host, from the
trainers' own ``device`` events."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

from cockpit.snapshots import HostDevices
from trainer.devices import GpuSample, TelemetrySnapshot

BAR_WIDTH = 10
GIB = 1024.0


def _bar(pct: float | None, width: int = BAR_WIDTH) -> tuple[str, str]:
    filled = 0 if pct is None else min(max(int(round(pct / 100 * width)), 0), width)
    return "█" * filled, "░" * (width - filled)


def _mem(used_mb: float | None, total_mb: float | None) -> str:
    if used_mb is None or total_mb is None:
        return "mem –"
    return f"mem {used_mb / GIB:.1f}/{total_mb / GIB:.1f} GiB"


class GpuPanel(Widget):
    """Telemetry of the machine the cockpit runs on, from `TelemetrySnapshot`s."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "gpu-panel--label", "gpu-panel--bar", "gpu-panel--bar-empty", "gpu-panel--muted", "gpu-panel--warn",
    }

    DEFAULT_CSS = """
    GpuPanel {
        height: auto;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        min-height: 3;
        border: round $primary 40%;
        border-title-color: $text;
    }
    GpuPanel > .gpu-panel--label { color: $text; text-style: bold; }
    GpuPanel > .gpu-panel--bar { color: $accent; }
    GpuPanel > .gpu-panel--bar-empty { color: $text-disabled; }
    GpuPanel > .gpu-panel--muted { color: $text-muted; }
    GpuPanel > .gpu-panel--warn { color: $warning; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.border_title = "system"
        self._telemetry: TelemetrySnapshot | None = None
        self._hosts: tuple[HostDevices, ...] = ()
        self._now = 0.0

    def show(self, telemetry: TelemetrySnapshot | None) -> None:
        if telemetry != self._telemetry:
            old_height = len(self._lines())
            self._telemetry = telemetry
            self.refresh(layout=len(self._lines()) != old_height)

    def show_hosts(self, hosts: tuple[HostDevices, ...], now: float) -> None:
        """Other hosts' devices, from the runs' device events (this machine's come from `show`)."""
        if hosts != self._hosts or (hosts and int(now) != int(self._now)):
            old_height = len(self._lines())
            self._hosts, self._now = hosts, now
            self.border_title = "system" if not hosts else f"system · {len(hosts) + 1} hosts"
            self.refresh(layout=len(self._lines()) != old_height)

    def _gpu_lines(self, gpu: GpuSample) -> list[Text]:
        """One GPU's bar line, and a throttle line when NVML reports a reason (its own line: the panel is
        narrow, and this is the part not to miss). The same for this machine's GPUs and other hosts'."""
        style = self.get_component_rich_style
        full, empty = _bar(gpu.util_pct)
        line = Text.assemble((f"GPU{gpu.index} ", style("gpu-panel--label")), (full, style("gpu-panel--bar")),
                             (empty, style("gpu-panel--bar-empty")))
        util = "–" if gpu.util_pct is None else f"{gpu.util_pct:3.0f}%"
        temp = "" if gpu.temp_c is None else f" {gpu.temp_c:.0f}°C"
        power = "" if gpu.power_w is None else f" {gpu.power_w:.0f}W"
        line.append(f" {util} {_mem(gpu.mem_used_mb, gpu.mem_total_mb)}{temp}{power}")
        lines = [line]
        if gpu.throttle:
            lines.append(Text(f"     ⚠ throttled: {', '.join(gpu.throttle)}", style=style("gpu-panel--warn")))
        return lines

    def _host_lines(self) -> list[Text]:
        style = self.get_component_rich_style
        lines = []
        for host in self._hosts:
            age = max(0, int(self._now - host.t))
            lines.append(Text.assemble((f"── {host.host} ", style("gpu-panel--label")),
                                       (f"{', '.join(host.runs)} · {age}s ago", style("gpu-panel--muted"))))
            for gpu in host.gpus:
                lines.extend(self._gpu_lines(gpu))
            if host.gpu_error and not host.gpus:
                lines.append(Text(f"  {host.gpu_error}", style=style("gpu-panel--muted")))
            cpu = "–" if host.cpu_pct is None else f"{host.cpu_pct:.0f}%"
            rss = "–" if host.rss_mb is None else f"{host.rss_mb / GIB:.2f} GiB"
            lines.append(Text(f"  runs: cpu {cpu} rss {rss}", style=style("gpu-panel--muted")))
        return lines

    def _lines(self) -> list[Text]:
        tel = self._telemetry
        style = self.get_component_rich_style
        if tel is None:
            return [Text("sampling…", style=style("gpu-panel--muted"))] + self._host_lines()
        lines = []
        for gpu in tel.gpus:
            lines.extend(self._gpu_lines(gpu))
            holders = ", ".join(gpu.runs) or ("idle" if not gpu.pids else "pids " + ", ".join(map(str, gpu.pids)))
            lines.append(Text(f"     ↳ {holders}", style=style("gpu-panel--muted")))
        if tel.gpu_error:
            lines.append(Text(tel.gpu_error, style=style("gpu-panel--warn")))
        full, empty = _bar(tel.cpu_pct)
        cpu = "–" if tel.cpu_pct is None else f"{tel.cpu_pct:3.0f}%"
        lines.append(Text.assemble(("CPU  ", style("gpu-panel--label")), (full, style("gpu-panel--bar")),
                                   (empty, style("gpu-panel--bar-empty")),
                                   f" {cpu} RAM {_mem(tel.ram_used_mb, tel.ram_total_mb)[4:]}"))
        for proc in tel.processes:
            cpu = "–" if proc.cpu_pct is None else f"{proc.cpu_pct:.0f}%"
            rss = "–" if proc.rss_mb is None else f"{proc.rss_mb / GIB:.2f} GiB"
            lines.append(Text(f"  {proc.run} pid {proc.pid}: cpu {cpu} rss {rss}", style=style("gpu-panel--muted")))
        return lines + self._host_lines()

    def get_content_height(self, container, viewport, width: int) -> int:  # type: ignore[override]
        return len(self._lines())

    def render(self) -> RenderResult:
        return Text("\n").join(self._lines())
