"""Heartbeats: how long-running work tells "making progress" from "stuck".

The daemon's job tracking installs a heartbeat for the thread running a stage; anything on that thread (a stage between
recordings, a transcriber between segments) calls ``beat()``. The watchdog looks at the last beat, not at the stage's
start, so an hour-long transcription that keeps reporting is never taken for a hang. Outside the daemon it is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_current: ContextVar[Callable[[], None] | None] = ContextVar("syncd_heartbeat", default=None)


def beat() -> None:
    """Report progress on the current thread's job (no-op when nothing listens)."""
    listener = _current.get()
    if listener is not None:
        listener()


@contextmanager
def listening(listener: Callable[[], None]) -> Iterator[None]:
    """Route ``beat()`` calls made on this thread (inside the block) to ``listener``."""
    token = _current.set(listener)
    try:
        yield
    finally:
        _current.reset(token)
