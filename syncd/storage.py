"""S3 access: list new audio, read it, and write transcripts next to it. The audio itself is never written."""

from __future__ import annotations

import posixpath
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import obstore
import obstore.exceptions
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from obstore.auth.boto3 import Boto3CredentialProvider
from obstore.store import S3Store

from syncd.config import S3Settings, SourceSettings, read_secret
from syncd.formats import content_type
from syncd.recording import S3Object


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
        max_pool_connections=64,  # the exporter's writer threads HEAD outputs before conditional puts
        # CRC32 trailers cost CPU and some S3-compatible stores reject them; sent only when S3 demands them.
        request_checksum_calculation="when_required",
        s3={"addressing_style": "path"} if settings.endpoint_url else None,
    )
    return boto3.client(  # type: ignore[call-overload]
        service,
        region_name=settings.region,
        endpoint_url=endpoint_url or None,
        config=config,
        **credentials(settings),
    )


def output_key(key: str, suffix: str, fmt: str) -> str:
    """``calls/a.mp3`` -> ``calls/a.transcript.txt``: outputs live beside the recording."""
    stem, _ = posixpath.splitext(key)
    return f"{stem}{suffix}.{fmt}"


class Storage:
    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
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

    def download(self, bucket: str, key: str, dest: Path) -> None:
        self.client.download_file(bucket, key, str(dest))

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
        raises WriteConflictError instead of overwriting what another writer just put there.

        Puts go through obstore (Rust's object_store), not boto3: a boto3 put costs ~1 ms of CPU under the GIL,
        obstore's ~0.16 ms, and four puts per transcript make this the export's bottleneck."""
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

    def head(self, bucket: str, key: str) -> tuple[str, dict[str, str]] | None:
        """(ETag, user metadata) of an object, or None when there is none."""
        try:
            response = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return str(response["ETag"]).strip('"'), dict(response.get("Metadata") or {})


class WriteConflictError(Exception):
    """A conditional put lost a race: the object changed (or appeared) since we looked."""

    def __init__(self, bucket: str, key: str) -> None:
        super().__init__(f"s3://{bucket}/{key} changed while we wrote it")
        self.bucket = bucket
        self.key = key
