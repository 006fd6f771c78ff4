"""S3 event notifications as the scan reads them from SQS: S3 and SNS bodies, URL-encoded keys."""

from __future__ import annotations

import json

from syncd.s3.events import Event, parse
from tests.unit.scenarios import s3_event


def test_parse_reads_s3_and_sns_bodies_and_decodes_keys() -> None:
    body = json.dumps(
        {"Records": [s3_event("ObjectCreated:Put", "calls/a+b%C3%A9.mp3"), s3_event("ObjectRemoved:Delete", "x.mp3")]}
    )
    assert parse(body) == [Event("created", "b", "calls/a bé.mp3", "e1", 5), Event("removed", "b", "x.mp3", "e1", 5)]
    assert parse(json.dumps({"Type": "Notification", "Message": body})) == parse(body)
    assert parse(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})) == []
    assert parse("not json") == [] and parse(json.dumps({"Records": [{"eventName": "ObjectRestore:Post"}]})) == []
