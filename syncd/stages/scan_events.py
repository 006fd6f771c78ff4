"""Scan from a source's event queue: new and deleted audio from S3 event notifications read from SQS, instead of
listing the bucket every run."""

from __future__ import annotations

import threading

from syncd.config import SourceSettings
from syncd.domain.recording import S3Object
from syncd.services import Services
from syncd.stages import scan_deletions, scan_record


def read(svc: Services, source: SourceSettings, stop: threading.Event) -> int:
    """New and deleted audio from the source's event queue. Each message is deleted once what it says is recorded;
    each event is checked against S3 (one HEAD), since SQS may deliver late, twice or out of order."""
    excluded = scan_record.excluded_prefixes(svc, source.bucket)
    queue = svc.queues[source.queue_url]
    new = read = 0
    for batch, receipts in queue.batches():
        for event in batch:
            if not scan_record.watched(source, event.bucket, event.key, excluded):
                continue
            read += 1
            if event.kind == "removed":
                scan_deletions.notice(svc, source, event.key, "event")
            elif svc.storage.etag(event.bucket, event.key) == event.etag:
                new += scan_record.record_page(svc, source, [S3Object(event.bucket, event.key, event.etag, event.size)])
        queue.done(receipts)
        if stop.is_set():
            break
    svc.log.debug("scan.events", bucket=source.bucket, prefix=source.prefix, events=read, new=new)
    return new
