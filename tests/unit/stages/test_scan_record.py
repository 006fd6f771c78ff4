"""Recording what a scan found: what is audio to watch, what is skipped and why, a reverted upload made current
again."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from syncd.domain.recording import S3Object, Status
from syncd.pipeline import run_cycle
from syncd.s3 import outputs
from syncd.stages import scan, scan_record
from tests.unit.fakes import GO, services


def test_a_key_whose_outputs_s3_cannot_hold_is_skipped_at_discovery(tmp_path: Path) -> None:
    svc, _, storage, _ = services(tmp_path)
    long_key = "calls/" + "x" * 1000 + ".mp3"
    storage.put_audio("b", long_key)
    with capture_logs() as logs:
        assert scan.run(svc, GO) == 0
    (skipped,) = [e for e in logs if e["event"] == "audio.skipped"]
    assert "1024-byte key limit" in skipped["reason"]
    assert svc.state.recordings.all()[0].status == Status.SKIPPED


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
    x, y = svc.state.recordings.all()
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


def test_what_is_skipped_and_why() -> None:
    assert scan_record.skip_reason(S3Object("b", "a.mp3", "e", 0), 10) == "empty object (0 bytes)"
    assert "too large" in (scan_record.skip_reason(S3Object("b", "a.mp3", "e", 11 * 1024 * 1024), 10) or "")
    long_key = "calls/" + "x" * 1000 + ".mp3"
    assert "key too long for its outputs" in (scan_record.skip_reason(S3Object("b", long_key, "e", 1), 10) or "")
    assert scan_record.skip_reason(S3Object("b", "a.mp3", "e", 1), 10) is None


def test_watched_keys_are_the_sources_audio_outside_syncds_own_prefixes(tmp_path: Path) -> None:
    svc, *_ = services(tmp_path, sources=[{"bucket": "b", "prefix": "calls/"}])
    source = svc.settings.sources[0]
    excluded = scan_record.excluded_prefixes(svc, "b")
    assert svc.settings.review.units_prefix in excluded, "the review units' clips are never new audio"
    assert scan_record.watched(source, "b", "calls/a.MP3", excluded)
    assert not scan_record.watched(source, "other", "calls/a.mp3", excluded), "another bucket"
    assert not scan_record.watched(source, "b", "notes/a.mp3", excluded), "outside the prefix"
    assert not scan_record.watched(source, "b", "calls/a.transcript.json", excluded), "not audio"


def test_record_page_records_each_version_once(tmp_path: Path) -> None:
    svc, *_ = services(tmp_path)
    source = svc.settings.sources[0]
    page = [S3Object("b", "a.mp3", "e1", 5), S3Object("b", "b.mp3", "e1", 0)]
    assert scan_record.record_page(svc, source, page) == 1
    assert scan_record.record_page(svc, source, page) == 0
    assert scan_record.record_page(svc, source, [S3Object("b", "a.mp3", "e2", 5)]) == 1, "a new version"
    assert {(r.key, r.etag, r.status) for r in svc.state.recordings.all()} == {
        ("a.mp3", "e1", Status.SUPERSEDED),
        ("a.mp3", "e2", Status.DISCOVERED),
        ("b.mp3", "e1", Status.SKIPPED),
    }
