"""Export: reviewed tasks become corrected transcripts next to the audio, in every configured format.

Each cycle reads only the tasks past a keyset cursor (updated_at, id), never the whole project, plus the few tasks in
the export queue (failed ones, and ones whose audio came back). The newest submitted annotation wins (skipped ones
never count; drafts are not annotations); an edit re-writes the outputs; a deleted annotation or task is logged and its
transcript kept. Every output carries its annotation's version (updated_at, id) and the audio ETag it describes in S3
metadata and is put with If-None-Match / If-Match, so of two daemons racing, an older review never overwrites a newer
one, and nothing is written unless the audio in S3 is still the version the review describes. A task whose export keeps
failing is parked with its reason after ``output.export_attempts`` cycles; it never holds the cursor.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Any

from syncd import exitcodes, vocabulary
from syncd.formats import Review, redaction, render, word_errors
from syncd.labelstudio import LabelStudioError, layouts, ls_datetime, ls_time
from syncd.log import describe_error
from syncd.probe import classify
from syncd.recording import Recording, Status
from syncd.services import Services
from syncd.stages import importer
from syncd.storage import Storage, WriteConflictError, output_base
from syncd.transcript import Segment
from syncd.units import shift

# A task saved just before the newest one we read may commit after our read; the cursor re-reads this much until a
# read has started this long after the cursor moved (then it is "settled" and an idle cycle reads nothing twice).
OVERLAP = timedelta(seconds=5)
# Conditional puts retried when another writer keeps winning the race (each retry re-reads the object's version).
_MAX_RACES = 5

META_ANNOTATION = "syncd-annotation"
META_UPDATED = "syncd-updated-at"
META_SOURCE = "syncd-source-etag"
META_REDACTED = "syncd-redacted"

Version = tuple[str, int]
"""(annotation updated_at as an ls_time string, annotation id): larger is newer."""
Position = tuple[str, int]
"""(task updated_at as an ls_time string, task id): where the export cursor stands."""


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
    """One review rendered and ready to write; ``base`` is the output key without its format."""

    rec: Recording
    review: Review
    version: Version
    bodies: dict[str, bytes]
    base: str
    task_updated_at: str = ""


@dataclass(frozen=True)
class Written:
    """What became of each format: put now, already there from this same review, or kept (a newer one is there).
    ``audio_etag`` is set (and nothing written) when S3 holds another version of the audio than the review's."""

    formats: list[str]
    current: list[str]
    kept_newer: list[str]
    seconds: float
    audio_etag: str | None = None


# --- cursor ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """The newest (task ``updated_at``, id) read, when it was first read (local clock) and whether it has settled.

    The id makes it a keyset position: Label Studio stamps one ``updated_at`` on every task a Data Manager action
    touches, and a cursor on the time alone re-read such a group forever once it filled a page."""

    at: str
    seen: float = 0.0
    settled: bool = True
    id: int = 0

    @classmethod
    def load(cls, raw: str | None) -> Cursor:
        if not raw:
            return cls(ls_time(0))
        if not raw.startswith("{"):
            return cls(raw, settled=False)
        doc = json.loads(raw)
        return cls(str(doc["at"]), float(doc["seen"]), bool(doc["settled"]), int(doc.get("id", 0)))

    def dump(self) -> str:
        return json.dumps({"at": self.at, "id": self.id, "seen": self.seen, "settled": self.settled})

    @property
    def position(self) -> Position:
        return self.at, self.id

    @property
    def since(self) -> Position:
        """Where the next read starts: the position itself, or the overlap window before it while unsettled."""
        if self.settled:
            return self.position
        return ls_time(ls_datetime(self.at) - OVERLAP), 0

    def after_read(self, newest: Position, started: float, finished: float) -> Cursor:
        if newest > self.position:
            return Cursor(newest[0], finished, settled=False, id=newest[1])
        if not self.settled and started - self.seen >= OVERLAP.total_seconds():
            return Cursor(self.at, self.seen, settled=True, id=self.id)
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


def _review_log(svc: Services, rec: Recording, task: dict[str, Any], version: Version) -> Any:
    return svc.log.bind(task=task["id"], annotation=version[1], recording=rec.id, bucket=rec.bucket, key=rec.key)


def outputs_base(svc: Services, rec: Recording) -> str:
    """The output key without its format. Two audio keys sharing a stem in one folder (``a.wav``, ``a.mp3``) both
    keep their audio suffix (``a.wav.transcript.txt``), so neither review overwrites the other; ``output.naming =
    "key"`` always keeps it."""
    out = svc.settings.output
    base = output_base(rec.key, out.suffix)
    keep = out.naming == "key" or svc.state.stem_shared(rec.bucket, rec.key, base.removesuffix(out.suffix))
    return output_base(rec.key, out.suffix, keep_audio_suffix=True) if keep else base


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
        segments=tuple(
            layouts.corrected_segments(
                annotation.get("result") or [], asr, layout, log=_review_log(svc, rec, task, version)
            )
        ),
        project=int(task.get("project") or svc.project_id),
        task=int(task["id"]),
        annotation=version[1],
        annotator=_annotator(svc, annotation),
        created_at=moment(annotation.get("created_at")) or None,
        updated_at=version[0] or None,
        layout=layout,
    )
    if rec.parent_id is not None:  # a review unit: kept in the state and stitched, never written beside its clip
        return Export(rec, review, version, {}, "", moment(task.get("updated_at")))
    bodies = render(review, list(svc.settings.output.formats))
    return Export(rec, review, version, bodies, outputs_base(svc, rec), moment(task.get("updated_at")))


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
    "written" when put. ``fresh`` (never exported before) tries If-None-Match first and saves a HEAD. An output
    written for another version of the audio (``syncd-source-etag``) is older than any review of this one: the caller
    has just seen that this version is the one in S3."""
    current = None if fresh and storage.conditional else storage.head(bucket, key)
    for _ in range(_MAX_RACES):
        if current is not None and _same_source(current[1], meta) and stored_version(current[1]) >= version:
            return "current" if stored_version(current[1]) == version else "newer"
        try:
            storage.write(bucket, key, body, fmt, meta, if_match=current[0] if current else None, if_absent=not current)
            return "written"
        except WriteConflictError:
            current = storage.head(bucket, key)
    raise WriteConflictError(bucket, key)


def _same_source(stored: dict[str, str], meta: dict[str, str]) -> bool:
    return not meta.get(META_SOURCE) or stored.get(META_SOURCE, meta[META_SOURCE]) == meta[META_SOURCE]


def write_outputs(storage: Storage, export: Export) -> Written:
    """Write every format, unless S3 no longer holds the audio version the review describes (replaced or deleted
    since the scan; nothing is then written beside audio it does not describe)."""
    started = time.monotonic()
    rec, (updated, annotation) = export.rec, export.version
    audio = storage.etag(rec.bucket, rec.key)
    if audio != rec.etag:
        return Written([], [], [], round(time.monotonic() - started, 3), audio_etag=audio or "")
    meta = {META_ANNOTATION: str(annotation), META_UPDATED: updated, META_SOURCE: rec.etag}
    if redaction(export.review.asr):
        meta[META_REDACTED] = "PII"
    outcomes: dict[str, list[str]] = {"written": [], "current": [], "newer": []}
    for fmt in sorted(export.bodies, key=lambda f: f == "json"):  # json last: it marks a complete export
        key = f"{export.base}.{fmt}"
        fresh = rec.annotation_id is None
        outcome = put_if_newer(storage, rec.bucket, key, export.bodies[fmt], fmt, meta, export.version, fresh=fresh)
        outcomes[outcome].append(fmt)
    seconds = round(time.monotonic() - started, 3)
    return Written(outcomes["written"], outcomes["current"], outcomes["newer"], seconds)


# --- record: state and logs (main thread) -------------------------------------------------------------------------


def record(svc: Services, export: Export, done: Written) -> None:
    rec, review = export.rec, export.review
    if done.audio_etag is not None:
        svc.log.info(
            "annotation.stale_audio",
            task=review.task,
            recording=rec.id,
            annotation=review.annotation,
            bucket=rec.bucket,
            key=rec.key,
            etag=rec.etag,
            current_etag=done.audio_etag or None,
        )
        return
    errors, words = word_errors(review.text, review.asr.text)
    fields: dict[str, Any] = {
        "annotation_id": review.annotation,
        "annotation_updated_at": export.version[0],
        "exported_at": time.time(),
        "task_id": review.task,
        "annotator": review.annotator,
        "submitted_at": _epoch(review.created_at),
        "word_errors": errors,
        "reference_words": words,
    }
    ids = {"recording": rec.id, "task": review.task, "annotation": review.annotation, "bucket": rec.bucket}
    if rec.parent_id is not None:
        _record_unit(svc, export, fields, ids)
        return
    if rec.status in (Status.IMPORTED, Status.EXPORTED):
        svc.state.move(rec.id, rec.status, Status.EXPORTED, **fields)
    else:
        svc.state.update(rec.id, **fields)
    _note_added_words(svc, rec, review)
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
        review=rec.review_mode or "review",
        model=review.asr.model,
        language=review.asr.language or "",
        re_export=rec.annotation_id is not None,
        seconds=done.seconds,
        **ids,
    )


def _note_added_words(svc: Services, rec: Recording, review: Review) -> None:
    """The words this review added (the vocabulary counts them). A first review that added none writes nothing: most
    reviews add no word, and the state write would cost a transaction per exported review."""
    added = vocabulary.added_words(review.text, review.asr.text)
    if added or rec.annotation_id is not None:
        svc.state.set_added_words(rec.id, review.project, added)


def _record_unit(svc: Services, export: Export, fields: dict[str, Any], ids: dict[str, Any]) -> None:
    """A review unit's review: kept in the state on its recording's clock, which is marked to be stitched."""
    rec, review = export.rec, export.review
    kept = unit_review(list(review.segments), rec)
    if rec.status in (Status.IMPORTED, Status.EXPORTED):
        svc.state.store_unit_review(rec, rec.status, kept, **fields)
    else:
        svc.state.update(rec.id, review=kept, **fields)
    _note_added_words(svc, rec, review)
    svc.log.info(
        "unit.reviewed",
        key=rec.key,
        of=rec.parent_id,
        annotator=review.annotator,
        word_error_rate=review.word_error_rate,
        re_export=rec.annotation_id is not None,
        **ids,
    )


def unit_review(segments: list[Segment], unit: Recording) -> str:
    """A unit's reviewed segments, moved to its recording's clock, as the state keeps them."""
    start = unit.unit_start or 0.0
    return json.dumps([_segment_fields(shift(s, start)) for s in segments])


def _segment_fields(seg: Segment) -> dict[str, Any]:
    return {
        "start": seg.start,
        "end": seg.end,
        "text": seg.text,
        "speaker": seg.speaker,
        "confidence": seg.confidence,
        "asr_text": seg.asr_text,
    }


def _epoch(moment: str | None) -> float | None:
    """An ls_time string as Unix seconds (for the report's review latency)."""
    if not moment:
        return None
    try:
        return ls_datetime(moment).timestamp()
    except ValueError:
        return None


def export_task(svc: Services, task: dict[str, Any]) -> bool:
    """Export one task now (the webhook path); True when outputs were written."""
    export = plan(svc, task)
    if export is None:
        return False
    done = write_outputs(svc.storage, export)
    record(svc, export, done)
    svc.state.unqueue_exports([int(task["id"])])
    return bool(done.formats)


# --- the stage ----------------------------------------------------------------------------------------------------


def run(svc: Services, stop: threading.Event) -> int:
    """Export from every project syncd writes to or reads from (one cursor each), the current one last; returns
    transcripts written. The older projects' task counts come in one request for all of them, so an idle older
    project costs one read of its changed tasks."""
    projects = svc.projects()
    older = [p for p in projects if p != svc.project_id]
    counts = svc.labelstudio.task_counts(older) if older else {}
    written = 0
    for project in [*older, svc.project_id]:
        if stop.is_set():
            break
        written += export_project(svc, project, stop, counts.get(project))
    return written


def export_project(svc: Services, project: int, stop: threading.Event, count: int | None = None) -> int:
    """Export every task of one project changed since its cursor and every queued one, writing in parallel; returns
    transcripts written. A task that fails is queued (and parked after ``output.export_attempts`` cycles): the cursor
    moves on. ``count`` (an older project's task count, already read) skips the deletion check's own requests while
    the project holds the tasks seen and none above them was read."""
    name = f"export:{project}"
    raw = svc.state.cursor(name)
    cursor = Cursor.load(raw)
    started = time.time()
    newest = cursor.position
    failures = Failures(svc, project)
    parked = svc.state.parked_tasks(project)
    pending: list[tuple[Future[Written], Export]] = []
    read: set[int] = set()
    sweep = _sweep(svc, project, started, first_read=raw is None)
    missed, stopped = 0, False
    with ThreadPoolExecutor(svc.settings.output.write_workers, thread_name_prefix="export") as pool:
        for page, kind in _read_ahead(_pages(svc, project, cursor, sweep is Sweep.DUE)):
            if stop.is_set():
                stopped = True
                break  # the cursor moves only as far as the tasks read
            read.update(int(t["id"]) for t in page)
            recs = svc.state.by_syncd_ids([_syncd_id(t) for t in page])
            for task in page:
                task_id, updated = int(task["id"]), moment(task.get("updated_at"))
                if kind == "changed":
                    newest = max(newest, (updated, task_id))
                if parked.get(task_id, "") == updated:
                    continue  # parked, and unchanged since: it waits for `syncd retry` or an edit
                rec = recs.get(_syncd_id(task))
                try:
                    export = plan(svc, task, rec)
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
        svc.state.set_cursor(_sweep_name(project), str(started))
    if sweep is Sweep.DUE and not stopped:
        svc.log.info("export.swept", project=project, tasks=len(read), missed=missed)
    moved = cursor.after_read(newest, started, time.time())
    if moved != cursor:
        svc.state.set_cursor(name, moved.dump())
    high = importer.TaskCursor.load(svc.state.cursor(importer.TaskCursor.name(project))).high
    if count is None or count != svc.state.seen_task_count(project) or max(read, default=0) > high:
        check_deleted_tasks(svc, project)
    return written


def _sweep_name(project: int) -> str:
    return f"export-sweep:{project}"


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
    last = svc.state.cursor(_sweep_name(project))
    due = last is None or now - float(last) >= svc.settings.schedule.export_sweep_interval
    return Sweep.DUE if due else Sweep.NONE


def _pages(svc: Services, project: int, cursor: Cursor, sweep: bool = False) -> Iterator[Page]:
    """(page, kind): the changed tasks past the cursor ("changed"), the queued ones not read among them
    ("queued"), then, when a sweep is due, every reviewed task not read yet ("sweep")."""
    read: set[int] = set()
    since, after_id = cursor.since
    for page in svc.labelstudio.changed_task_pages(project, since, after_id):
        read.update(int(t["id"]) for t in page)
        yield page, "changed"
    queued = [task_id for task_id in svc.state.export_queue(project) if task_id not in read]
    tasks = []
    for task_id in queued:
        try:
            tasks.append(svc.labelstudio.task(task_id))
        except Exception as exc:
            if _not_found(exc):
                svc.log.warning("export.unknown_task", task=task_id, reason="queued task is gone from Label Studio")
                svc.state.unqueue_exports([task_id])
                continue
            raise
    if tasks:
        read.update(int(t["id"]) for t in tasks)
        yield tasks, "queued"
    if sweep:
        for page in svc.labelstudio.reviewed_task_pages(project):
            unread = [t for t in page if int(t["id"]) not in read]
            if unread:
                yield unread, "sweep"


def _not_found(exc: Exception) -> bool:
    return getattr(exc, "status_code", None) == 404 or (isinstance(exc, LabelStudioError) and "HTTP 404" in str(exc))


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
            svc.state.unqueue_exports(self.succeeded - set(self.failed))
            for task_id, (updated, rec, exc) in sorted(self.failed.items()):
                reason = describe_error(exc)
                transient = classify(exc) == exitcodes.UNAVAILABLE
                ids = {"task": task_id, "recording": rec.id if rec else None, "key": rec.key if rec else None}
                svc.log.error("export.failed", error=reason, transient=transient, **ids)
                rec_id = rec.id if rec else None
                parked = svc.state.queue_export(
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
    with svc.state.batch():
        for export, done in results:
            record(svc, export, done)
            failures.done(_task_id(export))
    return sum(bool(done.formats) for _, done in results)


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
