"""Each stage in-process against the fakes: what it reads from the state, what it asks of S3 and Label Studio, what it
leaves behind. The integration tier runs the same stages against the real services."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from syncd.labelstudio import ls_time
from syncd.pipeline import run_cycle
from syncd.recording import Status
from syncd.services import Services
from syncd.stages import exporter, importer, scan, transcribe
from syncd.transcribers.base import TranscriptionError
from tests.unit.fakes import FakeLabelStudio, FakeStorage, FakeTranscriber, services

GO = threading.Event()


@pytest.fixture
def stack(tmp_path: Path) -> tuple[Services, FakeLabelStudio, FakeStorage, FakeTranscriber]:
    return services(tmp_path)


def test_scan_records_new_versions_once_and_skips_empty(stack: tuple) -> None:
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


def test_transcribe_completes_and_failures_are_counted(stack: tuple) -> None:
    svc, _, storage, engine = stack
    storage.put_audio("b", "a.mp3")
    storage.put_audio("b", "bad.mp3", b"corrupt")
    engine.fail["bad.mp3"] = TranscriptionError("not audio", retryable=False)
    scan.run(svc, GO)
    with capture_logs() as logs:
        assert transcribe.run(svc, GO) == 1
    by_key = {r.key: r for r in svc.state.recordings()}
    assert by_key["a.mp3"].status == Status.TRANSCRIBED and by_key["a.mp3"].score == pytest.approx(0.8)
    assert (by_key["bad.mp3"].status, by_key["bad.mp3"].reason) == (Status.FAILED, "not audio")
    assert [e["event"] for e in logs if e["event"].startswith("transcription.")] == [
        "transcription.submitted",
        "transcription.submitted",
        "transcription.completed",
        "transcription.failed",
    ]


def test_transcript_of_a_version_replaced_meanwhile_is_discarded(stack: tuple) -> None:
    svc, _, storage, engine = stack
    storage.put_audio("b", "a.mp3")
    scan.run(svc, GO)
    [rec] = svc.state.due(Status.DISCOVERED)
    engine.while_polling = lambda: (storage.put_audio("b", "a.mp3", b"replaced"), scan.run(svc, GO))
    with capture_logs() as logs:
        transcribe.run(svc, GO)
    assert svc.state.get(rec.id).status == Status.SUPERSEDED
    assert svc.state.get(rec.id).transcript_json is None
    assert any(e["event"] == "transcription.discarded" for e in logs)


def test_import_least_confident_first_then_recovers_stranded_rows(stack: tuple) -> None:
    svc, ls, storage, engine = stack
    for key, confidence in (("a.mp3", 0.9), ("b.mp3", 0.3), ("c.mp3", 0.6)):
        storage.put_audio("b", key, key.encode())
        scan.run(svc, GO)
        engine.confidence = confidence
        transcribe.run(svc, GO)
    assert importer.run(svc, GO) == 3
    assert [t["data"]["source"] for t in ls.imports[0]] == ["s3://b/b.mp3", "s3://b/c.mp3", "s3://b/a.mp3"]
    assert ls.model_version == "fake-1"
    assert {r.status for r in svc.state.recordings()} == {Status.IMPORTED}
    assert importer.run(svc, GO) == 0 and len(ls.imports) == 1


def test_import_adopts_tasks_that_landed_before_a_crash(stack: tuple) -> None:
    svc, ls, storage, _ = stack
    storage.put_audio("b", "a.mp3")
    scan.run(svc, GO)
    transcribe.run(svc, GO)
    [rec] = svc.state.due(Status.TRANSCRIBED)
    ls.import_tasks(1, [importer.task_for(rec, "whole", "fake-1")])  # landed; the state commit did not
    svc.state.move(rec.id, Status.TRANSCRIBED, Status.IMPORTING)
    with capture_logs() as logs:
        assert importer.run(svc, GO) == 1
    assert len(ls.tasks) == 1 and [e["event"] for e in logs].count("task.recovered") == 1
    assert svc.state.get(rec.id).status == Status.IMPORTED


def test_cycle_exports_a_submitted_review_beside_the_audio(stack: tuple) -> None:
    svc, ls, storage, _ = stack
    storage.put_audio("b", "calls/a.mp3")
    run_cycle(svc)
    [task_id] = ls.tasks
    ls.annotate(task_id, "hello there world")
    with capture_logs() as logs:
        assert run_cycle(svc)
    assert storage.text("b", "calls/a.transcript.txt") == "hello there world\n"
    assert set(storage.keys("b")) >= {f"calls/a.transcript.{f}" for f in ("txt", "json", "srt", "vtt")}
    cycle = next(e for e in logs if e["event"] == "cycle.completed")
    assert cycle["counts"] == {"scan": 0, "transcribe": 0, "import": 0, "export": 1}
    assert svc.state.recordings()[0].status == Status.EXPORTED


def test_export_cursor_reads_only_what_changed(stack: tuple) -> None:
    svc, ls, storage, _ = stack
    storage.put_audio("b", "a.mp3")
    run_cycle(svc)
    ls.annotate(1, "first")
    assert exporter.run(svc, GO) == 1
    reads: list[str] = []
    pages = ls.changed_task_pages
    ls.changed_task_pages = lambda project, since, after_id=0: (  # type: ignore[method-assign]
        reads.append(since),
        pages(project, since, after_id),
    )[1]
    assert exporter.run(svc, GO) == 0
    ls.annotate(1, "second")
    assert exporter.run(svc, GO) == 1
    assert storage.text("b", "a.transcript.txt") == "second\n"
    assert reads[0] <= reads[-1]


def test_skipped_and_draft_reviews_write_nothing(stack: tuple) -> None:
    svc, ls, storage, _ = stack
    storage.put_audio("b", "a.mp3")
    run_cycle(svc)
    ls.annotate(1, "ignored", cancelled=True)
    with capture_logs() as logs:
        assert exporter.run(svc, GO) == 0
    assert "annotation.skipped" in [e["event"] for e in logs]
    assert not [k for k in storage.keys("b") if ".transcript." in k]


def test_put_if_newer_never_replaces_a_newer_review() -> None:
    storage = FakeStorage()
    newer = ("2026-01-02T00:00:00.000000Z", 7)
    older = ("2026-01-01T00:00:00.000000Z", 9)
    meta = {exporter.META_UPDATED: newer[0], exporter.META_ANNOTATION: str(newer[1])}
    put = exporter.put_if_newer
    assert put(storage, "b", "k.txt", b"new", "txt", meta, newer, fresh=True) == "written"  # type: ignore[arg-type]
    assert put(storage, "b", "k.txt", b"same", "txt", meta, newer, fresh=False) == "current"  # type: ignore[arg-type]
    assert put(storage, "b", "k.txt", b"old", "txt", {}, older, fresh=False) == "newer"  # type: ignore[arg-type]
    assert put(storage, "b", "k.txt", b"old", "txt", {}, older, fresh=True) == "newer"  # type: ignore[arg-type]
    assert storage.text("b", "k.txt") == "new"


def test_deleted_task_is_noticed_and_its_transcript_kept(stack: tuple) -> None:
    svc, ls, storage, _ = stack
    for key in ("a.mp3", "b.mp3"):
        storage.put_audio("b", key, key.encode())
    run_cycle(svc)
    ls.annotate(1, "reviewed")
    exporter.run(svc, GO)
    del ls.tasks[1]
    with capture_logs() as logs:
        exporter.check_deleted_tasks(svc, 1)
        exporter.check_deleted_tasks(svc, 1)
    deleted = [e for e in logs if e["event"] == "task.deleted"]
    assert len(deleted) == 1 and deleted[0]["kept"] is True
    assert storage.text("b", "a.transcript.txt") == "reviewed\n"
    rec = next(r for r in svc.state.recordings() if r.key == "a.mp3")
    assert rec.task_id is None and "deleted in Label Studio" in (rec.reason or "")


def test_scan_works_a_page_at_a_time(stack: tuple) -> None:
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


def test_sweep_finds_a_review_whose_task_label_studio_did_not_mark_changed(tmp_path: Path) -> None:
    """Label Studio saves the annotation, then stamps the task's updated_at in a second write; stopped in between,
    the task looks unchanged to the export cursor. The slow sweep of reviewed tasks finds it."""
    svc, ls, storage, _ = services(tmp_path, schedule={"export_sweep_interval": 600})
    storage.put_audio("b", "calls/a.mp3")
    run_cycle(svc)
    [task_id] = ls.tasks
    run_cycle(svc)  # the first export run sweeps (nothing to find) and starts the interval
    sweeps = ls.sweeps
    ls.annotate(task_id, "hello there world")
    ls.tasks[task_id]["updated_at"] = ls_time(datetime(2000, 1, 1, tzinfo=UTC))  # as if never stamped
    run_cycle(svc)
    assert "calls/a.transcript.txt" not in storage.keys("b") and ls.sweeps == sweeps, "not due yet: missed"
    svc.state.set_cursor("export-sweep:1", "0")  # the interval has passed
    with capture_logs() as logs:
        run_cycle(svc)
    assert storage.text("b", "calls/a.transcript.txt") == "hello there world\n"
    [missed] = [e for e in logs if e["event"] == "export.missed"]
    assert missed["task"] == task_id and missed["log_level"] == "warning"
    [swept] = [e for e in logs if e["event"] == "export.swept"]
    assert (swept["tasks"], swept["missed"]) == (1, 1)
    with capture_logs() as logs:
        svc.state.set_cursor("export-sweep:1", "0")
        run_cycle(svc)
    assert not [e for e in logs if e["event"] == "export.missed"], "written once: the next sweep finds nothing"
