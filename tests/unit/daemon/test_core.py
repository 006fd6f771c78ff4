"""The daemon's own logic in-process, without the stack: watchdog and stuck stages, cycles, event counting."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest.mock import ANY

from structlog.testing import capture_logs

from syncd import heartbeat
from syncd.commands.status import format_status, status_report
from syncd.config import parse
from syncd.daemon import Daemon
from syncd.daemon.health import health_report, webhook_wait_limit
from syncd.labelstudio.webhooks import HEADER
from syncd.stages import BY_NAME, STAGE_NAMES
from tests.unit.fakes import healthy_probes, services
from tests.unit.scenarios import reviewed_on_two_instances

SECRET = "webhook-shared-secret-for-tests-0123"


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


def test_a_webhook_on_an_instance_without_the_export_lease_waits_in_the_state_for_the_holder(tmp_path: Path) -> None:
    """b receives Label Studio's delivery but does not hold the export lease: the delivery waits in the shared state,
    shows in /metrics and /healthz, and a's webhook job exports it at its next tick."""
    a, b, storage, task_id = reviewed_on_two_instances(tmp_path)
    receiver, holder = Daemon("b.toml", b.settings), Daemon("a.toml", a.settings)
    receiver.svc, holder.svc = b, a
    receiver.webhook.register(b.settings, b, SECRET)  # no public_url: the secret only, nothing registered
    payload = {"action": "ANNOTATION_CREATED", "task": {"id": task_id, "project": 1}, "annotation": {"id": 1}}
    assert receiver.webhook_delivery({HEADER: SECRET}, json.dumps(payload).encode())[0] == 202
    receiver._export_webhooks()
    assert "one.transcript.txt" not in storage.keys("b"), "b holds no export lease"
    assert b"syncd_webhook_deliveries_waiting 1.0" in receiver.metrics_text()
    assert b"syncd_webhook_oldest_delivery_timestamp_seconds" in receiver.metrics_text()
    _, body = receiver.health()
    assert body["checks"]["webhooks"] == {"ok": True, "waiting": 1, "oldest_age_seconds": ANY}
    with capture_logs() as logs:
        holder._export_webhooks()
    assert storage.text("b", "one.transcript.txt") == "reviewed by a person\n"
    assert [e["task"] for e in logs if e["event"] == "webhook.exported"] == [task_id]
    assert b"syncd_webhook_deliveries_waiting 0.0" in receiver.metrics_text()


def test_a_webhook_delivery_left_waiting_past_the_poll_degrades_health(tmp_path: Path) -> None:
    svc, *_ = services(tmp_path)
    svc.state.export_queue.queue_webhook(7, 1, received=time.time() - 3600)
    _, body = health_report(svc.settings, "running", 1.0, healthy_probes(svc.settings), svc.state)
    assert body["status"] == "degraded" and body["checks"]["webhooks"]["waiting"] == 1
    assert body["checks"]["webhooks"]["oldest_age_seconds"] > webhook_wait_limit(svc.settings)
    assert "webhook deliveries waiting for the export holder: 1" in format_status(status_report(svc.state, 30))


def test_a_stage_that_handled_something_brings_the_next_one_forward(tmp_path: Path) -> None:
    """A new recording waits for no interval between scan, transcription and import: each stage that handled
    something runs the one it feeds at once. Export is not fed: reviews come from people."""
    hour = {"scan_interval": 3600, "transcribe_interval": 3600, "import_interval": 3600, "export_interval": 3600}
    svc, _, storage, _ = services(tmp_path, schedule=hour)
    daemon = Daemon("c.toml", svc.settings)
    daemon.svc = svc
    daemon.jobs.scheduler.start(paused=True)
    try:
        daemon.jobs.schedule(svc.settings)
        later = datetime.now(UTC) + timedelta(minutes=30)
        for name in STAGE_NAMES:
            daemon.jobs.scheduler.get_job(name).modify(next_run_time=later)

        def due() -> set[str]:
            return {n for n in STAGE_NAMES if daemon.jobs.scheduler.get_job(n).next_run_time < later}

        daemon._run_stage(BY_NAME["scan"])
        assert due() == set(), "nothing found: nothing brought forward"
        storage.put_audio("b", "a.mp3")
        daemon._run_stage(BY_NAME["scan"])
        assert due() == {"transcribe"}
        daemon._run_stage(BY_NAME["transcribe"])
        assert due() == {"transcribe", "import"}
        daemon._run_stage(BY_NAME["import"])
        assert "export" not in due()
    finally:
        daemon.jobs.scheduler.shutdown(wait=False)
