"""One code path for stage runs and cycles, and every event counted whatever the log level."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

from structlog.testing import capture_logs

from syncd.daemon.metrics import Metrics
from syncd.labelstudio import LabelStudioError
from syncd.log import add_event_sink, configure, get_logger, remove_event_sink
from syncd.pipeline import Cycle, StageRun, report_cycle, run_stage
from syncd.services import Services
from syncd.stages import BY_NAME, STAGE_NAMES
from syncd.state import outages
from tests.unit.fakes import FakeLabelStudio, services


def test_a_cycle_completes_once_every_stage_has_run() -> None:
    cycle = Cycle()
    assert not cycle.add(StageRun("scan", 2, 0.1, True))
    assert not cycle.add(StageRun("export", 1, 0.1, True))  # a webhook export counts, and completes nothing yet
    assert not cycle.add(StageRun("transcribe", 0, 0.1, True))
    assert cycle.add(StageRun("import", 2, 0.1, False))
    report = cycle.take()
    assert report["counts"] == {"scan": 2, "transcribe": 0, "import": 2, "export": 1}
    assert report["ok"] is False
    assert cycle.take()["counts"] == dict.fromkeys(STAGE_NAMES, 0)


def test_a_failing_stage_is_logged_and_does_not_raise(tmp_path: Path) -> None:
    svc, *_ = services(tmp_path)

    def broken() -> int:
        raise ConnectionError("Label Studio went away")

    with capture_logs() as logs:
        run = run_stage(svc, BY_NAME["import"], threading.Event(), work=broken)
    assert run == StageRun("import", 0, run.seconds, False)
    acquired, failed, completed = logs
    assert (acquired["event"], acquired["lease"]) == ("lease.acquired", "import")
    assert (failed["event"], failed["stage"], failed["cause"]) == ("stage.failed", "import", "unavailable")
    assert completed == {"event": "stage.completed", "stage": "import", "count": 0, "seconds": run.seconds,
                         "ok": False, "log_level": "debug"}  # fmt: skip


def test_idle_daemon_cycles_log_at_debug_busy_ones_at_info(tmp_path: Path) -> None:
    svc, *_ = services(tmp_path)
    idle = {"ok": True, "counts": dict.fromkeys(STAGE_NAMES, 0), "stage_seconds": {}, "seconds": 0.1}
    with capture_logs() as logs:
        report_cycle(svc, idle)
        report_cycle(svc, idle | {"counts": {"scan": 1}})
        report_cycle(svc, idle, quiet_when_idle=False)
    assert [e["log_level"] for e in logs] == ["debug", "info", "info"]


def test_every_event_is_counted_whatever_the_level() -> None:
    """Counting is a processor before the level filter: debug events and the daemon's own logger count too."""
    out = io.StringIO()
    configure("warning", "json", stream=out)
    metrics = Metrics()
    add_event_sink(metrics.observe)
    try:
        log = get_logger()
        log.debug("cycle.completed", counts={})
        log.warning("webhook.rejected", reason="missing or wrong secret header")
        log.error("config.reload_failed", error="bad", token="s3cr3t-value")
        log.debug("stage.completed", stage="scan", count=3, seconds=0.5, ok=True)
    finally:
        remove_event_sink(metrics.observe)
    text = metrics.render().decode()
    assert 'syncd_log_events_total{event="cycle.completed",level="debug"} 1.0' in text
    assert 'syncd_log_events_total{event="webhook.rejected",level="warning"} 1.0' in text
    assert 'syncd_log_events_total{event="config.reload_failed",level="error"} 1.0' in text
    assert 'syncd_stage_items_total{stage="scan"} 3.0' in text
    assert 'syncd_stage_runs_total{outcome="ok",stage="scan"} 1.0' in text
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in lines] == ["webhook.rejected", "config.reload_failed"]
    assert lines[1]["token"] == "[redacted]" and "s3cr3t" not in out.getvalue()


def test_a_refused_token_is_an_outage_until_label_studio_accepts_it_again(tmp_path: Path) -> None:
    """Recorded down by the run that met the refusal, up by the first run after Label Studio accepted the token; a
    run of a process that recorded nothing leaves another's record alone."""
    svc, ls, _, _ = services(tmp_path)
    other = Services.assemble(svc.settings, svc.state, svc.storage, svc.transcriber, FakeLabelStudio())  # type: ignore[arg-type]
    stage, go = BY_NAME["import"], threading.Event()

    def refused() -> int:
        raise LabelStudioError("GET /api/tasks/: HTTP 401: Token is invalid", 401)

    ls.refused = True
    with capture_logs() as logs:
        run_stage(svc, stage, go, work=refused)
        run_stage(svc, stage, go, work=lambda: 0)  # Label Studio still refuses it
        run_stage(other, stage, go, work=lambda: 0)
    assert [e["event"] for e in logs if e["event"].startswith("dependency.")] == ["dependency.down"]
    assert not svc.state.outages.get(outages.LABELSTUDIO).ok
    ls.refused = False
    with capture_logs() as logs:
        run_stage(svc, stage, go, work=lambda: 0)
        run_stage(svc, stage, go, work=lambda: 0)
    assert [e["event"] for e in logs if e["event"].startswith("dependency.")] == ["dependency.up"]
    assert svc.state.outages.get(outages.LABELSTUDIO).ok
