"""Import exactly once when the state and Label Studio disagree: a state restored from a backup or lost, an import
that timed out while Label Studio kept committing, a crash mid-request, and deletions hidden by another tool's tasks.
Each runs the stages in-process against the fakes."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
import requests
from structlog.testing import capture_logs

from syncd.daemon.health import health_report, max_cycle_age
from syncd.daemon.metrics import Metrics
from syncd.labelstudio.client import LabelStudioError
from syncd.ops import status_report
from syncd.recording import Status
from syncd.services import Services
from syncd.stages import exporter, importer, scan, transcribe
from syncd.state import StateStore
from tests.unit.fakes import POSTGRES_ENV, FakeLabelStudio, FakeStorage, healthy_probes, new_store, services

GO = threading.Event()
KEYS = ("a.mp3", "b.mp3", "c.mp3", "d.mp3")


def _upload(storage: FakeStorage, keys: tuple[str, ...]) -> None:
    for key in keys:
        storage.put_audio("b", key, key.encode())


def _per_syncd_id(ls: FakeLabelStudio) -> Counter[str]:
    return Counter(str(t["data"].get("syncd_id")) for t in ls.tasks.values() if t["data"].get("syncd_id"))


def _events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


def _transcribe_one(svc: Services) -> None:
    """Complete exactly one transcription, as a slow engine would between two import runs."""
    stop = threading.Event()
    svc.transcriber.while_polling = stop.set  # type: ignore[attr-defined]
    transcribe.run(svc, stop)


def _copy_db(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


@pytest.fixture
def stack(tmp_path: Path) -> tuple[Services, FakeLabelStudio, FakeStorage, Any]:
    return services(tmp_path)


@pytest.mark.skipif(bool(os.environ.get(POSTGRES_ENV)), reason="copies the SQLite file (a backup of it)")
def test_state_restored_from_an_older_backup_adopts_instead_of_importing_twice(stack: tuple, tmp_path: Path) -> None:
    svc, ls, storage, _ = stack
    _upload(storage, KEYS[:2])
    for stage in (scan, transcribe, importer):
        stage.run(svc, GO)
    _copy_db(tmp_path / "state.db", tmp_path / "backup.db")
    _upload(storage, KEYS[2:])
    for stage in (scan, transcribe, importer):
        stage.run(svc, GO)
    assert len(ls.tasks) == 4

    restored = dataclasses.replace(svc, state=StateStore(tmp_path / "backup.db"))
    with capture_logs() as logs:
        for stage in (scan, transcribe, importer, importer):
            stage.run(restored, GO)
    assert len(ls.tasks) == 4 and set(_per_syncd_id(ls).values()) == {1}
    assert len(_events(logs, "task.recovered")) == 2 and not _events(logs, "task.imported")
    assert {r.status for r in restored.state.recordings()} == {Status.IMPORTED}
    assert {r.task_id for r in restored.state.recordings()} == set(ls.tasks)


def test_lost_state_adopts_each_task_as_its_recording_becomes_ready(stack: tuple, tmp_path: Path) -> None:
    svc, ls, storage, _ = stack
    _upload(storage, KEYS)
    for stage in (scan, transcribe, importer):
        stage.run(svc, GO)
    assert len(ls.tasks) == 4

    fresh = dataclasses.replace(svc, state=new_store(tmp_path, "new-state.db"))
    scan.run(fresh, GO)
    with capture_logs() as logs:
        for _ in KEYS:
            _transcribe_one(fresh)
            importer.run(fresh, GO)
    assert len(ls.tasks) == 4 and set(_per_syncd_id(ls).values()) == {1}
    assert len(_events(logs, "task.recovered")) == 4 and not _events(logs, "task.imported")
    assert {r.status for r in fresh.state.recordings()} == {Status.IMPORTED}


def test_timed_out_import_stays_in_doubt_until_label_studio_has_committed(stack: tuple) -> None:
    svc, ls, storage, _ = stack
    _upload(storage, KEYS)
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    ls.import_faults.append((requests.ReadTimeout("read timed out"), "late"))
    with capture_logs() as logs, pytest.raises(requests.ReadTimeout):
        importer.run(svc, GO)
    [doubt] = _events(logs, "import.in_doubt")
    assert doubt["recordings"] == 4 and "ReadTimeout" in doubt["reason"] and doubt["log_level"] == "warning"
    assert svc.state.counts()["importing"] == 4

    with capture_logs() as logs:  # Label Studio is still committing: nothing is imported again meanwhile
        assert importer.run(svc, GO) == 0
    assert len(ls.imports) == 1 and _events(logs, "import.in_doubt")
    report = status_report(svc.state)
    assert report["recordings"]["importing"] == 4
    assert all("import in doubt" in (e["reason"] or "") for e in report["last_errors"])

    ls.settle()
    with capture_logs() as logs:
        assert importer.run(svc, GO) == 4
    assert len(ls.imports) == 1 and set(_per_syncd_id(ls).values()) == {1} and len(ls.tasks) == 4
    assert len(_events(logs, "task.recovered")) == 4
    assert svc.state.counts()["importing"] == 0
    assert {r.reason for r in svc.state.recordings()} == {None}


def test_in_doubt_rows_label_studio_proves_absent_are_imported_again_once(tmp_path: Path) -> None:
    svc, ls, storage, _ = services(tmp_path, labelstudio={"layout": "whole", "import_settle": 0})
    _upload(storage, KEYS)
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    ls.import_faults.append((LabelStudioError("POST /api/projects/1/import: HTTP 502", 502), "lost"))
    with pytest.raises(LabelStudioError):
        importer.run(svc, GO)
    with capture_logs() as logs:
        assert importer.run(svc, GO) == 4
    [resolved] = _events(logs, "import.doubt_resolved")
    assert (resolved["adopted"], resolved["reimport"]) == (0, 4)
    assert len(_events(logs, "task.imported")) == 4
    assert len(ls.tasks) == 4 and set(_per_syncd_id(ls).values()) == {1}


def test_half_landed_batch_in_doubt_imports_only_the_missing_half(tmp_path: Path) -> None:
    svc, ls, storage, _ = services(tmp_path, labelstudio={"layout": "whole", "import_settle": 0})
    _upload(storage, KEYS)
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    ls.import_faults.append((requests.ReadTimeout("read timed out"), "lost"))
    with pytest.raises(requests.ReadTimeout):
        importer.run(svc, GO)
    ls.import_tasks(1, ls.imports[0][:2])  # half of the batch made it after all
    with capture_logs() as logs:
        assert importer.run(svc, GO) == 4
    assert len(_events(logs, "task.recovered")) == 2 and len(_events(logs, "task.imported")) == 2
    assert len(ls.tasks) == 4 and set(_per_syncd_id(ls).values()) == {1}


def test_tasks_that_landed_without_their_predictions_get_them_when_adopted(tmp_path: Path) -> None:
    """Label Studio committed the batch's tasks, dropped their predictions and answered HTTP 500."""
    svc, ls, storage, _ = services(tmp_path, labelstudio={"layout": "whole", "import_settle": 0})
    _upload(storage, KEYS)
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    ls.drop_predictions = True
    ls.import_faults.append((LabelStudioError("HTTP 500: no attribute 'db_predictions'", 500), "landed"))
    with pytest.raises(LabelStudioError):
        importer.run(svc, GO)
    ls.drop_predictions = False
    with capture_logs() as logs:
        assert importer.run(svc, GO) == 4
    assert len(_events(logs, "task.recovered")) == 4 and len(_events(logs, "task.prediction_restored")) == 4
    assert all(len(t["predictions"]) == 1 for t in ls.tasks.values()) and len(ls.tasks) == 4
    with capture_logs() as logs:
        importer.run(svc, GO)
    assert not _events(logs, "task.prediction_restored")


def test_a_batch_that_landed_without_its_predictions_gets_them_at_once(tmp_path: Path) -> None:
    svc, ls, storage, _ = services(tmp_path, labelstudio={"layout": "whole"})
    _upload(storage, KEYS)
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    ls.drop_predictions = True  # Label Studio answered 201 and stored the tasks bare
    with capture_logs() as logs:
        assert importer.run(svc, GO) == 4
    ls.drop_predictions = False
    names = [e["event"] for e in logs]
    assert names.count("task.prediction_restored") == 4 and names.index("task.prediction_restored") < names.index(
        "import.batch"
    ), "restored before the batch is reported done"
    assert all(len(t["predictions"]) == 1 for t in ls.tasks.values())


def test_refused_import_is_requeued_at_once(stack: tuple) -> None:
    svc, ls, storage, _ = stack
    _upload(storage, KEYS[:1])
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    ls.import_faults.append((LabelStudioError("HTTP 400: bad prediction", 400), "lost"))
    with capture_logs() as logs, pytest.raises(LabelStudioError):
        importer.run(svc, GO)
    assert not _events(logs, "import.in_doubt") and svc.state.counts()["transcribed"] == 1
    assert importer.run(svc, GO) == 1 and len(ls.tasks) == 1


def test_crash_while_a_request_is_out_waits_before_importing_again(stack: tuple) -> None:
    svc, ls, storage, _ = stack
    _upload(storage, KEYS[:2])
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    batch = importer._next_batch(svc, 1)  # marked importing, sent, then syncd was killed
    assert batch is not None
    ls.committing.append(batch.tasks)
    with capture_logs() as logs:
        assert importer.run(svc, GO) == 0
    [doubt] = _events(logs, "import.in_doubt")
    assert doubt["reason"] == "syncd stopped while an import request was out" and not ls.imports
    ls.settle()
    assert importer.run(svc, GO) == 2
    assert len(ls.tasks) == 2 and not ls.imports


def test_in_doubt_shows_in_metrics(stack: tuple) -> None:
    svc, ls, storage, _ = stack
    _upload(storage, KEYS[:1])
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    ls.import_faults.append((requests.ReadTimeout("read timed out"), "late"))
    metrics = Metrics()
    metrics.watch_state(svc.state.counts)
    with capture_logs() as logs, pytest.raises(requests.ReadTimeout):
        importer.run(svc, GO)
    for event in logs:
        metrics.observe(event["log_level"], event["event"], event)
    text = metrics.render().decode()
    assert 'syncd_log_events_total{event="import.in_doubt",level="warning"} 1.0' in text
    assert 'syncd_recordings{state="importing"} 1.0' in text


def test_in_doubt_shows_in_health_and_fails_it_once_overdue(stack: tuple) -> None:
    svc, ls, storage, _ = stack
    _upload(storage, KEYS[:2])
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    ls.import_faults.append((requests.ReadTimeout("read timed out"), "late"))
    with pytest.raises(requests.ReadTimeout):
        importer.run(svc, GO)
    ok, body = health_report(svc.settings, "running", 1.0, healthy_probes(svc.settings), svc.state)
    check = body["checks"]["import"]
    assert ok and check["ok"] and check["in_doubt"] == 2 and "ReadTimeout" in check["reason"] and check["retry_at"]
    overdue = time.time() + svc.settings.labelstudio.import_settle + max_cycle_age(svc.settings) + 5
    with patch("syncd.daemon.health.time.time", return_value=overdue):
        ok, body = health_report(svc.settings, "running", 1.0, healthy_probes(svc.settings), svc.state)
    assert not ok and body["status"] == "failing" and body["checks"]["import"]["ok"] is False
    ls.settle()
    due = importer.Doubt.name(1)
    svc.state.change_cursor(due, lambda raw: dataclasses.replace(importer.Doubt.load(raw), until=0.0).dump())  # type: ignore[arg-type]
    assert importer.run(svc, GO) == 2
    ok, body = health_report(svc.settings, "running", 1.0, healthy_probes(svc.settings), svc.state)
    assert ok and "import" not in body["checks"]


def test_deletion_is_noticed_when_another_tool_adds_a_task_at_the_same_time(stack: tuple) -> None:
    svc, ls, storage, _ = stack
    _upload(storage, KEYS[:2])
    for stage in (scan, transcribe, importer):
        stage.run(svc, GO)
    exporter.check_deleted_tasks(svc, 1)
    del ls.tasks[1]
    ls.add_foreign()
    with capture_logs() as logs:
        exporter.check_deleted_tasks(svc, 1)
        exporter.check_deleted_tasks(svc, 1)
    [deleted] = _events(logs, "task.deleted")
    assert deleted["task"] == 1
    assert next(r for r in svc.state.recordings() if r.key == "a.mp3").task_id is None


def test_deleted_foreign_task_is_forgotten_and_read_once(stack: tuple) -> None:
    svc, ls, storage, _ = stack
    _upload(storage, KEYS[:1])
    for stage in (scan, transcribe, importer):
        stage.run(svc, GO)
    [foreign] = ls.add_foreign()
    exporter.check_deleted_tasks(svc, 1)
    del ls.tasks[foreign]
    indexes = []
    index = ls.task_index
    ls.task_index = lambda project: (indexes.append(project), index(project))[1]  # type: ignore[method-assign]
    with capture_logs() as logs:
        exporter.check_deleted_tasks(svc, 1)
        exporter.check_deleted_tasks(svc, 1)
    assert len(indexes) == 1 and not _events(logs, "task.deleted")
    assert svc.state.seen_task_count(1) == 1


def test_reconciling_reads_only_tasks_created_since_the_last_look(stack: tuple) -> None:
    svc, ls, storage, _ = stack
    for key in KEYS:
        _upload(storage, (key,))
        for stage in (scan, transcribe, importer):
            stage.run(svc, GO)
    # Our own contiguous batches move the cursor without a read; each run's read starts above the newest task.
    assert ls.reads == [0, 1, 2, 3]
    ls.add_foreign(count=2)
    importer.run(svc, GO)
    importer.run(svc, GO)
    assert ls.reads[-2:] == [4, 4]  # the two foreign tasks are read until their ids have settled


def test_task_cursor_settles_only_after_the_overlap() -> None:
    TaskCursor, OVERLAP = importer.TaskCursor, importer.OVERLAP  # noqa: N806
    cursor = TaskCursor(floor=10)
    moved = cursor.after_read([11, 12], started=100.0, finished=100.5)
    assert (moved.floor, moved.high) == (10, 12)
    assert moved.after_read([11, 12], started=101.0, finished=101.2).floor == 10
    assert moved.after_read([11, 12], started=100.5 + OVERLAP, finished=106.0).floor == 12
    assert TaskCursor(floor=12).extended([13, 14]) == TaskCursor(floor=14)
    assert TaskCursor(floor=12).extended([14, 15]) == TaskCursor(floor=12)
    assert moved.extended([13]).high == 13 and moved.extended([13]).floor == 10


def test_predictions_left_unchecked_during_an_outage_are_checked_by_the_next_run(tmp_path: Path) -> None:
    """Label Studio stored a batch's tasks without their predictions, then went down before the check after the
    batch: the tasks are imported once, and the next run gives them their predictions."""
    svc, ls, storage, _ = services(tmp_path, labelstudio={"layout": "whole"})
    _upload(storage, KEYS)
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    ls.drop_predictions = True
    ls.check_faults.append(requests.ConnectionError("connection refused"))
    with capture_logs() as logs:
        assert importer.run(svc, GO) == 4
    ls.drop_predictions = False
    assert _events(logs, "import.predictions_unchecked") and not _events(logs, "task.prediction_restored")
    assert svc.state.cursor(importer.unchecked_name(1)) == str(min(ls.tasks))
    assert all(not t["predictions"] for t in ls.tasks.values())

    with capture_logs() as logs:
        importer.run(svc, GO)
    assert len(_events(logs, "task.prediction_restored")) == 4
    assert all(len(t["predictions"]) == 1 for t in ls.tasks.values()) and len(ls.tasks) == 4
    assert svc.state.cursor(importer.unchecked_name(1)) is None
    with capture_logs() as logs:
        importer.run(svc, GO)
    assert not _events(logs, "task.prediction_restored")
