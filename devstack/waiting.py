"""One way to wait for the real stack: ``until(predicate, timeout, what)`` asks again every ``interval`` seconds until
the predicate gives something true, and fails saying what it waited for and what it saw last.

Tests, the benchmarks and the stack itself wait with it, so no caller spells its own deadline loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from syncd.log import describe_error

T = TypeVar("T")


class WaitTimeoutError(AssertionError):
    """What ``until`` waited for never came; an ``AssertionError``, so a test reads it as a failed expectation."""


def until(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    *,
    interval: float = 0.2,
    describe: Callable[[Any], str] = repr,
    ignore: tuple[type[BaseException], ...] = (),
    abort: Callable[[], str | None] | None = None,
    detail: Callable[[], str] | None = None,
    error: Callable[[str], Exception] = WaitTimeoutError,
) -> T:
    """The predicate's first true value, asked at least once and again every ``interval`` s for ``timeout`` s.

    ``what`` names what is waited for; ``describe`` words the last value the predicate gave. An exception in
    ``ignore`` counts as "not yet" and is the last value seen; any other ends the wait. ``abort`` names a reason to stop
    early (the process died) or gives None. ``detail`` is read only on failure and ends the message (a log's tail).
    The failure is ``error(message)``: ``WaitTimeoutError`` unless the caller has its own (``StackError``)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    seen = False
    while True:
        try:
            value = predicate()
        except ignore as exc:
            last, seen = exc, True
        else:
            if value:
                return value
            last, seen = value, True
        stopped = abort() if abort is not None else None
        left = deadline - time.monotonic()
        if stopped is not None or left <= 0:
            observed = describe_error(last) if isinstance(last, BaseException) else describe(last)
            cause = f"gave up: {stopped}" if stopped is not None else f"not within {timeout:g}s"
            message = f"waited for {what}: {cause}; last observed: {observed if seen else 'nothing'}"
            raise error(f"{message}\n{detail()}" if detail is not None else message)
        time.sleep(min(interval, left))
