"""A small HTTP server on 127.0.0.1 for the demo's web and for tests: real sockets, no internet.

The server binds a free port, answers in threads, counts requests, and stops when its `with`
block ends. Routes are one function from the request path to a `Response`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass(frozen=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # to simulate a slow host; the client's timeout should fire first


App = Callable[[str], Response]


class LoopbackServer:
    def __init__(self, app: App, max_requests: int = 1_000_000, port: int = 0, host: str = "127.0.0.1"):
        self.app = app
        self.port = port  # 0: any free port
        self.host = host  # another loopback address (127.0.0.2) gives tests a second, separate host
        self.max_requests = max_requests  # a bound, so a runaway client loop ends
        self.requests = 0
        self.hits: Counter[str] = Counter()  # requests per path, e.g. to prove a retry loop is bounded
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "LoopbackServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                with server._lock:
                    server.requests += 1
                    server.hits[self.path] += 1
                    over = server.requests > server.max_requests
                resp = Response(503, b"request budget spent") if over else server.app(self.path)
                if resp.delay_s:
                    time.sleep(resp.delay_s)
                try:
                    self.send_response(resp.status)
                    self.send_header("Content-Type", resp.content_type)
                    self.send_header("Content-Length", str(len(resp.body)))
                    for key, value in resp.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(resp.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (e.g. its timeout fired); nothing to answer

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None and self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
