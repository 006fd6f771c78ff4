"""Import: transcribed recordings become Label Studio tasks, in bulk, lowest confidence first, exactly once.

Exactly once whatever the state knows (restored from a backup, lost, behind after a power cut): every task carries
``data.syncd_id``, and every run first reconciles with Label Studio. A cursor on the highest task id seen in the
project, ours or not, bounds that read to the tasks created since the last look; each task seen is remembered, and a
recording whose task is already there is adopted (``task.recovered``) instead of imported, whenever it becomes ready.

Imports are paced (under `syncd run`): a batch goes when it is full or when no batch has gone for
``schedule.import_interval``, so a recording after a quiet spell is imported at once and a stream of them becomes one
import per interval, as Label Studio advises, while the job itself ticks every ``TICK`` seconds at the cost of two
local queries (the daemon also runs it as soon as a transcription completes). New tasks go to the current project;
once it is full (or its period is over) the next one is created (``Projects.next``) and filled.

A batch whose request timed out, failed with HTTP 5xx or was cut off by a crash may still land: its rows stay
``importing`` ("in doubt") until Label Studio is asked again ``labelstudio.import_settle`` seconds later, and only the
recordings it still lacks then are imported again.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError

from syncd.domain.recording import Recording, Status
from syncd.faults import fault_point
from syncd.labelstudio.client import LabelStudioError
from syncd.log import describe_error
from syncd.services import Services
from syncd.stages import import_doubt, import_reconcile, import_split, import_twins, tasks
from syncd.state import keys
from syncd.state.cluster import PROJECT

TICK = 5.0
"""Seconds between two looks at whether a batch is due (the import job's tick when ``import_interval`` is longer)."""


def _not_sent(exc: Exception) -> bool:
    """Errors that prove Label Studio committed nothing: it refused the request (4xx) or was never reached."""
    if isinstance(exc, LabelStudioError):
        return exc.status is not None and exc.status < 500
    if isinstance(exc, requests.ConnectTimeout):
        return True
    cause = exc.args[0] if isinstance(exc, requests.ConnectionError) and exc.args else None
    return isinstance(getattr(cause, "reason", None), NewConnectionError)


@dataclass
class Batch:
    records: list[Recording]
    tasks: list[dict[str, Any]]
    started: float


def _now() -> float:
    return time.time()


def batch_due(svc: Services) -> bool:
    """A batch may go now: one is full, or (paced) no batch has gone for ``import_interval``, or anything waits
    (`syncd once`). So a recording that arrives after a quiet spell is imported at once, and a stream of them makes
    at most one import per interval, as Label Studio advises."""
    waiting = svc.state.recordings.count_due(Status.TRANSCRIBED)
    if not waiting:
        return False
    if not svc.paced or waiting >= svc.settings.labelstudio.import_batch_size:
        return True
    last = svc.state.cursors.get(keys.IMPORT_LAST_BATCH.name)
    return last is None or _now() - float(last) >= svc.settings.schedule.import_interval


def next_batch(svc: Services, project: int, room: int | None = None) -> Batch | None:
    """The least confident transcribed recordings (a batch, at most ``room``), marked ``importing`` (the intent)
    before Label Studio sees them; None when no batch is due."""
    size = svc.settings.labelstudio.import_batch_size
    size = size if room is None else min(size, room)
    if size <= 0 or not batch_due(svc):
        return None
    minutes = svc.settings.review.max_task_minutes
    whole_up_to = minutes * 60 if minutes else None
    candidates = svc.state.recordings.due(
        Status.TRANSCRIBED, limit=size, least_confident_first=True, whole_up_to=whole_up_to
    )
    if not candidates:
        return None
    with svc.state.batch():
        marked = set(svc.state.recordings.transition([r.id for r in candidates], Status.TRANSCRIBED, Status.IMPORTING))
        import_doubt.sending(project, svc)
        svc.state.cursors.set(keys.IMPORT_LAST_BATCH.name, repr(_now()))
    records = [r for r in candidates if r.id in marked]
    return Batch(records, [tasks.task_of(svc, r, project) for r in records], time.monotonic())


def _release(svc: Services, batch: Batch) -> None:
    svc.state.recordings.transition([r.id for r in batch.records], Status.IMPORTING, Status.TRANSCRIBED)


def _failed(svc: Services, project: int, batch: Batch, exc: Exception) -> None:
    if _not_sent(exc):
        _release(svc, batch)
        svc.state.cursors.change(import_doubt.Doubt.name(project), import_doubt.landed)
        return
    import_doubt.enter_doubt(svc, project, describe_error(exc)[:300])


def _commit(svc: Services, project: int, batch: Batch, task_ids: list[int]) -> int:
    fault_point("import.after_labelstudio")
    moved = []
    with svc.state.batch():
        for rec, task_id in zip(batch.records, task_ids, strict=True):
            fields = {"task_id": task_id, "project_id": project, "reason": None, "imported_at": time.time()}
            if svc.state.recordings.move(rec.id, Status.IMPORTING, Status.IMPORTED, **fields):
                moved.append((rec, task_id))
        tasks.note_imported(svc, project, {t: r.syncd_id for r, t in zip(batch.records, task_ids, strict=True)})
    for rec, task_id in moved:
        svc.log.info("task.imported", recording=rec.id, task=task_id, bucket=rec.bucket, key=rec.key, score=rec.score)
    # one read per batch: Label Studio has committed tasks without theirs
    import_reconcile.restore_predictions(svc, project, moved)
    seconds = round(time.monotonic() - batch.started, 3)
    svc.log.info("import.batch", project=project, tasks=len(task_ids), seconds=seconds)
    return len(moved)


def _finish(svc: Services, project: int) -> None:
    """After a run that raised nothing: no request is out; the doubt record goes once no row is left in doubt."""

    svc.state.cursors.change(
        import_doubt.Doubt.name(project),
        lambda raw: import_doubt.landed(raw) if svc.state.recordings.count(Status.IMPORTING) else None,
    )


def _import(svc: Services, project: int, stop: threading.Event, room: int) -> int:
    """Up to ``room`` tasks into ``project``. One request is in flight at a time (Label Studio serializes imports;
    concurrent ones only contend), but the next batch is built and the previous one committed while Label Studio
    works, so our own cost hides behind its."""
    imported = 0
    with ThreadPoolExecutor(1, thread_name_prefix="import") as pool:
        in_flight: tuple[Batch, Future[list[int]]] | None = None
        while True:
            batch = None if stop.is_set() else next_batch(svc, project, room)
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
            if batch:
                fault_point("import.before_send")
                # The lease must outlast the request: a holder frozen since it chose the batch sends nothing.
                svc.instance.sure("import", svc.settings.labelstudio.lease_margin)
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
    doubtful = [p for p in svc.projects.all() if svc.state.cursors.get(import_doubt.Doubt.name(p))]
    for project in svc.projects.all():
        adopted += import_reconcile.reconcile(svc, project)
    import_twins.repair_twins(svc)
    for project in doubtful or ([svc.projects.current] if svc.state.recordings.count(Status.IMPORTING) else []):
        adopted += import_doubt.settle_doubt(svc, project)
    return adopted


def run(svc: Services, stop: threading.Event) -> int:
    """Reconcile with Label Studio, then import the transcribed recordings in batches, least confident first, into
    the current project, rolling over to the next one when it is full; returns tasks created or adopted. Paced, a
    tick asks nothing of Label Studio while no batch is due, none is in doubt and no prediction waits to be
    checked. Recordings too long for one task
    are split into review units first (``import_split``)."""
    import_split.run(svc, stop)
    if (
        svc.paced
        and not svc.state.recordings.count(Status.IMPORTING)
        and not batch_due(svc)
        and not import_reconcile.any_unchecked(svc)
        and not import_twins.twins_due(svc)
    ):
        return 0
    imported = _reconcile_all(svc)
    into: set[int] = set()
    while not stop.is_set():
        reason = svc.projects.rollover_due()
        if reason and svc.state.recordings.count(Status.IMPORTING):
            break  # a batch in doubt settles in its own project first
        if reason and not batch_due(svc):
            break
        if reason:
            with svc.instance.exclusively(PROJECT, stop.is_set):
                svc.projects.next(reason)
            import_reconcile.look(svc, svc.projects.current)
        project, room = svc.projects.current, svc.projects.room()
        count = _import(svc, project, stop, room)
        imported += count
        if count:
            into.add(project)
        if svc.projects.room() > 0 or not batch_due(svc):
            break
    for project in sorted(into):
        svc.labelstudio.set_model_version(project, svc.transcriber.model_version)
    return imported
