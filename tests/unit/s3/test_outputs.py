"""Compare-and-swap output writes: an older review never overwrites a newer one, and nothing is written beside audio the
review does not describe."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from syncd.pipeline import run_cycle
from syncd.s3 import outputs
from syncd.stages import export
from tests.unit.fakes import GO, FakeStorage, services


def test_review_of_a_version_replaced_before_the_scan_is_not_written(tmp_path: Path) -> None:
    svc, ls, storage, _ = services(tmp_path)
    storage.put_audio("b", "a.mp3", b"take 1")
    run_cycle(svc)
    ls.annotate(1, "review of take 1")
    new_etag = storage.put_audio("b", "a.mp3", b"take 2")  # replaced; the scan has not seen it yet
    with capture_logs() as logs:
        assert export.reviews(svc, GO) == 0
    assert not [k for k in storage.keys("b") if ".transcript." in k]
    (stale,) = [e for e in logs if e["event"] == "annotation.stale_audio"]
    assert stale["current_etag"] == new_etag


def test_single_writer_mode_still_never_overwrites_a_newer_review() -> None:
    storage = FakeStorage(conditional=False)
    newer = ("2026-01-02T00:00:00.000000Z", 7)
    meta = {outputs.META_UPDATED: newer[0], outputs.META_ANNOTATION: str(newer[1])}
    put = outputs.put_if_newer
    assert put(storage, "b", "k.txt", b"new", "txt", meta, newer, fresh=True) == "written"  # type: ignore[arg-type]
    older = ("2026-01-01T00:00:00.000000Z", 9)
    assert put(storage, "b", "k.txt", b"old", "txt", {}, older, fresh=True) == "newer"  # type: ignore[arg-type]
    assert storage.text("b", "k.txt") == "new"


def test_put_if_newer_never_replaces_a_newer_review() -> None:
    storage = FakeStorage()
    newer = ("2026-01-02T00:00:00.000000Z", 7)
    older = ("2026-01-01T00:00:00.000000Z", 9)
    meta = {outputs.META_UPDATED: newer[0], outputs.META_ANNOTATION: str(newer[1])}
    put = outputs.put_if_newer
    assert put(storage, "b", "k.txt", b"new", "txt", meta, newer, fresh=True) == "written"  # type: ignore[arg-type]
    assert put(storage, "b", "k.txt", b"same", "txt", meta, newer, fresh=False) == "current"  # type: ignore[arg-type]
    assert put(storage, "b", "k.txt", b"old", "txt", {}, older, fresh=False) == "newer"  # type: ignore[arg-type]
    assert put(storage, "b", "k.txt", b"old", "txt", {}, older, fresh=True) == "newer"  # type: ignore[arg-type]
    assert storage.text("b", "k.txt") == "new"
