"""The real `syncd` console script run as its own process, as systemd or an operator would, and its JSON log events."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devstack.services import VENV_BIN, Stack
from devstack.waiting import until


def run_syncd(
    args: list[str], stack: Stack, *, timeout: float = 600, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the real `syncd` console script as a separate process, as systemd or an operator would."""
    proc = subprocess.run(
        [str(VENV_BIN / "syncd"), *args],
        env={**os.environ, **stack.env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"syncd {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def log_events(output: str) -> list[dict[str, Any]]:
    """The JSON log lines of a syncd run, parsed (other lines ignored)."""
    events = []
    for line in output.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                events.append(json.loads(line))
    return events


@contextlib.contextmanager
def notify_socket(path: Path) -> Iterator[list[str]]:
    """A NOTIFY_SOCKET bound at ``path`` for a daemon to talk sd_notify to: yields the list its datagrams (READY=1,
    WATCHDOG=1, ...) are appended to, read on a thread until the block ends."""
    messages: list[str] = []
    done = threading.Event()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(0.2)
        reader = threading.Thread(target=_collect, args=(sock, messages, done), daemon=True)
        reader.start()
        try:
            yield messages
        finally:
            done.set()
            reader.join(5)


def _collect(sock: socket.socket, into: list[str], stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            into.append(sock.recv(4096).decode())
        except TimeoutError:
            continue


class SyncdProcess:
    """A `syncd run` subprocess whose JSON log lines are collected on a thread, for waiting on events."""

    def __init__(
        self,
        config: Path,
        stack: Stack,
        env: dict[str, str] | None = None,
        *,
        command: list[str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        """``command`` replaces the console script (an earlier release runs as ``python -m syncd`` from ``cwd``)."""
        self.proc = subprocess.Popen(
            [*(command or [str(VENV_BIN / "syncd")]), "run", "-c", str(config)],
            env={**os.environ, **stack.env(), **(env or {})},
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    self.events.append(json.loads(line))

    def wait(self, event: str, timeout: float = 60, after: int = 0, **fields: Any) -> int:
        """Index of the first `event` (with these field values) at or after `after`."""

        def found() -> tuple[int] | None:
            for i, record in enumerate(self.events[after:], start=after):
                if record["event"] == event and all(record.get(k) == v for k, v in fields.items()):
                    return (i,)
            return None

        def ended() -> str | None:
            over = self.proc.poll() is not None and not self._reader.is_alive()
            return f"syncd exited with {self.proc.returncode}" if over else None

        (index,) = until(
            found,
            timeout,
            f"{event} {fields}",
            interval=0.1,
            abort=ended,
            describe=lambda _: f"events {[e['event'] for e in self.events]}",
        )
        return index

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, wait for the exit, then for the reader to reach the pipe's end: on a loaded machine it can lag
        the process by seconds, and a test reading ``events`` before then misses the last lines (the drain's)."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
