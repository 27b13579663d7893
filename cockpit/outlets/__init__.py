"""Outlets: one job, sending the supervisor's events somewhere besides pipeline.jsonl and the view.

- this module: the ``Outlet`` protocol and the supervisor's fan-out (``build_outlets``, ``fan_out``,
  ``drain``, ``close_all``);
- `trackers`: the trackers users already use (``report_to``: TensorBoard, MLflow, trackio, W&B), fed
  live (``TrackerFanout``) or replayed from a finished pipeline folder (``replay``, ``goemo-cockpit export``);
- `notify`, `notify_messages`, `notify_urls`: notifications (``notify``): sending through apprise, what a
  message says, and the URLs (where they come from, their checks and masking).

Each outlet queues work for its own thread: ``on_event`` returns at once, so a slow or dead tracker or
phone service never holds up the supervisor, and through it, training. An outlet's failures come back as
alerts that the supervisor writes into pipeline.jsonl from its own thread (the event writer is not shared
between threads). The package never imports the supervisor (``cockpit.pipeline``): the supervisor imports it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Outlet(Protocol):
    def on_event(self, origin: str, event: dict[str, Any]) -> None: ...

    def drain_alerts(self) -> list[dict[str, Any]]: ...

    def close(self, timeout_s: float) -> None: ...


def build_outlets(pipeline_dir: Path, settings: Any) -> list[Outlet]:
    """The tracker fan-out (it forwards only runs whose config asks for trackers) and, when any URL is
    configured (``notify`` or $GOEMO_NOTIFY), the notifier."""
    from cockpit.outlets.notify import Notifier
    from cockpit.outlets.notify_urls import notify_urls
    from cockpit.outlets.trackers import TrackerFanout

    outlets: list[Outlet] = [TrackerFanout(pipeline_dir, pipeline_dir.name)]
    urls = notify_urls(list(settings.notify))
    if urls:
        outlets.append(Notifier(urls, list(settings.notify_on), pipeline_dir, settings.primary_threshold,
                                timeout_s=settings.notify_timeout_s))
    return outlets


def fan_out(outlets: list[Outlet], origin: str, event: dict[str, Any]) -> None:
    """Hand one event to every outlet; an outlet's own bug must not reach the supervisor: the outlet is
    taken out of the list, with one line in the supervisor's log."""
    for outlet in list(outlets):
        try:
            outlet.on_event(origin, event)
        except Exception as exc:  # noqa: BLE001 - outlets promise not to raise; this keeps a broken one harmless
            outlets.remove(outlet)
            log.warning("outlet %s failed (%s: %s) and was switched off", type(outlet).__name__,
                        type(exc).__name__, " ".join(str(exc).split())[:200])


def drain(outlets: list[Outlet]) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = []
    for outlet in outlets:
        try:
            alerts.extend(outlet.drain_alerts())
        except Exception as exc:  # noqa: BLE001 - see fan_out
            log.warning("outlet %s failed to report alerts (%s)", type(outlet).__name__, exc)
    return alerts


def close_all(outlets: list[Outlet], timeout_s: float) -> None:
    """Give the outlets ``timeout_s`` in all to flush (trackers finish their runs, notifications go out)."""
    import time

    deadline = time.monotonic() + timeout_s
    for outlet in outlets:
        try:
            outlet.close(max(0.0, deadline - time.monotonic()))
        except Exception as exc:  # noqa: BLE001 - see fan_out
            log.warning("outlet %s failed to close (%s)", type(outlet).__name__, exc)
