"""Export: reviewed tasks become corrected transcripts next to the audio, in every configured format.

The stage's steps sit beside it: ``export_plan`` (what a task's reviews call for), ``syncd.s3.outputs`` (the
compare-and-swap writes), ``export_record`` (state and logs), ``export_accepted`` (transcripts accepted without review),
``export_stitch`` (split recordings whose units are reviewed) and ``export_vocabulary`` (the reviewers' added words).
This module is the loop over Label Studio's changed tasks.

Each cycle reads only the tasks past a keyset cursor (updated_at, id), never the whole project, plus the few tasks in
the export queue (failed ones, and ones whose audio came back). The newest submitted annotation wins (skipped ones
never count; drafts are not annotations); an edit re-writes the outputs; a deleted annotation or task is logged and its
transcript kept. Every output carries its annotation's version (updated_at, id) and the audio ETag it describes in S3
metadata and is put with If-None-Match / If-Match, so of two daemons racing, an older review never overwrites a newer
one, and nothing is written unless the audio in S3 is still the version the review describes. A task whose export keeps
failing is parked with its reason after ``output.export_attempts`` cycles; it never holds the cursor.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from enum import Enum
from typing import Any

from syncd import errors
from syncd.domain.recording import Recording
from syncd.errors import classify
from syncd.labelstudio.client import not_found
from syncd.log import describe_error
from syncd.s3.outputs import Export, Written, write_outputs
from syncd.services import Services
from syncd.stages import export_accepted, export_stitch, export_vocabulary, tasks
from syncd.stages.export_cursor import Coverage, Cursor, Position, digest
from syncd.stages.export_plan import moment, plan, task_syncd_id
from syncd.stages.export_record import Held, record
from syncd.state import keys
from syncd.state.db import FencedError

READ_PAGE = 200
"""Tasks per read of changed tasks. Label Studio serves a page in about 4 ms a task (2 cores), so a page of 1000 held
the writers idle for 4 s before the first write and left the last page's writes as a tail after the last read; pages
of 200 keep reading, rendering and writing overlapped for about 1% more requests."""


def export_task(svc: Services, task: dict[str, Any]) -> bool:
    """Export one task now; True when outputs were written."""
    export = plan(svc, task)
    if export is None:
        return False
    svc.instance.sure("export", WRITE_MARGIN)
    done = write_outputs(svc.storage, export)
    record(svc, export, done)
    return bool(done.formats)


def webhooked(svc: Services, stop: threading.Event) -> int:
    """Export the tasks webhook deliveries asked for, oldest first; returns transcripts written. A delivery reaches
    whichever instance Label Studio calls and waits in the state (``queue_webhook``) for the export lease holder, so
    it is exported within a tick of the holder's webhook job however many instances there are. A task that fails
    joins the export queue with its reason, retried (and parked) as any other; the cursor's poll stays the safety net
    for a delivery never sent."""
    written = 0
    for delivery in svc.state.export_queue.webhook_deliveries():
        if stop.is_set():
            break
        task: dict[str, Any] | None = None
        try:
            task = svc.labelstudio.task(delivery.task)
            wrote = export_task(svc, task)
        except FencedError:
            raise
        except Exception as exc:
            if not_found(exc):
                svc.log.warning("export.unknown_task", task=delivery.task, reason="webhook task is gone")
                svc.state.export_queue.unqueue_webhook(delivery)
                continue
            if classify(exc) == errors.UNAVAILABLE:
                svc.log.warning("webhook.deferred", task=delivery.task, error=describe_error(exc))
                break  # the deliveries wait for the next tick (and the poll): Label Studio or S3 is down
            project = int(task["project"]) if task else delivery.project
            failures = Failures(svc, project)
            failures.add(delivery.task, moment(task.get("updated_at")) if task else "", None, exc)
            failures.commit()  # it leaves the webhook deliveries: retried (and parked) as a failed export
            continue
        svc.state.export_queue.unqueue_webhook(delivery)
        written += wrote
        seconds = round(max(0.0, time.time() - delivery.received), 3)
        svc.log.info("webhook.exported", task=delivery.task, written=wrote, seconds=seconds)
    return written


WRITE_MARGIN = 0.0
"""Seconds the export lease must outlast an output write beyond its usual validity: none. Outputs are conditional
writes carrying their annotation's version, so a write that lands after another instance took over never puts an
older review over a newer one; the re-check (``Instance.sure``) stops a holder that was frozen past its lease from
starting the page at all, and keeps the failover of a killed holder at one lease period."""


def run(svc: Services, stop: threading.Event) -> int:
    """The export stage: auto-accepted transcripts first (they need S3 only, so a Label Studio outage does not hold
    them), then reviews, then recordings whose review units are all reviewed, then the reviewers' vocabulary if they
    changed it."""
    written = export_accepted.run(svc, stop) + reviews(svc, stop) + export_stitch.run(svc, stop)
    export_vocabulary.refresh(svc)
    return written


def reviews(svc: Services, stop: threading.Event) -> int:
    """Export from every project syncd writes to or reads from (one cursor each), the current one last; returns
    transcripts written. The older projects' task counts come in one request for all of them, so an idle older
    project costs one read of its changed tasks."""
    projects = svc.projects.all()
    older = [p for p in projects if p != svc.projects.current]
    counts = svc.labelstudio.task_counts(older) if older else {}
    written = 0
    for project in [*older, svc.projects.current]:
        if stop.is_set():
            break
        written += export_project(svc, project, stop, counts.get(project))
    return written


def export_project(svc: Services, project: int, stop: threading.Event, count: int | None = None) -> int:
    """Export every task of one project changed since its cursor and every queued one, writing in parallel; returns
    transcripts written. A task that fails is queued (and parked after ``output.export_attempts`` cycles): the cursor
    moves on. ``count`` (an older project's task count, already read) skips the deletion check's own requests while
    the project holds the tasks seen and none above them was read."""
    name = keys.EXPORT.of(project)
    raw = svc.state.cursors.get(name)
    cursor = Cursor.load(raw)
    started = time.time()
    newest = cursor.position
    failures = Failures(svc, project)
    parked = svc.state.export_queue.parked_tasks(project)
    pending: list[tuple[Future[Written], Export]] = []
    read: set[int] = set()
    sweep = _sweep(svc, project, started, first_read=raw is None)
    missed, stopped = 0, False
    since, coverage = _read_from(svc, project, cursor)
    with ThreadPoolExecutor(svc.settings.output.write_workers, thread_name_prefix="export") as pool:
        for page, kind in _read_ahead(_pages(svc, project, since, sweep is Sweep.DUE)):
            if stop.is_set():
                stopped = True
                break  # the cursor moves only as far as the tasks read
            read.update(int(t["id"]) for t in page)
            svc.instance.sure("export", WRITE_MARGIN)  # this page's writes go out on authority checked now
            recs = svc.state.recordings.by_syncd_ids([task_syncd_id(t) for t in page])
            shared = _shared_stems(svc, recs.values())
            for task in page:
                task_id, updated = int(task["id"]), moment(task.get("updated_at"))
                if kind == "changed":
                    newest = max(newest, (updated, task_id))
                    coverage.add(task_id, updated)
                if parked.get(task_id, "") == updated:
                    continue  # parked, and unchanged since: it waits for `syncd retry` or an edit
                rec = recs.get(task_syncd_id(task))
                try:
                    export = plan(svc, task, rec, shared=(rec.bucket, rec.key) in shared if rec else None)
                except Exception as exc:
                    failures.add(task_id, updated, rec, exc)
                    continue
                if export is None:
                    failures.done(task_id)
                    continue
                if kind == "sweep":
                    missed += 1
                    svc.log.warning(
                        "export.missed", task=task_id, recording=export.rec.id, key=export.rec.key, updated_at=updated
                    )
                pending.append((pool.submit(write_outputs, svc.storage, export), export))
        written = _collect(svc, pending, failures)
    failures.commit()
    if sweep is not Sweep.NONE and not stopped:
        svc.state.cursors.set(_sweep_name(project), str(started))
    if sweep is Sweep.DUE and not stopped:
        svc.log.info("export.swept", project=project, tasks=len(read), missed=missed)
    moved = cursor.after_read(newest, started, time.time())
    moved = replace(moved, window=coverage.window_of(moved))
    if moved != cursor:
        svc.state.cursors.set(name, moved.dump())
    high = tasks.task_cursor(svc, project).high
    if count is None or count != svc.state.tasks.seen_task_count(project) or max(read, default=0) > high:
        check_deleted_tasks(svc, project)
    return written


def _shared_stems(svc: Services, recs: Iterable[Recording]) -> set[tuple[str, str]]:
    """(bucket, key) of this page's recordings whose stem another audio key shares: one query per bucket and 100
    keys, not one per task."""
    by_bucket: dict[str, list[str]] = {}
    if svc.settings.output.naming == "key":
        return set()  # every output keeps its audio suffix: nothing to look up
    for rec in recs:
        by_bucket.setdefault(rec.bucket, []).append(rec.key)
    return {
        (bucket, key) for bucket, keys in by_bucket.items() for key in svc.state.recordings.stems_shared(bucket, keys)
    }


def _sweep_name(project: int) -> str:
    return keys.EXPORT_SWEEP.of(project)


class Sweep(Enum):
    """Whether this run reads every reviewed task. Label Studio saves an annotation and then, in a second write,
    stamps its task's ``updated_at``; a Label Studio stopped between the two leaves a review the cursor never sees,
    so every ``schedule.export_sweep_interval`` the reviewed tasks are all read once."""

    NONE = "none"
    FIRST_READ = "first read"
    """The project's first export run reads every task anyway: it counts as the sweep."""
    DUE = "due"


def _sweep(svc: Services, project: int, now: float, *, first_read: bool) -> Sweep:
    if first_read:
        return Sweep.FIRST_READ
    last = svc.state.cursors.get(_sweep_name(project))
    due = last is None or now - float(last) >= svc.settings.schedule.export_sweep_interval
    return Sweep.DUE if due else Sweep.NONE


def _read_from(svc: Services, project: int, cursor: Cursor) -> tuple[Position, Coverage]:
    """Where this run reads changed tasks from, and what it will know of them: the cursor's position, or while it is
    unsettled the overlap window behind it, unless the window's ids and times alone match the digest the cursor
    keeps of it (no task committed late there, none changed)."""
    if cursor.settled:
        return cursor.position, Coverage(cursor.position, {})
    if cursor.window is not None:
        low, _ = cursor.window_start
        found = svc.labelstudio.updated_between(project, low, cursor.at)
        listed = {i: u for i, u in found if cursor.in_window((u, i))}
        if digest((u, i) for i, u in listed.items()) == cursor.window:
            return cursor.position, Coverage(cursor.window_start, listed)  # the listing covers the window
        svc.log.debug("export.window_changed", project=project, tasks=len(listed), at=cursor.at)
    return cursor.since, Coverage(cursor.since, {})


def _pages(svc: Services, project: int, start: Position, sweep: bool = False) -> Iterator[Page]:
    """(page, kind): the changed tasks past ``start`` ("changed"), the queued ones not read among them ("queued"),
    then, when a sweep is due, every reviewed task not read yet ("sweep")."""
    read: set[int] = set()
    since, after_id = start
    for page in svc.labelstudio.changed_task_pages(project, since, after_id, READ_PAGE):
        read.update(int(t["id"]) for t in page)
        yield page, "changed"
    queued = [task_id for task_id in svc.state.export_queue.queued(project) if task_id not in read]
    fetched = []
    for task_id in queued:
        try:
            fetched.append(svc.labelstudio.task(task_id))
        except Exception as exc:
            if not_found(exc):
                svc.log.warning("export.unknown_task", task=task_id, reason="queued task is gone from Label Studio")
                svc.state.export_queue.unqueue_exports([task_id])
                continue
            raise
    if fetched:
        read.update(int(t["id"]) for t in fetched)
        yield fetched, "queued"
    if sweep:
        for page in svc.labelstudio.reviewed_task_pages(project):
            unread = [t for t in page if int(t["id"]) not in read]
            if unread:
                yield unread, "sweep"


class Failures:
    """Tasks whose export failed this cycle, queued for the next; transient errors (unreachable, 5xx) are retried
    without spending the task's attempts, others park it after ``output.export_attempts``. Tasks done leave the
    queue."""

    def __init__(self, svc: Services, project: int) -> None:
        self.svc = svc
        self.project = project
        self.failed: dict[int, tuple[str, Recording | None, Exception]] = {}
        self.succeeded: set[int] = set()

    def add(self, task_id: int, updated: str, rec: Recording | None, exc: Exception) -> None:
        self.failed[task_id] = (updated, rec, exc)

    def done(self, task_id: int) -> None:
        self.succeeded.add(task_id)

    def commit(self) -> None:
        svc, limit = self.svc, self.svc.settings.output.export_attempts
        with svc.state.batch():
            svc.state.export_queue.unqueue_exports(self.succeeded - set(self.failed))
            for task_id, (updated, rec, exc) in sorted(self.failed.items()):
                reason = describe_error(exc)
                transient = classify(exc) == errors.UNAVAILABLE
                ids = {"task": task_id, "recording": rec.id if rec else None, "key": rec.key if rec else None}
                svc.log.error("export.failed", error=reason, transient=transient, **ids)
                rec_id = rec.id if rec else None
                parked = svc.state.export_queue.queue_export(
                    self.project,
                    task_id,
                    rec_id,
                    reason,
                    attempt=not transient,
                    park_after=limit,
                    task_updated_at=updated,
                )
                if parked and not transient:
                    svc.log.error("export.parked", reason=reason, attempts=limit, **ids)


Page = tuple[list[dict[str, Any]], str]
"""A page of tasks and how it was found: "changed", "queued" or "sweep"."""


def _read_ahead(pages: Iterator[Page]) -> Iterator[Page]:
    """Read Label Studio's next page while this thread renders and writes the last one: the read is server time
    (~1.5 ms a task), the rest is ours, and overlapping them nearly halves a large export. One page ahead at most;
    leaving early waits for that one read and no more."""
    with ThreadPoolExecutor(1, thread_name_prefix="export-read") as reader:
        ahead = reader.submit(next, pages, None)
        while (page := ahead.result()) is not None:
            ahead = reader.submit(next, pages, None)
            yield page


def _task_id(export: Export) -> int:
    assert export.review.task is not None, "a review export comes from a task"
    return export.review.task


def _collect(svc: Services, pending: list[tuple[Future[Written], Export]], failures: Failures) -> int:
    """Wait for the writes, then record them in one transaction (the state lock is not held while S3 works)."""
    results: list[tuple[Export, Written]] = []
    for future, export in pending:
        try:
            results.append((export, future.result()))
        except Exception as exc:
            failures.add(_task_id(export), export.task_updated_at, export.rec, exc)
    held = Held(svc.log)
    with svc.state.batch():
        for export, done in results:
            record(svc, export, done, held)
            failures.done(_task_id(export))
    held.flush()  # only once committed
    return sum(bool(done.formats) for _, done in results)


def check_deleted_tasks(svc: Services, project: int) -> None:
    """Notice tasks deleted in Label Studio: ours are logged and their transcripts stay. Each cycle costs one count and
    the read of tasks created since the last look (``tasks.see_new_tasks``), and compares the count with every task
    seen, ours or not; only when they differ is the id list read. Since a task another tool adds is seen before the
    comparison, it cannot hide a deletion made at the same time."""
    total = svc.labelstudio.task_count(project)
    tasks.see_new_tasks(svc, project)
    if total == svc.state.tasks.seen_task_count(project):
        return
    present = svc.labelstudio.task_index(project)
    seen = svc.state.tasks.seen_tasks(project)
    gone = sorted(set(seen) - set(present))
    held = svc.state.tasks.project_tasks(project)
    for task_id in gone:
        if task_id in held:
            _forget_task(svc, svc.state.recordings.get(held[task_id]), task_id)
    svc.state.tasks.forget_tasks(project, gone)
    svc.state.tasks.note_tasks(project, {task_id: sid for task_id, sid in present.items() if task_id not in seen})


def _forget_task(svc: Services, rec: Recording, task_id: int) -> None:
    kept = rec.annotation_id is not None
    svc.log.warning("task.deleted", task=task_id, recording=rec.id, bucket=rec.bucket, key=rec.key, kept=kept)
    outputs = "; its transcript is kept" if kept else ""
    svc.state.recordings.update(rec.id, task_id=None, reason=f"task {task_id} deleted in Label Studio{outputs}")
