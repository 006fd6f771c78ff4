"""The export loop: the keyset cursor over changed tasks, the queue of failed and parked tasks, the sweep, outages that
never park a task, and deleted tasks noticed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from syncd.commands.status import format_status, status_report
from syncd.daemon.health import health_report
from syncd.daemon.metrics import Metrics
from syncd.domain.recording import Status
from syncd.labelstudio import layouts, ls_datetime, ls_time
from syncd.pipeline import run_cycle, run_stage
from syncd.s3 import outputs
from syncd.stages import BY_NAME, export, import_, scan, transcribe
from syncd.stages.export_cursor import Cursor
from tests.unit.fakes import (
    EPOCH,
    GO,
    Stack,
    healthy_probes,
    services,
)
from tests.unit.scenarios import (
    events,
    expire_lease,
    region,
    reviewed_on_two_instances,
    second_instance,
    transcribed_with,
    upload,
)


def _bad_region(text: str) -> list[dict[str, Any]]:
    value = {"start": "0:01", "end": 2.0, "text": [text]}
    return [{"id": "seg0000", "from_name": layouts.TEXT, "type": "textarea", "value": value}]


KEYS = ("a.mp3", "b.mp3", "c.mp3", "d.mp3")


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
        assert export.reviews(svc, GO) == 10
        assert export.reviews(svc, GO) == 0
    assert sorted(e["task"] for e in logs if e["event"] == "annotation.exported") == sorted(ls.tasks)
    cursor = Cursor.load(svc.state.cursors.get("export:1"))
    assert cursor.position == (moment, max(ls.tasks))


def test_an_unsettled_cursor_lists_its_window_and_reads_it_again_only_for_a_late_commit(tmp_path: Path) -> None:
    svc, ls, storage, _ = services(tmp_path)
    for n in range(6):
        storage.put_audio("b", f"r{n}.mp3", f"audio {n}".encode())
    run_cycle(svc)
    *reviewed, late = sorted(ls.tasks)
    for task_id in reviewed:
        ls.annotate(task_id, f"text {task_id}")
    assert export.reviews(svc, GO) == 5
    cursor = Cursor.load(svc.state.cursors.get("export:1"))
    assert not cursor.settled and cursor.window == (6, cursor.window[1])  # all six tasks changed in its window
    read, looks = ls.changed_read, ls.window_looks

    assert export.reviews(svc, GO) == 0
    assert (ls.changed_read, ls.window_looks) == (read, looks + 1)  # listed, not read again

    inside = ls_time(ls_datetime(cursor.at) - timedelta(seconds=1))  # committed late, behind the cursor
    ls.annotate(late, "a late review", at=inside)
    with capture_logs() as logs:
        assert export.reviews(svc, GO) == 1
    assert [e["tasks"] for e in logs if e["event"] == "export.window_changed"] == [6]
    assert [e["task"] for e in logs if e["event"] == "annotation.exported"] == [late]
    assert export.reviews(svc, GO) == 0
    assert ls.changed_read == read + 6  # the window was read in full once, when it had changed


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
        assert export.reviews(svc, GO) == 0
    ls.annotate(good, "", result=[region("seg0000", 0.0, 0.5, "fine")])
    with capture_logs() as second:
        assert export.reviews(svc, GO) == 1, "the bad task does not hold the cursor"
    assert [e["task"] for e in first + second if e["event"] == "export.failed"] == [bad, bad]
    (parked,) = [e for e in second if e["event"] == "export.parked"]
    assert parked["task"] == bad and "'0:01' is not a number" in parked["reason"]
    assert storage.text("b", "good.transcript.txt") == "fine\n"

    with capture_logs() as idle:
        assert export.reviews(svc, GO) == 0
    assert not [e for e in idle if e["event"].startswith("export.")], "parked: left alone"
    report = status_report(svc.state)
    assert [(p["task"], p["key"], p["attempts"]) for p in report["parked"]] == [(bad, "bad.mp3", 2)]
    assert "is not a number" in format_status(report)
    parked = sum(svc.state.export_queue.parked_counts().values())
    ok, body = health_report(svc.settings, "running", 1.0, healthy_probes(svc.settings), svc.state, parked)
    assert ok and body["status"] == "degraded" and body["checks"]["parked"] == {"ok": False, "count": 1}

    assert svc.state.export_queue.requeue_parked() == 1
    with capture_logs() as retried:
        export.reviews(svc, GO)
    assert [e["task"] for e in retried if e["event"] == "export.failed"] == [bad]
    ls.annotate(bad, "", result=[region("seg0000", 1.0, 2.0, "fixed")])
    assert export.reviews(svc, GO) == 1
    assert svc.state.export_queue.parked_counts() == {"export": 0} and svc.state.export_queue.queued(1) == []


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
            export.reviews(svc, GO)
    failed = [e for e in logs if e["event"] == "export.failed"]
    assert len(failed) == 4 and all(e["transient"] for e in failed)
    assert not [e for e in logs if e["event"] == "export.parked"] and svc.state.export_queue.parked_counts() == {
        "export": 0
    }
    storage.write = real_write  # type: ignore[method-assign]
    assert export.reviews(svc, GO) == 1 and storage.text("b", "a.transcript.txt") == "hello there\n"


def test_deletion_is_noticed_when_another_tool_adds_a_task_at_the_same_time(stack: Stack) -> None:
    svc, ls, storage, _ = stack
    upload(storage, KEYS[:2])
    for stage in (scan, transcribe, import_):
        stage.run(svc, GO)
    export.check_deleted_tasks(svc, 1)
    del ls.tasks[1]
    ls.add_foreign()
    with capture_logs() as logs:
        export.check_deleted_tasks(svc, 1)
        export.check_deleted_tasks(svc, 1)
    [deleted] = events(logs, "task.deleted")
    assert deleted["task"] == 1
    assert next(r for r in svc.state.recordings.all() if r.key == "a.mp3").task_id is None


def test_deleted_foreign_task_is_forgotten_and_read_once(stack: Stack) -> None:
    svc, ls, storage, _ = stack
    upload(storage, KEYS[:1])
    for stage in (scan, transcribe, import_):
        stage.run(svc, GO)
    [foreign] = ls.add_foreign()
    export.check_deleted_tasks(svc, 1)
    del ls.tasks[foreign]
    indexes = []
    index = ls.task_index
    ls.task_index = lambda project: (indexes.append(project), index(project))[1]  # type: ignore[method-assign]
    with capture_logs() as logs:
        export.check_deleted_tasks(svc, 1)
        export.check_deleted_tasks(svc, 1)
    assert len(indexes) == 1 and not events(logs, "task.deleted")
    assert svc.state.tasks.seen_task_count(1) == 1


def test_cycle_exports_a_submitted_review_beside_the_audio(stack: Stack) -> None:
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
    assert svc.state.recordings.all()[0].status == Status.EXPORTED


def test_export_cursor_reads_only_what_changed(stack: Stack) -> None:
    svc, ls, storage, _ = stack
    storage.put_audio("b", "a.mp3")
    run_cycle(svc)
    ls.annotate(1, "first")
    assert export.reviews(svc, GO) == 1
    reads: list[str] = []
    pages = ls.changed_task_pages
    ls.changed_task_pages = lambda project, since, after_id=0, page_size=1000: (  # type: ignore[method-assign]
        reads.append(since),
        pages(project, since, after_id, page_size),
    )[1]
    assert export.reviews(svc, GO) == 0
    before = Cursor.load(svc.state.cursors.get("export:1"))
    ls.annotate(1, "second")
    assert export.reviews(svc, GO) == 1
    assert storage.text("b", "a.transcript.txt") == "second\n"
    assert reads[0] == before.at  # the window unchanged: read from the position
    assert reads[-1] == before.window_start[0]  # a task left it: read again, never further back than the window


def test_skipped_and_draft_reviews_write_nothing(stack: Stack) -> None:
    svc, ls, storage, _ = stack
    storage.put_audio("b", "a.mp3")
    run_cycle(svc)
    ls.annotate(1, "ignored", cancelled=True)
    with capture_logs() as logs:
        assert export.reviews(svc, GO) == 0
    assert "annotation.skipped" in [e["event"] for e in logs]
    assert not [k for k in storage.keys("b") if ".transcript." in k]


def test_deleted_task_is_noticed_and_its_transcript_kept(stack: Stack) -> None:
    svc, ls, storage, _ = stack
    for key in ("a.mp3", "b.mp3"):
        storage.put_audio("b", key, key.encode())
    run_cycle(svc)
    ls.annotate(1, "reviewed")
    export.reviews(svc, GO)
    del ls.tasks[1]
    with capture_logs() as logs:
        export.check_deleted_tasks(svc, 1)
        export.check_deleted_tasks(svc, 1)
    deleted = [e for e in logs if e["event"] == "task.deleted"]
    assert len(deleted) == 1 and deleted[0]["kept"] is True
    assert storage.text("b", "a.transcript.txt") == "reviewed\n"
    rec = next(r for r in svc.state.recordings.all() if r.key == "a.mp3")
    assert rec.task_id is None and "deleted in Label Studio" in (rec.reason or "")


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
    svc.state.cursors.set("export-sweep:1", "0")  # the interval has passed
    with capture_logs() as logs:
        run_cycle(svc)
    assert storage.text("b", "calls/a.transcript.txt") == "hello there world\n"
    [missed] = [e for e in logs if e["event"] == "export.missed"]
    assert missed["task"] == task_id and missed["log_level"] == "warning"
    [swept] = [e for e in logs if e["event"] == "export.swept"]
    assert (swept["tasks"], swept["missed"]) == (1, 1)
    with capture_logs() as logs:
        svc.state.cursors.set("export-sweep:1", "0")
        run_cycle(svc)
    assert not [e for e in logs if e["event"] == "export.missed"], "written once: the next sweep finds nothing"


def test_an_exporter_frozen_inside_a_write_records_nothing_when_it_wakes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a stops inside an output write; its export lease runs out, b takes it and exports every review; a wakes and
    finishes its write (a conditional one: it finds the same version there), but its state changes are fenced: it
    records nothing, logs ``lease.fenced``, and each review is exported (and counted) once, by b."""
    a, ls, storage, engine = services(tmp_path, instance={"name": "a"}, output={"write_workers": 1})  # one thread,
    b = second_instance(a, tmp_path, "b")  # as a SIGSTOP freezes them all
    transcribed_with(a, storage, engine, {"one.mp3": 0.5, "two.mp3": 0.6})
    assert run_stage(a, BY_NAME["import"], GO).count == 2
    for task_id in list(ls.tasks):
        ls.annotate(task_id, f"reviewed {task_id}")
    frozen: list[str] = []
    exported: list[int] = []

    def freeze(point: str) -> None:
        if point == "export.write" and not frozen:
            frozen.append(point)
            expire_lease(b, "export")
            exported.append(run_stage(b, BY_NAME["export"], GO).count)

    monkeypatch.setattr(outputs, "fault_point", freeze)
    with capture_logs() as logs:
        run_stage(a, BY_NAME["export"], GO)
    assert frozen and exported == [2]
    assert [e["lease"] for e in events(logs, "lease.fenced")] == ["export"]
    assert len(events(logs, "annotation.exported")) == 2, "b's, once each"
    assert {r.status for r in a.state.recordings.all()} == {Status.EXPORTED}
    for rec in a.state.recordings.all():
        _, meta = storage.head("b", rec.key.replace(".mp3", ".transcript.txt")) or ("", {})
        assert meta[outputs.META_ANNOTATION] == str(rec.annotation_id)


def test_a_stage_whose_lease_was_taken_before_it_wrote_is_given_up_and_counted(tmp_path: Path) -> None:
    a, *_ = services(tmp_path, instance={"name": "a"})
    b = second_instance(a, tmp_path, "b")
    metrics = Metrics()

    def frozen_then_write() -> int:
        expire_lease(a, "export")
        assert b.instance.may_run("export")
        a.state.cursors.set("export:1", "written by a stale holder")
        return 1

    with capture_logs() as logs:
        run = run_stage(a, BY_NAME["export"], GO, work=frozen_then_write)
    for e in logs:
        metrics.observe(e["log_level"], e["event"], e)
    assert (run.count, run.ok) == (0, True) and a.state.cursors.get("export:1") is None
    assert "export" not in a.instance.holds
    assert 'syncd_fenced_total{lease="export"} 1.0' in metrics.render().decode()


def test_reviews_recorded_in_a_batch_that_never_commits_are_not_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder dies (or is fenced) before its batch of records commits: it logs no ``annotation.exported``, so
    the holder that exports them again counts each review once."""
    svc, ls, storage, engine = services(tmp_path)
    transcribed_with(svc, storage, engine, {"one.mp3": 0.5, "two.mp3": 0.6})
    import_.run(svc, GO)
    for task_id in list(ls.tasks):
        ls.annotate(task_id, f"reviewed {task_id}")
    done = export.Failures.done

    def dies_before_the_commit(self: export.Failures, task_id: int) -> None:
        done(self, task_id)
        if task_id == max(ls.tasks):
            raise RuntimeError("killed")

    monkeypatch.setattr(export.Failures, "done", dies_before_the_commit)
    with capture_logs() as logs, pytest.raises(RuntimeError):
        export.run(svc, GO)
    assert not events(logs, "annotation.exported")
    assert {r.status for r in svc.state.recordings.all()} == {Status.IMPORTED}
    monkeypatch.setattr(export.Failures, "done", done)
    with capture_logs() as logs:
        export.run(svc, GO)
    assert sorted(e["task"] for e in events(logs, "annotation.exported")) == sorted(ls.tasks)


def test_a_webhook_delivered_to_any_instance_is_exported_by_the_export_holder(tmp_path: Path) -> None:
    """b received the delivery but holds no export lease; a holds it: a's webhook job exports the task once, and the
    delivery leaves the state. b's own run of the same job does nothing (its stage would be fenced)."""
    a, b, storage, task_id = reviewed_on_two_instances(tmp_path)
    b.state.export_queue.queue_webhook(task_id, 1)
    assert run_stage(b, BY_NAME["export"], GO, work=lambda: export.webhooked(b, GO)).count == 0
    assert a.state.export_queue.webhook_backlog()[0] == 1
    with capture_logs() as logs:
        run = run_stage(a, BY_NAME["export"], GO, work=lambda: export.webhooked(a, GO))
    assert run.count == 1 and storage.text("b", "one.transcript.txt") == "reviewed by a person\n"
    [done] = events(logs, "webhook.exported")
    assert (done["task"], done["written"]) == (task_id, True) and done["seconds"] >= 0
    assert a.state.export_queue.webhook_deliveries() == [] and a.state.export_queue.queued(1) == []


def test_a_webhook_task_that_fails_joins_the_export_queue_and_one_that_is_gone_leaves(tmp_path: Path) -> None:
    svc, ls, storage, engine = services(tmp_path)
    transcribed_with(svc, storage, engine, {"one.mp3": 0.5})
    assert run_stage(svc, BY_NAME["import"], GO).count == 1
    [task_id] = ls.tasks
    ls.tasks[task_id]["annotations"] = [{"id": 1, "result": "not a result list", "was_cancelled": False}]
    svc.state.export_queue.queue_webhook(task_id, None)
    svc.state.export_queue.queue_webhook(999, 1)
    with capture_logs() as logs:
        run = run_stage(svc, BY_NAME["export"], GO, work=lambda: export.webhooked(svc, GO))
    assert run.ok and run.count == 0
    assert [e["task"] for e in events(logs, "export.failed")] == [task_id]
    assert [e["task"] for e in events(logs, "export.unknown_task")] == [999]
    assert svc.state.export_queue.webhook_deliveries() == [] and svc.state.export_queue.queued(1) == [task_id]
