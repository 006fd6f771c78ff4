"""structlog set-up: JSON lines for journald, a console renderer on a terminal, secrets redacted on the way out.

The pipeline is small pure processors. Event sinks (the daemon's metrics) see every event before the level filter, so
a counter never depends on the configured log level and no logger needs wrapping.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, TextIO

import structlog

_SECRET_KEYS = re.compile(r"(token|secret|password|api_key|authorization|credential)", re.I)
_PRESIGNED = re.compile(r"([?&](X-Amz-[A-Za-z-]+|Signature|AWSAccessKeyId|Expires)=)[^&\s\"']+")
_TOKEN_HEADER = re.compile(r"((?:Token|Bearer)\s+)[A-Za-z0-9._-]{8,}")
_REDACTED = "[redacted]"


_COOKIE = re.compile(r"((?:sessionid|csrftoken)=)[^;\s'\"]+", re.I)


def _scrub(value: str) -> str:
    value = _PRESIGNED.sub(r"\1" + _REDACTED, value)
    value = _COOKIE.sub(r"\1" + _REDACTED, value)
    return _TOKEN_HEADER.sub(r"\1" + _REDACTED, value)


def describe_error(exc: BaseException) -> str:
    """One line per error: HTTP errors keep status and body, never response headers (they carry cookies)."""
    status = getattr(exc, "status_code", None)
    if status is not None and hasattr(exc, "body"):
        return f"{type(exc).__name__}: HTTP {status}: {exc.body}"
    return f"{type(exc).__name__}: {str(exc).split(_DEBUG_TAIL, 1)[0].strip()}"


_DEBUG_TAIL = "\n\nDebug source:"
"""obstore appends its Rust error's debug dump (dozens of lines) after this; the message before it says it all."""


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop secret-looking fields and presigned-URL signatures from every event, wherever they hide."""
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key) and key != "event":
            event[key] = _REDACTED
        elif isinstance(value, str):
            event[key] = _scrub(value)
        elif isinstance(value, BaseException):
            event[key] = _scrub(describe_error(value))
    return event


EventSink = Callable[[str, str, Mapping[str, Any]], None]
"""Called with (level, event name, fields) for every event logged, whatever the configured level."""
_sinks: list[EventSink] = []
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "exception": 40, "critical": 50}


def add_event_sink(sink: EventSink) -> None:
    _sinks.append(sink)


def remove_event_sink(sink: EventSink) -> None:
    if sink in _sinks:
        _sinks.remove(sink)


def feed_sinks(_logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    level = "error" if method == "exception" else method
    for sink in list(_sinks):
        sink(level, str(event.get("event", "")), event)
    return event


def drop_below(level: str) -> structlog.typing.Processor:
    """The level filter, as a processor placed after the sinks (a filtering wrapper would hide events from them)."""
    least = _LEVELS[level]

    def drop(_logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if _LEVELS.get(method, 20) < least:
            raise structlog.DropEvent
        return event

    return drop


_WRITE = threading.Lock()
"""Held for every line this process writes, ours and the libraries': a line is never split by another's."""


class LineWriter:
    """structlog's logger: each event one ``write`` of the whole line, then a flush. ``PrintLogger`` prints the text
    and its newline as two writes; with ``PYTHONUNBUFFERED=1`` (common in containers) those are two system calls,
    and a library's warning on stderr, which journald and a pipe merge into the same stream, can land between them:
    the JSON line loses its end and the event is lost to every reader of the log."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def msg(self, message: str) -> None:
        stream = self._stream or sys.stdout
        with _WRITE:
            stream.write(message + "\n")
            stream.flush()

    debug = info = warning = warn = error = critical = exception = fatal = failure = err = log = msg


class _LineHandler(logging.StreamHandler):
    """The libraries' log lines (stdlib logging, on stderr), written under the same lock as ours."""

    def emit(self, record: logging.LogRecord) -> None:
        with _WRITE:
            super().emit(record)


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Logs go to ``stream``, or else to whatever ``sys.stdout`` is when each line is written."""
    use_console = fmt == "console" or (fmt == "auto" and (stream or sys.stdout).isatty())
    renderer: Any = structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            feed_sinks,
            drop_below(level),
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=lambda *_: LineWriter(stream),
        cache_logger_on_first_use=False,
    )
    # Libraries log through stdlib logging; keep them quiet and on stderr unless asked.
    handler = _LineHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _LineHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for noisy in ("botocore", "urllib3", "httpx", "faster_whisper", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(**context: Any) -> Any:
    return structlog.get_logger("syncd", **context)
