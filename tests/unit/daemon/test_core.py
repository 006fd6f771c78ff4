"""The daemon's own logic in-process, without the stack: watchdog and stuck stages, cycles, event counting."""

from __future__ import annotations

import time
from pathlib import Path

from syncd.config import parse
from syncd.daemon import Daemon


def test_watchdog_pings_stop_while_a_stage_is_stuck(tmp_path: Path) -> None:
    """A stage past schedule.stage_timeout withholds WATCHDOG=1, so systemd restarts a hung daemon."""
    settings = parse(
        {"sources": [{"bucket": "b"}], "state": {"path": str(tmp_path / "s.db")}, "schedule": {"stage_timeout": 5}}
    )
    daemon = Daemon(str(tmp_path / "c.toml"), settings)
    daemon.jobs.scheduler.start()
    try:
        assert daemon._alive()
        with daemon.jobs.tracking("transcribe"):
            daemon.jobs._running["transcribe"] = time.monotonic() - 6
            assert not daemon._alive()
            daemon.jobs._running["transcribe"] = time.monotonic()
            assert daemon._alive()
    finally:
        daemon.jobs.scheduler.shutdown()
