"""Auto-accepted recordings (``syncd.domain.triage``): their ASR transcript is written beside the audio without a task.

Part of the export stage. The outputs carry the lowest review version there is (annotation 0), so any later
human review of the same audio version overwrites them, and they are put with the same conditional writes and the
same audio-version check as a review's. Writes that fail are retried with back-off; after ``output.export_attempts``
the recording is failed with its reason (``syncd retry`` puts it back).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from syncd import errors
from syncd.domain.formats import Review, render
from syncd.domain.recording import Recording, Status
from syncd.errors import classify
from syncd.log import describe_error
from syncd.s3.outputs import Export, Written, write_outputs
from syncd.services import Services
from syncd.stages.export_plan import outputs_base

BATCH = 200
AUTO_VERSION = ("", 0)
"""Older than every review (annotation ids start at 1)."""
OUTAGE_RETRY = 30.0


def _export(svc: Services, rec: Recording) -> Export:
    asr = rec.transcript
    if asr is None:
        raise ValueError(f"recording {rec.id} is auto-accepted but has no transcript")
    review = Review(
        bucket=rec.bucket,
        key=rec.key,
        etag=rec.etag,
        asr=asr,
        segments=asr.segments,
        project=None,
        task=None,
        annotation=None,
        annotator=None,
        created_at=None,
        updated_at=None,
        layout=svc.settings.labelstudio.layout,
        status="auto-accepted",
    )
    bodies = render(review, list(svc.settings.output.formats))
    return Export(rec, review, AUTO_VERSION, bodies, outputs_base(svc, rec))


def _write(svc: Services, rec: Recording) -> Written | Exception:
    """Runs on a worker thread: a failure comes back as the result, to be recorded on the stage's thread."""
    try:
        return write_outputs(svc.storage, _export(svc, rec))
    except Exception as exc:
        return exc


def _record(svc: Services, rec: Recording, done: Written) -> int:
    ids = {"recording": rec.id, "bucket": rec.bucket, "key": rec.key}
    if done.audio_etag is not None:
        svc.log.info("auto_accept.stale_audio", etag=rec.etag, current_etag=done.audio_etag or None, **ids)
        svc.state.recordings.update(rec.id, next_attempt_at=time.time() + OUTAGE_RETRY)
        return 0
    if not svc.state.recordings.move(rec.id, Status.ACCEPTED, Status.EXPORTED, exported_at=time.time(), reason=None):
        return 0
    svc.log.info(
        "transcript.auto_accepted",
        confidence=rec.score,
        formats=sorted(done.formats),
        kept_newer=sorted(done.kept_newer),
        seconds=done.seconds,
        **ids,
    )
    return 1 if done.formats else 0


def _failed(svc: Services, rec: Recording, exc: Exception) -> None:
    reason = describe_error(exc)
    if classify(exc) == errors.UNAVAILABLE:
        svc.state.recordings.update(rec.id, reason=reason, next_attempt_at=time.time() + OUTAGE_RETRY)
    else:
        limit = svc.settings.output.export_attempts
        svc.state.recordings.record_failure(rec.id, Status.ACCEPTED, reason, retryable=True, max_attempts=limit)
    svc.log.error("auto_accept.failed", recording=rec.id, bucket=rec.bucket, key=rec.key, error=reason)


def run(svc: Services, stop: threading.Event) -> int:
    """Write the transcripts of the auto-accepted recordings that are due; returns transcripts written."""
    written = 0
    with ThreadPoolExecutor(svc.settings.output.write_workers, thread_name_prefix="accept") as pool:
        while not stop.is_set():
            recs = svc.state.recordings.due(Status.ACCEPTED, limit=BATCH)
            for rec, outcome in zip(recs, pool.map(lambda r: _write(svc, r), recs), strict=True):
                if isinstance(outcome, Exception):
                    _failed(svc, rec, outcome)
                else:
                    written += _record(svc, rec, outcome)
            if len(recs) < BATCH:
                break
    return written
