"""S3 storage: keys obstore cannot express are written with boto3; response timestamps are read fast."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from syncd.config import S3Settings
from syncd.s3.storage import Storage, WriteConflictError, obstore_can_write


def test_keys_obstore_cannot_express_are_written_with_boto3() -> None:
    for key in ("a\tb.mp3", "a\nb", "a\x7fb", "a//b", "a/./b", "a/../b", "/lead", "./x", "dir/", "a\\b"):
        assert not obstore_can_write(key), key
    for key in ("calls/Zoë interview 1.mp3", "a b%20#.mp3", "a/.hidden", "a/..b", "q?x"):
        assert obstore_can_write(key), key
    storage = Storage(S3Settings())
    puts: list[dict[str, Any]] = []

    def put_object(**kwargs: Any) -> dict[str, Any]:
        puts.append(kwargs)
        if len(puts) > 1:
            raise ClientError({"Error": {"Code": "PreconditionFailed"}}, "PutObject")
        return {"ETag": '"e1"'}

    storage.client = SimpleNamespace(put_object=put_object)
    assert storage.write("b", "/calls/a\t.transcript.txt", b"x", "txt", {"m": "1"}, if_absent=True) == "e1"
    assert puts[0]["Key"] == "/calls/a\t.transcript.txt" and puts[0]["IfNoneMatch"] == "*"
    with pytest.raises(WriteConflictError):
        storage.write("b", "/calls/a\t.transcript.txt", b"y", "txt", {}, if_match="e1")
    assert puts[1]["IfMatch"] == '"e1"'


def test_response_timestamps_read_fast_are_the_moments_botocore_reads() -> None:
    from botocore.utils import parse_timestamp

    from syncd.s3.storage import _timestamp

    for value in ("2026-12-03T12:00:00.123Z", "2026-12-03T12:00:00Z", "2026-12-03T13:00:00+01:00"):
        assert _timestamp(value) == parse_timestamp(value), value
        assert _timestamp(value).tzinfo is not None
    assert _timestamp("Thu, 03 Dec 2026 12:00:00 GMT") == parse_timestamp("Thu, 03 Dec 2026 12:00:00 GMT")
    assert _timestamp("1764763200") == parse_timestamp("1764763200")
