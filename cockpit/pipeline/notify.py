"""Notifications through apprise (ntfy, Slack, e-mail, a JSON webhook, ...): a stall, a failed run or the
end of a pipeline reaches the user's phone.

``Notifier.on_event`` runs on the supervisor thread for every event: it only classifies the event and
queues it. One daemon thread builds the messages (``notify_messages``) and sends them, each send in a
throwaway thread joined with a deadline, so a service that never answers costs a timeout, never the
supervisor or ``close()``. A failed send becomes one ``notify`` alert and its message is kept, per URL,
and sent again before the next notification to that URL. Secrets in URLs never reach an alert.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from cockpit.pipeline.notify_messages import NOTIFY_CODE, Context, Notification, build, classify
from trainer.contract import ENV_NOTIFY, PIPELINE_SOURCE

__all__ = ["Notifier", "notify_urls", "check_notify_urls", "mask_url", "APPRISE_MISSING"]

APPRISE_MISSING = "notify needs apprise: pip install apprise"
URL_HELP = "https://github.com/caronc/apprise/wiki"
BACKLOG = 20  # unsent messages kept per URL; the oldest go first, counted
QUEUE_MAX = 200  # classified events waiting for the sender thread
WATCHDOG_GRACE_S = 1.0  # apprise's own socket timeouts normally fire first
_STOP = object()

# GOEMO_NOTIFY: spaces, or commas that start another URL (a comma inside ?to=a@x,b@y stays)
_SPLIT = re.compile(r"\s+|,(?=\s*[A-Za-z][A-Za-z0-9+.\-]*://)")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|localhost|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+)(:\d+)?")
_PLAIN_QUERY_KEYS = frozenset({"cto", "rto", "method", "format", "overflow", "verify", "priority", "mode"})


def notify_urls(configured: list[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    """The preset's URLs, then those of $GOEMO_NOTIFY (space- or comma-separated), each once, in order."""
    extra = _SPLIT.split(environ.get(ENV_NOTIFY, "") or "")
    urls = (str(u).strip().strip(",").strip() for u in [*configured, *extra])
    return list(dict.fromkeys(u for u in urls if u))


def _mask(secret: str) -> str:
    return f"{secret[0]}...{secret[-1]}" if len(secret) >= 8 else "****"


def _url_secrets(url: str) -> tuple[str, list[str]]:
    """(the URL with its secrets masked, the secrets): passwords, token-like hosts, path segments, query values."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _mask(url), [url]
    rest, qsep, query = rest.partition("?")
    host, *path = rest.split("/")
    secrets: list[str] = []
    userinfo, at, hostport = host.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        if colon and password:
            secrets.append(password)
        userinfo = user + (":****" if colon else "")
    if hostport and not _HOST.fullmatch(hostport):
        secrets.append(hostport)
        hostport = _mask(hostport)
    shown = f"{scheme}://{userinfo}{at}{hostport}"
    for segment in path:
        if segment:
            secrets.append(segment)
        shown += "/" + (_mask(segment) if segment else "")
    if qsep:
        pairs = []
        for pair in query.split("&"):
            key, eq, value = pair.partition("=")
            if value and key.lower() not in _PLAIN_QUERY_KEYS:
                secrets.append(value)
                value = _mask(value)
            pairs.append(f"{key}{eq}{value}")
        shown += "?" + "&".join(pairs)
    return shown, secrets


def mask_url(url: str) -> str:
    """The URL as alerts and errors show it: scheme, user and host names kept, everything secret-like masked."""
    return _url_secrets(url)[0]


def _scrub(text: str, url: str) -> str:
    """One line of a service's error text with the URL's secrets masked."""
    for secret in sorted(_url_secrets(url)[1], key=len, reverse=True):
        if len(secret) >= 3:
            text = text.replace(secret, _mask(secret))
    return " ".join(text.split())[:200].rstrip(".")


def _instantiate(apprise: Any, url: str) -> Any:
    try:
        return apprise.Apprise.instantiate(url, suppress_exceptions=True)
    except Exception:  # noqa: BLE001 - any failure means apprise does not accept the URL
        return None


def _known_scheme(scheme: str) -> bool:
    try:
        from apprise.manager_plugins import NotificationManager

        return scheme.lower() in NotificationManager()
    except Exception:  # noqa: BLE001 - an older apprise: say the generic thing
        return True


def _url_problem(apprise: Any, url: str) -> str | None:
    shown = mask_url(url)
    scheme, sep, _ = url.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        return (f"notify URL {shown!r}: expected an apprise URL SCHEME://... (e.g. ntfy://TOPIC, "
                f"json://HOST/PATH; see {URL_HELP})")
    if _instantiate(apprise, url) is not None:
        return None
    if not _known_scheme(scheme):
        return (f"notify URL {shown!r}: unknown service '{scheme}://' (expected an apprise service such as "
                f"ntfy, slack, mailto or json; see {URL_HELP})")
    return f"notify URL {shown!r}: apprise cannot read it as a {scheme}:// URL (see {URL_HELP} for its format)"


def check_notify_urls(urls: list[str]) -> str | None:
    """None when apprise accepts every URL, else one line naming the first bad one (masked) and what was
    expected; also a line when apprise is not installed."""
    try:
        import apprise
    except ImportError:
        return APPRISE_MISSING
    for url in urls:
        problem = _url_problem(apprise, url)
        if problem:
            return problem
    return None


class _FailureLog(logging.Handler):
    """apprise says why a send failed only in its log: keep each sending thread's last warning."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._last: dict[int, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._last[record.thread or 0] = record.getMessage()
        except Exception:  # noqa: BLE001 - a log line is never worth an exception in a sender
            pass

    def take(self) -> str | None:
        return self._last.pop(threading.get_ident(), None)


_failure_log: _FailureLog | None = None
_failure_log_lock = threading.Lock()


def _apprise_failures() -> _FailureLog:
    global _failure_log
    with _failure_log_lock:
        if _failure_log is None:
            _failure_log = _FailureLog()
            logging.getLogger("apprise").addHandler(_failure_log)
        return _failure_log


def _notify_type(apprise: Any, level: str) -> Any:
    try:
        return apprise.NotifyType(level)  # an Enum in apprise 1.9+
    except Exception:  # noqa: BLE001 - older apprise takes the plain string
        return level


@dataclass(eq=False)
class _Target:
    """One URL: its apprise service, its unsent messages and a send that never came back."""

    url: str
    shown: str
    service: Any
    backlog: deque = field(default_factory=deque)
    dropped: int = 0
    hung: threading.Thread | None = None


class Notifier:
    """Sends the events named in ``notify_on`` to every apprise URL; an outlet of the supervisor.

    ``on_event`` never blocks or raises; failures come back from ``drain_alerts`` as
    ``{"level": "warn", "code": "notify", "message": ...}``; ``close`` waits at most its timeout.
    """

    def __init__(self, urls: list[str], notify_on: list[str], pipeline_dir: Path, primary: float,
                 timeout_s: float = 10.0, host: str | None = None) -> None:
        self.urls = list(dict.fromkeys(urls))
        self.notify_on = frozenset(notify_on)
        self.pipeline_dir = Path(pipeline_dir)
        self.primary = primary
        self.timeout_s = float(timeout_s)
        self.host = host or socket.gethostname()
        self._pipeline = self.pipeline_dir.name
        self._max_restarts: int | None = None
        self._exit_reasons: dict[str, str] = {}
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_MAX)
        self._overflow = 0
        self._closed = False
        self._gave_up = False
        self._apprise: Any = None  # the module, imported by the sender thread
        self._alerts: list[dict[str, Any]] = []
        self._alerts_lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="goemo-notify", daemon=True)
        self._thread.start()

    # -- the supervisor's side ------------------------------------------------------------------
    def on_event(self, source: str, event: dict[str, Any]) -> None:
        """Queue the event if the user asked to hear about it; O(1), never blocks, never raises."""
        try:
            self._observe(source, event)
        except Exception as exc:  # noqa: BLE001 - a notification bug must never reach the supervisor
            self._alert(f"notification skipped: {type(exc).__name__}: {exc}")

    def _observe(self, source: str, event: dict[str, Any]) -> None:
        if self._closed or not isinstance(event, dict):
            return
        if source == PIPELINE_SOURCE:
            kind = event.get("type")
            if kind == "pipeline_start":
                self._pipeline = str(event.get("pipeline") or self._pipeline)
                restarts = event.get("max_restarts")
                self._max_restarts = restarts if isinstance(restarts, int) else None
            elif kind == "run_exit":
                self._exit_reasons[str(event.get("run"))] = str(event.get("reason") or "")
        what = classify(source, event, self.notify_on)
        if what is None:
            return
        run = str(event.get("run") or source)
        ctx = Context(self._pipeline, self.host, self._max_restarts, self._exit_reasons.get(run) or None)
        try:
            self._queue.put_nowait((what, source, dict(event), ctx))
        except queue.Full:
            self._overflow += 1
            if self._overflow == 1:
                self._alert(f"notifications arrive faster than they can be sent; dropping new ones "
                            f"(first dropped: {what} of {run})")

    def drain_alerts(self) -> list[dict[str, Any]]:
        """Alerts since the last call, for pipeline.jsonl (written by the caller's thread)."""
        with self._alerts_lock:
            alerts, self._alerts = self._alerts, []
        return alerts

    def close(self, timeout_s: float) -> None:
        """Let queued notifications go out, waiting at most ``timeout_s``; later events are ignored."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        if not self._closed:
            self._closed = True
            if self._overflow > 1:
                self._alert(f"{self._overflow} notifications were dropped (the sender was behind)")
            remaining = deadline - time.monotonic()
            try:
                if remaining > 0:
                    self._queue.put(_STOP, timeout=remaining)
                else:
                    self._queue.put_nowait(_STOP)
            except queue.Full:
                pass
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive() and not self._gave_up:
            self._gave_up = True
            self._alert(f"notifications still being sent after {timeout_s:g} s were given up")

    def _alert(self, message: str) -> None:
        with self._alerts_lock:
            self._alerts.append({"level": "warn", "code": NOTIFY_CODE, "message": message})

    # -- the sender thread ----------------------------------------------------------------------
    def _serve(self) -> None:
        targets = self._connect()
        while True:
            item = self._queue.get()
            if item is _STOP:
                for target in targets:
                    if target.backlog:
                        self._alert(f"{len(target.backlog)} notification(s) never sent to {target.shown} "
                                    f"(kept after failures until the pipeline closed)")
                return
            kind, source, event, ctx = item
            try:
                message = build(kind, source, event, ctx, self.pipeline_dir, self.primary)
            except Exception as exc:  # noqa: BLE001 - a torn file must not end the sender
                self._alert(f"notification of {kind} not built: {type(exc).__name__}: {exc}")
                continue
            for target in targets:
                self._deliver(target, message)

    def _connect(self) -> list[_Target]:
        try:
            import apprise
        except ImportError:
            self._alert(APPRISE_MISSING)
            return []
        self._apprise = apprise
        targets = []
        for url in self.urls:
            service = _instantiate(apprise, url)
            if service is None:
                self._alert(f"{_url_problem(apprise, url) or mask_url(url)}; nothing is sent there")
                continue
            # apprise's own socket timeouts bound the send; the watchdog in _send catches the rest (DNS, ...)
            for attr, param in (("socket_connect_timeout", "cto="), ("socket_read_timeout", "rto=")):
                current = getattr(service, attr, None)
                explicit = param in url and isinstance(current, (int, float))
                setattr(service, attr, min(float(current), self.timeout_s) if explicit else self.timeout_s)
            targets.append(_Target(url, mask_url(url), service))
        return targets

    def _deliver(self, target: _Target, message: Notification) -> None:
        """Send the target's backlog, oldest first, then this message; stop at the first failure (one alert)."""
        target.backlog.append(message)
        while len(target.backlog) > BACKLOG:
            target.backlog.popleft()
            target.dropped += 1
        if target.hung is not None and target.hung.is_alive():
            self._alert(f"notification {message.title!r} not sent to {target.shown}: its previous send has not "
                        f"returned; {len(target.backlog)} kept for the next try")
            return
        target.hung = None
        while target.backlog:
            head = target.backlog[0]
            why = self._send(target, head, late=head is not message)
            if why is not None:
                dropped = f" ({target.dropped} older dropped)" if target.dropped else ""
                self._alert(f"notification {head.title!r} not sent to {target.shown}: {why}; "
                            f"{len(target.backlog)} kept for the next try{dropped}")
                return
            target.backlog.popleft()
            target.dropped = 0

    def _send(self, target: _Target, message: Notification, late: bool) -> str | None:
        """One send, bounded by timeout_s; None when the service took it, else why not (secrets masked)."""
        notes = []
        if late:
            notes.append(f"(delayed: from {time.strftime('%H:%M:%S', time.localtime(message.made_at))})")
        if target.dropped:
            notes.append(f"({target.dropped} older notification(s) dropped)")
        body = "\n".join([*notes, message.body])
        failures = _apprise_failures()
        outcome: dict[str, Any] = {}

        def attempt() -> None:
            failures.take()  # a line left by an earlier thread with the same ident
            try:
                outcome["ok"] = bool(target.service.notify(body=body, title=message.title,
                                                           notify_type=_notify_type(self._apprise, message.level)))
            except Exception as exc:  # noqa: BLE001 - a plugin's bug is a failed send
                outcome["error"] = f"{type(exc).__name__}: {exc}"
            outcome["log"] = failures.take()

        worker = threading.Thread(target=attempt, name="goemo-notify-send", daemon=True)
        worker.start()
        worker.join(self.timeout_s + WATCHDOG_GRACE_S)
        if worker.is_alive():
            target.hung = worker  # abandoned: a daemon thread, and the next try waits until it returns
            return f"no answer within {self.timeout_s:g} s"
        if outcome.get("ok"):
            return None
        return _scrub(str(outcome.get("error") or outcome.get("log") or "the service refused it"), target.url)
