"""Lost or misplaced reviews, in-process: ties on ``updated_at``, a task that keeps failing, two audio files sharing a
stem, a review of a version that is no longer the audio, and stores without conditional writes. The integration tier
(tests/integration/faults/test_export_faults.py) runs the same scenarios against the real Label Studio and S3."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from structlog.testing import capture_logs

from syncd import exitcodes
from syncd.config import S3Settings
from syncd.daemon.health import health_report
from syncd.labelstudio import LabelStudioClient, layouts, ls_time
from syncd.ops import format_status, status_report
from syncd.pipeline import run_cycle
from syncd.probe import ProbeError, conditional_writes
from syncd.recording import Status
from syncd.stages import exporter, scan
from syncd.storage import Storage, WriteConflictError, obstore_can_write
from tests.unit.fakes import EPOCH, FakeStorage, healthy_probes, services

GO = threading.Event()


# --- 3. ties on updated_at ------------------------------------------------------------------------------------


class TasksEndpoint:
    """Label Studio's /api/tasks/ as far as paging goes: filters on updated_at and id, ordering by ONE field, ties in
    an order Label Studio does not promise (reverse id here)."""

    def __init__(self, tasks: list[dict[str, Any]]) -> None:
        self.tasks = tasks
        self.requests = 0

    def __call__(self, method: str, path: str, **kwargs: Any) -> Any:
        self.requests += 1
        if self.requests > 200:
            raise AssertionError("changed_task_pages makes no progress")
        params = kwargs["params"]
        query = json.loads(params["query"])
        rows = list(self.tasks)
        for item in query["filters"]["items"]:
            field, value = item["filter"].rsplit(":", 1)[1], item["value"]
            if item["operator"] == "greater":
                rows = [t for t in rows if t[field] > value]
            elif item["operator"] == "in":
                rows = [t for t in rows if value["min"] <= t[field] <= value["max"]]
            else:
                raise AssertionError(f"unexpected operator {item['operator']}")
        order = query["ordering"][0].rsplit(":", 1)[1]
        rows.sort(key=lambda t: (t[order], -t["id"]))
        page = [dict(t) for t in rows[: params["page_size"]]]
        return SimpleNamespace(json=lambda: {"tasks": page})


def _stamped(groups: list[tuple[int, range]]) -> list[dict[str, Any]]:
    return [{"id": i, "updated_at": ls_time(EPOCH.timestamp() + second)} for second, ids in groups for i in ids]


def test_changed_task_pages_page_through_any_number_of_ties(tmp_path: Path) -> None:
    svc, *_ = services(tmp_path)
    client = LabelStudioClient(svc.settings.labelstudio, "token")
    tasks = _stamped([(1, range(1, 26)), (0, range(26, 29)), (2, range(29, 41)), (3, range(41, 42))])
    client._request = TasksEndpoint(tasks)  # type: ignore[method-assign]
    pages = list(client.changed_task_pages(1, ls_time(0), page_size=10))
    read = [(t["updated_at"], t["id"]) for page in pages for t in page]
    assert sorted(i for _, i in read) == list(range(1, 42)), "every task exactly once"
    last_of_page = [max((t["updated_at"], t["id"]) for t in page) for page in pages]
    assert last_of_page == sorted(last_of_page)
    firsts = [min((t["updated_at"], t["id"]) for t in page) for page in pages[1:]]
    assert all(first > last for last, first in zip(last_of_page, firsts, strict=False))

    tie = tasks[0]["updated_at"]
    resumed = [t["id"] for page in client.changed_task_pages(1, tie, 12, page_size=10) for t in page]
    assert sorted(resumed) == [*range(13, 26), *range(29, 42)]


def test_export_of_a_bulk_action_ends_and_writes_each_task_once(tmp_path: Path) -> None:
    svc, ls, storage, _ = services(tmp_path)
    ls.page_size = 4
    for n in range(10):
        storage.put_audio("b", f"r{n}.mp3", f"audio {n}".encode())
    run_cycle(svc)
    moment = ls_time(EPOCH.timestamp() + 3600)
    for task_id in ls.tasks:
        ls.annotate(task_id, f"text {task_id}", at=moment)
    with capture_logs() as logs:
        assert exporter.run(svc, GO) == 10
        assert exporter.run(svc, GO) == 0
    assert sorted(e["task"] for e in logs if e["event"] == "annotation.exported") == sorted(ls.tasks)
    cursor = exporter.Cursor.load(svc.state.cursor("export:1"))
    assert cursor.position == (moment, max(ls.tasks))


def test_cursor_keeps_its_id_and_reads_old_cursors() -> None:
    cursor = exporter.Cursor("2026-01-01T00:00:00.000000Z", 5.0, settled=True, id=42)
    assert exporter.Cursor.load(cursor.dump()) == cursor
    assert exporter.Cursor.load(json.dumps({"at": cursor.at, "seen": 1.0, "settled": True})).id == 0
    assert cursor.since == (cursor.at, 42)
    assert cursor.after_read((cursor.at, 43), 0, 9).position == (cursor.at, 43)


# --- 4. a task that keeps failing is parked; the cursor moves on ------------------------------------------------


def _bad_region(text: str) -> list[dict[str, Any]]:
    value = {"start": "0:01", "end": 2.0, "text": [text]}
    return [{"id": "seg0000", "from_name": layouts.TEXT, "type": "textarea", "value": value}]


def test_a_task_that_keeps_failing_is_parked_and_retry_requeues_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("syncd.daemon.health.labelstudio_alive", lambda *_, **__: None)
    monkeypatch.setattr("syncd.daemon.health.buckets_readable", lambda *_: None)
    svc, ls, storage, _ = services(tmp_path, labelstudio={"layout": "segments"}, output={"export_attempts": 2})
    for key in ("bad.mp3", "good.mp3"):
        storage.put_audio("b", key, key.encode())
    run_cycle(svc)
    bad, good = sorted(ls.tasks)
    ls.annotate(bad, "", result=_bad_region("unreadable"))
    with capture_logs() as first:
        assert exporter.run(svc, GO) == 0
    ls.annotate(good, "", result=[_region("seg0000", 0.0, 0.5, "fine")])
    with capture_logs() as second:
        assert exporter.run(svc, GO) == 1, "the bad task does not hold the cursor"
    assert [e["task"] for e in first + second if e["event"] == "export.failed"] == [bad, bad]
    (parked,) = [e for e in second if e["event"] == "export.parked"]
    assert parked["task"] == bad and "'0:01' is not a number" in parked["reason"]
    assert storage.text("b", "good.transcript.txt") == "fine\n"

    with capture_logs() as idle:
        assert exporter.run(svc, GO) == 0
    assert not [e for e in idle if e["event"].startswith("export.")], "parked: left alone"
    report = status_report(svc.state)
    assert [(p["task"], p["key"], p["attempts"]) for p in report["parked"]] == [(bad, "bad.mp3", 2)]
    assert "is not a number" in format_status(report)
    parked = sum(svc.state.parked_counts().values())
    ok, body = health_report(svc.settings, "running", 1.0, healthy_probes(svc.settings), svc.state, parked)
    assert ok and body["status"] == "degraded" and body["checks"]["parked"] == {"ok": False, "count": 1}

    assert svc.state.requeue_parked() == 1
    with capture_logs() as retried:
        exporter.run(svc, GO)
    assert [e["task"] for e in retried if e["event"] == "export.failed"] == [bad]
    ls.annotate(bad, "", result=[_region("seg0000", 1.0, 2.0, "fixed")])
    assert exporter.run(svc, GO) == 1
    assert svc.state.parked_counts() == {"export": 0} and svc.state.export_queue(1) == []


def _region(rid: str, start: float, end: float | None, text: str) -> dict[str, Any]:
    value: dict[str, Any] = {"start": start, "text": [text]}
    if end is not None:
        value["end"] = end
    return {"id": rid, "from_name": layouts.TEXT, "type": "textarea", "value": value}


def test_a_region_without_end_ends_with_its_asr_segment(tmp_path: Path) -> None:
    svc, ls, storage, _ = services(tmp_path, labelstudio={"layout": "segments"})
    storage.put_audio("b", "a.mp3")
    run_cycle(svc)
    ls.annotate(1, "", result=[_region("seg0000", 0.0, None, "kept"), _region("new", 5.0, None, "point")])
    assert exporter.run(svc, GO) == 1
    segments = json.loads(storage.text("b", "a.transcript.json"))["segments"]
    assert [(s["start"], s["end"], s["text"]) for s in segments] == [(0.0, 0.9, "kept"), (5.0, 5.0, "point")]


def test_keys_obstore_cannot_express_are_written_with_boto3() -> None:
    for key in ("a\tb.mp3", "a\nb", "a\x7fb", "a//b", "a/./b", "a/../b", "/lead", "./x", "dir/", "a\\b"):
        assert not obstore_can_write(key), key
    for key in ("calls/Zoë interview 1.mp3", "a b%20#.mp3", "a/.hidden", "a/..b", "q?x"):
        assert obstore_can_write(key), key
    storage = Storage(S3Settings())
    puts: list[dict[str, Any]] = []

    def put_object(**kwargs: Any) -> dict[str, Any]:
        puts.append(kwargs)
        if len(puts) > 1:
            raise ClientError({"Error": {"Code": "PreconditionFailed"}}, "PutObject")
        return {"ETag": '"e1"'}

    storage.client = SimpleNamespace(put_object=put_object)
    assert storage.write("b", "/calls/a\t.transcript.txt", b"x", "txt", {"m": "1"}, if_absent=True) == "e1"
    assert puts[0]["Key"] == "/calls/a\t.transcript.txt" and puts[0]["IfNoneMatch"] == "*"
    with pytest.raises(WriteConflictError):
        storage.write("b", "/calls/a\t.transcript.txt", b"y", "txt", {}, if_match="e1")
    assert puts[1]["IfMatch"] == '"e1"'


def test_a_key_whose_outputs_s3_cannot_hold_is_skipped_at_discovery(tmp_path: Path) -> None:
    svc, _, storage, _ = services(tmp_path)
    long_key = "calls/" + "x" * 1000 + ".mp3"
    storage.put_audio("b", long_key)
    with capture_logs() as logs:
        assert scan.run(svc, GO) == 0
    (skipped,) = [e for e in logs if e["event"] == "audio.skipped"]
    assert "1024-byte key limit" in skipped["reason"]
    assert svc.state.recordings()[0].status == Status.SKIPPED


# --- 5. two audio files, one stem ---------------------------------------------------------------------------------


def test_audio_keys_sharing_a_stem_get_their_own_outputs(tmp_path: Path) -> None:
    svc, ls, storage, _ = services(tmp_path)
    for key in ("calls/meeting.wav", "calls/meeting.mp3", "calls/solo.mp3", "calls/meeting.notes.mp3"):
        storage.put_audio("b", key, key.encode())
    run_cycle(svc)
    by_key = {t["data"]["source"].removeprefix("s3://b/"): i for i, t in ls.tasks.items()}
    for key, task_id in by_key.items():
        ls.annotate(task_id, f"review of {key}")
    assert exporter.run(svc, GO) == 4
    assert storage.text("b", "calls/meeting.wav.transcript.txt") == "review of calls/meeting.wav\n"
    assert storage.text("b", "calls/meeting.mp3.transcript.txt") == "review of calls/meeting.mp3\n"
    assert storage.text("b", "calls/solo.transcript.txt") == "review of calls/solo.mp3\n"
    assert storage.text("b", "calls/meeting.notes.transcript.txt") == "review of calls/meeting.notes.mp3\n"
    assert not [k for k in storage.keys("b") if k.startswith("calls/meeting.transcript.")]


def test_naming_key_always_keeps_the_audio_suffix(tmp_path: Path) -> None:
    svc, ls, storage, _ = services(tmp_path, output={"naming": "key"})
    storage.put_audio("b", "a.mp3")
    run_cycle(svc)
    ls.annotate(1, "hi")
    exporter.run(svc, GO)
    assert storage.text("b", "a.mp3.transcript.txt") == "hi\n"


# --- 6. a review is written only beside the audio version it describes ----------------------------------------


def test_review_of_a_version_replaced_before_the_scan_is_not_written(tmp_path: Path) -> None:
    svc, ls, storage, _ = services(tmp_path)
    storage.put_audio("b", "a.mp3", b"take 1")
    run_cycle(svc)
    ls.annotate(1, "review of take 1")
    new_etag = storage.put_audio("b", "a.mp3", b"take 2")  # replaced; the scan has not seen it yet
    with capture_logs() as logs:
        assert exporter.run(svc, GO) == 0
    assert not [k for k in storage.keys("b") if ".transcript." in k]
    (stale,) = [e for e in logs if e["event"] == "annotation.stale_audio"]
    assert stale["current_etag"] == new_etag


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
    assert storage.head("b", "a.transcript.json")[1][exporter.META_SOURCE] == x_etag  # type: ignore[index]
    assert len(ls.tasks) == 2, "no second task for X"
    ls.annotate(2, "late edit of Y")
    with capture_logs() as logs:
        run_cycle(svc)
    assert storage.text("b", "a.transcript.txt") == "review of X\n"
    assert any(e["event"] == "annotation.stale_audio" for e in logs)


# --- 7. stores without conditional writes -------------------------------------------------------------------------


class ProbeS3:
    def __init__(self, enforced: bool) -> None:
        self.enforced = enforced
        self.objects: dict[str, bytes] = {}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, IfNoneMatch: str) -> None:  # noqa: N803
        if self.enforced and Key in self.objects:
            raise ClientError({"Error": {"Code": "PreconditionFailed"}}, "PutObject")
        self.objects[Key] = Body

    def delete_object(self, *, Bucket: str, Key: str) -> None:  # noqa: N803
        self.objects.pop(Key, None)


def test_conditional_write_probe() -> None:
    enforcing = ProbeS3(enforced=True)
    assert "enforced" in conditional_writes(enforcing, "b", "calls/")
    assert enforcing.objects == {}
    with pytest.raises(ProbeError) as refused:
        conditional_writes(ProbeS3(enforced=False), "b", "calls/")
    assert refused.value.code == exitcodes.CONFIG and "single-writer" in str(refused.value)


def test_single_writer_mode_still_never_overwrites_a_newer_review() -> None:
    storage = FakeStorage(conditional=False)
    newer = ("2026-01-02T00:00:00.000000Z", 7)
    meta = {exporter.META_UPDATED: newer[0], exporter.META_ANNOTATION: str(newer[1])}
    put = exporter.put_if_newer
    assert put(storage, "b", "k.txt", b"new", "txt", meta, newer, fresh=True) == "written"  # type: ignore[arg-type]
    older = ("2026-01-01T00:00:00.000000Z", 9)
    assert put(storage, "b", "k.txt", b"old", "txt", {}, older, fresh=True) == "newer"  # type: ignore[arg-type]
    assert storage.text("b", "k.txt") == "new"


def test_an_s3_that_cannot_be_reached_through_obstore_never_parks_a_task(tmp_path: Path) -> None:
    """The soak's S3 restarts: obstore gives up with a GenericError ("error sending request"). That is an outage, so
    the task waits in the queue without spending its attempts, and is written once S3 is back."""
    import obstore.exceptions

    svc, ls, storage, _ = services(tmp_path, output={"export_attempts": 2})
    storage.put_audio("b", "a.mp3")
    run_cycle(svc)
    [task_id] = ls.tasks
    ls.annotate(task_id, "hello there")
    real_write = storage.write
    down = obstore.exceptions.GenericError(
        "Generic S3 error: Error performing PUT http://127.0.0.1:1/b/a.transcript.txt in 4.1s, after 10 retries,"
        " max_retries: 10, retry_timeout: 180s  - HTTP error: error sending request"
    )
    storage.write = lambda *a, **k: (_ for _ in ()).throw(down)  # type: ignore[method-assign]
    with capture_logs() as logs:
        for _ in range(4):
            exporter.run(svc, GO)
    failed = [e for e in logs if e["event"] == "export.failed"]
    assert len(failed) == 4 and all(e["transient"] for e in failed)
    assert not [e for e in logs if e["event"] == "export.parked"] and svc.state.parked_counts() == {"export": 0}
    storage.write = real_write  # type: ignore[method-assign]
    assert exporter.run(svc, GO) == 1 and storage.text("b", "a.transcript.txt") == "hello there\n"


def test_obstore_errors_are_classified() -> None:
    import obstore.exceptions

    from syncd import exitcodes
    from syncd.probe import classify

    assert classify(obstore.exceptions.GenericError("HTTP error: error sending request")) == exitcodes.UNAVAILABLE
    assert (
        classify(obstore.exceptions.GenericError("Server returned non-2xx status code: 503")) == exitcodes.UNAVAILABLE
    )
    assert classify(obstore.exceptions.PermissionDeniedError("denied")) == exitcodes.NOPERM
    assert classify(obstore.exceptions.GenericError("invalid key")) == exitcodes.CHECK_FAILED
