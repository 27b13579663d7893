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
import queue
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from cockpit.outlets.notify_messages import NOTIFY_CODE, Context, Notification, build, classify
from cockpit.outlets.notify_urls import APPRISE_MISSING, _instantiate, _scrub, _url_problem, mask_url
from cockpit.records import BadEvent, PipelineStart, RunExit, decode

BACKLOG = 20  # unsent messages kept per URL; the oldest go first, counted
QUEUE_MAX = 200  # classified events waiting for the builder thread
WATCHDOG_GRACE_S = 1.0  # apprise's own socket timeouts normally fire first
TIMED_OUT_SLACK = 0.95  # a failed send that took this share of its socket timeout timed out
_STOP = object()


def seconds_text(seconds: float) -> str:
    """A timeout as alerts say it: '3 s', '0.2 s', '2.5 s' (one decimal at most: no '2.99853 s')."""
    return f"{round(float(seconds), 1):g} s"


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
    def on_event(self, origin: str, event: dict[str, Any]) -> None:
        """Queue the event if the user asked to hear about it; O(1), never blocks, never raises."""
        try:
            self._observe(origin, event)
        except Exception as exc:  # noqa: BLE001 - a notification bug must never reach the supervisor
            self._alert(f"notification skipped: {type(exc).__name__}: {exc}")

    def _observe(self, origin: str, event: dict[str, Any]) -> None:
        if self._closed:
            return
        try:
            record = decode(origin, event)
        except BadEvent:
            return  # the view counts malformed events; a message about one would say nothing true
        if isinstance(record, PipelineStart):
            self._pipeline = record.pipeline or self._pipeline
            self._max_restarts = record.max_restarts
        elif isinstance(record, RunExit):
            self._exit_reasons[record.run] = record.reason
        what = classify(origin, record, self.notify_on) if record is not None else None
        if what is None:
            return
        run = getattr(record, "run", None) or origin
        ctx = Context(self._pipeline, self.host, self._max_restarts, self._exit_reasons.get(run) or None)
        try:
            self._queue.put_nowait((what, origin, record, ctx))
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
            kind, origin, record, ctx = item
            try:
                message = build(kind, origin, record, ctx, self.pipeline_dir, self.primary)
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
