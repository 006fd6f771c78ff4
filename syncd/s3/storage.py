"""S3 access: list new audio, read it, and write transcripts next to it. The audio itself is never written."""

from __future__ import annotations

import functools
import posixpath
import re
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import obstore
import obstore.exceptions
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from botocore.utils import parse_timestamp
from obstore.auth.boto3 import Boto3CredentialProvider
from obstore.store import S3Store

from syncd.config import S3Settings, SourceSettings, read_secret
from syncd.domain.formats import content_type
from syncd.domain.recording import S3Object


def credentials(settings: S3Settings) -> dict[str, str]:
    """Explicit keys when configured; otherwise boto3's own chain (instance role, profile, ...) decides."""
    key_id = read_secret(settings.access_key_id_env)
    secret = read_secret(settings.secret_access_key_env, settings.secret_access_key_file)
    if key_id and secret:
        return {"aws_access_key_id": key_id, "aws_secret_access_key": secret}
    return {}


def boto_client(
    service: str,
    settings: S3Settings,
    endpoint_url: str = "",
    *,
    attempts: int = 8,
    connect_timeout: float = 10,
    read_timeout: float = 60,
) -> Any:
    """A boto3 client with standard retries: throttling and 5xx are retried with back-off by botocore.
    Probes ask for one attempt and short timeouts, so /healthz answers fast when S3 is down."""
    config = BotoConfig(
        retries={"mode": "standard", "max_attempts": attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=64,  # the export stage's writer threads HEAD outputs before conditional puts
        # CRC32 trailers cost CPU and some S3-compatible stores reject them; sent only when S3 demands them.
        request_checksum_calculation="when_required",
        s3={"addressing_style": "path"} if settings.endpoint_url else None,
    )
    return _session().client(  # type: ignore[call-overload]
        service,
        region_name=settings.region,
        endpoint_url=endpoint_url or None,
        config=config,
        **credentials(settings),
    )


@functools.cache
def _session() -> boto3.Session:
    """One boto3 session for every client, whose responses' timestamps are read by ``_timestamp``."""
    core = botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_timestamp)
    return boto3.Session(botocore_session=core)


def _timestamp(value: str) -> datetime:
    """botocore reads every timestamp with dateutil's general parser: ~0.35 ms each, a third of a listing page's
    CPU (1000 ``LastModified``). S3's ISO 8601 form goes through ``datetime.fromisoformat``, 50x faster; any other
    form (HTTP dates in headers, epoch seconds) through botocore's own parser."""
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return parse_timestamp(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


S3_MAX_KEY_BYTES = 1024


def output_base(key: str, suffix: str, *, keep_audio_suffix: bool = False) -> str:
    """Where a recording's outputs go, without the format: ``calls/a.mp3`` -> ``calls/a.transcript``, or with
    ``keep_audio_suffix`` (another audio key shares the stem, or ``output.naming = "key"``)
    ``calls/a.mp3.transcript``."""
    stem = key if keep_audio_suffix else posixpath.splitext(key)[0]
    return f"{stem}{suffix}"


def output_key(key: str, suffix: str, fmt: str, *, keep_audio_suffix: bool = False) -> str:
    """``calls/a.mp3`` -> ``calls/a.transcript.txt``: outputs live beside the recording."""
    return f"{output_base(key, suffix, keep_audio_suffix=keep_audio_suffix)}.{fmt}"


_OBSTORE_REFUSES = re.compile(r"[\x00-\x1f\x7f\\]|(?:^|/)\.{0,2}(?:/|$)")
"""A control character or backslash, or an empty, ``.`` or ``..`` path segment (``obstore_can_write``)."""


def obstore_can_write(key: str) -> bool:
    """obstore parses keys as paths: it refuses control characters, empty (``//``) and ``.``/``..`` segments,
    silently strips a leading or trailing ``/`` and turns ``\\`` into ``/``. S3 accepts all of these keys as they
    are, so they are written with boto3 instead (checked against SeaweedFS with obstore 0.12.1)."""
    return _OBSTORE_REFUSES.search(key) is None


class Storage:
    def __init__(self, settings: S3Settings, *, conditional: bool = True) -> None:
        self.settings = settings
        self.conditional = conditional
        self.client = boto_client("s3", settings, settings.endpoint_url)
        self.calls: Counter[str] = Counter()
        self.client.meta.events.register("before-call.s3", self._count)
        self._stores: dict[str, Any] = {}
        self._stores_lock = threading.Lock()

    def _count(self, model: Any, **_: Any) -> None:
        """S3 API calls by operation: what makes "an unchanged bucket costs one listing" measurable."""
        self.calls[model.name] += 1

    def list_audio(self, source: SourceSettings, exclude_prefixes: tuple[str, ...] = ()) -> Iterator[list[S3Object]]:
        """The objects under the source prefix whose suffix marks them as audio, one listing page (up to 1000 keys)
        at a time: a scan holds one page in memory, never the bucket."""
        paginator = self.client.get_paginator("list_objects_v2")
        suffixes = tuple(source.suffixes)
        for page in paginator.paginate(Bucket=source.bucket, Prefix=source.prefix):
            yield [
                S3Object(
                    bucket=source.bucket,
                    key=item["Key"],
                    etag=item["ETag"].strip('"'),
                    size=int(item["Size"]),
                    last_modified=item["LastModified"].isoformat(),
                )
                for item in page.get("Contents", ())
                if not item["Key"].endswith("/")
                and not item["Key"].startswith(exclude_prefixes)
                and item["Key"].lower().endswith(suffixes)
            ]

    def download(self, bucket: str, key: str, dest: Path, *, if_match: str | None = None) -> None:
        """Fetch one object to a file; with ``if_match`` (an ETag) only that version (else PreconditionFailed), in
        one streamed GET, since boto3's managed download cannot pass the condition."""
        if not if_match:
            self.client.download_file(bucket, key, str(dest))
            return
        response = self.client.get_object(Bucket=bucket, Key=key, IfMatch=f'"{if_match}"')
        with dest.open("wb") as out:
            shutil.copyfileobj(response["Body"], out, 1 << 20)

    def upload(self, bucket: str, key: str, path: Path, content_type: str) -> str:
        """Put a file syncd owns (a review unit's clip) in one request; returns its ETag."""
        with path.open("rb") as body:
            response = self.client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        return str(response.get("ETag") or "").strip('"')

    def read(self, bucket: str, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    def write(
        self,
        bucket: str,
        key: str,
        body: bytes,
        fmt: str,
        metadata: dict[str, str],
        *,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> str:
        """Put one output; with ``if_match`` (an ETag) or ``if_absent`` the put is conditional and a lost race
        raises WriteConflictError instead of overwriting what another writer just put there. Without conditional
        writes (``output.conditional_writes = "single-writer"``) every put is plain.

        Puts go through obstore (Rust's object_store), not boto3: a boto3 put costs ~1 ms of CPU under the GIL,
        obstore's ~0.16 ms, and four puts per transcript make this the export's bottleneck. Keys obstore cannot
        express exactly go through boto3, with the same conditions."""
        if not self.conditional:
            if_match, if_absent = None, False
        if not obstore_can_write(key):
            return self._boto_write(bucket, key, body, fmt, metadata, if_match=if_match, if_absent=if_absent)
        mode: Any = "overwrite"
        if if_match is not None:
            mode = {"e_tag": f'"{if_match}"'}
        elif if_absent:
            mode = "create"
        attributes = {"Content-Type": content_type(fmt), **metadata}
        self.calls["PutObject"] += 1
        try:
            result = obstore.put(self._store(bucket), key, body, mode=mode, attributes=attributes)
        except (obstore.exceptions.AlreadyExistsError, obstore.exceptions.PreconditionError) as exc:
            raise WriteConflictError(bucket, key) from exc
        return str(result.get("e_tag") or "").strip('"')

    def _boto_write(
        self,
        bucket: str,
        key: str,
        body: bytes,
        fmt: str,
        metadata: dict[str, str],
        *,
        if_match: str | None,
        if_absent: bool,
    ) -> str:
        conditions = {"IfMatch": f'"{if_match}"'} if if_match is not None else {"IfNoneMatch": "*"} if if_absent else {}
        try:
            response = self.client.put_object(
                Bucket=bucket, Key=key, Body=body, ContentType=content_type(fmt), Metadata=metadata, **conditions
            )
        except ClientError as exc:
            if is_conflict(exc):
                raise WriteConflictError(bucket, key) from exc
            raise
        return str(response.get("ETag") or "").strip('"')

    def _store(self, bucket: str) -> Any:
        with self._stores_lock:
            if bucket not in self._stores:
                self._stores[bucket] = S3Store(bucket, **self._store_options())
            return self._stores[bucket]

    def _store_options(self) -> dict[str, Any]:
        """The same endpoint, region and credentials as the boto3 client (boto3's chain when no keys are set)."""
        options: dict[str, Any] = {
            "region": self.settings.region,
            "client_options": {"timeout": "60s", "connect_timeout": "10s", "allow_http": True},
            "conditional_put": "etag",
        }
        if self.settings.endpoint_url:
            options |= {"endpoint": self.settings.endpoint_url, "virtual_hosted_style_request": False}
        keys = credentials(self.settings)
        if keys:
            options |= {"access_key_id": keys["aws_access_key_id"], "secret_access_key": keys["aws_secret_access_key"]}
        else:
            options["credential_provider"] = Boto3CredentialProvider(boto3.Session(region_name=self.settings.region))
        return options

    def delete(self, bucket: str, key: str) -> None:
        self.client.delete_object(Bucket=bucket, Key=key)

    def etag(self, bucket: str, key: str) -> str | None:
        """The object's current ETag, or None when there is none: one HEAD, through obstore where it can address the
        key (a tenth of boto3's CPU, which matters at one call per exported transcript)."""
        if not obstore_can_write(key):
            found = self.head(bucket, key)
            return found[0] if found else None
        self.calls["HeadObject"] += 1
        try:
            meta = obstore.head(self._store(bucket), key)
        except (FileNotFoundError, obstore.exceptions.NotFoundError):
            return None
        return str(meta.get("e_tag") or "").strip('"')

    def head(self, bucket: str, key: str) -> tuple[str, dict[str, str]] | None:
        """(ETag, user metadata) of an object, or None when there is none."""
        try:
            response = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return str(response["ETag"]).strip('"'), dict(response.get("Metadata") or {})


def is_conflict(exc: ClientError) -> bool:
    """A conditional put refused: 412 PreconditionFailed, or 409 ConditionalRequestConflict (a concurrent put)."""
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error.get("Code") in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412)


class WriteConflictError(Exception):
    """A conditional put lost a race: the object changed (or appeared) since we looked."""

    def __init__(self, bucket: str, key: str) -> None:
        super().__init__(f"s3://{bucket}/{key} changed while we wrote it")
        self.bucket = bucket
        self.key = key
