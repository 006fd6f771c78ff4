"""The daemon's HTTP endpoint: GET /healthz, GET /metrics, POST /webhook, on a stdlib threading server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from syncd.daemon.metrics import CONTENT_TYPE
from syncd.labelstudio.webhooks import PATH as WEBHOOK_PATH

MAX_BODY = 10 * 1024 * 1024


class App(Protocol):
    def health(self) -> tuple[bool, dict[str, Any]]: ...

    def metrics_text(self) -> bytes: ...

    def webhook_delivery(self, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]: ...


def _handler(app: App) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "syncd"
        sys_version = ""

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                ok, body = app.health()
                self._json(200 if ok else 503, body)
            elif path == "/metrics":
                self._send(200, app.metrics_text(), CONTENT_TYPE)
            else:
                self._json(404, {"error": "not found", "endpoints": ["/healthz", "/metrics", WEBHOOK_PATH]})

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != WEBHOOK_PATH:
                self._json(404, {"error": "not found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._json(413, {"error": "payload too large"})
                return
            status, body = app.webhook_delivery(self.headers, self.rfile.read(length))
            self._json(status, body)

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._send(status, json.dumps(body).encode() + b"\n", "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Requests are not logged one by one: scrapes every few seconds would drown the events that matter."""

    return Handler


class HttpServer:
    def __init__(self, address: tuple[str, int], app: App) -> None:
        self._server = ThreadingHTTPServer(address, _handler(app))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="syncd-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
