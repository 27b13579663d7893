"""A local HTTP endpoint that stands in for a notification service (apprise's json:// plugin posts to it)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebHook:
    """A local HTTP endpoint: records the JSON body of each accepted POST. ``mode``: ok (200), fail (500),
    hang (never answers until released), slow (takes the POST, then answers 200 after ``delay_s``)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.received: list[str] = []  # the title of every POST, answered or not
        self.requests = 0
        self.mode = "ok"
        self.delay_s = 1.0
        self.release = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.requests += 1
                hook.received.append(json.loads(body).get("title", ""))
                if hook.mode == "hang":
                    hook.release.wait(30)
                    return
                if hook.mode == "slow":
                    hook.posts.append(json.loads(body))  # it arrived; only the answer is late
                    hook.release.wait(hook.delay_s)
                    self.send_response(200)
                    self.end_headers()
                    return
                if hook.mode == "fail":
                    self.send_response(500)
                    self.end_headers()
                    return
                hook.posts.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"json://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def titles(self) -> list[str]:
        return [p["title"] for p in self.posts]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
