"""Scan: list each source once and record object versions not seen before."""

from __future__ import annotations

import threading
import time

from syncd import errors
from syncd.config import SourceSettings
from syncd.domain.recording import S3Object, Status
from syncd.errors import classify
from syncd.log import describe_error
from syncd.s3.storage import S3_MAX_KEY_BYTES, output_key
from syncd.services import Services
from syncd.stages import scan_deletions
from syncd.state import outages

SQS = "sqs"
"""The dependency name an unreadable event queue is recorded under."""


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


def run(svc: Services, stop: threading.Event) -> int:
    """Per source: read its event queue if it has one, and list it (every run without a queue, every
    ``schedule.full_scan_interval`` with one), a page at a time; an unchanged bucket costs no per-object request and
    the memory of one page. Returns new versions."""
    found, down = 0, None
    for source in svc.settings.sources:
        if stop.is_set():
            break
        if source.queue_url:
            try:
                found += _read_events(svc, source, stop)
            except Exception as exc:
                down = _queue_down(svc, exc)
        if not source.queue_url or _full_listing_due(svc, source):
            found += _scan_source(svc, source, stop)
    if down is not None:
        raise down
    if any(s.queue_url for s in svc.settings.sources):
        outages.mark_up(svc.state, [SQS], svc.log)
    return found


def _queue_down(svc: Services, exc: Exception) -> Exception:
    """An event queue that cannot be read is an outage of SQS: named in /healthz and `syncd status` like any
    dependency; the other sources are scanned all the same, and the stage run fails."""
    if classify(exc) != errors.UNAVAILABLE:
        return exc
    backoff = svc.settings.schedule.outage_backoff_max
    dep = outages.mark_down(svc.state, SQS, describe_error(exc), backoff, svc.log)
    return outages.DependencyDownError(f"{SQS} unavailable for {dep.down_seconds():.0f}s: {dep.error}")


def full_listing_name(source: SourceSettings) -> str:
    return f"full-listing:{source.bucket}/{source.prefix}"


def _full_listing_due(svc: Services, source: SourceSettings) -> bool:
    last = svc.state.cursor(full_listing_name(source))
    return last is None or time.time() - float(last) >= svc.settings.schedule.full_scan_interval


def _read_events(svc: Services, source: SourceSettings, stop: threading.Event) -> int:
    """New and deleted audio from the source's event queue. Each message is deleted once what it says is recorded;
    each event is checked against S3 (one HEAD), since SQS may deliver late, twice or out of order."""
    excluded = excluded_prefixes(svc, source.bucket)
    queue = svc.queues[source.queue_url]
    new = read = 0
    for batch, receipts in queue.batches():
        for event in batch:
            if not _watched(source, event.bucket, event.key, excluded):
                continue
            read += 1
            if event.kind == "removed":
                scan_deletions.notice(svc, source, event.key, "event")
            elif svc.storage.etag(event.bucket, event.key) == event.etag:
                new += _record_page(svc, source, [S3Object(event.bucket, event.key, event.etag, event.size)])
        queue.done(receipts)
        if stop.is_set():
            break
    svc.log.debug("scan.events", bucket=source.bucket, prefix=source.prefix, events=read, new=new)
    return new


def _watched(source: SourceSettings, bucket: str, key: str, excluded: tuple[str, ...]) -> bool:
    return (
        bucket == source.bucket
        and key.startswith(source.prefix)
        and not key.startswith(excluded)
        and key.lower().endswith(tuple(source.suffixes))
    )


def _scan_source(svc: Services, source: SourceSettings, stop: threading.Event) -> int:
    """One full listing. Keys the state holds that a listed range no longer shows were deleted (each is confirmed
    with a HEAD): one indexed query per page, so deletions are noticed at no extra listing cost."""
    started, calls_before = time.monotonic(), svc.storage.calls.copy()
    listed = new = 0
    after, complete = "", True
    for page in svc.storage.list_audio(source, excluded_prefixes(svc, source.bucket)):
        listed += len(page)
        new += _record_page(svc, source, page)
        if page:
            _notice_deleted(svc, source, after, page[-1].key, {obj.key for obj in page})
            after = page[-1].key
        if stop.is_set():
            complete = False
            break
    if complete:
        _notice_deleted(svc, source, after, None, set())
        if source.queue_url:
            svc.state.set_cursor(full_listing_name(source), str(time.time()))
    svc.log.debug(
        "scan.completed",
        bucket=source.bucket,
        prefix=source.prefix,
        listed=listed,
        new=new,
        s3_calls=dict(svc.storage.calls - calls_before),
        seconds=round(time.monotonic() - started, 3),
    )
    return new


def _notice_deleted(svc: Services, source: SourceSettings, after: str, upto: str | None, listed: set[str]) -> None:
    excluded = excluded_prefixes(svc, source.bucket)
    for key in svc.state.current_keys(source.bucket, source.prefix, after, upto):
        if key not in listed and _watched(source, source.bucket, key, excluded):
            scan_deletions.notice(svc, source, key, "listing")


def _record_page(svc: Services, source: SourceSettings, page: list[S3Object]) -> int:
    """Record the versions of one listing page not seen before; returns how many are new audio."""
    keys = [obj.key for obj in page]
    known = svc.state.known_versions(source.bucket, keys)
    superseded = svc.state.superseded_versions(source.bucket, keys)
    new: list[S3Object] = []
    for obj in page:
        if obj.etag in known.get(obj.key, ()):
            if (obj.key, obj.etag) in superseded:
                restore(svc, obj)
            continue
        reason = skip_reason(obj, source.max_size_mb, svc.settings.output.suffix)
        if reason:
            svc.state.add_objects([obj], status=Status.SKIPPED, reason=reason)
            svc.log.warning("audio.skipped", bucket=obj.bucket, key=obj.key, size=obj.size, reason=reason)
            continue
        new.append(obj)
    for rec_id, obj in svc.state.add_objects(new):
        if obj.key in known:
            older = sorted(known[obj.key])
            svc.log.info("audio.replaced", bucket=obj.bucket, key=obj.key, etag=obj.etag, superseded_etags=older)
        svc.log.info("audio.discovered", recording=rec_id, bucket=obj.bucket, key=obj.key, etag=obj.etag, size=obj.size)
    return len(new)


def restore(svc: Services, obj: S3Object) -> None:
    """The object holds a version we had superseded (an upload reverted X -> Y -> X): X is current again, resumes
    from its own task or transcript, and its review is written again over any output of Y."""
    restored = svc.state.restore_version(obj.bucket, obj.key, obj.etag)
    if restored is None:
        return
    rec, was = restored
    if rec.task_id is not None:
        project = svc.projects.current
        svc.state.queue_export(project, rec.task_id, rec.id, "audio restored: write this version's review again")
    if was == Status.DELETED:
        scan_deletions.unmark(svc, rec)
    svc.log.info(
        "audio.restored", recording=rec.id, bucket=obj.bucket, key=obj.key, etag=obj.etag, status=rec.status, was=was
    )
