"""S3 event notifications read from Amazon SQS: how a source finds new and deleted audio without listing its bucket.

A bucket sends ``s3:ObjectCreated:*`` and ``s3:ObjectRemoved:*`` notifications to a queue (directly, or through SNS);
the scan reads the queue, records what the events name exactly as a listing would have, and deletes each message
only once it is recorded, so a crash in between reads it again (recording is idempotent). Keys arrive URL-encoded
(``a+b.mp3`` for ``a b.mp3``), as S3 sends them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote_plus

from syncd.config import S3Settings
from syncd.s3.storage import boto_client

BATCH = 10
"""Messages per ReceiveMessage call (SQS's most)."""


@dataclass(frozen=True)
class Event:
    kind: Literal["created", "removed"]
    bucket: str
    key: str
    etag: str = ""
    size: int = 0


def parse(body: str) -> list[Event]:
    """The S3 events in one message body; a test event, an SNS envelope's non-S3 message or a body that is not
    JSON gives none."""
    try:
        doc = json.loads(body)
    except json.JSONDecodeError:
        return []
    if isinstance(doc, dict) and isinstance(doc.get("Message"), str) and "Records" not in doc:
        return parse(doc["Message"])  # delivered through SNS
    records = doc.get("Records") if isinstance(doc, dict) else None
    return [event for record in records or [] if (event := _event(record)) is not None]


def _event(record: Any) -> Event | None:
    if not isinstance(record, dict):
        return None
    name, s3 = str(record.get("eventName") or ""), record.get("s3") or {}
    kind: Literal["created", "removed"]
    if name.startswith("ObjectCreated:"):
        kind = "created"
    elif name.startswith("ObjectRemoved:"):
        kind = "removed"
    else:
        return None
    bucket, obj = (s3.get("bucket") or {}).get("name"), s3.get("object") or {}
    if not bucket or not obj.get("key"):
        return None
    etag = str(obj.get("eTag") or "").strip('"')
    return Event(kind, str(bucket), unquote_plus(str(obj["key"])), etag, int(obj.get("size") or 0))


class Queue:
    """One source's event queue."""

    def __init__(self, settings: S3Settings, url: str) -> None:
        self.url = url
        self._sqs = boto_client("sqs", settings, settings.sqs_endpoint_url)
        self.receives = 0
        """ReceiveMessage calls made (what an idle scan of an evented source costs)."""

    def batches(self) -> Iterator[tuple[list[Event], list[str]]]:
        """(events, receipt handles) per ReceiveMessage call, until the queue is empty; no long poll, so an idle
        scan costs one call."""
        while True:
            self.receives += 1
            messages = self._sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=BATCH).get("Messages", [])
            if not messages:
                return
            yield [e for m in messages for e in parse(m.get("Body", ""))], [m["ReceiptHandle"] for m in messages]
            if len(messages) < BATCH:
                return

    def done(self, receipts: list[str]) -> None:
        """Delete handled messages (one call for up to ten)."""
        if receipts:
            entries = [{"Id": str(n), "ReceiptHandle": r} for n, r in enumerate(receipts)]
            self._sqs.delete_message_batch(QueueUrl=self.url, Entries=entries)
