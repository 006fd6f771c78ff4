"""Fault points: a no-op unless a test names them; a stop happens once per point (and once per fleet with a folder).

SIGKILL and SIGSTOP are proved on real processes (tests/integration/faults); here the signals are observed in a child
process, so the test runner itself is never stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from syncd import faults

ROOT = Path(__file__).resolve().parents[2]


def _child(env: dict[str, str], points: str) -> subprocess.Popen[str]:
    code = f"from syncd.faults import fault_point\nfor p in {points!r}.split(','):\n    fault_point(p)\nprint('done')"
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env=os.environ | {"PYTHONPATH": str(ROOT)} | env,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_an_unnamed_point_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SYNCD_CRASH_AT", "SYNCD_HANG_AT", "SYNCD_STOP_AT"):
        monkeypatch.delenv(name, raising=False)
    with capture_logs() as logs:
        faults.fault_point("import.before_send")
    assert logs == []


def test_a_hang_logs_then_blocks_for_the_seconds_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_HANG_AT", "stage.export")
    monkeypatch.setenv("SYNCD_HANG_SECONDS", "0.2")
    started = time.monotonic()
    with capture_logs() as logs:
        faults.fault_point("stage.export")
        faults.fault_point("stage.import")
    assert time.monotonic() - started >= 0.2
    assert [(e["event"], e["point"], e["seconds"]) for e in logs] == [("fault.hang", "stage.export", 0.2)]


def test_a_crash_point_kills_the_process_with_sigkill() -> None:
    child = _child({"SYNCD_CRASH_AT": "b"}, "a,b,c")
    out, _ = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL and out == ""


def test_a_stop_point_stops_once_and_the_process_carries_on_when_woken(tmp_path: Path) -> None:
    child = _child({"SYNCD_STOP_AT": "x", "SYNCD_STOP_ONCE_DIR": str(tmp_path)}, "x,x")
    try:
        _, status = os.waitpid(child.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status) and os.WSTOPSIG(status) == signal.SIGSTOP
        assert (tmp_path / "x").exists()  # the fleet's marker: no other process stops at x
        child.send_signal(signal.SIGCONT)
        out, _ = child.communicate(timeout=30)
    finally:
        child.kill()
    assert out.count("fault.stop") == 1 and out.endswith("done\n")  # the second x passed: a point stops once


def test_with_a_fleet_folder_only_the_first_process_stops(tmp_path: Path) -> None:
    (tmp_path / "x").touch()  # another process of the fleet stopped there already
    child = _child({"SYNCD_STOP_AT": "x", "SYNCD_STOP_ONCE_DIR": str(tmp_path)}, "x")
    out, _ = child.communicate(timeout=30)
    assert child.returncode == 0 and out == "done\n"  # nor logs fault.stop
