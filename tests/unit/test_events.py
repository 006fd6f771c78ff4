"""S3 event notifications from SQS, in-process against the fakes: parsing what S3 (and SNS) send, discovery from
events with no listing, deletions from events and from a full listing, each confirmed against S3, and the policy for
the deleted audio's task."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from structlog.testing import capture_logs

from syncd import dependencies
from syncd.dependencies import DependencyDownError
from syncd.events import Event, parse
from syncd.recording import Status
from syncd.services import Services
from syncd.stages import importer, scan, transcribe
from tests.unit.fakes import FakeLabelStudio, FakeStorage, services

GO = threading.Event()
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/syncd-events"


def _record(name: str, key: str, etag: str = "e1", size: int = 5) -> dict[str, Any]:
    obj = {"key": key, "size": size, "eTag": etag, "sequencer": "0A1B"}
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": name,
        "s3": {"bucket": {"name": "b"}, "object": obj},
    }


def test_parse_reads_s3_and_sns_bodies_and_decodes_keys() -> None:
    body = json.dumps(
        {"Records": [_record("ObjectCreated:Put", "calls/a+b%C3%A9.mp3"), _record("ObjectRemoved:Delete", "x.mp3")]}
    )
    assert parse(body) == [Event("created", "b", "calls/a bé.mp3", "e1", 5), Event("removed", "b", "x.mp3", "e1", 5)]
    assert parse(json.dumps({"Type": "Notification", "Message": body})) == parse(body)
    assert parse(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})) == []
    assert parse("not json") == [] and parse(json.dumps({"Records": [{"eventName": "ObjectRestore:Post"}]})) == []


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


def test_new_audio_is_found_from_events_and_the_bucket_is_listed_only_when_a_full_listing_is_due(
    tmp_path: Path,
) -> None:
    svc, _, storage, queue = _evented(tmp_path)
    scan.run(svc, GO)  # the first run lists the bucket once (nothing is known yet)
    listings = storage.calls["ListObjectsV2"]
    etag = storage.put_audio("b", "calls/new call.mp3")
    queue.send(_record("ObjectCreated:Put", "calls/new+call.mp3", etag))
    with capture_logs() as logs:
        assert scan.run(svc, GO) == 1
    assert storage.calls["ListObjectsV2"] == listings, "found from the event, with no listing"
    assert [e["key"] for e in logs if e["event"] == "audio.discovered"] == ["calls/new call.mp3"]
    assert queue.deleted == ["r0"]
    assert scan.run(svc, GO) == 0 and storage.calls["ListObjectsV2"] == listings


def test_a_lost_event_is_found_by_the_full_listing(tmp_path: Path) -> None:
    svc, _, storage, _ = _evented(tmp_path)
    scan.run(svc, GO)
    storage.put_audio("b", "calls/no event.mp3")
    assert scan.run(svc, GO) == 0, "no event, and the full listing is not due"
    svc.state.set_cursor(scan._full_listing_name(svc.settings.sources[0]), "0")
    assert scan.run(svc, GO) == 1


def test_an_event_s3_contradicts_changes_nothing(tmp_path: Path) -> None:
    svc, _, storage, queue = _evented(tmp_path)
    etag = storage.put_audio("b", "a.mp3")
    scan.run(svc, GO)
    queue.send(_record("ObjectCreated:Put", "late.mp3", "gone"), _record("ObjectRemoved:Delete", "a.mp3", etag))
    with capture_logs() as logs:
        assert scan.run(svc, GO) == 0
    assert not [e for e in logs if e["event"] in ("audio.discovered", "audio.deleted")]
    assert [r.status for r in svc.state.recordings()] == [Status.DISCOVERED]


def _imported(svc: Services, storage: FakeStorage, key: str) -> int:
    storage.put_audio("b", key)
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    importer.run(svc, GO)
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


def test_an_unreadable_queue_is_an_sqs_outage_that_holds_no_other_source(tmp_path: Path) -> None:
    sources = [{"bucket": "b", "queue_url": QUEUE}, {"bucket": "other"}]
    svc, _, storage, _ = services(tmp_path, sources=sources)
    queue = FakeQueue()
    svc.queues[QUEUE] = queue  # type: ignore[assignment]
    real = queue.batches
    queue.batches = lambda: (_ for _ in ()).throw(EndpointConnectionError(endpoint_url=QUEUE))  # type: ignore[method-assign]
    storage.put_audio("other", "x.mp3")
    with capture_logs() as logs, pytest.raises(DependencyDownError):
        scan.run(svc, GO)
    assert [e["key"] for e in logs if e["event"] == "audio.discovered"] == ["x.mp3"], "the other source is scanned"
    assert not dependencies.get(svc.state, "sqs").ok
    assert [e["dependency"] for e in logs if e["event"] == "dependency.down"] == ["sqs"]
    queue.batches = real  # type: ignore[method-assign]
    with capture_logs() as logs:
        scan.run(svc, GO)
    assert dependencies.get(svc.state, "sqs").ok and [e["event"] for e in logs].count("dependency.up") == 1
