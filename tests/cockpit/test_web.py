"""goemo-cockpit in a browser (cockpit.web, textual-serve), checked in headless Chromium.

The server runs as a real subprocess in its own process group (its browser sessions are its children, in
the same group), on a finished fake pipeline. Playwright drives the system Chromium, because the page only
draws once the websocket session's cockpit has started: Chromium's own `--screenshot
--virtual-time-budget` runs virtual time ahead of that real start and shoots the "connecting" splash.
xterm.js draws the terminal on a canvas, so the page as users get it is checked by its pixels (against
the splash), and its text is read from a second tab whose xterm.js is switched to its DOM renderer.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

import fake_pipeline as fp
from cockpit.web import add_web_arguments, session_command, web_problem
from tests.conftest import REPO
from trainer.contract import SUMMARY_FILE

CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
HAS_SERVE = importlib.util.find_spec("textual_serve") is not None
HAS_PLAYWRIGHT = importlib.util.find_spec("playwright") is not None
needs_serve = pytest.mark.skipif(not HAS_SERVE, reason="textual-serve is not installed (pip install textual-serve)")
needs_browser = pytest.mark.skipif(
    not (CHROMIUM and HAS_PLAYWRIGHT),
    reason="needs Chromium (apt-get install chromium) and Playwright (pip install playwright)")
# The network here is closed: nothing in Chromium may phone home or wait for it.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 900}
# textual.js loads xterm.js's WebGL and canvas renderers; without them xterm.js draws rows as DOM text.
CANVAS_RENDERERS = ("this.terminal.loadAddon(this.webglAddon)", "this.terminal.loadAddon(this.canvasAddon)")
DRAW_TIMEOUT_S = 25


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cockpit_web(*args: str) -> list[str]:
    """The command line of the web server: `goemo-cockpit --web ...`."""
    return [sys.executable, "-m", "cockpit.cli", "--web", *args]
    # Once --web is in cockpit.cli:


def server_env() -> dict[str, str]:
    """The checkout's cockpit first, whatever is installed."""
    paths = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths), PYTHONUNBUFFERED="1")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def printed_url(log: Path) -> str | None:
    """The URL with the token that the server printed, once it has."""
    match = re.search(r"serving in a browser at (http://\S+/\?token=[\w-]+)", log.read_text(errors="replace"))
    return match.group(1) if match else None


@contextmanager
def web_server(cwd: Path, app_argv: list[str], log: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start the server on a free port, wait until it listens; yields (the printed URL with its token,
    process). Whatever happens, the whole process group (server and session cockpits) is gone afterwards."""
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cockpit_web("--port", str(port), *app_argv), cwd=cwd, env=server_env(),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                if printed_url(log):
                    break
                raise OSError("no URL printed yet")
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the web server did not listen on {port} (exit {proc.poll()}):\n{log.read_text()}")
                time.sleep(0.2)
        url = printed_url(log)
        assert url and url.startswith(f"http://127.0.0.1:{port}/?token="), log.read_text()
        yield url, proc
    finally:
        if group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        wait_group_gone(proc.pid, 5)


def luma_share(image, above: int) -> float:
    """Share of pixels brighter than `above` (text on the cockpit's dark theme)."""
    hist = image.convert("L").histogram()
    return sum(hist[above + 1:]) / (image.width * image.height)


def colour_share(image, above: int) -> float:
    """Share of pixels whose max - min channel exceeds `above` (theme colours: orange, green, red, blue)."""
    from PIL import ImageChops

    _, s, v = image.convert("HSV").split()
    hist = ImageChops.multiply(s, v).histogram()  # s * v / 255 == max - min
    return sum(hist[above + 1:]) / (image.width * image.height)


def changed_share(a, b) -> float:
    from PIL import ImageChops

    hist = ImageChops.difference(a, b).convert("L").histogram()
    return sum(hist[5:]) / (a.width * a.height)


def keep_artifact(path: Path, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("GOEMO_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    kept = folder / path.name
    if kept != path:
        shutil.copyfile(path, kept)
    print(f"screenshot: {kept}")
    return kept


@pytest.fixture
def pipeline_in_spaced_folder(tmp_path: Path) -> tuple[Path, str]:
    """(cwd, relative --attach path): a folder name with a space proves the session command is quoted."""
    folder = fp.write_fake_pipeline(tmp_path / "my runs")
    return tmp_path, str(folder.relative_to(tmp_path))


@pytest.mark.e2e
@needs_serve
@needs_browser
def test_the_cockpit_draws_in_a_browser_and_ctrl_c_ends_every_session(
        pipeline_in_spaced_folder: tuple[Path, str], tmp_path: Path) -> None:
    from PIL import Image
    from playwright.sync_api import sync_playwright

    cwd, attach = pipeline_in_spaced_folder
    summary = json.loads((cwd / attach / SUMMARY_FILE).read_text())
    best_run = summary["leaderboard"][0]["run"]
    log = tmp_path / "server.log"
    before, after = tmp_path / "splash.png", tmp_path / "cockpit-web.png"

    with web_server(cwd, ["--attach", attach], log) as (page_url, server), sync_playwright() as pw:
        url = page_url.split("/?", 1)[0]
        browser = pw.chromium.launch_persistent_context(
            tmp_path / "chromium-profile", executable_path=CHROMIUM, args=CHROMIUM_ARGS, viewport=VIEWPORT)
        requested: list[str] = []
        try:
            # The page asks nothing outside the server (it used to ask fonts.googleapis.com): every request
            # is recorded, and any other is aborted, since this network could not answer it anyway.
            browser.on("request", lambda request: requested.append(request.url))
            browser.route("**/*", lambda route: route.continue_() if route.request.url.startswith(url)
                          else route.abort())

            splash = browser.new_page()
            splash.route_web_socket("**/ws", lambda ws: None)  # a session that never answers: the splash
            splash.goto(page_url)
            splash.screenshot(path=before)
            splash.close()
            splash_image = Image.open(before).convert("RGB")

            page = browser.new_page()  # as users get it: xterm.js on a canvas
            page.goto(page_url)
            page.wait_for_selector("body.-first-byte", timeout=DRAW_TIMEOUT_S * 1000)
            deadline = time.monotonic() + DRAW_TIMEOUT_S
            while True:  # the cockpit draws over several frames; wait until it shows text and colours
                page.screenshot(path=after)
                image = Image.open(after).convert("RGB")
                drawn = luma_share(image, 128) > 0.01 and colour_share(image, 80) > 0.005
                if drawn or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            kept = keep_artifact(after, tmp_path)
            assert changed_share(splash_image, image) > 0.5, f"the page still looks like the splash: {kept}"
            assert luma_share(image, 128) > max(0.01, 5 * luma_share(splash_image, 128)), \
                f"no text drawn on the terminal: {kept}\n{log.read_text()}"
            assert colour_share(image, 80) > 0.005, f"no theme colours on the terminal: {kept}"
            page.close()

            text_page = browser.new_page()  # the same session, its rows as DOM text
            patched = []

            def dom_renderer(route) -> None:
                response = route.fetch()
                body = response.text()
                patched.append(all(call in body for call in CANVAS_RENDERERS))
                for call in CANVAS_RENDERERS:
                    body = body.replace(call, "void 0")
                route.fulfill(response=response, body=body)

            text_page.route("**/static/js/textual.js", dom_renderer)
            text_page.goto(url + "/")  # no token in the URL: the cookie set by the first load lets it in
            if patched and patched[0]:
                rows = text_page.locator(".xterm-rows")
                script = "([id, run]) => { const r = document.querySelector('.xterm-rows'); " \
                         "return r !== null && r.innerText.includes(id) && r.innerText.includes(run); }"
                try:
                    text_page.wait_for_function(script, arg=[fp.PIPELINE_ID, best_run],
                                                timeout=DRAW_TIMEOUT_S * 1000)
                finally:
                    (tmp_path / "terminal.txt").write_text(rows.inner_text() if rows.count() else "")
                text = rows.inner_text()
                assert fp.PIPELINE_ID in text and best_run in text and "leaderboard" in text, text
            else:
                warnings.warn("textual.js no longer loads xterm.js's renderers as expected; "
                              "the terminal's text was not checked (its pixels were)")
                text_page.wait_for_selector("body.-first-byte", timeout=DRAW_TIMEOUT_S * 1000)

            # Ctrl-C in the server's terminal: the whole group gets SIGINT, the server exits 0, no session stays.
            os.killpg(server.pid, signal.SIGINT)
            assert server.wait(timeout=15) == 0, log.read_text()
            assert wait_group_gone(server.pid, 10), "a browser session's cockpit outlived the server"
            text_page.wait_for_selector("body.-closed", timeout=5000)  # the tab says "Session ended"
        finally:
            browser.close()
    ws_url = "ws" + url[len("http"):]
    outside = [r for r in requested if not (r.startswith(url + "/") or r.startswith(ws_url + "/"))]
    assert requested and not outside, f"the page asked outside the server: {outside}"
    printed = log.read_text()
    assert page_url in printed and f"ssh -L {url.rsplit(':', 1)[1]}:127.0.0.1:" in printed, printed
    assert "Traceback" not in printed, printed


@pytest.mark.e2e
def test_a_remote_host_without_allow_remote_is_one_line_and_exit_2(finished_pipeline: Path) -> None:
    result = subprocess.run(cockpit_web("--host", "0.0.0.0", "--port", str(free_port()),
                                        "--attach", str(finished_pipeline)),
                            env=server_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "0.0.0.0" in lines[0] and "--allow-remote" in lines[0], result.stderr
    assert "unencrypted" in lines[0]


@pytest.mark.e2e
@needs_serve
def test_a_busy_port_is_one_line_and_exit_2(finished_pipeline: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(cockpit_web("--port", str(port), "--attach", str(finished_pipeline)),
                                env=server_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--port {port}" in lines[0] and "in use" in lines[0], result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("host, allow_remote, refused", [
    ("127.0.0.1", False, False), ("127.8.9.10", False, False), ("::1", False, False),
    ("localhost", False, False), ("::ffff:127.0.0.1", False, False), ("[::1]", False, False),
    ("0.0.0.0", False, True), ("::", False, True), ("192.168.1.20", False, True), ("gpu-node-3", False, True),
    ("0.0.0.0", True, False),
])
def test_only_loopback_is_served_without_allow_remote(host: str, allow_remote: bool, refused: bool) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_web_arguments(parser)
    args = parser.parse_args(["--web", "--host", host] + (["--allow-remote"] if allow_remote else []))
    problem = web_problem(args)
    assert (problem is not None) == refused
    if problem:
        assert "\n" not in problem and host in problem


def test_defaults_and_the_warning_in_the_help() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_web_arguments(parser)
    args = parser.parse_args([])
    assert (args.web, args.host, args.port, args.allow_remote, args.max_sessions) == (False, "127.0.0.1", 8000,
                                                                                      False, 4)
    assert "token" in " ".join(parser.format_help().split())


def test_the_session_command_is_this_python_running_the_cockpit_cli_with_quoted_paths() -> None:
    command = session_command(["--attach", "my runs/it's here"])
    assert shlex.split(command) == ["exec", sys.executable, "-m", "cockpit.cli", "--attach", "my runs/it's here"]


def test_an_ipv6_host_in_brackets_is_the_address_and_can_be_listened_on() -> None:
    import argparse

    from cockpit.web import port_problem

    parser = argparse.ArgumentParser()
    add_web_arguments(parser)
    args = parser.parse_args(["--web", "--host", "[::1]"])
    assert args.host == "::1" and web_problem(args) is None
    if socket.has_ipv6:
        try:
            socket.socket(socket.AF_INET6).close()
        except OSError:
            pytest.skip("no IPv6 on this machine")
        assert port_problem(args.host, free_port()) is None  # it "could not resolve" [::1]
