"""StallBanner (the stall a user must see) and AlertsLog (recent warnings and errors)."""

from __future__ import annotations

from typing import ClassVar, Sequence

from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget
from textual.widgets import Static

from cockpit.snapshots import Alert, StallAlert
from cockpit.widgets.format import fmt_ago, fmt_duration


def stall_text(stall: StallAlert) -> str:
    return (f"{stall.run} stalled (attempt {stall.attempt}, {fmt_duration(stall.silent_s)} silent) → "
            f"{stall.action} · d: stack dump")


class StallBanner(Static):
    """Hidden until a stall is known; loud while a run is stalled, quiet once it was handled."""

    DEFAULT_CSS = """
    StallBanner {
        display: none;
        height: auto;
        max-height: 3;
        padding: 0 1;
        color: $text-warning;
        background: $warning-muted;
    }
    StallBanner.-visible { display: block; }
    StallBanner.-resolved { text-wrap: nowrap; text-overflow: ellipsis; }
    StallBanner.-active {
        color: $text-error;
        background: $error-muted;
        text-style: bold;
    }
    """

    _text = ""

    def show(self, stalls: Sequence[StallAlert]) -> None:
        active = [s for s in stalls if s.active]
        shown = active or list(stalls[-1:])
        self.set_class(bool(shown), "-visible")
        self.set_class(bool(active), "-active")
        self.set_class(not active, "-resolved")
        if not shown:
            return
        lines = [f"⚠ {stall_text(s)}" for s in shown[-2:]]
        if not active and len(stalls) > 1:
            lines[0] += f" ({len(stalls)} stalls so far)"
        text = "\n".join(lines)
        if text != self._text:  # Static.update lays the screen out again: only when it changed
            self._text = text
            self.update(text)


class AlertsLog(Widget):
    """The most recent alerts, newest first, with their age."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"alerts-log--info", "alerts-log--warn", "alerts-log--error"}

    DEFAULT_CSS = """
    AlertsLog {
        height: 1fr;
        min-height: 3;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        border: round $primary 40%;
        border-title-color: $text;
    }
    AlertsLog > .alerts-log--info { color: $text-muted; }
    AlertsLog > .alerts-log--warn { color: $warning; }
    AlertsLog > .alerts-log--error { color: $error; text-style: bold; }
    """

    def __init__(self, *, limit: int = 30, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.border_title = "alerts"
        self.limit = limit
        self._alerts: tuple[Alert, ...] = ()
        self._now = 0.0

    def show(self, alerts: Sequence[Alert], now: float) -> None:
        alerts = tuple(sorted(alerts, key=lambda a: a.t)[-self.limit:])
        ages = [fmt_ago(now, a.t) for a in alerts]
        if alerts != self._alerts or ages != [fmt_ago(self._now, a.t) for a in self._alerts]:
            self._alerts, self._now = alerts, now
            self.refresh()

    def render(self) -> RenderResult:
        if not self._alerts:
            return Text("no alerts", style=self.get_component_rich_style("alerts-log--info"))
        out = Text(no_wrap=True, overflow="ellipsis")
        for i, alert in enumerate(reversed(self._alerts)):
            level = alert.level if alert.level in ("info", "warn", "error") else "info"
            if i:
                out.append("\n")
            out.append(f"{fmt_ago(self._now, alert.t):>10} {alert.run or 'pipeline'}: {alert.code} {alert.message}",
                       style=self.get_component_rich_style(f"alerts-log--{level}"))
        return out
