"""Split, part of the import stage: a transcribed recording longer than ``review.max_task_minutes`` gets one FLAC
clip per review unit under ``review.units_prefix`` (``syncd.domain.units`` plans them, cut at pauses between
segments) and one transcribed recording per unit. The units are imported like any recording; the recording itself
never is, and its transcripts are written once every unit is reviewed (``export_stitch``).
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

from syncd import errors
from syncd.audio import clips
from syncd.audio.decode import AudioError, probe
from syncd.domain import units
from syncd.domain.recording import Recording, S3Object, Status, syncd_id
from syncd.errors import classify
from syncd.log import describe_error
from syncd.services import Services

OUTAGE_RETRY = 30.0
SPLITS_PER_RUN = 4
"""Recordings split in one import run at most: each is a download, a decode and an upload per unit."""


def clip_key(prefix: str, parent: Recording, unit: units.Unit) -> str:
    """Named by the parent's version and the span, so a different split never overwrites a clip in review."""
    return f"{prefix}{parent.syncd_id}/{round(unit.start * 1000):09d}-{round(unit.end * 1000):09d}{clips.SUFFIX}"


def run(svc: Services, stop: threading.Event) -> int:
    """Split the recordings that are due; returns how many were split."""
    minutes = svc.settings.review.max_task_minutes
    done = 0
    if not minutes:
        return done
    for rec in svc.state.recordings.too_long(minutes * 60, limit=SPLITS_PER_RUN):
        if stop.is_set():
            break
        try:
            done += _split(svc, rec, minutes * 60)
        except Exception as exc:
            _split_failed(svc, rec, exc)
    return done


def _split(svc: Services, rec: Recording, max_seconds: float) -> int:
    transcript = rec.transcript
    assert transcript is not None
    if len(units.plan(transcript, max_seconds)) == 1:
        svc.state.recordings.update(rec.id, unit_start=0.0)  # cannot be cut (no pause to cut at): reviewed whole
        svc.log.info("recording.not_split", recording=rec.id, bucket=rec.bucket, key=rec.key, reason="no pause")
        return 0
    started = time.monotonic()
    prefix = svc.settings.review.units_prefix
    with tempfile.TemporaryDirectory(prefix="syncd-units-") as tmp:
        source = Path(tmp) / "audio"
        svc.storage.download(rec.bucket, rec.key, source, if_match=rec.etag)
        plan = units.plan(transcript, max_seconds, probe(source).duration)
        paths = clips.cut(source, [(u.start, u.end) for u in plan], Path(tmp))
        found = []
        for unit, path in zip(plan, paths, strict=True):
            key = clip_key(prefix, rec, unit)
            etag = svc.storage.upload(rec.bucket, key, path, "audio/flac")
            on_clip = units.unit_transcript(transcript, unit, rec.key)
            obj = S3Object(rec.bucket, key, etag, path.stat().st_size)
            found.append((obj, syncd_id(rec.bucket, key, rec.etag), unit.start, on_clip))
    if not svc.state.recordings.add_units(rec, found):
        return 0
    svc.log.info(
        "recording.split",
        recording=rec.id,
        bucket=rec.bucket,
        key=rec.key,
        units=len(plan),
        bounds=[[u.start, u.end] for u in plan],
        seconds=round(time.monotonic() - started, 3),
    )
    return 1


def _split_failed(svc: Services, rec: Recording, exc: Exception) -> None:
    reason = f"cannot split into review units: {describe_error(exc)}"
    ids = {"recording": rec.id, "bucket": rec.bucket, "key": rec.key}
    if classify(exc) == errors.UNAVAILABLE:
        svc.state.recordings.update(rec.id, reason=reason, next_attempt_at=time.time() + OUTAGE_RETRY)
        svc.log.warning("recording.split_waiting", reason=reason, **ids)
        return
    retryable = not isinstance(exc, AudioError)
    limit = svc.settings.transcriber.max_attempts
    gave_up = svc.state.recordings.record_failure(
        rec.id, Status.TRANSCRIBED, reason, retryable=retryable, max_attempts=limit
    )
    svc.log.error("recording.split_failed", gave_up=gave_up, reason=reason, **ids)
