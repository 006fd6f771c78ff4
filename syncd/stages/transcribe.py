"""Transcribe: start jobs for discovered recordings (within the engine's in-flight limit) and collect results.

Polling never waits on a job: an unfinished cloud job is looked at again next cycle, so a restart loses nothing.
"""

from __future__ import annotations

import threading

from syncd.faults import fault_point
from syncd.recording import Recording, Status
from syncd.services import Services
from syncd.transcribers.base import TranscriptionError


def _fail(svc: Services, rec: Recording, exc: Exception) -> None:
    retryable = exc.retryable if isinstance(exc, TranscriptionError) else True
    reason = exc.reason if isinstance(exc, TranscriptionError) else f"{type(exc).__name__}: {exc}"
    gave_up = svc.state.record_failure(
        rec.id, Status.DISCOVERED, reason, retryable=retryable, max_attempts=svc.settings.transcriber.max_attempts
    )
    if gave_up:
        svc.state.update(rec.id, job_name=None)
    event = "transcription.failed" if gave_up else "transcription.retrying"
    svc.log.warning(event, recording=rec.id, bucket=rec.bucket, key=rec.key, job=rec.job_name, reason=reason)


def _start(svc: Services, limit: int) -> int:
    started = 0
    for rec in svc.state.due(Status.DISCOVERED, limit=limit):
        try:
            job = svc.transcriber.start(rec)
        except Exception as exc:
            _fail(svc, rec, exc)
            continue
        fault_point("transcribe.after_start")
        if not svc.state.move(
            rec.id, Status.DISCOVERED, Status.TRANSCRIBING, job_name=job, engine=svc.transcriber.engine
        ):
            continue
        svc.log.info("transcription.submitted", recording=rec.id, bucket=rec.bucket, key=rec.key, job=job)
        started += 1
    return started


def _collect(svc: Services, stop: threading.Event) -> int:
    done = 0
    for rec in svc.state.due(Status.TRANSCRIBING, limit=svc.transcriber.max_in_flight):
        if stop.is_set():
            break
        try:
            transcript = svc.transcriber.poll(rec)
        except Exception as exc:
            _fail(svc, rec, exc)
            continue
        if transcript is None:
            continue
        kept = svc.state.move(
            rec.id,
            Status.TRANSCRIBING,
            Status.TRANSCRIBED,
            transcript=transcript,
            score=transcript.confidence,
            reason=None,
            attempts=0,
        )
        if not kept:
            svc.log.info("transcription.discarded", recording=rec.id, key=rec.key, reason="superseded meanwhile")
            continue
        svc.log.info(
            "transcription.completed",
            recording=rec.id,
            bucket=rec.bucket,
            key=rec.key,
            job=rec.job_name,
            confidence=transcript.confidence,
            duration=transcript.duration,
            segments=len(transcript.segments),
        )
        done += 1
        if not stop.is_set():
            _start(svc, _capacity(svc))  # keep a local engine's workers busy while the rest of this round finishes
    return done


def _capacity(svc: Services) -> int:
    return max(svc.transcriber.max_in_flight - svc.state.count(Status.TRANSCRIBING), 0)


def run(svc: Services, stop: threading.Event) -> int:
    """Start and collect until no more progress is possible this cycle; returns transcripts completed."""
    completed = 0
    while not stop.is_set():
        started = _start(svc, _capacity(svc))
        finished = _collect(svc, stop)
        completed += finished
        if not started and not finished:
            break
    return completed
