"""The import stage's reconcile: adoption of tasks Label Studio already holds (state restored, lost), predictions
restored, now or at the next run."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import threading
from pathlib import Path

import pytest
import requests
from structlog.testing import capture_logs

from syncd.commands.status import format_status, status_report
from syncd.daemon.health import health_report
from syncd.domain.recording import Status
from syncd.labelstudio.client import LabelStudioError
from syncd.services import Services
from syncd.stages import import_, import_reconcile, scan, transcribe
from syncd.state import StateStore
from tests.unit.fakes import (
    GO,
    POSTGRES_ENV,
    Stack,
    healthy_probes,
    new_store,
    services,
    with_state,
)
from tests.unit.scenarios import events, per_syncd_id, upload

KEYS = ("a.mp3", "b.mp3", "c.mp3", "d.mp3")


def _transcribe_one(svc: Services) -> None:
    """Complete exactly one transcription, as a slow engine would between two import runs."""
    stop = threading.Event()
    svc.transcriber.while_polling = stop.set  # type: ignore[attr-defined]
    transcribe.run(svc, stop)


def _copy_db(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


@pytest.mark.skipif(bool(os.environ.get(POSTGRES_ENV)), reason="copies the SQLite file (a backup of it)")
def test_state_restored_from_an_older_backup_adopts_instead_of_importing_twice(stack: Stack, tmp_path: Path) -> None:
    svc, ls, storage, _ = stack
    upload(storage, KEYS[:2])
    for stage in (scan, transcribe, import_):
        stage.run(svc, GO)
    _copy_db(tmp_path / "state.db", tmp_path / "backup.db")
    upload(storage, KEYS[2:])
    for stage in (scan, transcribe, import_):
        stage.run(svc, GO)
    assert len(ls.tasks) == 4

    restored = with_state(svc, StateStore(tmp_path / "backup.db"))
    with capture_logs() as logs:
        for stage in (scan, transcribe, import_, import_):
            stage.run(restored, GO)
    assert len(ls.tasks) == 4 and set(per_syncd_id(ls).values()) == {1}
    assert len(events(logs, "task.recovered")) == 2 and not events(logs, "task.imported")
    assert {r.status for r in restored.state.recordings.all()} == {Status.IMPORTED}
    assert {r.task_id for r in restored.state.recordings.all()} == set(ls.tasks)


def test_lost_state_adopts_each_task_as_its_recording_becomes_ready(stack: Stack, tmp_path: Path) -> None:
    svc, ls, storage, _ = stack
    upload(storage, KEYS)
    for stage in (scan, transcribe, import_):
        stage.run(svc, GO)
    assert len(ls.tasks) == 4

    fresh = with_state(svc, new_store(tmp_path, "new-state.db"))
    scan.run(fresh, GO)
    with capture_logs() as logs:
        for _ in KEYS:
            _transcribe_one(fresh)
            import_.run(fresh, GO)
    assert len(ls.tasks) == 4 and set(per_syncd_id(ls).values()) == {1}
    assert len(events(logs, "task.recovered")) == 4 and not events(logs, "task.imported")
    assert {r.status for r in fresh.state.recordings.all()} == {Status.IMPORTED}


def test_tasks_that_landed_without_their_predictions_get_them_when_adopted(tmp_path: Path) -> None:
    """Label Studio committed the batch's tasks, dropped their predictions and answered HTTP 500."""
    svc, ls, storage, _ = services(tmp_path, labelstudio={"layout": "whole", "import_settle": 0})
    upload(storage, KEYS)
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    ls.drop_predictions = True
    ls.import_faults.append((LabelStudioError("HTTP 500: no attribute 'db_predictions'", 500), "landed"))
    with pytest.raises(LabelStudioError):
        import_.run(svc, GO)
    ls.drop_predictions = False
    with capture_logs() as logs:
        assert import_.run(svc, GO) == 4
    assert len(events(logs, "task.recovered")) == 4 and len(events(logs, "task.prediction_restored")) == 4
    assert all(len(t["predictions"]) == 1 for t in ls.tasks.values()) and len(ls.tasks) == 4
    with capture_logs() as logs:
        import_.run(svc, GO)
    assert not events(logs, "task.prediction_restored")


def test_a_batch_that_landed_without_its_predictions_gets_them_at_once(tmp_path: Path) -> None:
    svc, ls, storage, _ = services(tmp_path, labelstudio={"layout": "whole"})
    upload(storage, KEYS)
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    ls.drop_predictions = True  # Label Studio answered 201 and stored the tasks bare
    with capture_logs() as logs:
        assert import_.run(svc, GO) == 4
    ls.drop_predictions = False
    names = [e["event"] for e in logs]
    assert names.count("task.prediction_restored") == 4 and names.index("task.prediction_restored") < names.index(
        "import.batch"
    ), "restored before the batch is reported done"
    assert all(len(t["predictions"]) == 1 for t in ls.tasks.values())


@pytest.mark.parametrize("paced", [False, True], ids=["once", "daemon"])
def test_predictions_left_unchecked_during_an_outage_are_checked_by_the_next_run(tmp_path: Path, paced: bool) -> None:
    """Label Studio stored a batch's tasks without their predictions, then went down before the check after the
    batch: the tasks are imported once, and the next run gives them their predictions, also the daemon's idle tick
    when nothing new waits to be imported (the last batch of a day must not keep lacking them)."""
    svc, ls, storage, _ = services(tmp_path, labelstudio={"layout": "whole"})
    upload(storage, KEYS)
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    ls.drop_predictions = True
    ls.check_faults.append(requests.ConnectionError("connection refused"))
    with capture_logs() as logs:
        assert import_.run(svc, GO) == 4
    ls.drop_predictions = False
    assert events(logs, "import.predictions_unchecked") and not events(logs, "task.prediction_restored")
    assert svc.state.cursors.get(import_reconcile.unchecked_name(1)) == str(min(ls.tasks))
    assert all(not t["predictions"] for t in ls.tasks.values())
    assert status_report(svc.state)["predictions_unchecked"] == {"1": 4}, "shown, with its task count"
    assert "project 1: 4 tasks" in format_status(status_report(svc.state))
    _, body = health_report(svc.settings, "running", 0.0, healthy_probes(svc.settings), svc.state)
    assert body["status"] == "degraded" and body["checks"]["predictions"] == {"ok": False, "unchecked_tasks": 4}

    svc = dataclasses.replace(
        svc, paced=paced
    )  # under the daemon, no batch is due now: the tick runs for the check alone
    with capture_logs() as logs:
        import_.run(svc, GO)
    assert len(events(logs, "task.prediction_restored")) == 4
    assert all(len(t["predictions"]) == 1 for t in ls.tasks.values()) and len(ls.tasks) == 4
    assert (
        svc.state.cursors.get(import_reconcile.unchecked_name(1)) is None
        and svc.state.tasks.unchecked_predictions() == {}
    )
    with capture_logs() as logs:
        import_.run(svc, GO)
    assert not events(logs, "task.prediction_restored")
