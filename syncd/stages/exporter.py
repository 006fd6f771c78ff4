"""Export: reviewed tasks become corrected transcripts next to the audio, in every configured format.

Only tasks changed since a cursor are read (never a full project scan). The newest submitted annotation wins; an edit
re-writes the outputs; a task whose annotations were deleted keeps its transcript (logged).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from syncd import layouts
from syncd.formats import Review, render
from syncd.labelstudio import ls_time
from syncd.services import Services
from syncd.state import Recording
from syncd.storage import output_key

# Tasks updated just before the cursor may commit after we read; re-reading a few seconds is cheap and deduplicated.
_OVERLAP = timedelta(seconds=5)


def newest_submitted(task: dict[str, Any]) -> dict[str, Any] | None:
    """The newest annotation that was submitted: skipped (cancelled) ones and empty results do not count."""
    submitted = [a for a in task.get("annotations") or [] if not a.get("was_cancelled") and a.get("result") is not None]
    if not submitted:
        return None
    return max(submitted, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a.get("id") or 0))


def _stamp(value: Any) -> str | None:
    if value is None:
        return None
    return ls_time(value) if isinstance(value, datetime) else str(value)


def _annotator(annotation: dict[str, Any]) -> str | None:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        return str(who.get("email") or who.get("username") or who.get("id"))
    return None if who is None else str(who)


def export_task(svc: Services, task: dict[str, Any]) -> bool:
    """Write outputs for one task if its newest submitted annotation is not written yet; True when written."""
    data = task.get("data") or {}
    rec = svc.state.by_syncd_id(str(data.get("syncd_id", ""))) or svc.state.recording_for_task(int(task["id"]))
    if rec is None:
        svc.log.warning("export.unknown_task", task=task.get("id"), syncd_id=data.get("syncd_id"))
        return False
    annotation = newest_submitted(task)
    if annotation is None:
        if task.get("annotations"):
            svc.log.info("annotation.skipped", task=task["id"], recording=rec.id, key=rec.key)
        elif rec.annotation_id:
            svc.log.warning("annotation.deleted", task=task["id"], recording=rec.id, key=rec.key, kept=True)
        return False
    updated = _stamp(annotation.get("updated_at"))
    if rec.annotation_id == annotation["id"] and rec.annotation_updated_at == updated:
        return False
    write_outputs(svc, rec, task, annotation, updated)
    return True


def write_outputs(
    svc: Services, rec: Recording, task: dict[str, Any], annotation: dict[str, Any], updated: str | None
) -> None:
    asr = rec.transcript
    assert asr is not None
    layout = svc.settings.labelstudio.layout
    review = Review(
        bucket=rec.bucket,
        key=rec.key,
        etag=rec.etag,
        asr=asr,
        segments=tuple(layouts.corrected_segments(annotation.get("result") or [], asr, layout)),
        project=int(task.get("project") or svc.project_id),
        task=int(task["id"]),
        annotation=int(annotation["id"]),
        annotator=_annotator(annotation),
        created_at=_stamp(annotation.get("created_at")),
        updated_at=updated,
        layout=layout,
    )
    output = svc.settings.output
    bodies = render(review, list(output.formats))
    meta = {"syncd-annotation": str(review.annotation), "syncd-source-etag": rec.etag}
    for fmt in sorted(bodies, key=lambda f: f == "json"):  # json last: it marks a complete export
        svc.storage.write(rec.bucket, output_key(rec.key, output.suffix, fmt), bodies[fmt], fmt, meta)
    svc.state.update(
        rec.id,
        status="exported",
        annotation_id=review.annotation,
        annotation_updated_at=updated,
        exported_at=datetime.now().timestamp(),
        task_id=review.task,
    )
    svc.log.info(
        "annotation.exported",
        recording=rec.id,
        task=review.task,
        annotation=review.annotation,
        bucket=rec.bucket,
        key=rec.key,
        formats=sorted(bodies),
        re_export=rec.annotation_id is not None,
    )


def run(svc: Services) -> int:
    """Export every task changed since the cursor; returns transcripts written."""
    project = svc.project_id
    name = f"export:{project}"
    cursor = svc.state.cursor(name) or ls_time(0)
    since = ls_time(datetime.fromisoformat(cursor.replace("Z", "+00:00")) - _OVERLAP)
    written, newest = 0, cursor
    for task in svc.labelstudio.changed_tasks(project, since):
        written += export_task(svc, task)
        newest = max(newest, _stamp(task.get("updated_at")) or newest)
    if newest != cursor:
        svc.state.set_cursor(name, newest)
    return written
