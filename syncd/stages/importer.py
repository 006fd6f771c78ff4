"""Import: transcribed recordings become Label Studio tasks, in bulk, lowest confidence first, exactly once.

Exactly once whatever the state knows (restored from a backup, lost, behind after a power cut): every task carries
``data.syncd_id``, and every run first reconciles with Label Studio. A cursor on the highest task id seen in the
project, ours or not, bounds that read to the tasks created since the last look; each task seen is remembered, and a
recording whose task is already there is adopted (``task.recovered``) instead of imported, whenever it becomes ready.

Imports are paced (under `syncd run`): a batch goes when it is full or when the oldest transcribed recording has waited
``schedule.import_interval``, so a trickle of recordings becomes one import per interval, as Label Studio advises,
while the job itself ticks every ``TICK`` seconds at the cost of two local queries. New tasks go to the current project;
once it is full (or its period is over) the next one is created (``Services.next_project``) and filled.

A batch whose request timed out, failed with HTTP 5xx or was cut off by a crash may still land: its rows stay
``importing`` ("in doubt") until Label Studio is asked again ``labelstudio.import_settle`` seconds later, and only the
recordings it still lacks then are imported again.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError

from syncd.cluster import PROJECT
from syncd.faults import fault_point
from syncd.formats import redaction
from syncd.labelstudio import layouts
from syncd.labelstudio.client import LabelStudioError
from syncd.log import describe_error
from syncd.recording import Recording, Status
from syncd.services import Services
from syncd.stages import split
from syncd.state import StateStore
from syncd.units import unit_of

TICK = 5.0
"""Seconds between two looks at whether a batch is due (the import job's tick when ``import_interval`` is longer)."""

OVERLAP = 5.0
"""Seconds within which a task id handed out earlier may still become visible after a higher one (a database that
numbers rows before it commits them, like PostgreSQL): the reconciling read settles past an id only this long after
it first saw it."""


def task_for(rec: Recording, layout: str, model_version: str, flag_words_below: float = 0.0) -> dict[str, Any]:
    """The task: the audio, what reviewers read in the Data Manager and the header (the object key, not a URI;
    numeric confidence, duration and the number of words flagged), and our identity (``syncd_id``, ``etag``)."""
    transcript = rec.transcript
    assert transcript is not None
    confidence = transcript.confidence
    redacted = redaction(transcript) is not None
    flag_below = flag_words_below if layout == "segments" else 0.0
    flagged = len(layouts.flagged_words(transcript, flag_below))
    unit = unit_of(transcript)
    to_check = layouts.segments_to_check(transcript) + (
        f" · {flagged} word{'s' if flagged > 1 else ''} marked" if flagged else ""
    )
    return {
        "data": {
            "audio": rec.uri,
            "key": f"{unit['of']} ({unit['label']})" if unit else rec.key,
            "asr_confidence": None if confidence is None else round(confidence, 3),
            "duration": None if transcript.duration is None else round(transcript.duration, 1),
            "flagged_words": flagged,
            "segments_to_check": to_check + (" · PII redacted" if redacted else ""),
            "redacted": redacted,
            "language": transcript.language,
            "asr_engine": transcript.engine,
            "bucket": rec.bucket,
            "source": rec.uri,
            "etag": rec.etag,
            "syncd_id": rec.syncd_id,
        },
        "predictions": [
            {
                "model_version": model_version,
                "score": confidence if confidence is not None else 0.0,
                "result": layouts.prediction_result(transcript, layout, flag_below),
            }
        ],
    }


def task_of(svc: Services, rec: Recording) -> dict[str, Any]:
    """The task syncd imports for this recording, with the current settings and model version."""
    settings = svc.settings
    return task_for(rec, settings.labelstudio.layout, svc.transcriber.model_version, settings.review.flag_words_below)


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).isoformat(timespec="seconds")


# --- the task-id cursor: what Label Studio holds, read a little at a time -------------------------------------


@dataclass(frozen=True)
class TaskCursor:
    """Reads start above ``floor``; ``marks`` are higher ids seen (with when) that have not settled yet."""

    floor: int = 0
    marks: tuple[tuple[int, float], ...] = ()

    @staticmethod
    def name(project: int) -> str:
        return f"import-tasks:{project}"

    @property
    def high(self) -> int:
        return max([self.floor, *(mark for mark, _ in self.marks)])

    @classmethod
    def load(cls, raw: str | None) -> TaskCursor:
        if not raw:
            return cls()
        doc = json.loads(raw)
        return cls(int(doc["floor"]), tuple((int(m), float(t)) for m, t in doc["marks"]))

    def dump(self) -> str:
        return json.dumps({"floor": self.floor, "marks": [list(m) for m in self.marks]})

    def after_read(self, found: Iterable[int], started: float, finished: float) -> TaskCursor:
        """The cursor after a read of everything above ``floor`` that ran from ``started`` to ``finished``."""
        newest = max(found, default=0)
        marks = [*self.marks, (newest, finished)] if newest > self.high else list(self.marks)
        floor = max([self.floor, *(mark for mark, seen in marks if started - seen >= OVERLAP)])
        return TaskCursor(floor, tuple(m for m in marks if m[0] > floor))

    def extended(self, task_ids: list[int]) -> TaskCursor:
        """After our own import: ids exactly ``high``+1..``high``+n hold nobody else's task, so they need no read."""
        high = self.high
        if sorted(task_ids) != list(range(high + 1, high + len(task_ids) + 1)):
            return self
        if not self.marks:
            return TaskCursor(high + len(task_ids))
        return TaskCursor(self.floor, (*self.marks, (high + len(task_ids), self.marks[-1][1])))


def see_new_tasks(svc: Services, project: int) -> dict[int, str | None]:
    """Read the tasks created since the last look (ours or not) and remember them: one request when nothing is new.
    Export calls it too, before it counts the project's tasks."""
    name = TaskCursor.name(project)
    floor = TaskCursor.load(svc.state.cursor(name)).floor
    started = time.time()
    found = svc.labelstudio.new_tasks(project, floor)
    finished = time.time()
    _remember(svc, project, found)
    svc.state.change_cursor(name, lambda raw: TaskCursor.load(raw).after_read(found, started, finished).dump())
    return found


def _remember(svc: Services, project: int, found: dict[int, str | None]) -> None:
    added = set(svc.state.note_tasks(project, found))
    sids = {sid for task_id, sid in found.items() if sid and task_id in added}
    if not sids:
        return
    recs = svc.state.by_syncd_ids(sorted(sids))
    for task_id in sorted(added):
        rec = recs.get(found[task_id] or "")
        if rec is not None and rec.task_id is not None and rec.task_id != task_id:
            svc.log.warning(
                "task.duplicate", task=task_id, kept=rec.task_id, recording=rec.id, bucket=rec.bucket, key=rec.key
            )


def _adopt(svc: Services, project: int) -> int:
    """Recordings waiting to be imported whose task Label Studio already holds become ``imported`` with it."""
    adopted: list[tuple[Recording, int]] = []
    for rec, task_id in svc.state.adoptable(project):
        fields: dict[str, Any] = {"task_id": task_id, "project_id": project, "reason": None, "next_attempt_at": 0}
        fields |= {"imported_at": time.time()}
        if svc.state.move(rec.id, rec.status, Status.IMPORTED, **fields):
            svc.log.info("task.recovered", recording=rec.id, task=task_id, bucket=rec.bucket, key=rec.key)
            adopted.append((rec, task_id))
    _restore_predictions(svc, project, adopted)
    return len(adopted)


def _restore_predictions(svc: Services, project: int, adopted: list[tuple[Recording, int]]) -> None:
    """An imported or adopted task may lack its prediction. Label Studio 1.23 drops all of a batch's predictions when
    it cannot store one of them, commits the tasks all the same and answers HTTP 500 (the batch is then in doubt, and
    its tasks are adopted with no score), and has been seen to commit a batch's tasks without theirs: reviewers would
    not see them least-confident-first. One read finds them and they get their prediction; a read or an addition
    that fails is done again by the next import run (``_unchecked``)."""
    if not adopted:
        return
    left: list[int] = []
    try:
        lacking = svc.labelstudio.without_predictions(project, [task_id for _, task_id in adopted])
    except Exception as exc:
        _unchecked(svc, project, [task_id for _, task_id in adopted], exc)
        return
    for rec, task_id in adopted:
        if task_id not in lacking:
            continue
        ids = {"recording": rec.id, "task": task_id, "bucket": rec.bucket, "key": rec.key}
        try:
            svc.labelstudio.add_predictions(task_id, task_of(svc, rec)["predictions"])
        except Exception as exc:
            svc.log.error("task.prediction_missing", error=describe_error(exc), **ids)
            left.append(task_id)
            continue
        svc.log.warning("task.prediction_restored", **ids)
    if left:
        _unchecked(svc, project, left, None)


def unchecked_name(project: int) -> str:
    return f"import-predictions-unchecked:{project}"


def _unchecked(svc: Services, project: int, task_ids: list[int], exc: Exception | None) -> None:
    """Tasks whose predictions could not be checked or added: the lowest of their ids is kept in the state, and
    every import run checks the project's tasks from there again until it succeeds, so no task keeps lacking its
    prediction (and its place in the least-confident-first order) because Label Studio was down at the wrong time."""
    low = min(task_ids)
    svc.state.change_cursor(unchecked_name(project), lambda raw: str(min(low, int(raw)) if raw else low))
    if exc is not None:
        svc.log.warning("import.predictions_unchecked", project=project, tasks=len(task_ids), error=describe_error(exc))


def _recheck_predictions(svc: Services, project: int) -> None:
    """Check again the tasks a failed check left, from the lowest of them on (their recordings' tasks)."""
    low = svc.state.cursor(unchecked_name(project))
    if low is None:
        return
    svc.state.change_cursor(unchecked_name(project), lambda raw: None if raw == low else raw)
    tasks = {task_id: rec_id for task_id, rec_id in svc.state.project_tasks(project).items() if task_id >= int(low)}
    _restore_predictions(svc, project, [(svc.state.get(rec_id), task_id) for task_id, rec_id in sorted(tasks.items())])


# --- imports in doubt ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Doubt:
    """Batches sent whose outcome is unknown. Any of their tasks has an id above ``floor``; Label Studio is asked
    again at ``until``; ``in_flight`` is set while a request is out, so finding it set at start means a crash."""

    floor: int
    until: float | None = None
    reason: str = ""
    in_flight: bool = False

    @staticmethod
    def name(project: int) -> str:
        return f"import-doubt:{project}"

    @classmethod
    def load(cls, raw: str | None) -> Doubt | None:
        return cls(**json.loads(raw)) if raw else None

    def dump(self) -> str:
        return json.dumps(self.__dict__)


def in_doubt(state: StateStore) -> dict[str, Any] | None:
    """Recordings whose import is in doubt, why, and when Label Studio is asked again (for `/healthz`)."""
    waiting = state.count(Status.IMPORTING)
    doubts = [d for d in map(Doubt.load, state.cursors("import-doubt:").values()) if d and d.until]
    if not waiting or not doubts:
        return None
    first = min(doubts, key=lambda d: d.until or 0)
    return {"recordings": waiting, "reason": first.reason, "retry_at": first.until}


def _sending(project: int, svc: Services) -> None:
    """Before a batch goes out: whatever happens to it, a later read from ``floor`` finds its tasks."""
    floor = TaskCursor.load(svc.state.cursor(TaskCursor.name(project))).floor

    def begin(raw: str | None) -> str:
        doubt = Doubt.load(raw)
        if doubt is None:
            return Doubt(floor, in_flight=True).dump()
        return replace(doubt, floor=min(doubt.floor, floor), in_flight=True).dump()

    svc.state.change_cursor(Doubt.name(project), begin)


def _enter_doubt(svc: Services, project: int, reason: str, floor: int = 0) -> Doubt:
    """Every ``importing`` row waits ``import_settle`` seconds, with the reason shown in `syncd status`."""
    until = time.time() + svc.settings.labelstudio.import_settle

    def wait(raw: str | None) -> str:
        old = Doubt.load(raw) or Doubt(floor)
        return Doubt(old.floor, max(old.until or 0, until), reason).dump()

    doubt = Doubt.load(svc.state.change_cursor(Doubt.name(project), wait))
    assert doubt is not None and doubt.until is not None
    rows = svc.state.due(Status.IMPORTING, limit=100_000)
    note = f"import in doubt ({reason}); Label Studio is asked again at {_iso(doubt.until)}"
    with svc.state.batch():
        for rec in rows:
            svc.state.update(rec.id, reason=note, next_attempt_at=doubt.until)
    svc.log.warning("import.in_doubt", project=project, recordings=len(rows), reason=reason, retry_at=_iso(doubt.until))
    return doubt


def _settle_doubt(svc: Services, project: int) -> int:
    """Rows still ``importing`` after adoption: wait while in doubt, then ask Label Studio again and re-queue only
    the recordings it proved to lack. Returns recordings adopted."""
    name = Doubt.name(project)
    doubt = Doubt.load(svc.state.cursor(name))
    waiting = svc.state.count(Status.IMPORTING)
    if not waiting:
        if doubt is not None:  # a run starts with no request out: a set in_flight is a crash whose batch landed
            svc.state.change_cursor(name, lambda _: None)
        return 0
    if doubt is None or doubt.until is None or doubt.in_flight:
        reason = "syncd stopped while an import request was out"
        doubt = _enter_doubt(svc, project, reason, doubt.floor if doubt else 0)
        if time.time() < (doubt.until or 0):
            return 0
    elif time.time() < doubt.until:
        svc.log.warning(
            "import.in_doubt", project=project, recordings=waiting, reason=doubt.reason, retry_at=_iso(doubt.until)
        )
        return 0
    _remember(svc, project, svc.labelstudio.new_tasks(project, doubt.floor))
    adopted = _adopt(svc, project)
    absent = [r.id for r in svc.state.due(Status.IMPORTING, limit=100_000)]
    requeued = svc.state.transition(absent, Status.IMPORTING, Status.TRANSCRIBED, reason=None, next_attempt_at=0)
    svc.state.change_cursor(name, lambda _: None)
    svc.log.info("import.doubt_resolved", project=project, adopted=adopted, reimport=len(requeued), reason=doubt.reason)
    return adopted


def reconcile(svc: Services, project: int) -> int:
    """Bring the state up to what Label Studio holds: new tasks seen, waiting recordings with a task adopted, doubt
    settled. Returns recordings adopted."""
    see_new_tasks(svc, project)
    return _adopt(svc, project) + _settle_doubt(svc, project)


def _not_sent(exc: Exception) -> bool:
    """Errors that prove Label Studio committed nothing: it refused the request (4xx) or was never reached."""
    if isinstance(exc, LabelStudioError):
        return exc.status is not None and exc.status < 500
    if isinstance(exc, requests.ConnectTimeout):
        return True
    cause = exc.args[0] if isinstance(exc, requests.ConnectionError) and exc.args else None
    return isinstance(getattr(cause, "reason", None), NewConnectionError)


# --- the stage ----------------------------------------------------------------------------------------------------


@dataclass
class _Batch:
    records: list[Recording]
    tasks: list[dict[str, Any]]
    started: float


def _now() -> float:
    return time.time()


def batch_due(svc: Services) -> bool:
    """A batch may go now: one is full, or the oldest waiting recording has waited ``import_interval`` (paced), or
    anything waits (`syncd once`)."""
    waiting = svc.state.count_due(Status.TRANSCRIBED)
    if not waiting:
        return False
    if not svc.paced or waiting >= svc.settings.labelstudio.import_batch_size:
        return True
    oldest = svc.state.oldest_ready()
    return oldest is not None and _now() - oldest >= svc.settings.schedule.import_interval


def _next_batch(svc: Services, project: int, room: int | None = None) -> _Batch | None:
    """The least confident transcribed recordings (a batch, at most ``room``), marked ``importing`` (the intent)
    before Label Studio sees them; None when no batch is due."""
    size = svc.settings.labelstudio.import_batch_size
    size = size if room is None else min(size, room)
    if size <= 0 or not batch_due(svc):
        return None
    minutes = svc.settings.review.max_task_minutes
    whole_up_to = minutes * 60 if minutes else None
    candidates = svc.state.due(Status.TRANSCRIBED, limit=size, least_confident_first=True, whole_up_to=whole_up_to)
    if not candidates:
        return None
    with svc.state.batch():
        marked = set(svc.state.transition([r.id for r in candidates], Status.TRANSCRIBED, Status.IMPORTING))
        _sending(project, svc)
    records = [r for r in candidates if r.id in marked]
    tasks = [task_of(svc, r) for r in records]
    return _Batch(records, tasks, time.monotonic())


def _release(svc: Services, batch: _Batch) -> None:
    svc.state.transition([r.id for r in batch.records], Status.IMPORTING, Status.TRANSCRIBED)


def _landed(raw: str | None) -> str | None:
    """The doubt record once no request is out."""
    doubt = Doubt.load(raw)
    return None if doubt is None else replace(doubt, in_flight=False).dump()


def _failed(svc: Services, project: int, batch: _Batch, exc: Exception) -> None:
    if _not_sent(exc):
        _release(svc, batch)
        svc.state.change_cursor(Doubt.name(project), _landed)
        return
    _enter_doubt(svc, project, f"{type(exc).__name__}: {exc}"[:300])


def _commit(svc: Services, project: int, batch: _Batch, task_ids: list[int]) -> int:
    fault_point("import.after_labelstudio")
    moved = []
    with svc.state.batch():
        for rec, task_id in zip(batch.records, task_ids, strict=True):
            fields = {"task_id": task_id, "project_id": project, "reason": None, "imported_at": time.time()}
            if svc.state.move(rec.id, Status.IMPORTING, Status.IMPORTED, **fields):
                moved.append((rec, task_id))
        svc.state.note_tasks(project, {t: r.syncd_id for r, t in zip(batch.records, task_ids, strict=True)})
        svc.state.change_cursor(TaskCursor.name(project), lambda raw: TaskCursor.load(raw).extended(task_ids).dump())
    for rec, task_id in moved:
        svc.log.info("task.imported", recording=rec.id, task=task_id, bucket=rec.bucket, key=rec.key, score=rec.score)
    _restore_predictions(svc, project, moved)  # one read per batch: Label Studio has committed tasks without theirs
    seconds = round(time.monotonic() - batch.started, 3)
    svc.log.info("import.batch", project=project, tasks=len(task_ids), seconds=seconds)
    return len(moved)


def _finish(svc: Services, project: int) -> None:
    """After a run that raised nothing: no request is out; the doubt record goes once no row is left in doubt."""

    svc.state.change_cursor(
        Doubt.name(project), lambda raw: _landed(raw) if svc.state.count(Status.IMPORTING) else None
    )


def _import(svc: Services, project: int, stop: threading.Event, room: int) -> int:
    """Up to ``room`` tasks into ``project``. One request is in flight at a time (Label Studio serializes imports;
    concurrent ones only contend), but the next batch is built and the previous one committed while Label Studio
    works, so our own cost hides behind its."""
    imported = 0
    with ThreadPoolExecutor(1, thread_name_prefix="import") as pool:
        in_flight: tuple[_Batch, Future[list[int]]] | None = None
        while True:
            batch = None if stop.is_set() else _next_batch(svc, project, room)
            room -= len(batch.records) if batch else 0
            done = None
            if in_flight:
                try:
                    done = (in_flight[0], in_flight[1].result())
                except Exception as exc:
                    if batch:
                        _release(svc, batch)
                    _failed(svc, project, in_flight[0], exc)
                    raise
            in_flight = (batch, pool.submit(svc.labelstudio.import_tasks, project, batch.tasks)) if batch else None
            if done:
                imported += _commit(svc, project, *done)
            if in_flight is None:
                break
    _finish(svc, project)
    return imported


def _reconcile_all(svc: Services) -> int:
    """Reconcile every project syncd writes to (a recording's task may be in any of them: an older state, a crash
    around a rollover); settle doubt where a batch was in doubt. Returns recordings adopted."""
    adopted = 0
    doubtful = [p for p in svc.projects() if svc.state.cursor(Doubt.name(p))]
    for project in svc.projects():
        see_new_tasks(svc, project)
        adopted += _adopt(svc, project)
        _recheck_predictions(svc, project)
    for project in doubtful or ([svc.project_id] if svc.state.count(Status.IMPORTING) else []):
        adopted += _settle_doubt(svc, project)
    return adopted


def run(svc: Services, stop: threading.Event) -> int:
    """Reconcile with Label Studio, then import the transcribed recordings in batches, least confident first, into
    the current project, rolling over to the next one when it is full; returns tasks created or adopted. Paced, a
    tick asks nothing of Label Studio while no batch is due and none is in doubt. Recordings too long for one task
    are split into review units first (``syncd.stages.split``)."""
    split.run(svc, stop)
    if svc.paced and not svc.state.count(Status.IMPORTING) and not batch_due(svc):
        return 0
    imported = _reconcile_all(svc)
    into: set[int] = set()
    while not stop.is_set():
        reason = svc.rollover_due()
        if reason and svc.state.count(Status.IMPORTING):
            break  # a batch in doubt settles in its own project first
        if reason and not batch_due(svc):
            break
        if reason:
            with svc.instance.exclusively(PROJECT, stop.is_set):
                svc.next_project(reason)
            see_new_tasks(svc, svc.project_id)
        project, room = svc.project_id, svc.room()
        count = _import(svc, project, stop, room)
        imported += count
        if count:
            into.add(project)
        if svc.room() > 0 or not batch_due(svc):
            break
    for project in sorted(into):
        svc.labelstudio.set_model_version(project, svc.transcriber.model_version)
    return imported
