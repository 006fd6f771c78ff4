"""systemd's notify protocol (sd_notify): READY, STATUS, WATCHDOG, RELOADING and STOPPING datagrams.

Outside systemd ($NOTIFY_SOCKET unset) every call is a no-op, so `syncd run` behaves the same in a terminal.
"""

from __future__ import annotations

import os

import sdnotify

from syncd.domain.recording import PENDING


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings: half of WatchdogSec, as sd_watchdog_enabled(3) advises; None when off."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


class Notifier:
    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._sd = sdnotify.SystemdNotifier() if self.enabled else None

    def _send(self, message: str) -> None:
        if self._sd is not None:
            self._sd.notify(message)

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={status}\nMAINPID={os.getpid()}")

    def status(self, text: str) -> None:
        self._send(f"STATUS={text}")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def reloading(self) -> None:
        self._send("RELOADING=1\nSTATUS=reloading configuration")

    def stopping(self) -> None:
        self._send("STOPPING=1\nSTATUS=stopping: finishing running stages")


def status_line(states: dict[str, int], last_good_age: float | None) -> str:
    """The one-line summary systemctl status shows (STATUS=)."""
    pending = sum(states.get(s, 0) for s in PENDING)
    done = ", ".join(f"{states.get(s, 0)} {s}" for s in ("imported", "exported", "failed"))
    last = "no good cycle yet" if last_good_age is None else f"last good cycle {last_good_age:.0f}s ago"
    return f"{pending} pending, {done}; {last}"
