"""Export, step one: what a changed task's reviews mean for its recording (the newest submitted annotation wins;
skipped ones never count), rendered in every configured format and ready to write."""

from __future__ import annotations

from typing import Any

from syncd.domain.formats import Review, render
from syncd.domain.recording import Recording, Status
from syncd.labelstudio import layouts, ls_datetime, ls_time
from syncd.s3.outputs import Export, Version
from syncd.s3.storage import output_base
from syncd.services import Services


def moment(value: Any) -> str:
    """Any Label Studio time as the one sortable ls_time form ("" when missing)."""
    return "" if value in (None, "") else ls_time(ls_datetime(value))


def version_of(annotation: dict[str, Any]) -> Version:
    return moment(annotation.get("updated_at") or annotation.get("created_at")), int(annotation.get("id") or 0)


def newest_submitted(task: dict[str, Any]) -> dict[str, Any] | None:
    """The newest submitted annotation: skipped (cancelled) ones do not count."""
    submitted = [a for a in task.get("annotations") or [] if not a.get("was_cancelled") and a.get("result") is not None]
    return max(submitted, key=version_of, default=None)


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


def task_syncd_id(task: dict[str, Any]) -> str:
    return str((task.get("data") or {}).get("syncd_id", ""))


def plan(
    svc: Services, task: dict[str, Any], rec: Recording | None = None, *, shared: bool | None = None
) -> Export | None:
    """The export a changed task calls for, or None (nothing submitted, or this version is written already).
    ``shared``: whether the recording's stem is shared (``outputs_base``), when the caller looked it up already."""
    data = task.get("data") or {}
    rec = (
        rec
        or svc.state.recordings.by_syncd_id(task_syncd_id(task))
        or svc.state.recordings.recording_for_task(int(task["id"]))
    )
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
    return _render(svc, rec, task, annotation, version, shared)


def _review_log(svc: Services, rec: Recording, task: dict[str, Any], version: Version) -> Any:
    return svc.log.bind(task=task["id"], annotation=version[1], recording=rec.id, bucket=rec.bucket, key=rec.key)


def outputs_base(svc: Services, rec: Recording, shared: bool | None = None) -> str:
    """The output key without its format. Two audio keys sharing a stem in one folder (``a.wav``, ``a.mp3``) both
    keep their audio suffix (``a.wav.transcript.txt``), so neither review overwrites the other; ``output.naming =
    "key"`` always keeps it."""
    out = svc.settings.output
    base = output_base(rec.key, out.suffix)
    if shared is None and out.naming != "key":
        shared = svc.state.recordings.stem_shared(rec.bucket, rec.key, base.removesuffix(out.suffix))
    keep = out.naming == "key" or bool(shared)
    return output_base(rec.key, out.suffix, keep_audio_suffix=True) if keep else base


def _render(
    svc: Services,
    rec: Recording,
    task: dict[str, Any],
    annotation: dict[str, Any],
    version: Version,
    shared: bool | None = None,
) -> Export:
    asr = rec.transcript
    if asr is None:
        raise ValueError(f"recording {rec.id} has a task but no transcript")
    layout = layouts.result_layout(annotation.get("result") or [], svc.settings.labelstudio.layout)
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
        project=int(task.get("project") or svc.projects.current),
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
    return Export(rec, review, version, bodies, outputs_base(svc, rec, shared), moment(task.get("updated_at")))
