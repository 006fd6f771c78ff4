"""The S3 probes: conditional writes enforced (If-None-Match) or refused with a reason."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from syncd import errors
from syncd.errors import ProbeError
from syncd.s3.probe import conditional_writes


class ProbeS3:
    def __init__(self, enforced: bool) -> None:
        self.enforced = enforced
        self.objects: dict[str, bytes] = {}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, IfNoneMatch: str) -> None:  # noqa: N803
        if self.enforced and Key in self.objects:
            raise ClientError({"Error": {"Code": "PreconditionFailed"}}, "PutObject")
        self.objects[Key] = Body

    def delete_object(self, *, Bucket: str, Key: str) -> None:  # noqa: N803
        self.objects.pop(Key, None)


def test_conditional_write_probe() -> None:
    enforcing = ProbeS3(enforced=True)
    assert "enforced" in conditional_writes(enforcing, "b", "calls/")
    assert enforcing.objects == {}
    with pytest.raises(ProbeError) as refused:
        conditional_writes(ProbeS3(enforced=False), "b", "calls/")
    assert refused.value.code == errors.CONFIG and "single-writer" in str(refused.value)
