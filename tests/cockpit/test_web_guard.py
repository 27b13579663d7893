"""Only the owner drives `goemo-cockpit --web`: its token, Host, Origin and session cap (cockpit.web_guard),
checked against the real textual-serve server, and the shell-running settings a browser may not set."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from cockpit.pipeline.presets import shell_setting
from test_web import cockpit_web, server_env, web_server

HAS_SERVE = importlib.util.find_spec("textual_serve") is not None
needs_serve = pytest.mark.skipif(not HAS_SERVE, reason="textual-serve is not installed (pip install textual-serve)")


def guard(host: str = "127.0.0.1", port: int = 8000):
    from cockpit.web_guard import WebGuard

    return WebGuard(host, port, public_url=f"http://{host}:{port}")


@pytest.mark.parametrize("bound, host, allowed", [
    ("127.0.0.1", "127.0.0.1:8000", True), ("127.0.0.1", "localhost:9000", True),  # ssh -L to another port
    ("127.0.0.1", "LOCALHOST.:8000", True), ("127.0.0.1", "[::1]:8000", True), ("::1", "[::1]:8000", True),
    ("127.0.0.1", "evil.example:8000", False), ("127.0.0.1", "evil.example", False),  # DNS rebinding
    ("127.0.0.1", "", False), ("127.0.0.1", "127.0.0.1.evil.example", False), ("127.0.0.1", "10.0.0.5:8000", False),
    ("10.1.2.3", "10.1.2.3:8000", True), ("10.1.2.3", "10.1.2.4:8000", False), ("10.1.2.3", "evil.example", False),
    ("0.0.0.0", "192.168.3.4:8000", True), ("0.0.0.0", "evil.example:8000", False),
])
def test_only_requests_addressed_to_the_server_are_answered(bound: str, host: str, allowed: bool) -> None:
    pytest.importorskip("aiohttp")
    assert guard(bound).host_allowed(host) == allowed


@pytest.mark.parametrize("origin, allowed", [
    (None, True), ("http://127.0.0.1:8000", True), ("http://evil.example", False), ("null", False),
    ("http://127.0.0.1:8001", False), ("file://", False), ("http://localhost:8000", False),
])
def test_a_browser_origin_must_be_the_page_itself(origin: str | None, allowed: bool) -> None:
    pytest.importorskip("aiohttp")
    assert guard().origin_allowed(origin, "127.0.0.1:8000") == allowed


def test_tokens_are_random_and_at_least_128_bits() -> None:
    pytest.importorskip("aiohttp")
    from cockpit.web_guard import new_token

    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50 and min(len(t) for t in tokens) * 6 >= 128


def test_the_page_loads_its_font_from_the_server_and_its_urls_follow_the_browser() -> None:
    pytest.importorskip("aiohttp")
    from cockpit.web_guard import local_page

    html = ('<link rel="stylesheet" href="{s}css/xterm.css" />\n<link\n  rel="stylesheet"\n'
            '  href="https://fonts.googleapis.com/css?family=Roboto%20Mono"\n/>\n'
            '<div data-session-websocket-url="ws://127.0.0.1:8000/ws"></div>').replace("{s}", "http://127.0.0.1:8000/static/")
    page = local_page(html, "localhost:9000", "http://127.0.0.1:8000")
    assert "googleapis" not in page and "127.0.0.1:8000" not in page
    assert "ws://localhost:9000/ws" in page and "http://localhost:9000/static/fonts/RobotoMono" in page


@pytest.mark.parametrize("item, setting", [
    ("slurm.setup=id > /tmp/x", "slurm.setup"), ("slurm.python=/bin/sh", "slurm.python"),
    ("slurm.extra=['--wrap=id']", "slurm.extra"), ("pipeline.launcher=slurm", "pipeline.launcher"),
    ("slurm={setup='id'}", "slurm.setup"), ("pipeline={launcher='slurm'}", "pipeline.launcher"),
    (" slurm.setup = id", "slurm.setup"), ("slurm.partition=gpu", None), ("lr=1e-4", None),
    ("pipeline.top_k=1", None),
])
def test_settings_that_run_shell_commands_are_named(item: str, setting: str | None) -> None:
    assert shell_setting(item) == setting


@pytest.mark.e2e
def test_web_refuses_a_shell_setting_on_its_command_line(finished_pipeline: Path) -> None:
    result = subprocess.run(cockpit_web("--set", "slurm.setup=id > /tmp/owned", "--preset", "smoke"),
                            env=server_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "slurm.setup" in lines[0] and "preset file" in lines[0], result.stderr


def test_a_browser_session_cannot_set_a_shell_setting_in_the_picker(runs_dir: Path, make_test_app,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from pilot_helpers import wait_until
    from cockpit.screens.phase_picker import PhasePickerScreen

    async def scenario() -> None:
        app = make_test_app(None, runs_dir, preset="smoke")
        monkeypatch.setattr(type(app), "is_web", property(lambda self: True))  # as under textual-serve
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, PhasePickerScreen))
            picker = app.screen
            for item in ("pipeline.launcher=slurm", "slurm.setup=id"):
                await pilot.press("o")
                await pilot.press(*item, "enter")
                await pilot.pause(0.2)
                assert picker.overrides == [], item
            await pilot.press("o")
            await pilot.press(*"pipeline.top_k=1", "enter")
            await wait_until(pilot, lambda: picker.overrides == ["pipeline.top_k=1"])

    asyncio.run(scenario())


async def _status(url: str, headers: dict[str, str] | None = None, cookies: dict[str, str] | None = None) -> int:
    import aiohttp

    async with aiohttp.ClientSession(cookies=cookies) as session:
        async with session.get(url, headers=headers or {}, allow_redirects=False) as response:
            return response.status


async def _websocket(url: str, origin: str | None, cookies: dict[str, str] | None = None):
    """The open websocket's session and socket, or the refusal's HTTP status."""
    import aiohttp

    session = aiohttp.ClientSession(cookies=cookies)
    try:
        ws = await session.ws_connect(url, origin=origin, timeout=aiohttp.ClientWSTimeout(ws_close=5))
    except aiohttp.WSServerHandshakeError as exc:
        await session.close()
        return exc.status
    return session, ws


@pytest.mark.e2e
@needs_serve
def test_only_the_token_holder_on_this_server_gets_a_session_and_no_more_than_the_cap(
        finished_pipeline: Path, tmp_path: Path) -> None:
    """Each refusal the review found: no or a wrong token, a foreign Host, a foreign Origin, one session over
    the cap; and the owner's URL, then its cookie, work."""
    import aiohttp

    log = tmp_path / "server.log"
    with web_server(tmp_path, ["--attach", str(finished_pipeline), "--max-sessions", "1"], log) as (page, _):
        parts = urlsplit(page)
        base, token = f"http://{parts.netloc}", parts.query.split("=", 1)[1]
        ws, good = f"ws://{parts.netloc}/ws", f"http://{parts.netloc}"
        cookie = {f"goemo-cockpit-token-{parts.port}": token}

        async def scenario() -> None:
            assert await _status(base + "/") == 403
            assert await _status(base + "/?token=" + "x" * len(token)) == 403
            assert await _status(page, headers={"Host": "evil.example"}) == 403  # DNS rebinding
            assert await _status(base + "/download/anything") == 403
            assert await _status(base + "/static/js/textual.js") == 403

            async with aiohttp.ClientSession() as session:
                async with session.get(page) as response:
                    assert response.status == 200
                    html = await response.text()
                    assert "googleapis" not in html and "default-src 'self'" in response.headers[
                        "Content-Security-Policy"]
                    assert response.cookies[f"goemo-cockpit-token-{parts.port}"].value == token

            assert await _websocket(ws, origin=good) == 403  # no token
            assert await _websocket(ws + "?token=wrong", origin=good) == 403
            assert await _websocket(ws, origin="http://evil.example", cookies=cookie) == 403
            opened = await _websocket(ws, origin=good, cookies=cookie)
            assert not isinstance(opened, int), f"the owner's websocket was refused ({opened})"
            session, socket_ = opened
            try:
                message = await socket_.receive(timeout=30)  # the cockpit's first bytes
                assert message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT), message
                assert await _websocket(ws, origin=good, cookies=cookie) == 503  # over --max-sessions 1
            finally:
                await socket_.close()
                await session.close()
            deadline = time.monotonic() + 15  # the closed tab's slot comes back
            while (second := await _websocket(ws, origin=good, cookies=cookie)) == 503:
                assert time.monotonic() < deadline, "a closed session still counts against the cap"
                await asyncio.sleep(0.2)
            assert not isinstance(second, int), second
            await second[1].close()
            await second[0].close()

        asyncio.run(scenario())
    printed = log.read_text()
    assert "Traceback" not in printed, printed
