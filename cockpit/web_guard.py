"""Who may drive `goemo-cockpit --web`: only the owner, who holds the token printed in the server's URL.

textual-serve checks no secret, no Host and no Origin, and each websocket it accepts starts a cockpit that
can launch pipelines (with Slurm, batch scripts). Binding to 127.0.0.1 does not help on a shared login node,
where every local user reaches the port, nor against a web page the owner visits (its script can open a
websocket to localhost) or DNS rebinding (a foreign name resolved to 127.0.0.1). So one aiohttp middleware,
added to textual-serve's own application (not a fork of it), checks every request:

- its Host names the bound address, `localhost` or (bound to every address) this machine: no rebinding;
- a browser's Origin, where sent, is the page's own: no other site's script;
- it carries the token, in the `token` query parameter (the URL the server prints, as Jupyter does) or in
  the cookie set on the first load with it; compared in constant time;
- a websocket (one cockpit process each) opens only under the session cap.

The index page is served with its URLs pointing back at the address the browser used (a tunnel on another
port keeps working, and the cookie's host matches), without its Google Fonts link (textual-serve ships the
font; the page loads nothing from outside the server), and with a Content-Security-Policy that holds it there.
Imported only by `cockpit.web.run_web`, like textual-serve itself.
"""

from __future__ import annotations

import hmac
import re
import secrets
import socket
from dataclasses import dataclass, field
from typing import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from cockpit.web_addresses import WILDCARD_HOSTS, ip_address, is_loopback

TOKEN_PARAM = "token"
TOKEN_BYTES = 32  # 256 bits; the issue asks for at least 128
DEFAULT_MAX_SESSIONS = 4
WEBSOCKET_PATH = "/ws"
# textual-serve's template asks Google for Roboto Mono, which it also ships in static/fonts.
GOOGLE_FONTS_LINK = re.compile(r"<link\b[^>]*fonts\.googleapis\.com[^>]*>", re.IGNORECASE | re.DOTALL)
LOCAL_FONT = ('<style>@font-face { font-family: "Roboto Mono"; '
              'src: url("{static}fonts/RobotoMono-VariableFont_wght.ttf") format("truetype"); }</style>')

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def new_token() -> str:
    """A fresh URL-safe secret for one server's life."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def _host_name(host: str) -> str:
    """The name or address of a Host header or URL netloc: lower case, no port, brackets or trailing dot."""
    try:
        name = urlsplit(f"//{host}").hostname or ""
    except ValueError:
        return ""
    return name.rstrip(".")


@dataclass
class WebGuard:
    """The checks of one server: its token, the address it is bound to and its session cap."""

    bound_host: str
    port: int
    public_url: str
    """The base URL textual-serve writes into its page (http://HOST:PORT)."""
    token: str = field(default_factory=new_token)
    max_sessions: int = DEFAULT_MAX_SESSIONS
    sessions: int = 0
    """Websocket sessions open now (each one a cockpit process)."""

    @property
    def cookie_name(self) -> str:
        # Cookies are per host, not per port: two servers on one machine must not overwrite each other's.
        return f"goemo-cockpit-token-{self.port}"

    def url(self, base: str) -> str:
        """The URL to print: the server's base URL with the token."""
        return f"{base}/?{TOKEN_PARAM}={self.token}"

    def host_allowed(self, host: str | None) -> bool:
        """True when a request's Host names this server: the bound address, `localhost`, a loopback address
        when bound to loopback, and, when bound to every address, this machine's names or any IP address
        (an address cannot be rebound; a name the owner did not bind can)."""
        name = _host_name(host or "")
        if not name:
            return False
        # The bound address as given to --host (an IPv6 one without brackets), not a URL's netloc.
        bound = self.bound_host.strip("[]").lower().rstrip(".") if self.bound_host not in WILDCARD_HOSTS else ""
        if name == "localhost" or (bound and name == bound):
            return True
        if bound and is_loopback(bound) and is_loopback(name):
            return True
        if self.bound_host in WILDCARD_HOSTS:
            machine = {socket.gethostname().lower(), socket.getfqdn().lower()}
            return name in machine or ip_address(name) is not None
        bound_ip, name_ip = ip_address(bound), ip_address(name)
        return bound_ip is not None and bound_ip == name_ip

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        """True when no Origin was sent (not a browser) or it is the page's own: http(s)://<Host>."""
        if origin is None:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and bool(host) and parts.netloc.lower() == (host or "").lower()

    def token_given(self, request: web.Request) -> str | None:
        """Which way the request proves the token ("query" or "cookie"), or None."""
        for where, value in (("query", request.query.get(TOKEN_PARAM)), ("cookie", request.cookies.get(self.cookie_name))):
            if value is not None and hmac.compare_digest(value.encode(), self.token.encode()):
                return where
        return None

    def refusal(self, request: web.Request) -> web.Response | None:
        """The response that refuses this request, or None to let it through."""
        if not self.host_allowed(request.headers.get("Host")):
            return _refuse(403, "this server answers only requests addressed to it (Host)")
        if not self.origin_allowed(request.headers.get("Origin"), request.headers.get("Host")):
            return _refuse(403, "a page from another site may not use this server (Origin)")
        if self.token_given(request) is None:
            return _refuse(403, "open the URL with ?token=... that goemo-cockpit --web printed")
        if request.path == WEBSOCKET_PATH and self.sessions >= self.max_sessions:
            return _refuse(503, f"{self.sessions} browser sessions are open, the most this server allows "
                                f"(--max-sessions {self.max_sessions}); close a tab")
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The aiohttp middleware: refuse, count websocket sessions, and finish the index page."""
        if (refused := self.refusal(request)) is not None:
            return refused
        if request.path == WEBSOCKET_PATH:
            self.sessions += 1
            try:
                return await handler(request)
            finally:
                self.sessions -= 1
        response = await handler(request)
        if response.prepared:  # a download streams as it is written: nothing can be added any more
            return response
        if self.token_given(request) == "query":
            response.set_cookie(self.cookie_name, self.token, httponly=True, samesite="Strict", path="/")
        response.headers["Referrer-Policy"] = "no-referrer"  # the token in the address bar goes nowhere
        response.headers["X-Content-Type-Options"] = "nosniff"
        if request.path == "/" and isinstance(response, web.Response) and response.text is not None:
            response.text = local_page(response.text, request.headers.get("Host", ""), self.public_url)
            response.headers["Content-Security-Policy"] = content_policy(request.headers.get("Host", ""))
        return response


def local_page(html: str, host: str, public_url: str) -> str:
    """textual-serve's index page with its URLs on `host` (the address the browser used) and no request
    outside the server: the Google Fonts link becomes an @font-face on the font textual-serve ships."""
    # Its static URL is http://NETLOC/static/ and its websocket's ws://NETLOC/ws.
    html = html.replace(f"//{urlsplit(public_url).netloc}/", f"//{host}/")
    static = f"http://{host}/static/"
    return GOOGLE_FONTS_LINK.sub(lambda _: LOCAL_FONT.replace("{static}", static), html)


def content_policy(host: str) -> str:
    """What the page may load: only from this server (scripts and styles inline, as textual-serve's are)."""
    return "; ".join([
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        f"connect-src 'self' ws://{host} wss://{host}",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ])


def _refuse(status: int, reason: str) -> web.Response:
    return web.Response(status=status, text=f"goemo-cockpit: {reason}\n")
