"""The daemon's HTTP endpoint: GET /healthz, GET /metrics, POST /webhook, served by waitress.

waitress (pure Python, maintained) reads requests on one event loop and hands complete ones to a fixed pool of
``THREADS`` workers, so idle or slow clients hold a socket, never a thread. It refuses a malformed or negative
``Content-Length`` (400) and one above ``MAX_BODY`` (413) before reading the body, caps open connections at
``CONNECTION_LIMIT`` and closes connections idle for ``IDLE_TIMEOUT`` seconds.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from requests.structures import CaseInsensitiveDict
from waitress.server import create_server

from syncd.daemon.metrics import CONTENT_TYPE
from syncd.labelstudio.webhooks import PATH as WEBHOOK_PATH

MAX_BODY = 10 * 1024 * 1024
THREADS = 4
CONNECTION_LIMIT = 512
IDLE_TIMEOUT = 30
_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 503: "Unavailable"}

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class App(Protocol):
    def health(self) -> tuple[bool, dict[str, Any]]: ...

    def metrics_text(self) -> bytes: ...

    def webhook_delivery(self, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]: ...


def _headers(environ: dict[str, Any]) -> CaseInsensitiveDict[str]:
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-")] = value
    return headers


ENDPOINTS = (
    (
        "GET",
        "/healthz",
        "200 while every stage makes progress and every dependency answers, 503 otherwise; a JSON body"
        " names each check, the dependency that is down and why",
    ),
    ("GET", "/metrics", "Prometheus text exposition of every metric (see the metrics reference)"),
    (
        "POST",
        WEBHOOK_PATH,
        "Label Studio's webhook deliveries (annotation created, updated, deleted), checked against"
        " the shared secret header; 200 once the delivery is kept in the state for the export",
    ),
)
"""What the daemon's HTTP listener (``[http]``) answers: method, path, meaning. Anything else is a 404 naming these."""


def wsgi_app(app: App) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    def respond(start: StartResponse, status: int, body: bytes, content_type: str) -> list[bytes]:
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        start(f"{status} {_REASONS.get(status, 'Error')}", headers)
        return [body]

    def as_json(start: StartResponse, status: int, body: dict[str, Any]) -> list[bytes]:
        return respond(start, status, json.dumps(body).encode() + b"\n", "application/json")

    def application(environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        if method == "GET" and path == "/healthz":
            ok, body = app.health()
            return as_json(start, 200 if ok else 503, body)
        if method == "GET" and path == "/metrics":
            return respond(start, 200, app.metrics_text(), CONTENT_TYPE)
        if method == "POST" and path == WEBHOOK_PATH:
            length = int(environ.get("CONTENT_LENGTH") or 0)  # waitress has already refused bad or huge ones
            status, body = app.webhook_delivery(_headers(environ), environ["wsgi.input"].read(length))
            return as_json(start, status, body)
        return as_json(start, 404, {"error": "not found", "endpoints": [path for _, path, _ in ENDPOINTS]})

    return application


class HttpServer:
    def __init__(self, address: tuple[str, int], app: App) -> None:
        logging.getLogger("waitress").setLevel(logging.ERROR)  # "Serving on", queue-depth notes: not our events
        self._server: Any = create_server(
            wsgi_app(app),
            host=address[0],
            port=address[1],
            threads=THREADS,
            connection_limit=CONNECTION_LIMIT,
            channel_timeout=IDLE_TIMEOUT,
            cleanup_interval=max(IDLE_TIMEOUT // 3, 1),
            max_request_body_size=MAX_BODY,
            max_request_header_size=64 * 1024,
            asyncore_loop_timeout=1,
            ident="syncd",
            clear_untrusted_proxy_headers=True,
        )
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="syncd-http", daemon=True)

    def _serve(self) -> None:
        """The server loop; the sockets ``stop`` closes under a loop that is waiting in ``select`` end it with EBADF
        (or a negative descriptor), which is the stop it asked for, not an error."""
        try:
            self._server.run()
        except (OSError, ValueError):
            if not self._stopping.is_set():
                raise

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Close the listening socket and every connection, stop the workers, and wait for the loop to end."""
        from waitress import wasyncore

        self._stopping.set()
        self._server.task_dispatcher.shutdown()
        wasyncore.close_all(self._server._map)
        self._thread.join(5)
