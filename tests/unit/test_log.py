"""The log pipeline: one line per error, secrets redacted wherever they hide, sinks seeing every event."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from syncd import log


class _HttpError(Exception):
    def __init__(self, status_code: int, body: Any, headers: dict[str, str]) -> None:
        super().__init__(f"headers: {headers}, status_code: {status_code}, body: {body}")
        self.status_code, self.body, self.headers = status_code, body, headers


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    log.configure("info", "json", out)
    yield out
    log.configure("info", "json", None)


def _events(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_an_error_is_its_type_and_message_as_the_sites_spelled_it() -> None:
    for exc in (ValueError("bad frame"), KeyError("k"), ConnectionError(), OSError(2, "No such file")):
        assert log.describe_error(exc) == f"{type(exc).__name__}: {exc}"


def test_an_http_error_keeps_status_and_body_never_headers() -> None:
    exc = _HttpError(502, {"detail": "upstream"}, {"Set-Cookie": "sessionid=abc"})
    assert log.describe_error(exc) == "_HttpError: HTTP 502: {'detail': 'upstream'}"


def test_obstores_debug_dump_is_cut() -> None:
    exc = RuntimeError("Generic S3 error: connection refused \n\nDebug source:\nReqwest { kind: Connect, ... }")
    assert log.describe_error(exc) == "RuntimeError: Generic S3 error: connection refused"


def test_secrets_are_redacted_by_key_in_urls_headers_cookies_and_errors(lines: io.StringIO) -> None:
    log.get_logger().info(
        "probe",
        api_token="t0ps3cret",
        url="https://b.s3.amazonaws.com/k?X-Amz-Signature=abcdef&x=1",
        header="Authorization: Token abcdefghijkl",
        cookie="sessionid=s3ss10n; path=/",
        error=ValueError("Bearer abcdefghijkl refused"),
    )
    (event,) = _events(lines)
    assert event["api_token"] == "[redacted]"
    assert event["url"] == "https://b.s3.amazonaws.com/k?X-Amz-Signature=[redacted]&x=1"
    assert event["header"] == "Authorization: Token [redacted]"
    assert event["cookie"] == "sessionid=[redacted]; path=/"
    assert event["error"] == "ValueError: Bearer [redacted] refused"
    assert event["event"] == "probe" and event["level"] == "info" and "timestamp" in event


def test_sinks_see_events_below_the_level_that_is_written(lines: io.StringIO) -> None:
    log.configure("warning", "json", lines)
    seen: list[tuple[str, str]] = []

    def sink(level: str, name: str, _fields: Any) -> None:
        seen.append((level, name))

    log.add_event_sink(sink)
    try:
        logger = log.get_logger()
        logger.debug("quiet")
        logger.warning("loud")
        logger.exception("broke")
    finally:
        log.remove_event_sink(sink)
    log.remove_event_sink(sink)  # removing twice is harmless
    logger.warning("after")
    assert seen == [("debug", "quiet"), ("warning", "loud"), ("error", "broke")]
    assert [e["event"] for e in _events(lines)] == ["loud", "broke", "after"]


def test_the_console_renderer_is_chosen_on_a_terminal_or_when_asked() -> None:
    out = io.StringIO()
    log.configure("info", "console", out)
    try:
        log.get_logger().info("hello", n=1)
    finally:
        log.configure("info", "json", None)
    assert "hello" in out.getvalue() and not out.getvalue().startswith("{")


class _Writes(io.StringIO):
    """A stream that keeps each ``write`` apart, as a pipe or journald sees the system calls."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_each_event_is_one_write_of_the_whole_line() -> None:
    """Two writes (the text, then its newline: ``print``'s way) let another writer's line land inside ours when
    stdout is unbuffered; one write per line cannot be split by a line of the same process."""
    out = _Writes()
    log.configure("info", "json", out)
    try:
        log.get_logger().info("audio.discovered", key="calls/a.mp3")
        log.get_logger().warning("dependency.down", dependency="s3")
    finally:
        log.configure("info", "json", None)
    assert [w.endswith("}\n") and w.count("\n") == 1 for w in out.writes] == [True, True], out.writes


def test_a_library_line_never_lands_inside_an_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """Events (stdout) and the libraries' warnings (stderr) are written under one lock, so with both streams merged
    (journald, a pipe) from many threads every line stays whole."""
    merged = _Writes()
    monkeypatch.setattr(sys, "stderr", merged)
    log.configure("info", "json", merged)
    try:

        def ours() -> None:
            for i in range(300):
                log.get_logger().info("scan.completed", listed=i)

        def theirs() -> None:
            for i in range(300):
                logging.getLogger("apscheduler.scheduler").warning("job skipped %d", i)

        threads = [threading.Thread(target=f) for f in (ours, theirs, ours, theirs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        log.configure("info", "json", None)
    lines = merged.getvalue().splitlines()
    assert len(lines) == 1200
    assert all(json.loads(line)["event"] == "scan.completed" for line in lines if line.startswith("{"))
    assert sum(line.startswith("WARNING apscheduler.scheduler: job skipped") for line in lines) == 600
