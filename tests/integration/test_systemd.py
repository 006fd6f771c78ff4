"""The shipped unit file passes Debian's `systemd-analyze verify` and its offline security audit."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from devstack import ROOT, VENV_BIN

UNIT = ROOT / "systemd" / "syncd.service"

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


def _local_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this venv's syncd: verify insists the binary exists."""
    text = UNIT.read_text()
    assert "ExecStart=/usr/local/bin/syncd run" in text
    copy = tmp_path / "syncd.service"
    copy.write_text(text.replace("/usr/local/bin/syncd", str(VENV_BIN / "syncd")))
    return copy


def _directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def test_unit_verifies(tmp_path: Path) -> None:
    unit = _local_copy(tmp_path)
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False)
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if "syncd.service" in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


def test_unit_is_a_hardened_notify_service(tmp_path: Path) -> None:
    text = UNIT.read_text()
    keys = _directives(text)
    expected = {
        "Type": "notify",
        "Restart": "on-failure",
        "StateDirectory": "syncd",
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "RestartPreventExitStatus": "78",
    }
    assert {k: keys.get(k, [""])[0] for k in expected} == expected
    assert keys["WatchdogSec"] and keys["LoadCredential"]
    # Every directive after the hardening header is explained by a comment right above it (or its group).
    lines = text.split("# --- Hardening", 1)[1].split("[Install]", 1)[0].splitlines()[1:]
    for i, line in enumerate(lines):
        if line and not line.startswith(("#", "[")) and not lines[i - 1].startswith("#"):
            assert re.match(r"\w+=", lines[i - 1]), f"uncommented hardening line: {line}"

    audit = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(_local_copy(tmp_path))],
        capture_output=True,
        text=True,
        check=False,
    )
    level = re.search(r"Overall exposure level for syncd\.service: ([\d.]+)", audit.stdout)
    assert level and float(level.group(1)) <= 2.0, audit.stdout[-2000:]
