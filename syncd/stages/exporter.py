"""Export: reviewed tasks become corrected transcripts next to the audio, in every configured format.

Each cycle reads only the tasks whose ``updated_at`` is past a cursor, never the whole project. The newest submitted
annotation wins (skipped ones never count; drafts are not annotations); an edit re-writes the outputs; a deleted
annotation or task is logged and its transcript kept. Every output carries its annotation's version (updated_at, id)
in S3 metadata and is put with If-None-Match / If-Match, so of two daemons racing, an older review never overwrites
a newer one.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from syncd.formats import Review, render
from syncd.labelstudio import layouts, ls_datetime, ls_time
from syncd.recording import Recording, Status
from syncd.services import Services
from syncd.stages import importer
from syncd.storage import Storage, WriteConflictError, output_key

# A task saved just before the newest one we read may commit after our read; the cursor re-reads this much until a
# read has started this long after the cursor moved (then it is "settled" and an idle cycle reads nothing twice).
OVERLAP = timedelta(seconds=5)
# Conditional puts retried when another writer keeps winning the race (each retry re-reads the object's version).
_MAX_RACES = 5

META_ANNOTATION = "syncd-annotation"
META_UPDATED = "syncd-updated-at"
META_SOURCE = "syncd-source-etag"

Version = tuple[str, int]
"""(annotation updated_at as an ls_time string, annotation id): larger is newer."""


def moment(value: Any) -> str:
    """Any Label Studio time as the one sortable ls_time form ("" when missing)."""
    return "" if value in (None, "") else ls_time(ls_datetime(value))


def version_of(annotation: dict[str, Any]) -> Version:
    return moment(annotation.get("updated_at") or annotation.get("created_at")), int(annotation.get("id") or 0)


def stored_version(metadata: dict[str, str]) -> Version:
    """The version an existing output was written from; outputs without one are older than any review."""
    return metadata.get(META_UPDATED, ""), int(metadata.get(META_ANNOTATION) or 0)


def newest_submitted(task: dict[str, Any]) -> dict[str, Any] | None:
    """The newest submitted annotation: skipped (cancelled) ones do not count."""
    submitted = [a for a in task.get("annotations") or [] if not a.get("was_cancelled") and a.get("result") is not None]
    return max(submitted, key=version_of, default=None)


@dataclass(frozen=True)
class Export:
    """One review rendered and ready to write."""

    rec: Recording
    review: Review
    version: Version
    bodies: dict[str, bytes]


@dataclass(frozen=True)
class Written:
    """What became of each format: put now, already there from this same review, or kept (a newer one is there)."""

    formats: list[str]
    current: list[str]
    kept_newer: list[str]
    seconds: float


# --- cursor ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """The newest task ``updated_at`` read, when it was first read (local clock) and whether it has settled."""

    at: str
    seen: float = 0.0
    settled: bool = True

    @classmethod
    def load(cls, raw: str | None) -> Cursor:
        if not raw:
            return cls(ls_time(0))
        if not raw.startswith("{"):
            return cls(raw, settled=False)
        doc = json.loads(raw)
        return cls(str(doc["at"]), float(doc["seen"]), bool(doc["settled"]))

    def dump(self) -> str:
        return json.dumps({"at": self.at, "seen": self.seen, "settled": self.settled})

    @property
    def since(self) -> str:
        return self.at if self.settled else ls_time(ls_datetime(self.at) - OVERLAP)

    def after_read(self, newest: str, started: float, finished: float) -> Cursor:
        if newest > self.at:
            return Cursor(newest, finished, settled=False)
        if not self.settled and started - self.seen >= OVERLAP.total_seconds():
            return Cursor(self.at, self.seen, settled=True)
        return self


# --- plan: what a task's reviews mean for its recording (main thread) ---------------------------------------------


def _annotator(svc: Services, annotation: dict[str, Any]) -> str | None:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        return str(who.get("email") or who.get("username") or who.get("id"))
    if who is None:
        return None
    try:
        return svc.labelstudio.user_email(int(who))
    except Exception as exc:  # a token without user rights: the id is still better than nothing
        svc.log.warning("annotator.unknown", user=who, error=str(exc))
        return str(who)


def _syncd_id(task: dict[str, Any]) -> str:
    return str((task.get("data") or {}).get("syncd_id", ""))


def plan(svc: Services, task: dict[str, Any], rec: Recording | None = None) -> Export | None:
    """The export a changed task calls for, or None (nothing submitted, or this version is written already)."""
    data = task.get("data") or {}
    rec = rec or svc.state.by_syncd_id(_syncd_id(task)) or svc.state.recording_for_task(int(task["id"]))
    if rec is None:
        svc.log.warning("export.unknown_task", task=task.get("id"), syncd_id=data.get("syncd_id"))
        return None
    annotations = task.get("annotations") or []
    ids = {int(a["id"]) for a in annotations if a.get("id") is not None}
    ids_log = {"task": task["id"], "recording": rec.id, "bucket": rec.bucket, "key": rec.key}
    if rec.annotation_id and rec.annotation_id not in ids:
        svc.log.warning("annotation.deleted", annotation=rec.annotation_id, kept=True, **ids_log)
    annotation = newest_submitted(task)
    if annotation is not None and rec.status == Status.SUPERSEDED:
        svc.log.info("annotation.stale_audio", annotation=annotation.get("id"), etag=rec.etag, **ids_log)
        return None
    if annotation is None:
        if annotations:
            svc.log.info("annotation.skipped", annotations=sorted(ids), **ids_log)
        return None
    version = version_of(annotation)
    if rec.annotation_id == version[1] and rec.annotation_updated_at == version[0]:
        return None
    return _render(svc, rec, task, annotation, version)


def _render(
    svc: Services, rec: Recording, task: dict[str, Any], annotation: dict[str, Any], version: Version
) -> Export:
    asr = rec.transcript
    if asr is None:
        raise ValueError(f"recording {rec.id} has a task but no transcript")
    layout = svc.settings.labelstudio.layout
    review = Review(
        bucket=rec.bucket,
        key=rec.key,
        etag=rec.etag,
        asr=asr,
        segments=tuple(layouts.corrected_segments(annotation.get("result") or [], asr, layout)),
        project=int(task.get("project") or svc.project_id),
        task=int(task["id"]),
        annotation=version[1],
        annotator=_annotator(svc, annotation),
        created_at=moment(annotation.get("created_at")) or None,
        updated_at=version[0] or None,
        layout=layout,
    )
    return Export(rec, review, version, render(review, list(svc.settings.output.formats)))


# --- write: compare-and-swap puts (worker threads, S3 only) ----------------------------------------------------


def put_if_newer(
    storage: Storage,
    bucket: str,
    key: str,
    body: bytes,
    fmt: str,
    meta: dict[str, str],
    version: Version,
    *,
    fresh: bool,
) -> str:
    """Put ``body`` unless the object there was written from the same review ("current") or a newer one ("newer");
    "written" when put. ``fresh`` (never exported before) tries If-None-Match first and saves a HEAD."""
    current = None if fresh else storage.head(bucket, key)
    for _ in range(_MAX_RACES):
        if current is not None and stored_version(current[1]) >= version:
            return "current" if stored_version(current[1]) == version else "newer"
        try:
            storage.write(bucket, key, body, fmt, meta, if_match=current[0] if current else None, if_absent=not current)
            return "written"
        except WriteConflictError:
            current = storage.head(bucket, key)
    raise WriteConflictError(bucket, key)


def write_outputs(storage: Storage, export: Export, suffix: str) -> Written:
    started = time.monotonic()
    rec, (updated, annotation) = export.rec, export.version
    meta = {META_ANNOTATION: str(annotation), META_UPDATED: updated, META_SOURCE: rec.etag}
    outcomes: dict[str, list[str]] = {"written": [], "current": [], "newer": []}
    for fmt in sorted(export.bodies, key=lambda f: f == "json"):  # json last: it marks a complete export
        key = output_key(rec.key, suffix, fmt)
        fresh = rec.annotation_id is None
        outcome = put_if_newer(storage, rec.bucket, key, export.bodies[fmt], fmt, meta, export.version, fresh=fresh)
        outcomes[outcome].append(fmt)
    seconds = round(time.monotonic() - started, 3)
    return Written(outcomes["written"], outcomes["current"], outcomes["newer"], seconds)


# --- record: state and logs (main thread) -------------------------------------------------------------------------


def record(svc: Services, export: Export, done: Written) -> None:
    rec, review = export.rec, export.review
    fields = {
        "annotation_id": review.annotation,
        "annotation_updated_at": export.version[0],
        "exported_at": time.time(),
        "task_id": review.task,
    }
    if rec.status in (Status.IMPORTED, Status.EXPORTED):
        svc.state.move(rec.id, rec.status, Status.EXPORTED, **fields)
    else:
        svc.state.update(rec.id, **fields)
    ids = {"recording": rec.id, "task": review.task, "annotation": review.annotation, "bucket": rec.bucket}
    if done.kept_newer and not done.formats:
        svc.log.info("annotation.superseded", key=rec.key, reason="outputs hold a newer review", **ids)
        return
    if not done.formats:
        svc.log.debug("annotation.already_exported", key=rec.key, **ids)
        return
    svc.log.info(
        "annotation.exported",
        key=rec.key,
        formats=sorted(done.formats),
        kept_newer=sorted(done.kept_newer),
        annotator=review.annotator,
        word_error_rate=review.word_error_rate,
        re_export=rec.annotation_id is not None,
        seconds=done.seconds,
        **ids,
    )


def export_task(svc: Services, task: dict[str, Any]) -> bool:
    """Export one task now (the webhook path); True when outputs were written."""
    export = plan(svc, task)
    if export is None:
        return False
    done = write_outputs(svc.storage, export, svc.settings.output.suffix)
    record(svc, export, done)
    return bool(done.formats)


# --- the stage ----------------------------------------------------------------------------------------------------


def run(svc: Services, stop: threading.Event) -> int:
    """Export every task changed since the cursor, writing in parallel; returns transcripts written."""
    project = svc.project_id
    name = f"export:{project}"
    cursor = Cursor.load(svc.state.cursor(name))
    started = time.time()
    newest, failed = cursor.at, 0
    suffix = svc.settings.output.suffix
    pending: list[tuple[Future[Written], Export]] = []
    with ThreadPoolExecutor(svc.settings.output.write_workers, thread_name_prefix="export") as pool:
        for page in _read_ahead(svc.labelstudio.changed_task_pages(project, cursor.since)):
            if stop.is_set():
                break  # the cursor moves only as far as the tasks read
            recs = svc.state.by_syncd_ids([_syncd_id(t) for t in page])
            for task in page:
                newest = max(newest, moment(task.get("updated_at")))
                try:
                    export = plan(svc, task, recs.get(_syncd_id(task)))
                except Exception as exc:
                    failed += 1
                    svc.log.error("export.failed", task=task.get("id"), error=str(exc))
                    continue
                if export is not None:
                    pending.append((pool.submit(write_outputs, svc.storage, export, suffix), export))
        written, errors = _collect(svc, pending)
    failed += errors
    if failed:
        svc.log.warning("export.cursor_held", cursor=cursor.at, failed=failed)
    else:
        moved = cursor.after_read(newest, started, time.time())
        if moved != cursor:
            svc.state.set_cursor(name, moved.dump())
    check_deleted_tasks(svc, project)
    return written


def _read_ahead(pages: Iterator[list[dict[str, Any]]]) -> Iterator[list[dict[str, Any]]]:
    """Read Label Studio's next page while this thread renders and writes the last one: the read is server time
    (~1.5 ms a task), the rest is ours, and overlapping them nearly halves a large export. One page ahead at most;
    leaving early waits for that one read and no more."""
    with ThreadPoolExecutor(1, thread_name_prefix="export-read") as reader:
        ahead = reader.submit(next, pages, None)
        while (page := ahead.result()) is not None:
            ahead = reader.submit(next, pages, None)
            yield page


def _collect(svc: Services, pending: list[tuple[Future[Written], Export]]) -> tuple[int, int]:
    """Wait for the writes, then record them in one transaction (the state lock is not held while S3 works)."""
    results: list[tuple[Export, Written]] = []
    failed = 0
    for future, export in pending:
        try:
            results.append((export, future.result()))
        except Exception as exc:
            failed += 1
            rec = export.rec
            svc.log.error("export.failed", task=export.review.task, recording=rec.id, key=rec.key, error=str(exc))
    with svc.state.batch():
        for export, done in results:
            record(svc, export, done)
    return sum(bool(done.formats) for _, done in results), failed


def check_deleted_tasks(svc: Services, project: int) -> None:
    """Notice tasks deleted in Label Studio: ours are logged and their transcripts stay. Each cycle costs one count and
    the read of tasks created since the last look (``importer.see_new_tasks``), and compares the count with every task
    seen, ours or not; only when they differ is the id list read. Since a task another tool adds is seen before the
    comparison, it cannot hide a deletion made at the same time."""
    total = svc.labelstudio.task_count(project)
    importer.see_new_tasks(svc, project)
    if total == svc.state.seen_task_count(project):
        return
    present = svc.labelstudio.task_index(project)
    seen = svc.state.seen_tasks(project)
    gone = sorted(set(seen) - set(present))
    held = svc.state.project_tasks(project)
    for task_id in gone:
        if task_id in held:
            _forget_task(svc, svc.state.get(held[task_id]), task_id)
    svc.state.forget_tasks(project, gone)
    svc.state.note_tasks(project, {task_id: sid for task_id, sid in present.items() if task_id not in seen})


def _forget_task(svc: Services, rec: Recording, task_id: int) -> None:
    kept = rec.annotation_id is not None
    svc.log.warning("task.deleted", task=task_id, recording=rec.id, bucket=rec.bucket, key=rec.key, kept=kept)
    outputs = "; its transcript is kept" if kept else ""
    svc.state.update(rec.id, task_id=None, reason=f"task {task_id} deleted in Label Studio{outputs}")
