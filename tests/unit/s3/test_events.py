"""S3 event notifications as the scan reads them from SQS: S3 and SNS bodies, URL-encoded keys."""

from __future__ import annotations

import json
from typing import Any

from syncd.s3.events import Event, parse


def _record(name: str, key: str, etag: str = "e1", size: int = 5) -> dict[str, Any]:
    obj = {"key": key, "size": size, "eTag": etag, "sequencer": "0A1B"}
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": name,
        "s3": {"bucket": {"name": "b"}, "object": obj},
    }


def test_parse_reads_s3_and_sns_bodies_and_decodes_keys() -> None:
    body = json.dumps(
        {"Records": [_record("ObjectCreated:Put", "calls/a+b%C3%A9.mp3"), _record("ObjectRemoved:Delete", "x.mp3")]}
    )
    assert parse(body) == [Event("created", "b", "calls/a bé.mp3", "e1", 5), Event("removed", "b", "x.mp3", "e1", 5)]
    assert parse(json.dumps({"Type": "Notification", "Message": body})) == parse(body)
    assert parse(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})) == []
    assert parse("not json") == [] and parse(json.dumps({"Records": [{"eventName": "ObjectRestore:Post"}]})) == []
