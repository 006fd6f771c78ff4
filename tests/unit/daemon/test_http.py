"""The HTTP server: bounded request bodies, webhooks reaching the app, idle connections holding no threads, a clean
stop."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from syncd.daemon.http import HttpServer


class StubApp:
    def __init__(self) -> None:
        self.deliveries: list[bytes] = []

    def health(self) -> tuple[bool, dict[str, Any]]:
        return True, {"status": "ok"}

    def metrics_text(self) -> bytes:
        return b"syncd_up 1\n"

    def webhook_delivery(self, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        self.deliveries.append(body)
        return 202, {"queued": True, "secret_seen": headers.get("x-syncd-webhook-secret")}


@pytest.fixture
def server() -> Iterator[tuple[HttpServer, StubApp]]:
    app = StubApp()
    http = HttpServer(("127.0.0.1", 0), app)
    http.start()
    yield http, app
    http.stop()


def _raw(port: int, request: bytes) -> bytes:
    """Send ``request`` (headers only: no body follows) and read the answer; the server must answer without waiting
    for a body that never comes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer


@pytest.mark.parametrize(
    ("length", "status"), [("-1", b"400"), ("12abc", b"400"), (str(10**12), b"413"), (str(300 * 2**20), b"413")]
)
def test_bad_or_huge_content_length_is_refused_unread(server: tuple[HttpServer, StubApp], length: str, status: bytes):
    http, app = server
    answer = _raw(http.port, f"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode())
    assert answer.split(b" ", 2)[1] == status, answer
    assert app.deliveries == []


def test_webhook_body_and_headers_reach_the_app(server: tuple[HttpServer, StubApp]) -> None:
    http, app = server
    answer = requests.post(
        f"http://127.0.0.1:{http.port}/webhook", data=b'{"a": 1}', headers={"X-Syncd-Webhook-Secret": "s"}, timeout=10
    )
    assert answer.status_code == 202 and answer.json() == {"queued": True, "secret_seen": "s"}
    assert app.deliveries == [b'{"a": 1}']
    assert requests.get(f"http://127.0.0.1:{http.port}/nope", timeout=10).status_code == 404


def test_idle_connections_hold_no_threads_and_health_still_answers(server: tuple[HttpServer, StubApp]) -> None:
    http, _ = server
    requests.get(f"http://127.0.0.1:{http.port}/healthz", timeout=10)  # workers started
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", http.port), timeout=10) for _ in range(200)]
    try:
        answer = requests.get(f"http://127.0.0.1:{http.port}/healthz", timeout=10)
        assert answer.status_code == 200 and answer.json() == {"status": "ok"}
        assert threading.active_count() - before < 10, "a thread per idle connection"
    finally:
        for conn in idle:
            conn.close()


def test_stopping_while_the_loop_waits_raises_nothing_in_its_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Closing the sockets under a loop waiting in select can end it with EBADF: after stop() that is the stop, not a
    crash to report (it showed as an unhandled thread exception when the daemon stopped); before it, it is one."""
    raised: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: raised.append(args.exc_value))
    for stop_first in (True, False):
        http = HttpServer(("127.0.0.1", 0), StubApp())
        gate = http._stopping if stop_first else threading.Event()

        def run(gate: threading.Event = gate) -> None:
            gate.wait(5)
            raise OSError(9, "Bad file descriptor")

        http._server.run = run
        http.start()
        if stop_first:
            http.stop()
        else:
            gate.set()
            http._thread.join(5)
            http.stop()
        assert not http._thread.is_alive()
    assert [type(e) for e in raised] == [OSError], "only the loop that failed on its own is reported"
