"""sd_notify: the datagrams systemd reads, sent only under systemd; the watchdog interval as systemd advises."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from syncd.daemon.notify import Notifier, status_line, watchdog_interval


def test_outside_systemd_every_call_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    notifier.ready("up")
    notifier.watchdog()


def test_under_systemd_each_message_is_one_datagram(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        notifier = Notifier()
        notifier.ready("3 pending")
        notifier.status("busy")
        notifier.watchdog()
        notifier.reloading()
        notifier.stopping()
        got = [sock.recv(4096).decode() for _ in range(5)]
    assert got == [
        f"READY=1\nSTATUS=3 pending\nMAINPID={os.getpid()}",
        "STATUS=busy",
        "WATCHDOG=1",
        "RELOADING=1\nSTATUS=reloading configuration",
        "STOPPING=1\nSTATUS=stopping: finishing running stages",
    ]


@pytest.mark.parametrize(
    ("usec", "pid", "interval"),
    [("", "", None), ("0", "", None), ("abc", "", None), ("20000000", "", 10.0), ("20000000", "1", None)],
)
def test_the_watchdog_is_pinged_at_half_its_limit_when_it_is_ours(
    monkeypatch: pytest.MonkeyPatch, usec: str, pid: str, interval: float | None
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", usec)
    monkeypatch.setenv("WATCHDOG_PID", pid)
    assert watchdog_interval() == interval
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == (10.0 if usec == "20000000" else None)


def test_the_status_line_counts_pending_work_and_the_last_good_cycle() -> None:
    states = {"discovered": 2, "transcribing": 1, "imported": 4, "failed": 1}
    assert status_line(states, None) == "3 pending, 4 imported, 0 exported, 1 failed; no good cycle yet"
    assert status_line({}, 12.4) == "0 pending, 0 imported, 0 exported, 0 failed; last good cycle 12s ago"
