"""goemo-cockpit --web: the same Textual app in a browser, served by textual-serve.

textual-serve runs one cockpit process per browser tab (a shell command, with Textual's web driver set in
its environment) and relays its screen over a websocket. It has no authentication of its own: this module
adds cockpit.web_guard's token, Host, Origin and session-cap checks to its application, listens on loopback
unless told otherwise, and prints the URL with the token and the `ssh -L` line that reaches it from a laptop.
textual-serve is imported only in `run_web`: cockpit.cli imports this module and must stay free of it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import getpass
import logging
import os
import shlex
import site
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cockpit.web_addresses import LOOPBACK_NAMES, WILDCARD_HOSTS, is_loopback
from trainer.contract import EXIT_BAD_INPUT, EXIT_OK

if TYPE_CHECKING:
    from aiohttp import web

PROG = "goemo-cockpit"
BIND_ERRORS = (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)
SESSION_EXIT_GRACE_S = 5.0  # after the server stops, for each session's cockpit to quit
TOKEN_NOTE = ("only a browser given the printed URL's token gets in (the token is new for each server: "
              "anyone holding the URL controls the cockpit, so share it with no one)")
DEFAULT_MAX_SESSIONS = 4  # each browser tab is a cockpit process (about 55 MB)
# The folder that holds the cockpit and trainer packages; sessions import the same code as the server.
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1-65535)")
    return port


def _host(text: str) -> str:
    """An address as typed, less the brackets a URL puts around IPv6 ([::1] is ::1)."""
    return text[1:-1] if text.startswith("[") and text.endswith("]") else text


def _sessions(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of sessions") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"{count}: at least one session")
    return count


def add_web_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --web, --host, --port and --allow-remote to a goemo-cockpit parser."""
    group = parser.add_argument_group(
        "browser (--web)", f"{TOKEN_NOTE}; it listens on loopback only and you reach it through `ssh -L`.")
    group.add_argument("--web", action="store_true",
                       help="serve the cockpit in a browser through textual-serve instead of this terminal")
    group.add_argument("--host", type=_host, default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1, loopback); another needs --allow-remote")
    group.add_argument("--port", type=_port, default=8000, help="port to listen on (default 8000)")
    group.add_argument("--allow-remote", action="store_true",
                       help="listen on a non-loopback --host; the page is plain http (the token crosses the network "
                            "unencrypted), so only on a network you trust")
    group.add_argument("--max-sessions", type=_sessions, default=DEFAULT_MAX_SESSIONS,
                       help=f"browser tabs served at once, each a cockpit process (default {DEFAULT_MAX_SESSIONS})")


def web_problem(args: argparse.Namespace) -> str | None:
    """One line when --host is not a loopback address and --allow-remote is not given, else None."""
    if is_loopback(args.host) or args.allow_remote:
        return None
    return (f"--host {args.host}: not a loopback address, and the page is plain http (its token would cross the "
            f"network unencrypted); use an ssh tunnel (the default --host 127.0.0.1), "
            f"or add --allow-remote on a network you trust")


def session_command(app_argv: list[str]) -> str:
    """The shell command textual-serve runs for each browser session: this Python, `-m cockpit.cli`."""
    argv = [sys.executable, "-m", "cockpit.cli", *app_argv]
    if os.name == "nt":
        return subprocess.list2cmdline(argv)
    return "exec " + shlex.join(argv)  # exec: the session is the cockpit itself, not a shell waiting on it


def _url_host(host: str) -> str:
    host = host.strip("[]")
    return f"[{host}]" if ":" in host else host


def public_url(host: str, port: int) -> str:
    """The URL a browser opens; the page's websocket connects back to the same host and port."""
    shown = socket.gethostname() if host in WILDCARD_HOSTS else host
    return f"http://{_url_host(shown)}:{port}"


def tunnel_line(host: str, port: int) -> str:
    """The ssh command that forwards the laptop's PORT to this machine's listening address."""
    target = "127.0.0.1" if host in WILDCARD_HOSTS or host.lower().rstrip(".") in LOOPBACK_NAMES else host
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "user"
    return f"ssh -L {port}:{_url_host(target)}:{port} {user}@{socket.gethostname()}"


def port_problem(host: str, port: int) -> str | None:
    """One line when the server could not listen on host:port (in use, not this machine's, no permission)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"--host {host}: cannot resolve it ({exc.strerror})"
    bound, unavailable = 0, None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            # As asyncio's create_server does, so a port left in TIME_WAIT counts as free and [::] is IPv6 only.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno != errno.EADDRNOTAVAIL:
                    return _bind_problem(host, port, exc)
                unavailable = exc  # asyncio (3.12+) skips an address family the machine lacks; so do we
            else:
                bound += 1
    return None if bound or unavailable is None else _bind_problem(host, port, unavailable)


def _bind_problem(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"--port {port}: already in use on {host}; stop what holds it or pick another --port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"--host {host}: not an address of this machine"
    if exc.errno == errno.EACCES:
        return f"--port {port}: permission denied (ports below 1024 need root); pick another --port"
    return f"--host {host} --port {port}: cannot listen ({exc.strerror or exc})"


def _session_environment() -> None:
    """Let sessions import this cockpit: textual-serve starts them with a copy of os.environ."""
    site_dirs = {*site.getsitepackages(), site.getusersitepackages()}
    if str(PACKAGE_ROOT) in site_dirs:
        return
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(PACKAGE_ROOT) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT), *paths])


async def end_sessions(app: web.Application) -> None:
    """Wait for the browser sessions' cockpits to exit (textual-serve has told them to quit), killing any
    that hang: none outlives the server, and asyncio sees each exit before its loop closes (a session still
    running then ends in an "Event loop is closed" traceback)."""
    import psutil

    server, loop = psutil.Process(), asyncio.get_running_loop()
    deadline, killed = loop.time() + SESSION_EXIT_GRACE_S, False
    while sessions := server.children():
        if loop.time() > deadline:
            if killed:
                return
            for session in sessions:
                with contextlib.suppress(psutil.Error):
                    session.kill()
            deadline, killed = loop.time() + 1.0, True
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.05)  # the child watcher's exit callbacks


def _error(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run_web(args: argparse.Namespace, app_argv: list[str]) -> int:
    """Serve `goemo-cockpit <app_argv>` in browsers at http://HOST:PORT until interrupted; the exit code.

    Every browser tab (and every reload) runs app_argv anew, so it should only show: --attach a folder, or
    the phase picker; not --resume. Prints the URL and the `ssh -L` line that reaches it from a laptop. Bad
    input (a remote --host without --allow-remote, a busy port, no textual-serve) is one line on stderr and
    exit 2, before serving.
    """
    if problem := web_problem(args):
        return _error(problem)
    try:
        from textual_serve.server import Server
    except ImportError:
        return _error("--web needs textual-serve: pip install 'textual-serve>=1.1'")
    if problem := port_problem(args.host, args.port):
        return _error(problem)
    from cockpit.web_guard import WebGuard

    url = public_url(args.host, args.port)
    guard = WebGuard(args.host, args.port, public_url=url, max_sessions=args.max_sessions)

    class CockpitServer(Server):
        async def _make_app(self) -> web.Application:
            """textual-serve's application behind the guard (its middleware list is open until startup)."""
            app = await super()._make_app()
            app.middlewares.append(guard.middleware)
            return app

        def initialize_logging(self) -> None:
            """textual-serve's log, less aiohttp's line per request (a page load is five of them)."""
            super().initialize_logging()
            logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

        async def on_startup(self, app: web.Application) -> None:
            """No logo (the URL and the tunnel are printed before serving); end the sessions at cleanup."""
            app.on_cleanup.append(end_sessions)

    server = CockpitServer(session_command(app_argv), host=args.host, port=args.port, title=PROG, public_url=url)
    _session_environment()
    # The token is printed to the owner's terminal only (as Jupyter does): never on argv, in a file or a log.
    print(f"{PROG}: serving in a browser at {guard.url(url)}")
    print(f"  {TOKEN_NOTE}; at most {args.max_sessions} tabs at once")
    print(f"  from a laptop: {tunnel_line(args.host, args.port)}   then open that URL there"
          if is_loopback(args.host) else f"  or through a tunnel: {tunnel_line(args.host, args.port)}")
    print("  Ctrl+C stops the server and its browser sessions", flush=True)
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        if exc.errno not in BIND_ERRORS:
            raise
        return _error(_bind_problem(args.host, args.port, exc))  # lost a race for the port after the check
    return EXIT_OK
