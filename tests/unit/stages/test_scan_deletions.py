"""Deleted audio: its task marked (or deleted when unreviewed, by policy), its transcript kept, and the mark taken off
when the audio is put back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from syncd.domain.recording import Status
from syncd.s3.events import Event, parse
from syncd.services import Services
from syncd.stages import import_, scan, transcribe
from tests.unit.fakes import GO, FakeLabelStudio, FakeStorage, services

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/syncd-events"


def _record(name: str, key: str, etag: str = "e1", size: int = 5) -> dict[str, Any]:
    obj = {"key": key, "size": size, "eTag": etag, "sequencer": "0A1B"}
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": name,
        "s3": {"bucket": {"name": "b"}, "object": obj},
    }


class FakeQueue:
    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []
        self.deleted: list[str] = []
        self.receives = 0

    def send(self, *records: dict[str, Any]) -> None:
        self.messages.append((f"r{len(self.messages)}", json.dumps({"Records": list(records)})))

    def batches(self) -> Iterator[tuple[list[Event], list[str]]]:
        self.receives += 1
        while self.messages:
            taken, self.messages = self.messages[:10], self.messages[10:]
            yield [e for _, body in taken for e in parse(body)], [r for r, _ in taken]

    def done(self, receipts: list[str]) -> None:
        self.deleted += receipts


def _evented(tmp_path: Path, policy: str = "keep") -> tuple[Services, FakeLabelStudio, FakeStorage, FakeQueue]:
    source = {"bucket": "b", "queue_url": QUEUE, "on_audio_deleted": policy}
    svc, ls, storage, _ = services(tmp_path, sources=[source])
    queue = FakeQueue()
    svc.queues[QUEUE] = queue  # type: ignore[assignment]
    return svc, ls, storage, queue


def _imported(svc: Services, storage: FakeStorage, key: str) -> int:
    storage.put_audio("b", key)
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    import_.run(svc, GO)
    (rec,) = [r for r in svc.state.recordings() if r.key == key]
    assert rec.task_id is not None
    return rec.task_id


def test_deleted_audio_keeps_its_task_marked_by_default(tmp_path: Path) -> None:
    svc, ls, storage, queue = _evented(tmp_path)
    task = _imported(svc, storage, "calls/a.mp3")
    del storage.objects[("b", "calls/a.mp3")]
    queue.send(_record("ObjectRemoved:Delete", "calls/a.mp3"))
    with capture_logs() as logs:
        scan.run(svc, GO)
    (deleted,) = [e for e in logs if e["event"] == "audio.deleted"]
    assert deleted["tasks"] == {task: "marked"} and deleted["found_by"] == "event" and deleted["was"] == "imported"
    assert ls.tasks[task]["data"]["deleted_from_s3"] and ls.tasks[task]["data"]["key"] == "calls/a.mp3"
    assert svc.state.recordings()[0].status == Status.DELETED
    etag = storage.put_audio("b", "calls/a.mp3")  # put back: the same version is current again, with its task
    queue.send(_record("ObjectCreated:Put", "calls/a.mp3", etag))
    scan.run(svc, GO)
    assert svc.state.recordings()[0].status == Status.IMPORTED and len(ls.tasks) == 1
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
