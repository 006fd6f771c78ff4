"""Imports in doubt: a batch whose request timed out, failed or was cut off waits, then only what Label Studio lacks is
imported again; health, metrics and status show it."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from unittest.mock import patch

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from syncd.commands.status import status_report
from syncd.daemon.health import health_report, max_cycle_age
from syncd.daemon.metrics import Metrics
from syncd.labelstudio.client import LabelStudioError
from syncd.stages import import_, import_doubt, scan, transcribe
from tests.unit.fakes import (
    GO,
    Stack,
    healthy_probes,
    services,
)
from tests.unit.scenarios import events, per_syncd_id, upload

KEYS = ("a.mp3", "b.mp3", "c.mp3", "d.mp3")


def test_timed_out_import_stays_in_doubt_until_label_studio_has_committed(stack: Stack) -> None:
    svc, ls, storage, _ = stack
    upload(storage, KEYS)
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    ls.import_faults.append((requests.ReadTimeout("read timed out"), "late"))
    with capture_logs() as logs, pytest.raises(requests.ReadTimeout):
        import_.run(svc, GO)
    [doubt] = events(logs, "import.in_doubt")
    assert doubt["recordings"] == 4 and "ReadTimeout" in doubt["reason"] and doubt["log_level"] == "warning"
    assert svc.state.recordings.counts()["importing"] == 4

    with capture_logs() as logs:  # Label Studio is still committing: nothing is imported again meanwhile
        assert import_.run(svc, GO) == 0
    assert len(ls.imports) == 1 and events(logs, "import.in_doubt")
    report = status_report(svc.state)
    assert report["recordings"]["importing"] == 4
    assert all("import in doubt" in (e["reason"] or "") for e in report["last_errors"])

    ls.settle()
    with capture_logs() as logs:
        assert import_.run(svc, GO) == 4
    assert len(ls.imports) == 1 and set(per_syncd_id(ls).values()) == {1} and len(ls.tasks) == 4
    assert len(events(logs, "task.recovered")) == 4
    assert svc.state.recordings.counts()["importing"] == 0
    assert {r.reason for r in svc.state.recordings.all()} == {None}


def test_in_doubt_rows_label_studio_proves_absent_are_imported_again_once(tmp_path: Path) -> None:
    svc, ls, storage, _ = services(tmp_path, labelstudio={"layout": "whole", "import_settle": 0})
    upload(storage, KEYS)
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    ls.import_faults.append((LabelStudioError("POST /api/projects/1/import: HTTP 502", 502), "lost"))
    with pytest.raises(LabelStudioError):
        import_.run(svc, GO)
    with capture_logs() as logs:
        assert import_.run(svc, GO) == 4
    [resolved] = events(logs, "import.doubt_resolved")
    assert (resolved["adopted"], resolved["reimport"]) == (0, 4)
    assert len(events(logs, "task.imported")) == 4
    assert len(ls.tasks) == 4 and set(per_syncd_id(ls).values()) == {1}


def test_half_landed_batch_in_doubt_imports_only_the_missing_half(tmp_path: Path) -> None:
    svc, ls, storage, _ = services(tmp_path, labelstudio={"layout": "whole", "import_settle": 0})
    upload(storage, KEYS)
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    ls.import_faults.append((requests.ReadTimeout("read timed out"), "lost"))
    with pytest.raises(requests.ReadTimeout):
        import_.run(svc, GO)
    ls.import_tasks(1, ls.imports[0][:2])  # half of the batch made it after all
    with capture_logs() as logs:
        assert import_.run(svc, GO) == 4
    assert len(events(logs, "task.recovered")) == 2 and len(events(logs, "task.imported")) == 2
    assert len(ls.tasks) == 4 and set(per_syncd_id(ls).values()) == {1}


def test_refused_import_is_requeued_at_once(stack: Stack) -> None:
    svc, ls, storage, _ = stack
    upload(storage, KEYS[:1])
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    ls.import_faults.append((LabelStudioError("HTTP 400: bad prediction", 400), "lost"))
    with capture_logs() as logs, pytest.raises(LabelStudioError):
        import_.run(svc, GO)
    assert not events(logs, "import.in_doubt") and svc.state.recordings.counts()["transcribed"] == 1
    assert import_.run(svc, GO) == 1 and len(ls.tasks) == 1


def test_crash_while_a_request_is_out_waits_before_importing_again(stack: Stack) -> None:
    svc, ls, storage, _ = stack
    upload(storage, KEYS[:2])
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    batch = import_.next_batch(svc, 1)  # marked importing, sent, then syncd was killed
    assert batch is not None
    ls.committing.append(batch.tasks)
    with capture_logs() as logs:
        assert import_.run(svc, GO) == 0
    [doubt] = events(logs, "import.in_doubt")
    assert doubt["reason"] == "syncd stopped while an import request was out" and not ls.imports
    ls.settle()
    assert import_.run(svc, GO) == 2
    assert len(ls.tasks) == 2 and not ls.imports


def test_in_doubt_shows_in_metrics(stack: Stack) -> None:
    svc, ls, storage, _ = stack
    upload(storage, KEYS[:1])
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    ls.import_faults.append((requests.ReadTimeout("read timed out"), "late"))
    metrics = Metrics()
    metrics.watch_state(svc.state.recordings.counts)
    metrics.watch_import_doubt(lambda: import_doubt.in_doubt(svc.state))
    assert "syncd_import_in_doubt_recordings 0.0" in metrics.render().decode()
    with capture_logs() as logs, pytest.raises(requests.ReadTimeout):
        import_.run(svc, GO)
    for event in logs:
        metrics.observe(event["log_level"], event["event"], event)
    text = metrics.render().decode()
    assert 'syncd_log_events_total{event="import.in_doubt",level="warning"} 1.0' in text
    assert 'syncd_recordings{state="importing"} 1.0' in text
    assert "syncd_import_in_doubt_recordings 1.0" in text
    [retry] = [s.value for f in text_string_to_metric_families(text) for s in f.samples if "doubt_retry" in s.name]
    assert abs(retry - (time.time() + svc.settings.labelstudio.import_settle)) < 5


def test_in_doubt_shows_in_health_and_fails_it_once_overdue(stack: Stack) -> None:
    svc, ls, storage, _ = stack
    upload(storage, KEYS[:2])
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    ls.import_faults.append((requests.ReadTimeout("read timed out"), "late"))
    with pytest.raises(requests.ReadTimeout):
        import_.run(svc, GO)
    ok, body = health_report(svc.settings, "running", 1.0, healthy_probes(svc.settings), svc.state)
    check = body["checks"]["import"]
    assert ok and check["ok"] and check["in_doubt"] == 2 and "ReadTimeout" in check["reason"] and check["retry_at"]
    overdue = time.time() + svc.settings.labelstudio.import_settle + max_cycle_age(svc.settings) + 5
    with patch("syncd.daemon.health.time.time", return_value=overdue):
        ok, body = health_report(svc.settings, "running", 1.0, healthy_probes(svc.settings), svc.state)
    assert not ok and body["status"] == "failing" and body["checks"]["import"]["ok"] is False
    ls.settle()
    due = import_doubt.Doubt.name(1)
    svc.state.cursors.change(due, lambda raw: dataclasses.replace(import_doubt.Doubt.load(raw), until=0.0).dump())  # type: ignore[arg-type]
    assert import_.run(svc, GO) == 2
    ok, body = health_report(svc.settings, "running", 1.0, healthy_probes(svc.settings), svc.state)
    assert ok and "import" not in body["checks"]
