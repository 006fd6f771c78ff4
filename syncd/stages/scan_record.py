"""Scan, the step both paths end in: which listed or notified objects are audio to watch, and recording the
versions not seen before (new, replaced, skipped with a reason, or an older version made current again)."""

from __future__ import annotations

from syncd.config import SourceSettings
from syncd.domain.recording import S3Object, Status
from syncd.s3.storage import S3_MAX_KEY_BYTES, output_key
from syncd.services import Services
from syncd.stages import scan_deletions


def excluded_prefixes(svc: Services, bucket: str) -> tuple[str, ...]:
    """Transcribe's raw output and the review units' clips live under their own prefixes and are never new audio."""
    aws = svc.settings.transcriber.aws
    units = (svc.settings.review.units_prefix,)
    if (aws.output_bucket or bucket) == bucket and aws.output_prefix:
        return (aws.output_prefix, *units)
    return units


def skip_reason(obj: S3Object, max_size_mb: int, suffix: str = ".transcript") -> str | None:
    if obj.size == 0:
        return "empty object (0 bytes)"
    if obj.size > max_size_mb * 1024 * 1024:
        return f"too large: {obj.size} bytes > max_size_mb {max_size_mb}"
    longest = output_key(obj.key, suffix, "json", keep_audio_suffix=True)
    if len(longest.encode()) > S3_MAX_KEY_BYTES:
        return f"key too long for its outputs: {longest!r} would exceed S3's {S3_MAX_KEY_BYTES}-byte key limit"
    return None


def watched(source: SourceSettings, bucket: str, key: str, excluded: tuple[str, ...]) -> bool:
    return (
        bucket == source.bucket
        and key.startswith(source.prefix)
        and not key.startswith(excluded)
        and key.lower().endswith(tuple(source.suffixes))
    )


def record_page(svc: Services, source: SourceSettings, page: list[S3Object]) -> int:
    """Record the versions of one listing page not seen before; returns how many are new audio."""
    keys = [obj.key for obj in page]
    known = svc.state.recordings.known_versions(source.bucket, keys)
    superseded = svc.state.recordings.superseded_versions(source.bucket, keys)
    new: list[S3Object] = []
    for obj in page:
        if obj.etag in known.get(obj.key, ()):
            if (obj.key, obj.etag) in superseded:
                restore(svc, obj)
            continue
        reason = skip_reason(obj, source.max_size_mb, svc.settings.output.suffix)
        if reason:
            svc.state.recordings.add_objects([obj], status=Status.SKIPPED, reason=reason)
            svc.log.warning("audio.skipped", bucket=obj.bucket, key=obj.key, size=obj.size, reason=reason)
            continue
        new.append(obj)
    for rec_id, obj in svc.state.recordings.add_objects(new):
        if obj.key in known:
            older = sorted(known[obj.key])
            svc.log.info("audio.replaced", bucket=obj.bucket, key=obj.key, etag=obj.etag, superseded_etags=older)
        svc.log.info("audio.discovered", recording=rec_id, bucket=obj.bucket, key=obj.key, etag=obj.etag, size=obj.size)
    return len(new)


def restore(svc: Services, obj: S3Object) -> None:
    """The object holds a version we had superseded (an upload reverted X -> Y -> X): X is current again, resumes
    from its own task or transcript, and its review is written again over any output of Y."""
    restored = svc.state.recordings.restore_version(obj.bucket, obj.key, obj.etag)
    if restored is None:
        return
    rec, was = restored
    if rec.task_id is not None:
        project = svc.projects.current
        svc.state.export_queue.queue_export(
            project, rec.task_id, rec.id, "audio restored: write this version's review again"
        )
    if was == Status.DELETED:
        scan_deletions.unmark(svc, rec)
    svc.log.info(
        "audio.restored", recording=rec.id, bucket=obj.bucket, key=obj.key, etag=obj.etag, status=rec.status, was=was
    )
