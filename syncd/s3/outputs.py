"""Transcripts written beside the audio with compare-and-swap puts: an older review never overwrites a newer one.

Every output carries its review's version (annotation ``updated_at``, id) and the audio ETag it describes in S3
metadata and is put with If-None-Match / If-Match: of two writers racing, the newer review wins, and nothing is written
unless the audio in S3 is still the version the review describes. The JSON goes last: it marks a complete export.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from syncd.domain.formats import Review, redaction
from syncd.domain.recording import Recording
from syncd.faults import fault_point
from syncd.s3.storage import Storage, WriteConflictError

META_ANNOTATION = "syncd-annotation"
META_UPDATED = "syncd-updated-at"
META_SOURCE = "syncd-source-etag"
META_REDACTED = "syncd-redacted"
METADATA = {
    META_ANNOTATION: "id of the Label Studio annotation the output was written from",
    META_UPDATED: "that annotation's updated_at: with the id, the review's version (an older one never overwrites it)",
    META_SOURCE: "ETag of the audio version the review describes (nothing is written beside another version)",
    META_REDACTED: '"PII" when Amazon Transcribe redacted personal information in the transcript; absent otherwise',
}
"""The S3 user metadata on every output (``x-amz-meta-<name>``), and what each one holds."""


Version = tuple[str, int]
"""(annotation updated_at as an ls_time string, annotation id): larger is newer."""


def stored_version(metadata: dict[str, str]) -> Version:
    """The version an existing output was written from; outputs without one are older than any review."""
    return metadata.get(META_UPDATED, ""), int(metadata.get(META_ANNOTATION) or 0)


@dataclass(frozen=True)
class Export:
    """One review rendered and ready to write; ``base`` is the output key without its format."""

    rec: Recording
    review: Review
    version: Version
    bodies: dict[str, bytes]
    base: str
    task_updated_at: str = ""


@dataclass(frozen=True)
class Written:
    """What became of each format: put now, already there from this same review, or kept (a newer one is there).
    ``audio_etag`` is set (and nothing written) when S3 holds another version of the audio than the review's."""

    formats: list[str]
    current: list[str]
    kept_newer: list[str]
    seconds: float
    audio_etag: str | None = None


_MAX_RACES = 5
"""Conditional puts retried when another writer keeps winning the race (each retry re-reads the object's version)."""


def put_if_newer(
    storage: Storage,
    bucket: str,
    key: str,
    body: bytes,
    fmt: str,
    meta: dict[str, str],
    version: Version,
    *,
    fresh: bool,
) -> str:
    """Put ``body`` unless the object there was written from the same review ("current") or a newer one ("newer");
    "written" when put. ``fresh`` (never exported before) tries If-None-Match first and saves a HEAD. An output
    written for another version of the audio (``syncd-source-etag``) is older than any review of this one: the caller
    has just seen that this version is the one in S3."""
    current = None if fresh and storage.conditional else storage.head(bucket, key)
    for _ in range(_MAX_RACES):
        if current is not None and _same_source(current[1], meta) and stored_version(current[1]) >= version:
            return "current" if stored_version(current[1]) == version else "newer"
        try:
            storage.write(bucket, key, body, fmt, meta, if_match=current[0] if current else None, if_absent=not current)
            return "written"
        except WriteConflictError:
            current = storage.head(bucket, key)
    raise WriteConflictError(bucket, key)


def _same_source(stored: dict[str, str], meta: dict[str, str]) -> bool:
    return not meta.get(META_SOURCE) or stored.get(META_SOURCE, meta[META_SOURCE]) == meta[META_SOURCE]


def write_outputs(storage: Storage, export: Export) -> Written:
    """Write every format, unless S3 no longer holds the audio version the review describes (replaced or deleted
    since the scan; nothing is then written beside audio it does not describe)."""
    started = time.monotonic()
    rec, (updated, annotation) = export.rec, export.version
    audio = storage.etag(rec.bucket, rec.key)
    if audio != rec.etag:
        return Written([], [], [], round(time.monotonic() - started, 3), audio_etag=audio or "")
    meta = {META_ANNOTATION: str(annotation), META_UPDATED: updated, META_SOURCE: rec.etag}
    fault_point("export.write")
    if redaction(export.review.asr):
        meta[META_REDACTED] = "PII"
    outcomes: dict[str, list[str]] = {"written": [], "current": [], "newer": []}
    for fmt in sorted(export.bodies, key=lambda f: f == "json"):  # json last: it marks a complete export
        key = f"{export.base}.{fmt}"
        fresh = rec.annotation_id is None
        outcome = put_if_newer(storage, rec.bucket, key, export.bodies[fmt], fmt, meta, export.version, fresh=fresh)
        outcomes[outcome].append(fmt)
    seconds = round(time.monotonic() - started, 3)
    return Written(outcomes["written"], outcomes["current"], outcomes["newer"], seconds)
