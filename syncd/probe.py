"""Is Label Studio or S3 reachable, are our credentials accepted? For `syncd run`, /healthz and `syncd check`."""

from __future__ import annotations

import re
from typing import Any

import requests
from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy.exc import DBAPIError, OperationalError

from syncd import exitcodes
from syncd.config import Settings

_DENIED_S3 = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "401", "Forbidden"}


class ProbeError(Exception):
    """A failed probe, with the exit code it maps to (69 unreachable, 77 credentials rejected, 1 otherwise)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def classify(exc: BaseException) -> int:
    """The exit code an error stands for: credentials rejected, service unreachable, or a plain failure."""
    status = getattr(exc, "status_code", None)
    if status in (401, 403):
        return exitcodes.NOPERM
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return exitcodes.NOPERM if code in _DENIED_S3 else exitcodes.CHECK_FAILED
    if isinstance(exc, BotoCoreError | requests.ConnectionError | requests.Timeout | ConnectionError | TimeoutError):
        return exitcodes.UNAVAILABLE
    if isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return exitcodes.UNAVAILABLE  # the state database (PostgreSQL) cannot be reached
    if type(exc).__module__.startswith("httpx") or "Connect" in type(exc).__name__:
        return exitcodes.UNAVAILABLE
    if type(exc).__module__.startswith("obstore"):
        return _obstore_code(exc)
    if isinstance(status, int) and status >= 500:
        return exitcodes.UNAVAILABLE
    return exitcodes.CHECK_FAILED


_OBSTORE_UNREACHABLE = ("error sending request", "connection", "timed out", "timeout", "dns error")
_OBSTORE_5XX = re.compile(r"\b5\d\d\b")


def _obstore_code(exc: BaseException) -> int:
    """obstore (the output writes) reports a store it cannot reach, or one answering 5xx after its own retries, as a
    GenericError whose message says so: an outage like boto3's connection errors, never the recording's fault."""
    name = type(exc).__name__
    if name in ("PermissionDeniedError", "UnauthenticatedError"):
        return exitcodes.NOPERM
    text = str(exc).lower()
    if name == "GenericError" and (any(m in text for m in _OBSTORE_UNREACHABLE) or _OBSTORE_5XX.search(text)):
        return exitcodes.UNAVAILABLE
    return exitcodes.CHECK_FAILED


def labelstudio_alive(settings: Settings, timeout: float = 3.0) -> None:
    """Label Studio's unauthenticated /health answers 200."""
    try:
        response = requests.get(f"{settings.labelstudio.url}/health", timeout=timeout)
    except requests.RequestException as exc:
        raise ProbeError(f"Label Studio unreachable: {type(exc).__name__}", exitcodes.UNAVAILABLE) from exc
    if response.status_code != 200:
        raise ProbeError(f"Label Studio /health answered HTTP {response.status_code}", exitcodes.UNAVAILABLE)


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
    import uuid

    from syncd.storage import is_conflict

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
            exitcodes.CONFIG,
        )
    return f"s3://{bucket}/{prefix}: If-None-Match enforced (conditional writes work)"


def _s3_reason(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', '?')} {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def quick_s3_client(settings: Settings) -> Any:
    """An S3 client for probes: short timeouts and no retries, so /healthz answers fast when S3 is down."""
    from syncd.storage import boto_client

    return boto_client("s3", settings.s3, settings.s3.endpoint_url, attempts=1, connect_timeout=2, read_timeout=3)
