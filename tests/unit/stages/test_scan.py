"""The scan stage: new object versions recorded once, a page at a time, from a listing per source."""

from __future__ import annotations

from structlog.testing import capture_logs

from syncd.domain.recording import Status
from syncd.stages import scan
from tests.unit.fakes import GO, Stack


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
    assert svc.state.recordings.counts()["skipped"] == 1
    storage.put_audio("b", "calls/a.mp3", b"new take")
    with capture_logs() as logs:
        assert scan.run(svc, GO) == 1
    assert "audio.replaced" in [e["event"] for e in logs]
    assert [r.status for r in svc.state.recordings.all() if r.key == "calls/a.mp3"] == [
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
    assert svc.state.recordings.counts()["discovered"] == 5 and svc.state.recordings.counts()["superseded"] == 1
