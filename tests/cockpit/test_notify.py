"""Notifications through apprise: a local webhook (apprise's json:// plugin) receives what a user's phone
would, from a fake pipeline's events; failing, closed and hung endpoints never hold up the supervisor."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import fake_pipeline as fp
import pytest

from cockpit.cli import _web_argv, build_parser
from cockpit.outlets import notify
from cockpit.pipeline import start
from cockpit.outlets.notify import Notifier, seconds_text
from cockpit.outlets.notify_urls import APPRISE_MISSING, check_notify_urls, mask_url, notify_urls, shown_override
from cockpit.pipeline.presets import PresetError, load_preset
from cockpit.pipeline.start import PipelineRequest, materialise, prepare_pipeline, start_detached
from cockpit.outlets.notify_messages import main_thread_frames
from cockpit.pipeline.watchdog import write_stall_forensics
from trainer.contract import (DEFAULT_NOTIFY_ON, ENV_NOTIFY, PIPELINE_FILE, PIPELINE_ORIGIN, SUMMARY_FILE,
                              TUNED_KEY, PipelinePaths, f1_macro_key, stall_file)
from trainer.events import read_events
from tests.webhook import WebHook

HOST = "gpu-node-7"
MAIN_FRAMES = ["injected_hang (faults.py:85)", "before_step (faults.py:67)", "train_step (loop.py:377)",
               "train (loop.py:420)", "run_training (loop.py:610)"]
# write_stall_forensics' layout with faulthandler's all-threads dump: the newest thread first, the main thread
# last (marked "Current thread": SIGUSR1 landed on it); the stderr tail holds an older, unrelated dump.
DUMP = """stall 1 of run p1-asl at 2026-11-26 22:17:40
silent for 45.0 s (allowed 30.0 s)

== stacks (SIGUSR1, all threads) ==
Thread 0x00007f0112e406c0 (most recent call first):
  File "/usr/lib/python3.11/threading.py", line 331 in wait
  File "/usr/lib/python3.11/queue.py", line 180 in get
  File "/venv/lib/python3.11/site-packages/torch/utils/data/_utils/pin_memory.py", line 51 in _pin_memory_loop
  File "/usr/lib/python3.11/threading.py", line 982 in run
  File "/usr/lib/python3.11/threading.py", line 1045 in _bootstrap_inner
  File "/usr/lib/python3.11/threading.py", line 1002 in _bootstrap

Current thread 0x00007f0113c87b80 (most recent call first):
  File "/work/main/trainer/faults.py", line 85 in injected_hang
  File "/work/main/trainer/faults.py", line 67 in before_step
  File "/work/main/trainer/loop.py", line 377 in train_step
  File "/work/main/trainer/loop.py", line 420 in train
  File "/work/main/trainer/loop.py", line 610 in run_training
  File "/work/main/trainer/cli.py", line 88 in main
  File "<frozen runpy>", line 88 in _run_code


== process ==
pid 40001 status sleeping cpu 0% of one core: blocked or sleeping; threads 2 rss 412 MiB

== GPU ==
no GPU

== last 50 lines of stderr.log ==
Current thread 0x00007f0113c87b80 (most recent call first):
  File "/old/attempt.py", line 1 in stale_frame
"""


@pytest.fixture
def hook():
    server = WebHook()
    yield server
    server.close()


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def replay(notifier: Notifier, folder: Path) -> None:
    """Every event of a pipeline folder, pipeline and runs merged in time order, as the supervisor sees them."""
    events = [(e["t"], PIPELINE_ORIGIN, e) for e in read_events(folder / PIPELINE_FILE)]
    for path in PipelinePaths(folder).run_event_files():
        events += [(e["t"], path.parent.name, e) for e in read_events(path)]
    for _, source, event in sorted(events, key=lambda item: item[0]):
        notifier.on_event(source, event)


def event(type_: str, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "t": fp.T0, "type": type_, **fields}


def stall(run: str = "p1-x") -> dict[str, Any]:
    return event("stall", run=run, attempt=1, silent_s=12.0, dump=f"{run}/{stall_file(1)}", allowed_s=8.0,
                 action="restart")


@pytest.fixture
def pipeline(finished_pipeline: Path) -> Path:
    (finished_pipeline / "p1-asl" / stall_file(1)).write_text(DUMP)
    return finished_pipeline


def test_a_stall_message_names_run_host_pipeline_and_the_main_threads_top_frames(hook, pipeline):
    notifier = Notifier([hook.url], ["stall"], pipeline, 0.2, host=HOST)
    replay(notifier, pipeline)
    notifier.close(10)
    assert hook.titles() == ["goemo p1-asl stalled"]
    post = hook.posts[0]
    message = post["message"]
    print(f"--- {post['title']} ---\n{message}")
    assert post["type"] == "warning"
    assert fp.PIPELINE_ID in message and HOST in message and "p1-asl attempt 1" in message
    assert "silent 45 s (allowed 30 s); restart 1 of 2" in message  # max_restarts from preset.toml
    assert [line.strip() for line in message.splitlines() if "(" in line and ".py:" in line] == MAIN_FRAMES
    assert "_pin_memory_loop" not in message and "stale_frame" not in message and "main (cli.py" not in message
    assert f"p1-asl/{stall_file(1)}" in message
    assert notifier.drain_alerts() == []


def test_the_main_thread_is_found_in_a_real_faulthandler_dump(tmp_path):
    script = tmp_path / "hang.py"
    script.write_text(
        "import faulthandler, signal, sys, threading, time\n"
        "faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)\n"
        "def worker_loop():\n"
        "    while True:\n"
        "        time.sleep(1)\n"
        "def hang_here():\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(600)\n"
        "def train_step():\n"
        "    hang_here()\n"
        "threading.Thread(target=worker_loop, daemon=True).start()\n"
        "train_step()\n")
    run_dir = tmp_path / "p1-bce"
    run_dir.mkdir()
    with open(run_dir / "stderr.log", "wb") as err:
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)  # let the child reach its sleep (a signal between print and sleep names line 7)
        dump = write_stall_forensics(run_dir, 1, proc.pid, 12.0, 8.0, dump_wait_s=5.0)
    finally:
        proc.kill()
        proc.wait()
    frames = main_thread_frames(dump.read_text())
    assert [f.split(" (")[0] for f in frames[:3]] == ["hang_here", "train_step", "<module>"], frames
    assert frames[1:3] == ["train_step (hang.py:10)", "<module> (hang.py:12)"], frames


def test_a_pipeline_end_message_has_the_final_test_f1_and_the_top_three(hook, pipeline):
    notifier = Notifier([hook.url], ["pipeline_end"], pipeline, 0.2, host=HOST)
    replay(notifier, pipeline)
    notifier.close(10)
    assert hook.titles() == ["goemo pipeline completed"]  # nothing else of the whole pipeline was asked for
    post = hook.posts[0]
    message = post["message"]
    print(f"--- {post['title']} ---\n{message}")
    summary = json.loads((pipeline / SUMMARY_FILE).read_text())
    key = f1_macro_key(0.2)
    test = summary["final"]["test"]
    assert post["type"] == "success" and "completed (exit 0)" in message and fp.PIPELINE_ID in message
    assert f"final test macro-F1 {test[key]:.4f} @0.2, {test[TUNED_KEY]:.4f} tuned" in message
    board = summary["leaderboard"]
    for i, row in enumerate(board[:3], start=1):
        assert f"{i}. {row['run']} {row[key]:.4f}" in message
    assert f"4. {board[3]['run']}" not in message
    assert "failed: p1-combined_07" in message


def test_the_default_events_are_a_stall_a_failed_run_and_the_end(hook, pipeline):
    notifier = Notifier([hook.url], list(DEFAULT_NOTIFY_ON), pipeline, 0.2, host=HOST)
    replay(notifier, pipeline)
    notifier.close(10)
    assert hook.titles() == ["goemo p1-asl stalled", "goemo p1-combined_07 failed", "goemo pipeline completed"]
    failed = hook.posts[1]
    assert failed["type"] == "failure"
    assert "p1-combined_07 failed for good after 1 attempt(s): exit" in failed["message"]


def test_nonfinite_aborts_and_alerts_but_never_alerts_about_notifications(hook, tmp_path):
    notifier = Notifier([hook.url], ["nonfinite_abort", "alert"], tmp_path, 0.2, host=HOST)
    notifier.on_event("p1-nan", event("alert", level="warn", code="nonfinite", message="step 3: non-finite loss"))
    notifier.on_event("p1-nan", event("alert", level="error", code="nonfinite",
                                      message="3 non-finite steps in a row (limit 3)"))
    notifier.on_event(PIPELINE_ORIGIN, event("alert", level="warn", code="notify", message="not sent"))
    notifier.on_event(PIPELINE_ORIGIN, event("alert", level="warn", code="tracker", message="dropped"))
    notifier.on_event(PIPELINE_ORIGIN, event("alert", level="info", code="control", message="received stop"))
    notifier.on_event("p3-asl", event("alert", level="warn", code="grad_vanishing", message="grad norm below 1e-04"))
    notifier.on_event(PIPELINE_ORIGIN, stall())  # not asked for
    notifier.close(10)
    assert hook.titles() == ["goemo p1-nan warn: nonfinite", "goemo p1-nan aborted: non-finite loss",
                             "goemo p3-asl warn: grad_vanishing"]
    assert "3 non-finite steps in a row (limit 3)" in hook.posts[1]["message"]


def test_a_failing_endpoint_gives_one_alert_per_failure_and_the_backlog_goes_out_with_the_next(hook, tmp_path):
    hook.mode = "fail"
    notifier = Notifier([hook.url], ["stall"], tmp_path, 0.2, host=HOST)
    notifier.on_event(PIPELINE_ORIGIN, stall("p1-a"))
    alerts = wait_for(notifier.drain_alerts, "the first alert")
    assert len(alerts) == 1 and alerts[0]["code"] == "notify" and alerts[0]["level"] == "warn"
    assert "'goemo p1-a stalled'" in alerts[0]["message"] and "500" in alerts[0]["message"]
    assert "1 kept for the next try" in alerts[0]["message"]
    notifier.on_event(PIPELINE_ORIGIN, stall("p1-b"))  # the backlog's head is tried first, and fails again
    alerts = wait_for(notifier.drain_alerts, "the second alert")
    assert len(alerts) == 1 and "2 kept for the next try" in alerts[0]["message"]
    assert hook.requests == 2
    hook.mode = "ok"
    notifier.on_event(PIPELINE_ORIGIN, stall("p1-c"))
    notifier.close(10)
    assert hook.titles() == ["goemo p1-a stalled", "goemo p1-b stalled", "goemo p1-c stalled"]
    assert [p["message"].startswith("(delayed: from") for p in hook.posts] == [True, True, False]
    assert notifier.drain_alerts() == []


def test_a_closed_port_gives_one_alert_without_the_urls_secrets(tmp_path):
    server = WebHook()
    port = server.port
    server.close()  # nothing listens there any more
    url = f"json://alice:s3cretpassw0rd@127.0.0.1:{port}/hooks/T0KEN-abcdef123456"
    notifier = Notifier([url], ["stall"], tmp_path, 0.2, host=HOST)
    notifier.on_event(PIPELINE_ORIGIN, stall())
    notifier.close(10)
    alerts = notifier.drain_alerts()
    assert len(alerts) == 2, alerts  # the failure, then the message still unsent when the notifier closed
    print(alerts[0]["message"])
    assert f"json://****:****@127.0.0.1:{port}/" in alerts[0]["message"]
    assert "never sent" in alerts[1]["message"]
    for alert in alerts:
        for secret in ("alice", "s3cretpassw0rd", "abcdef123456"):
            assert secret not in alert["message"]


def test_a_hung_endpoint_never_blocks_on_event_and_close_returns_in_time(hook, tmp_path):
    hook.mode = "hang"
    notifier = Notifier([hook.url], ["stall", "pipeline_end"], tmp_path, 0.2, timeout_s=10, host=HOST)
    notifier.on_event(PIPELINE_ORIGIN, stall("p1-a"))
    wait_for(lambda: hook.requests, "the send to reach the hung endpoint")
    took = []
    for run in ("p1-b", "p1-c"):  # while a send hangs
        started = time.perf_counter()
        notifier.on_event(PIPELINE_ORIGIN, stall(run))
        took.append(time.perf_counter() - started)
    assert max(took) < 0.005, took
    started = time.monotonic()
    notifier.close(0.98765)  # what is left of the supervisor's budget after the trackers closed
    assert time.monotonic() - started < 1.5
    given_up = [a["message"] for a in notifier.drain_alerts() if "given up" in a["message"]]
    assert given_up == [f"notifications to json://127.0.0.1:{hook.port}/**** still being sent after 1 s were "
                        f"given up"], given_up


class StuckService:
    """An apprise service whose send never returns until released (a DNS lookup that hangs, say)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: list[str] = []
        self.sent: list[str] = []

    def notify(self, body: str, title: str, notify_type: Any) -> bool:
        self.calls.append(title)
        self.release.wait(30)
        self.sent.append(title)
        return True


def test_a_send_past_the_watchdog_is_waited_for_never_sent_twice(monkeypatch, tmp_path):
    service = StuckService()
    monkeypatch.setattr(notify, "_instantiate", lambda apprise, url: service)
    notifier = Notifier(["json://127.0.0.1:9/hook"], ["stall"], tmp_path, 0.2, timeout_s=0.2, host=HOST)
    notifier.on_event(PIPELINE_ORIGIN, stall("p1-a"))
    alerts = wait_for(notifier.drain_alerts, "the watchdog's alert", timeout=5)
    assert len(alerts) == 1 and "no answer within 0.2 s; not sent again" in alerts[0]["message"], alerts
    notifier.on_event(PIPELINE_ORIGIN, stall("p1-b"))  # waits behind the send still out: no second thread
    time.sleep(0.5)
    assert service.calls == ["goemo p1-a stalled"]
    service.release.set()
    notifier.on_event(PIPELINE_ORIGIN, stall("p1-c"))
    notifier.close(5)
    # p1-a arrived late; it was never sent again (today's main sent it a second time with the backlog)
    assert service.sent == ["goemo p1-a stalled", "goemo p1-b stalled", "goemo p1-c stalled"]
    assert notifier.drain_alerts() == []


def test_the_backlog_bound_never_drops_the_message_in_flight(monkeypatch, tmp_path):
    service = StuckService()
    bodies: list[str] = []
    notify_once = service.notify
    monkeypatch.setattr(service, "notify", lambda body, title, notify_type: bodies.append(body) or
                        notify_once(body, title, notify_type))
    monkeypatch.setattr(notify, "_instantiate", lambda apprise, url: service)
    notifier = Notifier(["json://127.0.0.1:9/hook"], ["stall"], tmp_path, 0.2, timeout_s=0.2, host=HOST)
    notifier.on_event(PIPELINE_ORIGIN, stall("p1-0"))
    wait_for(notifier.drain_alerts, "the watchdog's alert", timeout=5)
    for n in range(1, notify.BACKLOG + 6):  # more than the backlog holds, while p1-0 is still out
        notifier.on_event(PIPELINE_ORIGIN, stall(f"p1-{n}"))
    time.sleep(0.3)
    service.release.set()
    notifier.close(5)
    kept = [f"goemo p1-{n} stalled" for n in range(7, notify.BACKLOG + 6)]
    assert service.sent == ["goemo p1-0 stalled", *kept]
    assert "(6 older notification(s) dropped)" in bodies[1] and "dropped" not in bodies[2]


def test_a_dead_url_delays_only_itself_and_the_healthy_one_gets_every_message_once(hook, pipeline):
    notify_on = [*DEFAULT_NOTIFY_ON, "run_done"]
    alone = Notifier([hook.url], notify_on, pipeline, 0.2, host=HOST)
    replay(alone, pipeline)
    alone.close(10)
    expected, hook.posts[:] = hook.titles(), []
    assert len(expected) >= 6 and expected[-1] == "goemo pipeline completed"
    dead = WebHook()
    dead.mode = "hang"  # takes the connection, never answers
    try:
        notifier = Notifier([dead.url, hook.url], notify_on, pipeline, 0.2, timeout_s=0.5, host=HOST)
        replay(notifier, pipeline)
        notifier.close(1.0)  # the end, with the dead URL still holding its first sends
        print(hook.titles(), dead.received)
        assert hook.titles() == expected  # every message, the final one too, each once
        assert len(dead.received) == len(set(dead.received))  # each tried once at most, never again
        alerts = [a["message"] for a in notifier.drain_alerts()]
        assert alerts and all(f"127.0.0.1:{dead.port}" in a for a in alerts), alerts
        assert not any(f"127.0.0.1:{hook.port}" in a for a in alerts), alerts
    finally:
        dead.close()


def test_a_slow_endpoint_gets_each_message_exactly_once(hook, tmp_path):
    hook.mode, hook.delay_s = "slow", 0.8  # takes the POST, answers after the read timeout
    notifier = Notifier([hook.url], ["stall"], tmp_path, 0.2, timeout_s=0.3, host=HOST)
    for run in ("p1-a", "p1-b", "p1-c"):
        notifier.on_event(PIPELINE_ORIGIN, stall(run))
    notifier.close(5)
    wait_for(lambda: hook.requests >= 3, "the last POST")
    time.sleep(0.4)
    assert hook.received == ["goemo p1-a stalled", "goemo p1-b stalled", "goemo p1-c stalled"]
    alerts = [a["message"] for a in notifier.drain_alerts()]
    assert len(alerts) == 3 and all("no answer within 0.3 s; not sent again (it may have arrived)" in a
                                    for a in alerts), alerts


def test_a_bad_url_is_one_alert_and_the_good_ones_still_get_the_messages(hook, tmp_path):
    notifier = Notifier(["slack://s3cretT0kenvalue", hook.url], ["stall"], tmp_path, 0.2, host=HOST)
    notifier.on_event(PIPELINE_ORIGIN, stall())
    notifier.close(10)
    assert hook.titles() == ["goemo p1-x stalled"]
    alerts = notifier.drain_alerts()
    assert len(alerts) == 1 and "slack://" in alerts[0]["message"] and "s3cret" not in alerts[0]["message"]


def test_notify_urls_adds_goemo_notify_once_each_in_order():
    configured = ["ntfy://goemo-alerts", "json://hooks.example.com/goemo"]
    env = {ENV_NOTIFY: "json://hooks.example.com/goemo, slack://TA/TB/TC,ntfys://ntfy.sh/t2 "
                       "mailto://me:pw@gmail.com?to=a@x.com,b@y.com"}
    assert notify_urls(configured, env) == [
        "ntfy://goemo-alerts", "json://hooks.example.com/goemo", "slack://TA/TB/TC", "ntfys://ntfy.sh/t2",
        "mailto://me:pw@gmail.com?to=a@x.com,b@y.com"]
    assert notify_urls(configured, {}) == configured
    assert notify_urls([], {ENV_NOTIFY: "  "}) == []


def test_check_notify_urls_says_one_line_naming_the_bad_url_without_its_secret(monkeypatch):
    good = ["ntfy://goemo-alerts", "json://127.0.0.1:8080/hook", "mailto://me:pw@gmail.com",
            "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general"]
    assert check_notify_urls(good) is None
    for bad, needle in (("slack://s3cretT0kenvalue", "slack://"), ("foo://bar", "unknown service 'foo://'"),
                        ("hooks.example.com/goemo", "expected an apprise URL SCHEME://")):
        line = check_notify_urls([*good, bad])
        assert line is not None and "\n" not in line and needle in line, line
    assert "s3cret" not in check_notify_urls(["slack://s3cretT0kenvalue"])
    monkeypatch.setitem(sys.modules, "apprise", None)  # as if not installed
    assert check_notify_urls(good) == APPRISE_MISSING


TOKEN = "tk_Zq81vXLw0s5RcdM2yT7p"  # an ntfy access token
NTFY = f"ntfy://{TOKEN}@ntfy.example.com/goemo-alerts"
PRESET = """name = "fake"
[pipeline]
phases = [1]
{pipeline}
[defaults]
model = "tiny-deberta"
device = "cpu"
[[configs]]
name = "bce"
loss = "bce"
"""


def preset_file(tmp_path: Path, pipeline: str = "") -> Path:
    path = tmp_path / "mine.toml"
    path.write_text(PRESET.format(pipeline=pipeline))
    return path


@pytest.mark.parametrize("url, secrets", [
    (NTFY, [TOKEN, "goemo-alerts"]),
    ("pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi",
     ["uQiRzpo4DXghDmr9QzzfQu27cmVRsG", "azGDORePK8gMaC0QOYAMyEEuzJnyUi"]),
    ("twilio://AC1234567890abcdef1234567890abcd:9f8e7d6c5b4a39281706f5e4d3c2b1a0@15551234567/15557654321",
     ["AC1234567890abcdef1234567890abcd", "9f8e7d6c5b4a39281706f5e4d3c2b1a0"]),
    ("json://hookuser:pw12345678@hooks.example.com/in/Xk29sLq0", ["hookuser", "pw12345678", "Xk29sLq0"]),
    ("foo://TOKEN1234567890@example.com/x", ["TOKEN1234567890"]),  # apprise cannot read it: the user part too
])
def test_a_urls_user_part_and_secrets_are_masked(url, secrets):
    shown = mask_url(url)
    print(shown)
    assert shown.split("://")[0] in url and not any(secret in shown for secret in secrets)


def test_a_token_url_never_reaches_an_alert_or_an_error_line(tmp_path):
    server = WebHook()
    port = server.port
    server.close()  # nothing listens there any more
    url = f"ntfy://{TOKEN}@127.0.0.1:{port}/goemo-alerts"
    notifier = Notifier([url], ["stall"], tmp_path, 0.2, host=HOST)
    notifier.on_event(PIPELINE_ORIGIN, stall())
    notifier.close(10)
    alerts = [a["message"] for a in notifier.drain_alerts()]
    print(alerts)
    assert alerts and f"@127.0.0.1:{port}/" in alerts[0]
    assert not any(TOKEN in a or TOKEN[3:-3] in a for a in alerts)
    line = check_notify_urls([f"foo://{TOKEN}@ntfy.example.com/t"])
    assert "unknown service 'foo://'" in line and TOKEN[3:-3] not in line


def test_notify_urls_are_never_saved_and_a_resume_reads_them_again(tmp_path, monkeypatch):
    env_url = "json://127.0.0.1:9/from-env"
    monkeypatch.setenv(ENV_NOTIFY, env_url)
    source = preset_file(tmp_path, f'notify = ["{NTFY}"]')
    prepared = prepare_pipeline(PipelineRequest(str(source), tmp_path / "runs", overrides=["pipeline.top_k=1"]))
    pipeline_dir = materialise(prepared, tmp_path / "runs")
    saved = PipelinePaths(pipeline_dir).preset.read_text()
    print(saved)
    assert TOKEN not in saved and "ntfy://" not in saved and "from-env" not in saved
    assert f"notify_from = {json.dumps(str(source.resolve()))}" in saved and "top_k = 1" in saved
    PipelinePaths(pipeline_dir).events.write_text(json.dumps(
        {"v": 1, "t": 1.0, "type": "pipeline_start", "pipeline": pipeline_dir.name, "preset": "fake",
         "phases": [1], "configs": ["bce"]}) + "\n")
    resumed = prepare_pipeline(PipelineRequest(resume=pipeline_dir))
    assert notify_urls(resumed.preset.pipeline.notify) == [NTFY, env_url] and resumed.warnings == []
    source.unlink()  # the preset file is gone: the resume goes on with $GOEMO_NOTIFY, and says so
    resumed = prepare_pipeline(PipelineRequest(resume=pipeline_dir))
    assert notify_urls(resumed.preset.pipeline.notify) == [env_url]
    assert len(resumed.warnings) == 1 and "notify_from" in resumed.warnings[0] and TOKEN not in resumed.warnings[0]


def test_a_detached_launch_passes_notify_urls_in_its_environment_not_on_its_command_line(tmp_path, monkeypatch):
    launched: dict[str, Any] = {}
    monkeypatch.setattr(start.subprocess, "Popen", lambda cmd, **kw: launched.update(cmd=cmd, env=kw["env"]))
    monkeypatch.delenv(ENV_NOTIFY, raising=False)
    source = preset_file(tmp_path, 'notify = ["json://127.0.0.1:9/replaced"]')
    overrides = ["pipeline.top_k=1", f'pipeline.notify=["{NTFY}"]']
    pipeline_dir = start_detached(PipelineRequest(str(source), tmp_path / "runs", [1], overrides=overrides))
    cmd = launched["cmd"]
    print(cmd)
    assert not any(TOKEN in arg for arg in cmd) and "--set=pipeline.top_k=1" in cmd
    assert launched["env"][ENV_NOTIFY] == NTFY
    # the supervisor it starts reads the same URLs as the launch did: the override's, not the preset file's
    monkeypatch.setenv(ENV_NOTIFY, launched["env"][ENV_NOTIFY])
    child = prepare_pipeline(PipelineRequest(str(source), tmp_path / "runs", [1], pipeline_dir=pipeline_dir,
                                             overrides=[a.removeprefix("--set=") for a in cmd if a.startswith("--set=")]))
    assert notify_urls(child.preset.pipeline.notify) == [NTFY]


def test_web_sessions_get_notify_urls_through_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_NOTIFY, "")  # restored after the test: _web_argv sets it for textual-serve's sessions
    source = preset_file(tmp_path)
    args = build_parser().parse_args(["--web", "--preset", str(source), "--set", f'pipeline.notify=["{NTFY}"]'])
    argv = _web_argv(args, list(load_preset(str(source), args.overrides)[0].pipeline.notify))
    assert not any(TOKEN in arg for arg in argv) and "pipeline.notify=[]" in argv
    assert notify_urls([]) == [NTFY]


def test_the_picker_shows_a_notify_override_masked():
    shown = shown_override(f'pipeline.notify=["{NTFY}", "json://127.0.0.1:9/hook"]')
    assert shown.startswith("pipeline.notify=[ntfy://") and TOKEN[3:-3] not in shown, shown
    assert shown_override("pipeline.top_k=1") == "pipeline.top_k=1"


def test_a_bad_goemo_notify_is_blamed_on_the_environment_variable(tmp_path, monkeypatch):
    source = preset_file(tmp_path, 'notify = ["json://127.0.0.1:9/hook"]')
    monkeypatch.setenv(ENV_NOTIFY, "foo://bar")
    with pytest.raises(PresetError) as err:
        load_preset(str(source))
    assert str(err.value).startswith(f"environment variable {ENV_NOTIFY}: notify URL ") and "'foo://'" in str(err.value)
    assert "pipeline.notify" not in str(err.value)


def test_notify_timeout_has_an_upper_bound_and_a_wrong_notify_value_is_masked(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_NOTIFY, raising=False)
    source = preset_file(tmp_path)
    with pytest.raises(PresetError) as err:
        load_preset(str(source), ["pipeline.notify_timeout_s=1e308"])
    assert "pipeline.notify_timeout_s" in str(err.value) and "600" in str(err.value)
    with pytest.raises(PresetError) as err:
        load_preset(str(source), [f"pipeline.notify={NTFY}"])  # a string, not a list
    assert "pipeline.notify" in str(err.value) and TOKEN[3:-3] not in str(err.value), str(err.value)


def test_timeouts_are_rounded_in_messages():
    assert [seconds_text(s) for s in (2.99853, 0.2, 10, 0.25)] == ["3 s", "0.2 s", "10 s", "0.2 s"]
