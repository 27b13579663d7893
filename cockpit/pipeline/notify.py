"""Notifications through apprise (ntfy, Slack, e-mail, a JSON webhook, ...): a stall, a failed run or the
end of a pipeline reaches the user's phone.

``Notifier.on_event`` runs on the supervisor thread for every event: it only classifies the event and
queues it. One daemon thread builds the messages (``notify_messages``) and hands each to every URL's own
sender thread, so a URL that never answers delays only itself: the others, and the final message, go out
at once. A sender sends one message at a time, each in a throwaway thread joined with a deadline, so a hung
service costs an alert, never the supervisor or ``close()``.

A send the service refused (an error status, a refused connection) becomes one ``notify`` alert; the message
is kept and sent again before the next one to that URL. A send that timed out is never sent again: the
service may have taken it and only answered late (a slow webhook once got the same POST 7 times).
Secrets in URLs never reach an alert, an error line or the disk.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import socket
import threading
import time
import tomllib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from cockpit.pipeline.notify_messages import NOTIFY_CODE, Context, Notification, build, classify
from trainer.config import ConfigError, parse_override
from trainer.contract import ENV_NOTIFY, PIPELINE_SOURCE

__all__ = ["Notifier", "notify_urls", "check_notify_urls", "mask_url", "seconds_text", "APPRISE_MISSING",
           "NotifyFileError", "notify_file_urls", "notify_source", "notify_environment", "shown_override"]

APPRISE_MISSING = "notify needs apprise: pip install apprise"
URL_HELP = "https://github.com/caronc/apprise/wiki"
BACKLOG = 20  # unsent messages kept per URL; the oldest go first, counted
QUEUE_MAX = 200  # classified events waiting for the builder thread
WATCHDOG_GRACE_S = 1.0  # apprise's own socket timeouts normally fire first
TIMED_OUT_SLACK = 0.95  # a failed send that took this share of its socket timeout timed out
_STOP = object()

# GOEMO_NOTIFY: spaces, or commas that start another URL (a comma inside ?to=a@x,b@y stays)
_SPLIT = re.compile(r"\s+|,(?=\s*[A-Za-z][A-Za-z0-9+.\-]*://)")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|localhost|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+)(:\d+)?")
_PLAIN_QUERY_KEYS = frozenset({"cto", "rto", "method", "format", "overflow", "verify", "priority", "mode"})
_MASKED = re.compile(r"\*{4}|.{0,4}\.\.\..{0,4}")  # apprise's privacy renderings: '****', 'a...z', '...wxyz'


def notify_urls(configured: list[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    """The preset's URLs, then those of $GOEMO_NOTIFY (space- or comma-separated), each once, in order."""
    extra = _SPLIT.split(environ.get(ENV_NOTIFY, "") or "")
    urls = (str(u).strip().strip(",").strip() for u in [*configured, *extra])
    return list(dict.fromkeys(u for u in urls if u))


NOTIFY_KEY = "pipeline.notify"
NOTIFY_FROM_DEPTH = 4  # notify_from files naming further files: a loop ends here


class NotifyFileError(ValueError):
    """A ``notify_from`` file that cannot be read: one line naming it."""


def _pipeline_table(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            table = tomllib.load(fh).get("pipeline", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise NotifyFileError(f"{path}: {reason} (expected a TOML file with [pipeline] notify = [...])") from None
    return table if isinstance(table, dict) else {}


def _notify_from_path(value: Any, base: Path) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else base / path


def notify_file_urls(path: Path, _depth: int = 0) -> list[str]:
    """The ``[pipeline] notify`` URLs of a TOML file (a preset), then those of its own ``notify_from``.

    This is how a pipeline folder finds its URLs again on ``--resume``: they are never saved in it."""
    table = _pipeline_table(path)
    urls = table.get("notify", [])
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise NotifyFileError(f"{path}: key 'pipeline.notify': expected a list of apprise URLs")
    nested = table.get("notify_from")
    if nested and _depth < NOTIFY_FROM_DEPTH:
        urls = [*urls, *notify_file_urls(_notify_from_path(nested, path.parent), _depth + 1)]
    return list(dict.fromkeys(urls))


def notify_source(preset_path: Path) -> str | None:
    """What a new pipeline folder's preset.toml records as ``notify_from``: the preset file itself when it
    names notify URLs (or a file of them), so that --resume reads them again; None when it names none."""
    try:
        table = _pipeline_table(preset_path)
    except NotifyFileError:
        return None
    return str(preset_path.resolve()) if table.get("notify") or table.get("notify_from") else None


def strip_notify_overrides(overrides: list[str]) -> tuple[list[str], bool]:
    """(the overrides without those that set ``pipeline.notify`` or one of its items, whether there were
    any): a launch hands the URLs to a detached process through its environment, never its command line,
    which ``ps`` shows to every user."""
    kept = []
    for item in overrides:
        key = item.partition("=")[0].strip()
        if key != NOTIFY_KEY and not (key.startswith(NOTIFY_KEY + ".") and key[len(NOTIFY_KEY) + 1:].isdigit()):
            kept.append(item)
    return kept, len(kept) < len(overrides)


def notify_environment(urls: list[str], overrides: list[str],
                       environ: Mapping[str, str] = os.environ) -> tuple[list[str], dict[str, str]]:
    """A detached process's overrides and environment: when overrides set notify URLs, the resolved URLs
    (``urls``: the preset's, the overrides' and $GOEMO_NOTIFY's) travel in $GOEMO_NOTIFY and the command line
    says only ``pipeline.notify=[]``, so that nothing is added twice or lost."""
    kept, touched = strip_notify_overrides(overrides)
    env = dict(environ)
    if touched:
        kept.append(f"{NOTIFY_KEY}=[]")
        env[ENV_NOTIFY] = " ".join(notify_urls(urls, environ))
    return kept, env


def shown_override(item: str) -> str:
    """An override as a view shows it: a ``pipeline.notify`` value with every URL masked."""
    key, eq, value = item.partition("=")
    if key.strip() != NOTIFY_KEY or not eq:
        return item
    try:
        _, urls = parse_override(item)
    except ConfigError:
        return f"{key}=****"
    if not isinstance(urls, list):
        urls = [urls]
    return f"{key}=[{', '.join(_url_secrets(str(u))[0] for u in urls)}]"


def seconds_text(seconds: float) -> str:
    """A timeout as alerts say it: '3 s', '0.2 s', '2.5 s' (one decimal at most: no '2.99853 s')."""
    return f"{round(float(seconds), 1):g} s"


def _mask(secret: str) -> str:
    if _MASKED.fullmatch(secret):
        return secret  # apprise masked it already
    return f"{secret[0]}...{secret[-1]}" if len(secret) >= 8 else "****"


def _url_secrets(url: str) -> tuple[str, list[str]]:
    """(the URL with its secrets masked, the secrets): the user part, passwords, token-like hosts, path
    segments and query values."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _mask(url), [url]
    rest, qsep, query = rest.partition("?")
    host, *path = rest.split("/")
    secrets: list[str] = []
    userinfo, at, hostport = host.rpartition("@")
    if at:
        # ntfy://TOKEN@host, pover://USER_KEY@TOKEN, twilio://SID:TOKEN@...: a user part can be the secret
        user, colon, password = userinfo.partition(":")
        secrets += [s for s in (user, password) if s]
        userinfo = (_mask(user) if user else "") + (":****" if colon else "")
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


def _privacy_url(service: Any) -> str | None:
    """apprise's own rendering of a service's URL with its secrets masked, without the query of defaults."""
    try:
        shown = str(service.url(privacy=True))
    except Exception:  # noqa: BLE001 - a plugin without a privacy rendering: mask it ourselves
        return None
    return shown.partition("?")[0].rstrip("/") if "://" in shown else None


def mask_url(url: str, service: Any = None) -> str:
    """The URL as alerts and errors show it: apprise's privacy rendering when apprise reads the URL, and
    any user part, token-like host, path segment or query value it left in clear masked as well."""
    if service is None:
        try:
            import apprise
        except ImportError:
            apprise = None
        service = _instantiate(apprise, url) if apprise is not None else None
    shown = _privacy_url(service) if service is not None else None
    return _url_secrets(shown or url)[0]


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
    shown = _url_secrets(url)[0]  # apprise cannot render a URL it does not read
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


@dataclass(frozen=True)
class _Outcome:
    """How one send ended: ``sent``; ``refused`` (nothing arrived: safe to send again); ``timed_out`` (it
    may have arrived: never sent again); ``late`` (past the watchdog, already alerted, then failed)."""

    status: str
    why: str = ""


@dataclass(eq=False)
class _Outgoing:
    message: Notification
    delayed: bool = False  # held up behind a failed send: the body says when it was made


class _UrlSender:
    """One URL's own thread: its messages in order, one send at a time, so a dead or slow URL holds up
    nothing but itself."""

    def __init__(self, url: str, service: Any, apprise: Any, timeout_s: float,
                 alert: Callable[[str], None]) -> None:
        self.url = url
        self.shown = mask_url(url, service)
        self.service = service
        self.apprise = apprise
        self.timeout_s = timeout_s
        self.alert = alert
        self.gave_up = False  # close() has said it abandoned this URL
        self._pending: deque[_Outgoing] = deque()
        self._dropped = 0
        self._refused = False  # the head was refused: wait for a new message before sending again
        self._in_flight: _Outgoing | None = None  # never dropped for the backlog's bound while it is out
        self._stopping = False
        self._cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="goemo-notify-send", daemon=True)
        self.thread.start()

    def put(self, message: Notification) -> None:
        with self._cond:
            self._pending.append(_Outgoing(message))
            while len(self._pending) > BACKLOG:
                del self._pending[1 if self._pending[0] is self._in_flight else 0]
                self._dropped += 1
            self._refused = False  # a new message: try the kept ones again, oldest first
            self._cond.notify()

    def stop(self) -> None:
        """Send what can go out now, then end; what a refusal holds back is reported, not retried."""
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while (self._refused or not self._pending) and not self._stopping:
                    self._cond.wait()
                if not self._pending or self._refused:
                    left = len(self._pending)
                    break
                head = self._in_flight = self._pending[0]
                dropped = self._dropped
            outcome = self._send(head, dropped)
            with self._cond:
                self._in_flight = None
                if outcome.status == "refused":
                    self._refused = True
                    for outgoing in self._pending:
                        outgoing.delayed = True
                    kept = len(self._pending)
                else:
                    self._pending.popleft()  # the head: put() never drops the message in flight
                    if outcome.status == "sent":
                        self._dropped -= min(dropped, self._dropped)  # those the body just reported
            title = head.message.title
            if outcome.status == "refused":
                older = f" ({dropped} older dropped)" if dropped else ""
                self.alert(f"notification {title!r} not sent to {self.shown}: {outcome.why}; "
                           f"{kept} kept for the next try{older}")
            elif outcome.status == "timed_out":
                self.alert(f"notification {title!r} to {self.shown}: {outcome.why}; not sent again "
                           f"(it may have arrived)")
        if left:
            self.alert(f"{left} notification(s) never sent to {self.shown} "
                       f"(kept after failures until the pipeline closed)")

    def _send(self, outgoing: _Outgoing, dropped: int) -> _Outcome:
        """One send, watched for ``timeout_s``; a send still out then is waited for, never repeated."""
        message = outgoing.message
        notes = []
        if outgoing.delayed:
            notes.append(f"(delayed: from {time.strftime('%H:%M:%S', time.localtime(message.made_at))})")
        if dropped:
            notes.append(f"({dropped} older notification(s) dropped)")
        body = "\n".join([*notes, message.body])
        failures = _apprise_failures()
        outcome: dict[str, Any] = {}

        def attempt() -> None:
            failures.take()  # a line left by an earlier thread with the same ident
            try:
                outcome["ok"] = bool(self.service.notify(body=body, title=message.title,
                                                         notify_type=_notify_type(self.apprise, message.level)))
            except Exception as exc:  # noqa: BLE001 - a plugin's bug is a failed send
                outcome["error"] = f"{type(exc).__name__}: {exc}"
            outcome["log"] = failures.take()

        started = time.monotonic()
        worker = threading.Thread(target=attempt, name="goemo-notify-attempt", daemon=True)
        worker.start()
        worker.join(self.timeout_s + WATCHDOG_GRACE_S)
        if worker.is_alive():
            # The request may be on the wire: sending it again could deliver it twice. Wait for this one.
            self.alert(f"notification {message.title!r} to {self.shown}: no answer within "
                       f"{seconds_text(self.timeout_s)}; not sent again (it may have arrived), and later ones wait for it")
            worker.join()
            return _Outcome("sent") if outcome.get("ok") else _Outcome("late")
        if outcome.get("ok"):
            return _Outcome("sent")
        if time.monotonic() - started >= TIMED_OUT_SLACK * self._socket_timeout():
            return _Outcome("timed_out", f"no answer within {seconds_text(self._socket_timeout())}")
        why = _scrub(str(outcome.get("error") or outcome.get("log") or "the service refused it"), self.url)
        return _Outcome("refused", why)

    def _socket_timeout(self) -> float:
        """The shortest socket timeout apprise sends with: a failure that took this long timed out."""
        limits = [getattr(self.service, a, None) for a in ("socket_connect_timeout", "socket_read_timeout")]
        return min([float(v) for v in limits if isinstance(v, (int, float)) and v > 0] or [self.timeout_s])


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
        self._senders: list[_UrlSender] = []
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
        """Let queued notifications go out, waiting at most ``timeout_s`` in all (every URL at once, so the
        last message reaches the URLs that answer); later events are ignored."""
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
        if self._thread.is_alive():
            if not self._gave_up:
                self._gave_up = True
                self._alert(f"notifications still being prepared after {seconds_text(timeout_s)} were given up")
            return
        for sender in self._senders:
            sender.thread.join(max(0.0, deadline - time.monotonic()))
        for sender in self._senders:
            if sender.thread.is_alive() and not sender.gave_up:
                sender.gave_up = True
                self._alert(f"notifications to {sender.shown} still being sent after {seconds_text(timeout_s)} "
                            f"were given up")

    def _alert(self, message: str) -> None:
        with self._alerts_lock:
            self._alerts.append({"level": "warn", "code": NOTIFY_CODE, "message": message})

    # -- the builder thread ---------------------------------------------------------------------
    def _serve(self) -> None:
        self._senders = self._connect()
        while True:
            item = self._queue.get()
            if item is _STOP:
                for sender in self._senders:
                    sender.stop()
                return
            kind, source, event, ctx = item
            try:
                message = build(kind, source, event, ctx, self.pipeline_dir, self.primary)
            except Exception as exc:  # noqa: BLE001 - a torn file must not end the builder
                self._alert(f"notification of {kind} not built: {type(exc).__name__}: {exc}")
                continue
            for sender in self._senders:
                sender.put(message)

    def _connect(self) -> list[_UrlSender]:
        try:
            import apprise
        except ImportError:
            self._alert(APPRISE_MISSING)
            return []
        senders = []
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
            senders.append(_UrlSender(url, service, apprise, self.timeout_s, self._alert))
        return senders
