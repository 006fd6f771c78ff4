"""`syncd run` as a real process: it cycles on its schedule and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

from tests.stack import VENV_BIN, Stack


def _wait_for(stream: IO[str], event: str, timeout: float, seen: list[dict]) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        if line.startswith("{"):
            record = json.loads(line)
            seen.append(record)
            if record["event"] == event:
                return record
    raise AssertionError(f"no {event} within {timeout}s; saw {[e['event'] for e in seen]}")


def test_run_cycles_until_sigterm(stack: Stack, config_file: Path) -> None:
    config_file.write_text(config_file.read_text() + "\n[schedule]\nscan_interval = 1\nexport_interval = 1\n")
    proc = subprocess.Popen(
        [str(VENV_BIN / "syncd"), "run", "-c", str(config_file)],
        env={**os.environ, **stack.env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[dict] = []
    try:
        assert proc.stdout is not None
        _wait_for(proc.stdout, "cycle.completed", 60, seen)
        _wait_for(proc.stdout, "cycle.completed", 30, seen)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        events = [json.loads(line)["event"] for line in rest.splitlines() if line.startswith("{")]
        assert "daemon.stopped" in events
    finally:
        if proc.poll() is None:
            proc.kill()
