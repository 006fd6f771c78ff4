"""The daemon's own logic in-process, without the stack: watchdog and stuck stages, cycles, event counting."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from syncd import heartbeat
from syncd.config import parse
from syncd.daemon import Daemon


def test_watchdog_pings_stop_while_a_stage_is_stuck(tmp_path: Path) -> None:
    """A stage past schedule.stage_timeout withholds WATCHDOG=1, so systemd restarts a hung daemon."""
    settings = parse(
        {"sources": [{"bucket": "b"}], "state": {"path": str(tmp_path / "s.db")}, "schedule": {"stage_timeout": 5}}
    )
    now = [0.0]
    daemon = Daemon(str(tmp_path / "c.toml"), settings, clock=lambda: now[0])
    daemon.jobs.scheduler.start()
    try:
        assert daemon.alive()
        with daemon.jobs.tracking("transcribe"):
            now[0] += 6
            with capture_logs() as logs:
                assert not daemon.alive()
            assert [e["stage"] for e in logs if e["event"] == "stage.stuck"] == ["transcribe"]
            assert b"syncd_stuck_stages 1.0" in daemon.metrics_text()
            heartbeat.beat()
            assert daemon.alive()
        assert b"syncd_stuck_stages 0.0" in daemon.metrics_text()
    finally:
        daemon.jobs.scheduler.shutdown()
