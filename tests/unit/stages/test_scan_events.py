"""Scanning from an event queue: audio found from S3 notifications, a lost event found by the full listing, an
event S3 contradicts ignored, an unreadable queue an SQS outage that holds no other source."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import EndpointConnectionError
from structlog.testing import capture_logs

from syncd.domain.recording import Status
from syncd.stages import scan
from syncd.state.outages import DependencyDownError
from tests.unit.fakes import GO, services
from tests.unit.scenarios import QUEUE, FakeQueue, evented, s3_event


def test_new_audio_is_found_from_events_and_the_bucket_is_listed_only_when_a_full_listing_is_due(
    tmp_path: Path,
) -> None:
    svc, _, storage, queue = evented(tmp_path)
    scan.run(svc, GO)  # the first run lists the bucket once (nothing is known yet)
    listings = storage.calls["ListObjectsV2"]
    etag = storage.put_audio("b", "calls/new call.mp3")
    queue.send(s3_event("ObjectCreated:Put", "calls/new+call.mp3", etag))
    with capture_logs() as logs:
        assert scan.run(svc, GO) == 1
    assert storage.calls["ListObjectsV2"] == listings, "found from the event, with no listing"
    assert [e["key"] for e in logs if e["event"] == "audio.discovered"] == ["calls/new call.mp3"]
    assert queue.deleted == ["r0"]
    assert scan.run(svc, GO) == 0 and storage.calls["ListObjectsV2"] == listings


def test_a_lost_event_is_found_by_the_full_listing(tmp_path: Path) -> None:
    svc, _, storage, _ = evented(tmp_path)
    scan.run(svc, GO)
    storage.put_audio("b", "calls/no event.mp3")
    assert scan.run(svc, GO) == 0, "no event, and the full listing is not due"
    svc.state.cursors.set(scan.full_listing_name(svc.settings.sources[0]), "0")
    assert scan.run(svc, GO) == 1


def test_an_event_s3_contradicts_changes_nothing(tmp_path: Path) -> None:
    svc, _, storage, queue = evented(tmp_path)
    etag = storage.put_audio("b", "a.mp3")
    scan.run(svc, GO)
    queue.send(s3_event("ObjectCreated:Put", "late.mp3", "gone"), s3_event("ObjectRemoved:Delete", "a.mp3", etag))
    with capture_logs() as logs:
        assert scan.run(svc, GO) == 0
    assert not [e for e in logs if e["event"] in ("audio.discovered", "audio.deleted")]
    assert [r.status for r in svc.state.recordings.all()] == [Status.DISCOVERED]


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
    assert not svc.state.outages.get("sqs").ok
    assert [e["dependency"] for e in logs if e["event"] == "dependency.down"] == ["sqs"]
    queue.batches = real  # type: ignore[method-assign]
    with capture_logs() as logs:
        scan.run(svc, GO)
    assert svc.state.outages.get("sqs").ok and [e["event"] for e in logs].count("dependency.up") == 1
