"""Signals arrive as messages on the main loop, in order, one at a time; nothing runs inside the handler."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from syncd.daemon.signals import SIGNALS, SignalInbox


@pytest.fixture
def inbox() -> Iterator[SignalInbox]:
    before = {signum: signal.getsignal(signum) for signum in SIGNALS}
    old_fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(old_fd)
    try:
        yield SignalInbox()
    finally:
        signal.set_wakeup_fd(old_fd)
        for signum, handler in before.items():
            signal.signal(signum, handler)


def test_nothing_received_is_none_after_the_timeout(inbox: SignalInbox) -> None:
    assert inbox.wait(0.01) is None


def test_signals_are_read_in_order_one_at_a_time(inbox: SignalInbox) -> None:
    os.kill(os.getpid(), signal.SIGHUP)
    os.kill(os.getpid(), signal.SIGTERM)
    assert inbox.wait(5) == signal.SIGHUP
    assert inbox.wait(5) == signal.SIGTERM
    assert inbox.wait(0.01) is None


def test_a_signal_sent_while_waiting_wakes_the_wait(inbox: SignalInbox) -> None:
    timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        assert inbox.wait(10) == signal.SIGINT
    finally:
        timer.cancel()
