"""Is S3 reachable, are our credentials accepted, does the store enforce conditional writes? For `syncd run`,
/healthz and `syncd check`."""

from __future__ import annotations

import uuid
from typing import Any

from botocore.exceptions import ClientError

from syncd import errors
from syncd.config import Settings
from syncd.errors import ProbeError, classify
from syncd.log import describe_error
from syncd.s3.storage import boto_client, is_conflict


def buckets_readable(settings: Settings, s3: Any) -> None:
    """Every source bucket answers HeadBucket with our credentials."""
    for bucket in sorted({source.bucket for source in settings.sources}):
        try:
            s3.head_bucket(Bucket=bucket)
        except Exception as exc:
            raise ProbeError(f"S3 bucket {bucket}: {_s3_reason(exc)}", classify(exc)) from exc


def conditional_writes(s3: Any, bucket: str, prefix: str) -> str:
    """The store enforces If-None-Match: a probe object put twice with it, the second put must be refused. Without
    that, an older review could silently overwrite a newer one (S3 before late 2024, older MinIO)."""
    key = f"{prefix}syncd-probe-{uuid.uuid4().hex[:12]}.transcript.txt"
    enforced = False
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=b"syncd probe: safe to delete\n", IfNoneMatch="*")
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=b"syncd probe: second put\n", IfNoneMatch="*")
        except ClientError as exc:
            if not is_conflict(exc):
                raise
            enforced = True
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) not in ("NotImplemented", "InvalidArgument", "501"):
            raise
    finally:
        s3.delete_object(Bucket=bucket, Key=key)
    if not enforced:
        raise ProbeError(
            f"s3://{bucket}: the store does not enforce conditional writes (If-None-Match), so two writers could put"
            " an older review over a newer one; use a store that does (AWS S3 since 2024-11, MinIO since 2024), or"
            ' set output.conditional_writes = "single-writer" if exactly one syncd writes these outputs',
            errors.CONFIG,
        )
    return f"s3://{bucket}/{prefix}: If-None-Match enforced (conditional writes work)"


def _s3_reason(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', '?')} {error.get('Message', '')}".strip()
    return describe_error(exc)


def quick_s3_client(settings: Settings) -> Any:
    """An S3 client for probes: short timeouts and no retries, so /healthz answers fast when S3 is down."""
    return boto_client("s3", settings.s3, settings.s3.endpoint_url, attempts=1, connect_timeout=2, read_timeout=3)
