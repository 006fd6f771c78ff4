"""Deleted audio: its task marked (or deleted when unreviewed, by policy), its transcript kept, and the mark taken off
when the audio is put back."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from syncd.domain.recording import Status
from syncd.services import Services
from syncd.stages import import_, scan, scan_deletions, transcribe
from tests.unit.fakes import GO, FakeStorage, services
from tests.unit.scenarios import evented, s3_event


def _imported(svc: Services, storage: FakeStorage, key: str) -> int:
    storage.put_audio("b", key)
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    import_.run(svc, GO)
    (rec,) = [r for r in svc.state.recordings.all() if r.key == key]
    assert rec.task_id is not None
    return rec.task_id


def test_deleted_audio_keeps_its_task_marked_by_default(tmp_path: Path) -> None:
    svc, ls, storage, queue = evented(tmp_path)
    task = _imported(svc, storage, "calls/a.mp3")
    del storage.objects[("b", "calls/a.mp3")]
    queue.send(s3_event("ObjectRemoved:Delete", "calls/a.mp3"))
    with capture_logs() as logs:
        scan.run(svc, GO)
    (deleted,) = [e for e in logs if e["event"] == "audio.deleted"]
    assert deleted["tasks"] == {task: "marked"} and deleted["found_by"] == "event" and deleted["was"] == "imported"
    assert ls.tasks[task]["data"]["deleted_from_s3"] and ls.tasks[task]["data"]["key"] == "calls/a.mp3"
    assert svc.state.recordings.all()[0].status == Status.DELETED
    etag = storage.put_audio("b", "calls/a.mp3")  # put back: the same version is current again, with its task
    queue.send(s3_event("ObjectCreated:Put", "calls/a.mp3", etag))
    scan.run(svc, GO)
    assert svc.state.recordings.all()[0].status == Status.IMPORTED and len(ls.tasks) == 1
    assert "deleted_from_s3" not in ls.tasks[task]["data"], "the mark goes with the audio's return"


def test_delete_task_policy_deletes_an_unreviewed_task_and_keeps_a_reviewed_one(tmp_path: Path) -> None:
    svc, ls, storage, _ = services(tmp_path, sources=[{"bucket": "b", "on_audio_deleted": "delete-task"}])
    quiet = _imported(svc, storage, "calls/quiet.mp3")
    reviewed = _imported(svc, storage, "calls/reviewed.mp3")
    ls.annotate(reviewed, "checked")
    del storage.objects[("b", "calls/quiet.mp3")], storage.objects[("b", "calls/reviewed.mp3")]
    with capture_logs() as logs:
        scan.run(svc, GO)  # no queue: every scan is a full listing, which notices deletions
    actions = {k: v for e in logs if e["event"] == "audio.deleted" for k, v in e["tasks"].items()}
    assert actions == {quiet: "deleted", reviewed: "marked"}
    assert set(ls.tasks) == {reviewed}
    assert all(e["found_by"] == "listing" for e in logs if e["event"] == "audio.deleted")


def test_a_key_s3_still_holds_is_never_marked_deleted(tmp_path: Path) -> None:
    svc, _, storage, _ = services(tmp_path)
    storage.put_audio("b", "a.mp3")
    scan.run(svc, GO)
    source = svc.settings.sources[0]
    with capture_logs() as logs:
        assert scan_deletions.notice(svc, source, "a.mp3", "event") == 0
    assert [e["event"] for e in logs] == ["audio.still_there"]
    assert [r.status for r in svc.state.recordings.all()] == [Status.DISCOVERED]
    del storage.objects[("b", "a.mp3")]
    assert scan_deletions.notice(svc, source, "a.mp3", "listing") == 1
    assert scan_deletions.notice(svc, source, "a.mp3", "listing") == 0, "once"
    [rec] = svc.state.recordings.all()
    assert rec.status == Status.DELETED and rec.reason == "deleted from S3 (found by listing)"
