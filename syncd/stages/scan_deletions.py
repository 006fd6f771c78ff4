"""Audio deleted from S3, part of the scan: found from an ObjectRemoved event or a full listing, confirmed with a
HEAD (so an event out of order or a listing that raced an upload never deletes anything), recorded as ``deleted``,
and its task handled as ``sources.on_audio_deleted`` says. Transcripts already written beside it are never deleted.
"""

from __future__ import annotations

import time
from typing import Any

from syncd.config import SourceSettings
from syncd.domain.moments import iso
from syncd.domain.recording import Recording
from syncd.log import describe_error
from syncd.services import Services
from syncd.stages.tasks import task_of


def notice(svc: Services, source: SourceSettings, key: str, found_by: str) -> int:
    """Record that ``key`` is gone, if S3 agrees; returns the recordings marked deleted (0 or 1)."""
    if svc.storage.etag(source.bucket, key) is not None:
        svc.log.debug("audio.still_there", bucket=source.bucket, key=key, found_by=found_by)
        return 0
    gone = svc.state.recordings.delete_current(source.bucket, key, reason=f"deleted from S3 (found by {found_by})")
    for rec in gone:
        actions = [_apply(svc, source, task_rec) for task_rec in _with_tasks(svc, rec)]
        svc.log.info(
            "audio.deleted",
            recording=rec.id,
            bucket=rec.bucket,
            key=rec.key,
            etag=rec.etag,
            was=rec.status,
            found_by=found_by,
            policy=source.on_audio_deleted,
            tasks=dict(actions),
        )
    return len(gone)


def _with_tasks(svc: Services, rec: Recording) -> list[Recording]:
    """The recording itself when it has a task, else its review units that have one."""
    if rec.task_id is not None:
        return [rec]
    return [unit for unit, _ in svc.state.recordings.units_of(rec.id) if unit.task_id is not None]


def _apply(svc: Services, source: SourceSettings, rec: Recording) -> tuple[int, str]:
    """(task, what was done to it)."""
    assert rec.task_id is not None
    try:
        task = svc.labelstudio.task(rec.task_id) if source.on_audio_deleted == "delete-task" else None
        if task is not None and not task.get("annotations"):
            svc.labelstudio.delete_task(rec.task_id)
            svc.state.tasks.forget_tasks(int(task["project"]), [rec.task_id])  # ours: not a deletion to warn about
            svc.state.recordings.update(rec.id, task_id=None)
            return rec.task_id, "deleted"
        svc.labelstudio.update_task_data(rec.task_id, _marked(svc, rec))
        return rec.task_id, "marked"
    except Exception as exc:
        return rec.task_id, f"failed: {describe_error(exc)}"


def unmark(svc: Services, rec: Recording) -> None:
    """Audio put back: its task (or its units' tasks) loses the deleted mark."""
    for task_rec in _with_tasks(svc, rec):
        assert task_rec.task_id is not None
        try:
            svc.labelstudio.update_task_data(task_rec.task_id, _data(svc, task_rec))
        except Exception as exc:
            svc.log.warning("task.unmark_failed", task=task_rec.task_id, recording=rec.id, error=describe_error(exc))


def _marked(svc: Services, rec: Recording) -> dict[str, Any]:
    """The task's data as syncd imported it, plus when its audio was found deleted (a Data Manager column)."""
    return {
        **_data(svc, rec),
        "deleted_from_s3": iso(time.time()),
    }


def _data(svc: Services, rec: Recording) -> dict[str, Any]:
    """The task data syncd imports for this recording."""
    return dict(task_of(svc, rec)["data"])
