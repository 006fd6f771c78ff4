"""Task bookkeeping shared by import and export: the task-id cursor, adoption of tasks Label Studio already holds (state
restored, lost), predictions restored."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
from structlog.testing import capture_logs

from syncd.commands.status import format_status, status_report
from syncd.daemon.health import health_report
from syncd.daemon.metrics import Metrics
from syncd.domain.recording import Status
from syncd.labelstudio.client import LabelStudioError
from syncd.services import Services
from syncd.stages import export, import_, scan, tasks, transcribe
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


def test_reconciling_reads_only_tasks_created_since_the_last_look(stack: Stack) -> None:
    svc, ls, storage, _ = stack
    for key in KEYS:
        upload(storage, (key,))
        for stage in (scan, transcribe, import_):
            stage.run(svc, GO)
    # Our own contiguous batches move the cursor without a read; each run's read starts above the newest task.
    assert ls.reads == [0, 1, 2, 3]
    ls.add_foreign(count=2)
    import_.run(svc, GO)
    import_.run(svc, GO)
    assert ls.reads[-2:] == [4, 4]  # the two foreign tasks are read until their ids have settled


def test_task_cursor_settles_only_after_the_overlap() -> None:
    TaskCursor, OVERLAP = tasks.TaskCursor, tasks.OVERLAP  # noqa: N806
    cursor = TaskCursor(floor=10)
    moved = cursor.after_read([11, 12], started=100.0, finished=100.5)
    assert (moved.floor, moved.high) == (10, 12)
    assert moved.after_read([11, 12], started=101.0, finished=101.2).floor == 10
    assert moved.after_read([11, 12], started=100.5 + OVERLAP, finished=106.0).floor == 12
    assert TaskCursor(floor=12).extended([13, 14]) == TaskCursor(floor=14)
    assert TaskCursor(floor=12).extended([14, 15]) == TaskCursor(floor=12)
    assert moved.extended([13]).high == 13 and moved.extended([13]).floor == 10


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
    assert svc.state.cursors.get(tasks.unchecked_name(1)) == str(min(ls.tasks))
    assert all(not t["predictions"] for t in ls.tasks.values())
    assert status_report(svc.state)["predictions_unchecked"] == {"1": 4}, "shown, with its task count"
    assert "project 1: 4 tasks" in format_status(status_report(svc.state))
    _, body = health_report(svc.settings, "running", 0.0, healthy_probes(svc.settings), svc.state)
    assert body["status"] == "degraded" and body["checks"]["predictions"] == {"ok": False, "unchecked_tasks": 4}

    svc.paced = paced  # under the daemon, no batch is due now: the tick runs for the check alone
    with capture_logs() as logs:
        import_.run(svc, GO)
    assert len(events(logs, "task.prediction_restored")) == 4
    assert all(len(t["predictions"]) == 1 for t in ls.tasks.values()) and len(ls.tasks) == 4
    assert svc.state.cursors.get(tasks.unchecked_name(1)) is None and svc.state.tasks.unchecked_predictions() == {}
    with capture_logs() as logs:
        import_.run(svc, GO)
    assert not events(logs, "task.prediction_restored")


# --- twins ----------------------------------------------------------------------------------------------------


def _one_imported(tmp_path: Path, **labelstudio: str) -> tuple[Stack, int]:
    """One recording imported; its task id."""
    stack = services(tmp_path, labelstudio={"layout": "whole", **labelstudio})
    svc, _, storage, _ = stack
    upload(storage, ("a.mp3",))
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    import_.run(svc, GO)
    [rec] = svc.state.recordings.all()
    assert rec.task_id is not None
    return stack, rec.task_id


def _twin(ls: Any, task_id: int) -> int:
    """A copy of the task made behind syncd's back (another tool re-imported it, a person duplicated it)."""
    original = ls.tasks[task_id]
    [twin] = ls.import_tasks(1, [{"data": dict(original["data"]), "predictions": list(original["predictions"])}])
    return twin


def _reconcile(svc: Services) -> list[dict[str, Any]]:
    with capture_logs() as logs:
        import_._reconcile_all(svc)
    return logs


def test_a_twin_reviewed_instead_of_the_original_is_kept_its_review_exported_and_the_original_deleted(
    tmp_path: Path,
) -> None:
    (svc, ls, storage, _), original = _one_imported(tmp_path)
    twin = _twin(ls, original)
    ls.annotate(twin, "the reviewer worked on the twin")
    logs = _reconcile(svc)
    assert [(e["task"], e["kept"]) for e in events(logs, "task.twin_deleted")] == [(original, [twin])]
    assert set(ls.tasks) == {twin} and svc.state.twins.all() == {}
    [rec] = svc.state.recordings.all()
    assert rec.task_id == twin, "the recording follows the reviewed twin"
    export.run(svc, GO)
    assert storage.text("b", "a.transcript.txt").strip().endswith("the reviewer worked on the twin")


def test_an_unreviewed_twin_is_deleted_by_default(tmp_path: Path) -> None:
    (svc, ls, _, _), original = _one_imported(tmp_path)
    twin = _twin(ls, original)
    logs = _reconcile(svc)
    assert [e["task"] for e in events(logs, "task.twin_deleted")] == [twin]
    assert set(ls.tasks) == {original} and svc.state.twins.all() == {}
    assert per_syncd_id(ls).most_common(1)[0][1] == 1


def test_an_unreviewed_twin_is_kept_and_named_with_keep(tmp_path: Path) -> None:
    (svc, ls, _, _), original = _one_imported(tmp_path, on_duplicate="keep")
    twin = _twin(ls, original)
    logs = _reconcile(svc)
    assert not events(logs, "task.twin_deleted") and set(ls.tasks) == {original, twin}
    [kept] = events(logs, "task.twins_kept")
    assert kept["tasks"] == [original, twin] and kept["key"] == "a.mp3"
    report = status_report(svc.state)
    assert [(t["key"], t["tasks"], t["reviewed"]) for t in report["twins"]] == [("a.mp3", [original, twin], [])]
    assert "a.mp3: tasks" in format_status(report)
    assert svc.state.twins.counts() == {"reviewed": 0, "unreviewed": 1}
    assert not events(_reconcile(svc), "task.twins_kept"), "looked at again only every TWIN_RECHECK seconds"


def test_two_reviewed_twins_export_the_newest_are_both_named_and_degrade_health(tmp_path: Path) -> None:
    (svc, ls, storage, _), original = _one_imported(tmp_path)
    twin = _twin(ls, original)
    ls.annotate(original, "first review, on the original")
    ls.annotate(twin, "newest review, on the twin")
    _reconcile(svc)
    assert set(ls.tasks) == {original, twin}, "reviewed twins are never deleted"
    [group] = svc.state.twins.all().values()
    assert group["reviewed"] == [original, twin]
    export.run(svc, GO)
    assert storage.text("b", "a.transcript.txt").strip().endswith("newest review, on the twin")
    assert "a.mp3: tasks" in format_status(status_report(svc.state))
    _, body = health_report(svc.settings, "running", 0.0, healthy_probes(svc.settings), svc.state)
    assert body["status"] == "degraded" and body["checks"]["twins"] == {"ok": False, "reviewed": 1, "unreviewed": 0}
    metrics = Metrics()
    metrics.watch_twins(svc.state.twins.counts)
    assert 'syncd_task_twins{state="reviewed"} 1.0' in metrics.render().decode()
    ls.delete_task(original)  # a person resolves it
    tasks.repair_twins(svc, now=1e12)
    assert svc.state.twins.all() == {}


def test_tasks_get_the_layout_of_the_project_they_go_to(stack: Stack) -> None:
    """An upgrade that changes the default layout leaves a project on the old one: its new tasks keep its layout."""
    svc, ls, storage, _ = stack
    ls.project_layouts[1] = "segments"
    upload(storage, KEYS[:1])
    for stage in (scan, transcribe, import_):
        stage.run(svc, GO)
    (task,) = ls.tasks.values()
    assert {i["from_name"] for i in task["predictions"][0]["result"]} == {"speaker", "transcription"}
    assert "segments" not in task["data"]
