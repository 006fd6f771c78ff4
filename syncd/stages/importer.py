"""Import: transcribed recordings become Label Studio tasks, in bulk, lowest confidence first, exactly once.

Exactly once across crashes: the batch is marked ``importing`` (the intent) before the Label Studio call, every task
carries ``data.syncd_id``, and stranded ``importing`` rows are first looked up in Label Studio before a re-import.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from syncd.faults import fault_point
from syncd.labelstudio import layouts
from syncd.recording import Recording, Status
from syncd.services import Services


def task_for(rec: Recording, layout: str, model_version: str) -> dict[str, Any]:
    """The task: the audio, what reviewers read in the Data Manager and the header (the object key, not a URI;
    numeric confidence and duration), and our identity (``syncd_id``, ``etag``)."""
    transcript = rec.transcript
    assert transcript is not None
    confidence = transcript.confidence
    return {
        "data": {
            "audio": rec.uri,
            "key": rec.key,
            "asr_confidence": None if confidence is None else round(confidence, 3),
            "duration": None if transcript.duration is None else round(transcript.duration, 1),
            "segments_to_check": layouts.segments_to_check(transcript),
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
                "result": layouts.prediction_result(transcript, layout),
            }
        ],
    }


def _recover(svc: Services, project: int) -> int:
    """Adopt tasks that landed without our state knowing: rows left ``importing`` by a crash, or every pending row
    when the state knows no task in this project yet (a new or lost state DB). The rest goes back to be imported."""
    stranded = svc.state.due(Status.IMPORTING, limit=100_000)
    newest = svc.state.max_task_id(project)
    if not stranded and newest:
        return 0
    pending = stranded + svc.state.due(Status.TRANSCRIBED, limit=100_000)
    landed = svc.labelstudio.tasks_after(project, newest)
    adopted = 0
    for rec in pending:
        task_id = landed.get(rec.syncd_id)
        if task_id:
            svc.state.move(rec.id, rec.status, Status.IMPORTED, task_id=task_id, project_id=project, reason=None)
            svc.log.info("task.recovered", recording=rec.id, task=task_id, bucket=rec.bucket, key=rec.key)
            adopted += 1
        elif rec.status == Status.IMPORTING:
            svc.state.move(rec.id, Status.IMPORTING, Status.TRANSCRIBED)
    return adopted


@dataclass
class _Batch:
    records: list[Recording]
    tasks: list[dict[str, Any]]
    started: float


def _next_batch(svc: Services) -> _Batch | None:
    """The least confident transcribed recordings, marked ``importing`` (the intent) before Label Studio sees them."""
    size = svc.settings.labelstudio.import_batch_size
    candidates = svc.state.due(Status.TRANSCRIBED, limit=size, least_confident_first=True)
    if not candidates:
        return None
    marked = set(svc.state.transition([r.id for r in candidates], Status.TRANSCRIBED, Status.IMPORTING))
    records = [r for r in candidates if r.id in marked]
    layout, model_version = svc.settings.labelstudio.layout, svc.transcriber.model_version
    tasks = [task_for(r, layout, model_version) for r in records]
    return _Batch(records, tasks, time.monotonic())


def _commit(svc: Services, project: int, batch: _Batch, task_ids: list[int]) -> None:
    fault_point("import.after_labelstudio")
    with svc.state.batch():
        for rec, task_id in zip(batch.records, task_ids, strict=True):
            fields = {"task_id": task_id, "project_id": project, "reason": None}
            svc.state.move(rec.id, Status.IMPORTING, Status.IMPORTED, **fields)
    for rec, task_id in zip(batch.records, task_ids, strict=True):
        svc.log.info("task.imported", recording=rec.id, task=task_id, bucket=rec.bucket, key=rec.key, score=rec.score)
    seconds = round(time.monotonic() - batch.started, 3)
    svc.log.info("import.batch", project=project, tasks=len(task_ids), seconds=seconds)


def run(svc: Services, stop: threading.Event) -> int:
    """Import every transcribed recording in batches, least confident first; returns tasks created or adopted.

    One request is in flight at a time (Label Studio serializes imports; concurrent ones only contend), but the
    next batch is built and the previous one committed while Label Studio works, so our own cost hides behind its.
    """
    if not svc.state.count(Status.TRANSCRIBED) and not svc.state.count(Status.IMPORTING):
        return 0
    project = svc.project_id
    imported = _recover(svc, project)
    with ThreadPoolExecutor(1, thread_name_prefix="import") as pool:
        in_flight: tuple[_Batch, Future[list[int]]] | None = None
        while True:
            batch = None if stop.is_set() else _next_batch(svc)
            done = (in_flight[0], in_flight[1].result()) if in_flight else None
            in_flight = (batch, pool.submit(svc.labelstudio.import_tasks, project, batch.tasks)) if batch else None
            if done:
                _commit(svc, project, *done)
                imported += len(done[1])
            if in_flight is None:
                break
    if imported:
        svc.labelstudio.set_model_version(project, svc.transcriber.model_version)
    return imported
