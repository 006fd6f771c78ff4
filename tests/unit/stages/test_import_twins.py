"""The import stage's twin repair: two or more tasks for one audio version, deleted, kept and named, followed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from syncd.commands.status import format_status, status_report
from syncd.daemon.health import health_report
from syncd.daemon.metrics import Metrics
from syncd.services import Services
from syncd.stages import export, import_, import_twins, scan, transcribe
from tests.unit.fakes import (
    GO,
    Stack,
    healthy_probes,
    services,
)
from tests.unit.scenarios import events, per_syncd_id, upload


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
    import_twins.repair_twins(svc, now=1e12)
    assert svc.state.twins.all() == {}
