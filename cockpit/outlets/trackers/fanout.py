"""Live forwarding: the supervisor hands every event it reads to ``TrackerFanout.on_event``.

A run is forwarded when its ``run_start`` config asks for trackers (``report_to``); its earlier events
(``data``) wait in a buffer until then. Each tracker of each run gets a lane: a bounded queue and a daemon
thread that translates and applies, so a slow or hung tracker holds up neither the supervisor nor the
other trackers. ``on_event`` only appends to queues. A watchdog thread starts the lanes and times every
tracker call: a call that raises, or runs past ``call_timeout_s`` (a thread cannot be killed, so it is
abandoned), drops that tracker for that run with one alert. ``close`` flushes and finishes every tracker
run within its timeout, abandoning what is still busy at the deadline.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from cockpit.outlets.trackers.base import CALL_TIMEOUT_S
from cockpit.outlets.trackers.registry import installed_trackers, make_tracker_run, resolve_lenient
from cockpit.outlets.trackers.session import TrackerSession
from trainer.contract import PIPELINE_ORIGIN
from trainer.contract import Event

log = logging.getLogger(__name__)

_CLOSE = object()
FLUSH_EVERY = 200  # events between flushes while a lane has a backlog
# A lane that runs dry flushes what it holds at most this often: a tracker write per event (an SQLite
# commit for MLflow) cost the supervisor 15 % of a core at 10 events/s (bench/outlets_overhead.py).
FLUSH_INTERVAL_S = 5.0


class _Abandoned(Exception):
    """Raised in a lane's thread when its call came back after the watchdog gave up on it."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


class _Lane:
    """One tracker of one run: its queue, its thread and the watchdog's view of the call in progress."""

    def __init__(self, fanout: "TrackerFanout", tracker: str, run: str) -> None:
        self.fanout, self.tracker, self.run = fanout, tracker, run
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._serve, name=f"tracker-{tracker}-{run}", daemon=True)
        self.started = False
        self.dead = False  # failed, abandoned or finished: takes no more events
        self.busy_since: float | None = None  # monotonic start of the call in progress
        self.busy_with = ""
        self.dropped = 0

    def offer(self, item: tuple[bool, dict[str, Any]]) -> None:
        """Called on the supervisor's thread: enqueue, or drop and count when the queue is full."""
        if self.queue.qsize() >= self.fanout.queue_size:
            self.dropped += 1
            if self.dropped == 1:
                self.fanout._alert(self.run, f"{self.tracker}: forwarding fell {self.fanout.queue_size} events "
                                             f"behind for {self.run}; dropping events until it catches up")
            return
        self.queue.put(item)

    def _timed(self, what: str, function: Any, *args: Any, **kwargs: Any) -> None:
        self.busy_with, self.busy_since = what, time.monotonic()
        try:
            function(*args, **kwargs)
        finally:
            self.busy_since = None
            if self.dead:
                raise _Abandoned

    def _serve(self) -> None:
        session: TrackerSession | None = None
        since_flush = 0
        last_flush = time.monotonic()
        try:
            fanout = self.fanout
            session = TrackerSession(make_tracker_run(self.tracker, fanout.pipeline_dir, fanout.pipeline_id, self.run),
                                     continue_existing=True)  # a resumed supervisor carries on the same runs
            while True:
                wait = max(0.0, last_flush + FLUSH_INTERVAL_S - time.monotonic()) if since_flush else None
                try:
                    item = self.queue.get(timeout=wait)
                except queue.Empty:  # quiet for a while: write out what is held
                    self._timed("flush", session.flush)
                    since_flush, last_flush = 0, time.monotonic()
                    continue
                if item is _CLOSE:
                    self._timed("finish", session.finish, "stopped")
                    return
                from_pipeline, event = item
                self._timed(f"{event.get('type')} event", session.feed, event, from_pipeline=from_pipeline)
                since_flush += 1
                if since_flush >= FLUSH_EVERY or (self.queue.empty()
                                                  and time.monotonic() - last_flush >= FLUSH_INTERVAL_S):
                    self._timed("flush", session.flush)
                    since_flush, last_flush = 0, time.monotonic()
        except _Abandoned:
            return
        except Exception as exc:  # noqa: BLE001 - any tracker failure drops the tracker, never the supervisor
            if not self.dead:
                self.dead = True
                self.fanout._alert(self.run, f"{self.tracker} failed for {self.run} ({_one_line(exc)}); "
                                             f"no longer forwarding it there")
                log.debug("tracker %s failed for %s", self.tracker, self.run, exc_info=True)
            self._finish_quietly(session)
        finally:
            self.dead = True

    def _finish_quietly(self, session: TrackerSession | None) -> None:
        """Best effort to close a failed tracker run (its own errors are not news)."""
        if session is None:
            return
        try:
            self.busy_with, self.busy_since = "finish after a failure", time.monotonic()
            session.finish("stopped")
        except Exception:  # noqa: BLE001
            log.debug("closing %s for %s after a failure failed too", self.tracker, self.run, exc_info=True)
        finally:
            self.busy_since = None

    def hung_for(self, now: float) -> float:
        since = self.busy_since
        return now - since if since is not None else 0.0


class _RunState:
    __slots__ = ("buffer", "lanes", "decided")

    def __init__(self) -> None:
        self.buffer: list[tuple[bool, dict[str, Any]]] = []
        self.lanes: list[_Lane] = []
        self.decided = False


class TrackerFanout:
    """Forwards each run's events to the trackers its config's ``report_to`` names. ``queue_size`` bounds each
    lane (one tracker of one run); ``call_timeout_s`` is how long one tracker call may take before that tracker
    is dropped for that run."""

    def __init__(self, pipeline_dir: Path, pipeline_id: str, queue_size: int = 10_000,
                 call_timeout_s: float = CALL_TIMEOUT_S) -> None:
        self.pipeline_dir = Path(pipeline_dir)
        self.pipeline_id = pipeline_id
        self.queue_size = max(1, int(queue_size))
        self.call_timeout_s = float(call_timeout_s)
        self._installed = installed_trackers()  # what "all" means, looked up once (not on the event path)
        self._runs: dict[str, _RunState] = {}
        self._lanes: list[_Lane] = []
        self._pending: deque[_Lane] = deque()  # lanes whose thread the watchdog has yet to start
        self._alerts: deque[dict[str, Any]] = deque()
        self._start_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._watchdog = threading.Thread(target=self._watch, name="tracker-watchdog", daemon=True)
        self._watchdog.start()

    # -- the supervisor's side ---------------------------------------------------------------
    def on_event(self, origin: str, event: dict[str, Any]) -> None:
        """Queue one event for the trackers of its run (``origin``: a run id, or ``pipeline`` for the supervisor's
        own events, which reach a run's trackers as notes when they name it). Called from one thread, the
        supervisor's; returns at once (appends to queues) and never raises."""
        try:
            if self._closed:
                return
            if origin == PIPELINE_ORIGIN:
                state = self._runs.get(event.get("run")) if isinstance(event.get("run"), str) else None
                if state is not None and state.lanes:
                    self._offer(state, (True, event))
                return
            state = self._runs.get(origin)
            if state is None:
                state = self._runs[origin] = _RunState()
            if event.get("type") == Event.RUN_START and not state.lanes:
                self._decide(origin, state, event)
            elif not state.decided:
                if len(state.buffer) < self.queue_size:  # a run's events before run_start: load, data
                    state.buffer.append((False, event))
                return
            if state.lanes:
                self._offer(state, (False, event))
        except Exception:  # noqa: BLE001 - the supervisor must never see a tracker problem
            log.exception("tracker fan-out failed on an event of %s", origin)

    def _offer(self, state: _RunState, item: tuple[bool, dict[str, Any]]) -> None:
        for lane in state.lanes:
            if not lane.dead:
                lane.offer(item)

    def _decide(self, run: str, state: _RunState, run_start: dict[str, Any]) -> None:
        """At a run's run_start: which trackers it goes to; their lanes get the buffered events first."""
        config = run_start.get("config")
        value = config.get("report_to", "none") if isinstance(config, dict) else "none"
        chosen, problems = resolve_lenient(value, self._installed)
        for problem in problems if not state.decided else ():
            self._alert(run, f"{run}: {problem}; not forwarding to it")
        state.decided = True
        buffered, state.buffer = state.buffer, []
        for tracker in chosen:
            lane = _Lane(self, tracker, run)
            for item in buffered:
                lane.queue.put(item)
            state.lanes.append(lane)
            self._lanes.append(lane)
            self._pending.append(lane)
        if chosen:
            self._wake.set()

    def drain_alerts(self) -> list[dict[str, Any]]:
        """Alerts raised since the last call: ``{"level": "warn", "code": "tracker", "message", "run"}``."""
        alerts = []
        while True:
            try:
                alerts.append(self._alerts.popleft())
            except IndexError:
                return alerts

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush and finish every tracker run, waiting at most ``timeout_s`` in all; a tracker still busy at
        the deadline is abandoned with an alert (returned by the next ``drain_alerts``)."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        self._closed = True
        lanes = list(self._lanes)
        for lane in lanes:
            lane.queue.put(_CLOSE)
            self._start(lane)
        for lane in lanes:
            if not lane.dead:  # an abandoned call never comes back: no point waiting for it
                lane.thread.join(max(0.0, deadline - time.monotonic()))
        for lane in lanes:
            if lane.thread.is_alive() and not lane.dead:
                lane.dead = True
                busy = lane.busy_with if lane.busy_since is not None else "its backlog"
                self._alert(lane.run, f"{lane.tracker} did not finish {lane.run} within {round(timeout_s, 1):g} s "
                                      f"(busy with: {busy}); abandoned")
        self._wake.set()

    # -- the watchdog's side -----------------------------------------------------------------
    def _alert(self, run: str, message: str) -> None:
        self._alerts.append({"level": "warn", "code": "tracker", "message": message, "run": run})

    def _start(self, lane: _Lane) -> None:
        with self._start_lock:
            if not lane.started:
                lane.started = True
                lane.thread.start()

    def _watch(self) -> None:
        """Starts new lanes (so on_event never waits for a thread to start) and gives up on hung calls."""
        interval = max(0.01, min(1.0, self.call_timeout_s / 4))
        while not self._closed:
            self._wake.wait(interval if self._lanes else None)
            self._wake.clear()
            while self._pending:
                self._start(self._pending.popleft())
            now = time.monotonic()
            for lane in list(self._lanes):
                if not lane.dead and lane.hung_for(now) > self.call_timeout_s:
                    lane.dead = True
                    self._alert(lane.run, f"{lane.tracker} stopped answering for {lane.run} "
                                          f"({lane.busy_with} took over {round(self.call_timeout_s, 1):g} s); "
                                          f"no longer forwarding it there")
