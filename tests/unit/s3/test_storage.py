"""S3 storage: keys obstore cannot express are written with boto3."""

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
