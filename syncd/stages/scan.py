"""Scan: list each source (or read its event queue) and record object versions not seen before.

Its steps sit beside it: ``scan_events`` (the event queue), ``scan_record`` (what is audio, and recording it) and
``scan_deletions`` (audio gone from S3). This module decides per source which path runs, and lists.
"""

from __future__ import annotations

import threading
import time

from syncd import errors
from syncd.config import SourceSettings
from syncd.errors import classify
from syncd.log import describe_error
from syncd.services import Services
from syncd.stages import scan_deletions, scan_events, scan_record
from syncd.state import keys, outages

SQS = "sqs"
"""The dependency name an unreadable event queue is recorded under."""


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
                found += scan_events.read(svc, source, stop)
            except Exception as exc:
                down = _queue_down(svc, exc)
        if not source.queue_url or _full_listing_due(svc, source):
            found += _scan_source(svc, source, stop)
    if down is not None:
        raise down
    if any(s.queue_url for s in svc.settings.sources):
        svc.state.outages.mark_up([SQS], svc.log)
    return found


def _queue_down(svc: Services, exc: Exception) -> Exception:
    """An event queue that cannot be read is an outage of SQS: named in /healthz and `syncd status` like any
    dependency; the other sources are scanned all the same, and the stage run fails."""
    if classify(exc) != errors.UNAVAILABLE:
        return exc
    backoff = svc.settings.schedule.outage_backoff_max
    dep = svc.state.outages.mark_down(SQS, describe_error(exc), backoff, svc.log)
    return outages.DependencyDownError(f"{SQS} unavailable for {dep.down_seconds():.0f}s: {dep.error}")


def full_listing_name(source: SourceSettings) -> str:
    return keys.FULL_LISTING.of(f"{source.bucket}/{source.prefix}")


def _full_listing_due(svc: Services, source: SourceSettings) -> bool:
    last = svc.state.cursors.get(full_listing_name(source))
    return last is None or time.time() - float(last) >= svc.settings.schedule.full_scan_interval


def _scan_source(svc: Services, source: SourceSettings, stop: threading.Event) -> int:
    """One full listing. Keys the state holds that a listed range no longer shows were deleted (each is confirmed
    with a HEAD): one indexed query per page, so deletions are noticed at no extra listing cost."""
    started, calls_before = time.monotonic(), svc.storage.calls.copy()
    listed = new = 0
    after, complete = "", True
    for page in svc.storage.list_audio(source, scan_record.excluded_prefixes(svc, source.bucket)):
        listed += len(page)
        new += scan_record.record_page(svc, source, page)
        if page:
            _notice_deleted(svc, source, after, page[-1].key, {obj.key for obj in page})
            after = page[-1].key
        if stop.is_set():
            complete = False
            break
    if complete:
        _notice_deleted(svc, source, after, None, set())
        if source.queue_url:
            svc.state.cursors.set(full_listing_name(source), str(time.time()))
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
    excluded = scan_record.excluded_prefixes(svc, source.bucket)
    for key in svc.state.recordings.current_keys(source.bucket, source.prefix, after, upto):
        if key not in listed and scan_record.watched(source, source.bucket, key, excluded):
            scan_deletions.notice(svc, source, key, "listing")
