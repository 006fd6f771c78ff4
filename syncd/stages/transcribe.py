"""Transcribe: start jobs for discovered recordings (within the engine's in-flight limit) and collect results.

Polling never waits on a job: an unfinished cloud job is looked at again next cycle, so a restart loses nothing.

Three kinds of trouble are told apart. An outage of a service (``OutageError``: connection, throttling, 5xx) is
recorded in ``syncd.state.outages`` and waited out with back-off; it never spends a recording's attempts and the stage
run fails (cause "unavailable") until the service answers again. A retryable failure spends one attempt and backs off.
A permanent one (corrupt audio, malformed output, a FAILED job) fails the recording with its reason at once. An
in-process engine's attempt is counted before its work starts, so a recording that keeps killing the daemon ends
``failed`` instead of being retried forever.
"""

from __future__ import annotations

import threading
import time

from syncd import errors
from syncd.domain import triage
from syncd.domain.recording import Recording, Status
from syncd.domain.transcript import Transcript
from syncd.errors import classify
from syncd.faults import fault_point
from syncd.heartbeat import beat
from syncd.log import describe_error
from syncd.services import Services
from syncd.state import outages
from syncd.transcribers.base import OutageError, Progress, TranscriptionError, works_in_process


def _outage(exc: Exception) -> OutageError | None:
    """The outage ``exc`` stands for, if it is one; an engine's own connection errors are put on S3 (its input)."""
    if isinstance(exc, OutageError):
        return exc
    if not isinstance(exc, TranscriptionError) and classify(exc) == errors.UNAVAILABLE:
        return OutageError("s3", describe_error(exc))
    return None


def _fail(svc: Services, rec: Recording, exc: Exception, *, counted: bool = False) -> None:
    retryable = exc.retryable if isinstance(exc, TranscriptionError) else True
    reason = exc.reason if isinstance(exc, TranscriptionError) else describe_error(exc)
    gave_up = svc.state.recordings.record_failure(
        rec.id,
        Status.DISCOVERED,
        reason,
        retryable=retryable,
        max_attempts=svc.settings.transcriber.max_attempts,
        counted=counted,
    )
    if gave_up:
        svc.state.recordings.update(rec.id, job_name=None)
        svc.log.warning(
            "transcription.failed", recording=rec.id, bucket=rec.bucket, key=rec.key, job=rec.job_name, reason=reason
        )
    else:
        svc.log.warning(
            "transcription.retrying", recording=rec.id, bucket=rec.bucket, key=rec.key, job=rec.job_name, reason=reason
        )


class _Run:
    """One stage run: counts calls that reached the engine's services, and stops at the first outage."""

    def __init__(self, svc: Services, stop: threading.Event) -> None:
        self.svc = svc
        self.stop = stop
        self.calls = 0
        self.in_process = works_in_process(svc.transcriber)

    def start(self, limit: int) -> int:
        svc = self.svc
        started = 0
        for rec in _claim(svc, Status.DISCOVERED, limit):
            try:
                job = svc.transcriber.start(rec)
            except Exception as exc:
                self._failed(rec, exc)
                continue
            self.calls += 1
            fault_point("transcribe.after_start")
            if not svc.state.recordings.move(
                rec.id, Status.DISCOVERED, Status.TRANSCRIBING, job_name=job, engine=svc.transcriber.engine
            ):
                continue
            svc.log.info("transcription.submitted", recording=rec.id, bucket=rec.bucket, key=rec.key, job=job)
            started += 1
            beat()
        return started

    def collect(self) -> int:
        svc = self.svc
        done = 0
        for rec in _claim(svc, Status.TRANSCRIBING, svc.transcriber.max_in_flight):
            if self.stop.is_set():
                break
            beat()
            if self.in_process and not self._begin(rec):
                continue
            try:
                transcript = svc.transcriber.poll(rec, self._progress(rec))
            except Exception as exc:
                self._failed(rec, exc)
                continue
            self.calls += 1
            if transcript is None:
                continue
            done += self._store(rec, transcript)
            if not self.stop.is_set():
                self.start(_capacity(svc))  # keep a local engine's workers busy while the rest of this round finishes
        return done

    def _begin(self, rec: Recording) -> bool:
        """Count this attempt before the work; False when earlier attempts used up the budget without coming back."""
        attempts = self.svc.state.recordings.begin_attempt(rec.id, Status.TRANSCRIBING)
        limit = self.svc.settings.transcriber.max_attempts
        if not attempts:
            return False
        if attempts > limit:
            died = f"the daemon stopped {attempts - 1} times while transcribing it (crash, out of memory or watchdog)"
            last = f"; last error: {rec.reason}" if rec.reason else ""
            _fail(self.svc, rec, TranscriptionError(died + last, retryable=False), counted=True)
            return False
        fault_point("transcribe.attempt_started")
        return True

    def _progress(self, rec: Recording) -> Progress:
        """Each progress report beats the heartbeat of the thread running this stage (the engine logs the progress)."""

        def progress(_fraction: float | None) -> None:
            beat()

        return progress

    def _failed(self, rec: Recording, exc: Exception) -> None:
        outage = _outage(exc)
        if outage is None:
            _fail(self.svc, rec, exc, counted=self.in_process and rec.status == Status.TRANSCRIBING)
            return
        if self.in_process and rec.status == Status.TRANSCRIBING:
            self.svc.state.recordings.refund_attempt(rec.id)
        backoff = self.svc.settings.schedule.outage_backoff_max
        dep = self.svc.state.outages.mark_down(outage.dependency, outage.reason, backoff, self.svc.log)
        raise outages.DependencyDownError(
            f"{dep.name} unavailable for {dep.down_seconds():.0f}s, retrying in {dep.retry_at - time.time():.0f}s:"
            f" {outage.reason}"
        ) from exc

    def _store(self, rec: Recording, transcript: Transcript) -> int:
        svc = self.svc
        mode = triage.route(svc.settings.review, rec.syncd_id, transcript.confidence)
        kept = svc.state.recordings.move(
            rec.id,
            Status.TRANSCRIBING,
            Status.ACCEPTED if mode == triage.Mode.AUTO else Status.TRANSCRIBED,
            transcript=transcript,
            score=transcript.confidence,
            review_mode=mode,
            duration=transcript.duration,
            reason=None,
            attempts=0,
        )
        if not kept:
            svc.log.info("transcription.discarded", recording=rec.id, key=rec.key, reason="superseded meanwhile")
            return 0
        svc.log.info(
            "transcription.completed",
            recording=rec.id,
            bucket=rec.bucket,
            key=rec.key,
            job=rec.job_name,
            confidence=transcript.confidence,
            duration=transcript.duration,
            segments=len(transcript.segments),
            review=mode,
        )
        return 1


def _claim(svc: Services, status: Status, limit: int) -> list[Recording]:
    """Recordings this instance works on: its own, those no one holds, and those of an instance that stopped
    renewing its claims (taken over: an in-process engine transcribes them again, a cloud job is polled)."""
    if limit <= 0:
        return []
    me = svc.instance
    return svc.state.leases.claim(status, limit, me.name, me.validity)


def _capacity(svc: Services) -> int:
    return max(
        svc.transcriber.max_in_flight - svc.state.leases.count_in_hand(Status.TRANSCRIBING, svc.instance.name), 0
    )


def run(svc: Services, stop: threading.Event) -> int:
    """Start and collect until no more progress is possible this cycle; returns transcripts completed. While a
    service the engine needs is down and not due for another try, the run fails at once without calling it."""
    down = [dep for dep in svc.state.outages.waiting() if dep.name != outages.LABELSTUDIO]
    if down:
        names = ", ".join(f"{d.name} ({d.error})" for d in down)
        raise outages.DependencyDownError(f"waiting for {names}")
    svc.transcriber.use_vocabulary(svc.state.reports.vocabulary())
    work = _Run(svc, stop)
    completed = 0
    while not stop.is_set():
        started = work.start(_capacity(svc))
        finished = work.collect()
        completed += finished
        if not started and not finished:
            break
    if work.calls:
        known = svc.state.outages.all_known().values()
        svc.state.outages.mark_up([d.name for d in known if not d.ok and d.name != outages.LABELSTUDIO], svc.log)
    return completed
