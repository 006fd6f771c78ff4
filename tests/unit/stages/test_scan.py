"""The scan stage: new object versions recorded once, a page at a time, from listings and from event queues; keys whose
outputs S3 cannot hold skipped; a reverted upload made current again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from structlog.testing import capture_logs

from syncd.domain.recording import Status
from syncd.pipeline import run_cycle
from syncd.s3 import outputs
from syncd.s3.events import Event, parse
from syncd.services import Services
from syncd.stages import scan
from syncd.state import outages
from syncd.state.outages import DependencyDownError
from tests.unit.fakes import GO, FakeLabelStudio, FakeStorage, Stack, services

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
    svc.state.set_cursor(scan.full_listing_name(svc.settings.sources[0]), "0")
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
    assert not outages.get(svc.state, "sqs").ok
    assert [e["dependency"] for e in logs if e["event"] == "dependency.down"] == ["sqs"]
    queue.batches = real  # type: ignore[method-assign]
    with capture_logs() as logs:
        scan.run(svc, GO)
    assert outages.get(svc.state, "sqs").ok and [e["event"] for e in logs].count("dependency.up") == 1


def test_a_key_whose_outputs_s3_cannot_hold_is_skipped_at_discovery(tmp_path: Path) -> None:
    svc, _, storage, _ = services(tmp_path)
    long_key = "calls/" + "x" * 1000 + ".mp3"
    storage.put_audio("b", long_key)
    with capture_logs() as logs:
        assert scan.run(svc, GO) == 0
    (skipped,) = [e for e in logs if e["event"] == "audio.skipped"]
    assert "1024-byte key limit" in skipped["reason"]
    assert svc.state.recordings()[0].status == Status.SKIPPED


def test_reverted_upload_makes_the_old_version_current_and_rewrites_its_review(tmp_path: Path) -> None:
    svc, ls, storage, _ = services(tmp_path)
    x_etag = storage.put_audio("b", "a.mp3", b"version X")
    run_cycle(svc)
    ls.annotate(1, "review of X")
    run_cycle(svc)
    storage.put_audio("b", "a.mp3", b"version Y")
    run_cycle(svc)
    ls.annotate(2, "review of Y")
    run_cycle(svc)
    assert storage.text("b", "a.transcript.txt") == "review of Y\n"

    storage.put_audio("b", "a.mp3", b"version X")  # reverted: X's ETag again
    with capture_logs() as logs:
        assert run_cycle(svc)
    x, y = svc.state.recordings()
    assert (x.status, y.status) == (Status.EXPORTED, Status.SUPERSEDED)
    assert [e["recording"] for e in logs if e["event"] == "audio.restored"] == [x.id]
    assert storage.text("b", "a.transcript.txt") == "review of X\n"
    assert storage.head("b", "a.transcript.json")[1][outputs.META_SOURCE] == x_etag  # type: ignore[index]
    assert len(ls.tasks) == 2, "no second task for X"
    ls.annotate(2, "late edit of Y")
    with capture_logs() as logs:
        run_cycle(svc)
    assert storage.text("b", "a.transcript.txt") == "review of X\n"
    assert any(e["event"] == "annotation.stale_audio" for e in logs)


def test_scan_records_new_versions_once_and_skips_empty(stack: Stack) -> None:
    svc, _, storage, _ = stack
    storage.put_audio("b", "calls/a.mp3")
    storage.put_audio("b", "calls/empty.wav", b"")
    storage.put_audio("b", "calls/notes.txt")
    with capture_logs() as logs:
        assert scan.run(svc, GO) == 1
        assert scan.run(svc, GO) == 0
    events = [e["event"] for e in logs]
    assert events.count("audio.discovered") == 1 and events.count("audio.skipped") == 1
    assert svc.state.counts()["skipped"] == 1
    storage.put_audio("b", "calls/a.mp3", b"new take")
    with capture_logs() as logs:
        assert scan.run(svc, GO) == 1
    assert "audio.replaced" in [e["event"] for e in logs]
    assert [r.status for r in svc.state.recordings() if r.key == "calls/a.mp3"] == [
        Status.SUPERSEDED,
        Status.DISCOVERED,
    ]


def test_scan_works_a_page_at_a_time(stack: Stack) -> None:
    """Each listing page is checked against the state with one query; nothing is missed across page boundaries."""
    svc, _, storage, _ = stack
    storage.page_size = 2
    for i in range(5):
        storage.put_audio("b", f"calls/{i}.mp3", f"take {i}".encode())
    assert scan.run(svc, GO) == 5
    assert storage.calls["ListObjectsV2"] == 3
    storage.put_audio("b", "calls/3.mp3", b"retake")
    assert scan.run(svc, GO) == 1
    assert scan.run(svc, GO) == 0
    assert svc.state.counts()["discovered"] == 5 and svc.state.counts()["superseded"] == 1
