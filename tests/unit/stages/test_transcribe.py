"""The transcribe stage: transcripts completed, failures counted and given up, attempts given back after outages, a
version replaced meanwhile discarded."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber
from structlog.testing import capture_logs

from syncd.domain.recording import Status
from syncd.pipeline import run_stage
from syncd.stages import BY_NAME, scan, transcribe
from syncd.transcribers.aws import AwsTranscriber, job_name
from syncd.transcribers.base import TranscriptionError
from tests.unit.fakes import GO, Stack, services
from tests.unit.scenarios import scanned_recording

KEYS = ["a.mp3", "b.mp3", "c.mp3"]


class Crash(BaseException):
    """Stands for the process dying mid-transcription (SIGKILL, OOM): nothing after it runs."""


def _discover(svc: Any, storage: Any) -> None:
    for key in KEYS:
        storage.put_audio("b", key, key.encode())
    BY_NAME["scan"].run(svc, threading.Event())


def test_retryable_errors_still_spend_attempts(tmp_path: Path) -> None:
    svc, _, storage, engine = services(tmp_path, transcriber={"max_attempts": 2})
    _discover(svc, storage)
    engine.fail = {"a.mp3": TranscriptionError("output not there yet", retryable=True)}
    transcribe.run(svc, threading.Event())
    rec = next(r for r in svc.state.recordings.all() if r.key == "a.mp3")
    assert rec.status == Status.TRANSCRIBING and rec.attempts == 1


def test_a_recording_that_keeps_killing_the_daemon_ends_failed(tmp_path: Path) -> None:
    svc, _, storage, engine = services(tmp_path, transcriber={"max_attempts": 3})
    storage.put_audio("b", "long.mp3")
    BY_NAME["scan"].run(svc, threading.Event())
    engine.in_process = True  # type: ignore[attr-defined]
    engine.max_in_flight = 1

    def die() -> None:
        raise Crash

    engine.while_polling = die
    for _ in range(3):
        with pytest.raises(Crash):
            transcribe.run(svc, threading.Event())
    (rec,) = svc.state.recordings.all()
    assert rec.status == Status.TRANSCRIBING and rec.attempts == 3, "each attempt counted before its work"

    with capture_logs() as logs:
        transcribe.run(svc, threading.Event())  # the next start sees the budget spent: no fourth crash
    (rec,) = svc.state.recordings.all()
    assert rec.status == Status.FAILED and "stopped 3 times while transcribing" in (rec.reason or "")
    assert [e["event"] for e in logs if e["event"].startswith("transcription.")] == ["transcription.failed"]

    svc.state.recordings.requeue_failed()
    engine.while_polling = None
    transcribe.run(svc, threading.Event())
    (rec,) = svc.state.recordings.all()
    assert rec.status == Status.TRANSCRIBED and rec.attempts == 0


def test_an_outage_during_in_process_work_gives_the_attempt_back(tmp_path: Path) -> None:
    svc, _, storage, engine = services(tmp_path)
    storage.put_audio("b", "a.mp3")
    BY_NAME["scan"].run(svc, threading.Event())
    engine.in_process = True  # type: ignore[attr-defined]
    engine.fail = {"a.mp3": EndpointConnectionError(endpoint_url="http://s3")}
    assert not run_stage(svc, BY_NAME["transcribe"], threading.Event()).ok
    (rec,) = svc.state.recordings.all()
    assert rec.attempts == 0 and svc.state.outages.get("s3").ok is False


def test_a_failed_transcribe_job_is_never_adopted_again(aws: AwsTranscriber, tmp_path: Path) -> None:
    svc, _, storage, _ = services(tmp_path)
    rec = scanned_recording(svc, storage)
    failed = {"TranscriptionJobName": job_name(rec), "TranscriptionJobStatus": "FAILED", "FailureReason": "bad"}
    with Stubber(aws.client) as stub:
        stub.add_client_error("start_transcription_job", "ConflictException", "exists")
        stub.add_response("get_transcription_job", {"TranscriptionJob": failed})
        stub.add_response("start_transcription_job", {}, {**aws.job_request(rec, 1)})
        name = aws.start(rec)
    assert name == job_name(rec, 1) == f"{job_name(rec)}-r1"
    assert aws.output_location(rec, name)[1] == f"syncd-transcribe/{name}.json"


def test_transcribe_completes_and_failures_are_counted(stack: Stack) -> None:
    svc, _, storage, engine = stack
    storage.put_audio("b", "a.mp3")
    storage.put_audio("b", "bad.mp3", b"corrupt")
    engine.fail["bad.mp3"] = TranscriptionError("not audio", retryable=False)
    scan.run(svc, GO)
    with capture_logs() as logs:
        assert transcribe.run(svc, GO) == 1
    by_key = {r.key: r for r in svc.state.recordings.all()}
    assert by_key["a.mp3"].status == Status.TRANSCRIBED and by_key["a.mp3"].score == pytest.approx(0.8)
    assert (by_key["bad.mp3"].status, by_key["bad.mp3"].reason) == (Status.FAILED, "not audio")
    assert [e["event"] for e in logs if e["event"].startswith("transcription.")] == [
        "transcription.submitted",
        "transcription.submitted",
        "transcription.completed",
        "transcription.failed",
    ]


def test_transcript_of_a_version_replaced_meanwhile_is_discarded(stack: Stack) -> None:
    svc, _, storage, engine = stack
    storage.put_audio("b", "a.mp3")
    scan.run(svc, GO)
    [rec] = svc.state.recordings.due(Status.DISCOVERED)
    engine.while_polling = lambda: (storage.put_audio("b", "a.mp3", b"replaced"), scan.run(svc, GO))
    with capture_logs() as logs:
        transcribe.run(svc, GO)
    assert svc.state.recordings.get(rec.id).status == Status.SUPERSEDED
    assert svc.state.recordings.get(rec.id).transcript_json is None
    assert any(e["event"] == "transcription.discarded" for e in logs)
