"""Signals as messages for the main loop.

Handlers do nothing but let CPython write the signal number to a wake-up pipe, which the main thread reads: no work,
and no lock, is ever taken inside a handler, and a signal delivered to any thread (native libraries start their own)
still lands here.
"""

from __future__ import annotations

import os
import select
import signal
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
STOP = (signal.SIGTERM, signal.SIGINT)


class SignalInbox:
    """``wait`` returns the next signal received, or None after ``timeout`` seconds."""

    def __init__(self) -> None:
        self._read, write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(write, False)
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        for signum in SIGNALS:
            signal.signal(signum, _queued)

    def wait(self, timeout: float) -> int | None:
        ready, _, _ = select.select([self._read], [], [], timeout)
        if not ready:
            return None
        return os.read(self._read, 1)[0]  # one at a time: the rest stay queued in the pipe


def _queued(_signum: int, _frame: FrameType | None) -> None:
    """The work happens in the main loop, which reads the number CPython wrote to the wake-up pipe."""
