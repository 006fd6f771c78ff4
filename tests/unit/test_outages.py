"""Outages, crashes and long work, in-process: an outage never spends attempts and health names the service; a
recording that keeps killing the daemon ends failed; a stage that reports progress is never taken for stuck; a FAILED
Transcribe job is never adopted again; malformed output is a permanent failure with its reason."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber
from structlog.testing import capture_logs

from syncd import dependencies, heartbeat
from syncd.config import AwsTranscribeSettings, S3Settings, TranscriberSettings
from syncd.daemon.health import health_report
from syncd.daemon.jobs import StageJobs
from syncd.ops import format_status, status_report
from syncd.pipeline import run_stage
from syncd.recording import Status
from syncd.stages import BY_NAME, transcribe
from syncd.storage import Storage
from syncd.transcribers.aws import AwsTranscriber, job_name
from syncd.transcribers.base import OutageError, TranscriptionError
from tests.unit.fakes import healthy_probes, services

KEYS = ["a.mp3", "b.mp3", "c.mp3"]


class Crash(BaseException):
    """Stands for the process dying mid-transcription (SIGKILL, OOM): nothing after it runs."""


def _discover(svc: Any, storage: Any) -> None:
    for key in KEYS:
        storage.put_audio("b", key, key.encode())
    BY_NAME["scan"].run(svc, threading.Event())


_probes = healthy_probes


def _due_again(svc: Any) -> None:
    """Let the back-off run out now (the test does not wait for it)."""
    for dep in dependencies.all_known(svc.state).values():
        dependencies._save(svc.state, dependencies.Dependency(**{**dep.__dict__, "retry_at": 0.0}))


def test_outage_spends_no_attempts_fails_the_cycle_and_health_names_it(tmp_path: Path) -> None:
    svc, _, storage, engine = services(
        tmp_path, transcriber={"max_attempts": 2}, http={"dependency_grace": 0}, schedule={"outage_backoff_max": 60}
    )
    _discover(svc, storage)
    down = OutageError("transcribe", "GetTranscriptionJob: EndpointConnectionError: could not connect")
    engine.fail = dict.fromkeys(KEYS, down)

    with capture_logs() as logs:
        runs = []
        for _ in range(10):  # far more tries than max_attempts
            runs.append(run_stage(svc, BY_NAME["transcribe"], threading.Event()))
            _due_again(svc)
    assert not any(run.ok for run in runs), "cycle.ok must not stay true while Transcribe is down"
    failed = [e for e in logs if e["event"] == "stage.failed"]
    assert len(failed) == 10 and {e["cause"] for e in failed} == {"unavailable"}
    assert [e["event"] for e in logs].count("dependency.down") == 1
    assert not [e for e in logs if e["event"] in ("transcription.failed", "transcription.retrying")]
    assert {r.status for r in svc.state.recordings()} == {Status.TRANSCRIBING}
    assert {r.attempts for r in svc.state.recordings()} == {0}

    # While waiting for the back-off, the stage does not call the engine at all.
    polls = len(engine.started)
    dependencies.mark_down(svc.state, "transcribe", "still down", 60, svc.log)
    assert not run_stage(svc, BY_NAME["transcribe"], threading.Event()).ok
    assert len(engine.started) == polls

    # What the operator sees: /healthz failing naming Transcribe, syncd status, the metric's source.
    ok, body = health_report(svc.settings, "running", 1.0, _probes(svc.settings), svc.state)
    assert not ok and body["status"] == "failing" and body["down"] == ["transcribe"]
    check = body["checks"]["transcribe"]
    assert check["ok"] is False and check["up"] is False and check["error"] == "still down"
    assert check["down_since"] and check["down_seconds"] >= 0
    report = status_report(svc.state)
    assert report["dependencies"]["transcribe"]["ok"] is False
    assert "transcribe DOWN since" in format_status(report)

    # Back: every recording finishes, nothing failed, Transcribe is up again.
    engine.fail = {}
    _due_again(svc)
    with capture_logs() as logs:
        assert run_stage(svc, BY_NAME["transcribe"], threading.Event()).ok
    assert {r.status for r in svc.state.recordings()} == {Status.TRANSCRIBED}
    assert [e["dependency"] for e in logs if e["event"] == "dependency.up"] == ["transcribe"]
    ok, body = health_report(svc.settings, "running", 1.0, _probes(svc.settings), svc.state)
    assert ok and body["checks"]["transcribe"]["up"] is True and "down" not in body


def test_health_tolerates_a_short_outage_within_the_grace(tmp_path: Path) -> None:
    svc, *_ = services(tmp_path, http={"dependency_grace": 3600})
    dependencies.mark_down(svc.state, "transcribe", "ThrottlingException", 60, svc.log)
    ok, body = health_report(svc.settings, "running", 1.0, _probes(svc.settings), svc.state)
    assert ok and body["checks"]["transcribe"]["up"] is False and body["down"] == ["transcribe"]


def test_backoff_doubles_up_to_the_cap(tmp_path: Path) -> None:
    svc, *_ = services(tmp_path)
    delays = []
    for _ in range(8):
        dep = dependencies.mark_down(svc.state, "transcribe", "down", 40, svc.log)
        delays.append(round(dep.retry_at - time.time()))
    assert delays == [5, 10, 20, 40, 40, 40, 40, 40]


def test_retryable_errors_still_spend_attempts(tmp_path: Path) -> None:
    svc, _, storage, engine = services(tmp_path, transcriber={"max_attempts": 2})
    _discover(svc, storage)
    engine.fail = {"a.mp3": TranscriptionError("output not there yet", retryable=True)}
    transcribe.run(svc, threading.Event())
    rec = next(r for r in svc.state.recordings() if r.key == "a.mp3")
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
    (rec,) = svc.state.recordings()
    assert rec.status == Status.TRANSCRIBING and rec.attempts == 3, "each attempt counted before its work"

    with capture_logs() as logs:
        transcribe.run(svc, threading.Event())  # the next start sees the budget spent: no fourth crash
    (rec,) = svc.state.recordings()
    assert rec.status == Status.FAILED and "stopped 3 times while transcribing" in (rec.reason or "")
    assert [e["event"] for e in logs if e["event"].startswith("transcription.")] == ["transcription.failed"]

    svc.state.requeue_failed()
    engine.while_polling = None
    transcribe.run(svc, threading.Event())
    (rec,) = svc.state.recordings()
    assert rec.status == Status.TRANSCRIBED and rec.attempts == 0


def test_an_outage_during_in_process_work_gives_the_attempt_back(tmp_path: Path) -> None:
    svc, _, storage, engine = services(tmp_path)
    storage.put_audio("b", "a.mp3")
    BY_NAME["scan"].run(svc, threading.Event())
    engine.in_process = True  # type: ignore[attr-defined]
    engine.fail = {"a.mp3": EndpointConnectionError(endpoint_url="http://s3")}
    assert not run_stage(svc, BY_NAME["transcribe"], threading.Event()).ok
    (rec,) = svc.state.recordings()
    assert rec.attempts == 0 and dependencies.get(svc.state, "s3").ok is False


def test_progress_keeps_a_long_stage_from_being_stuck() -> None:
    jobs = StageJobs(lambda _stage: None)
    with jobs.tracking("transcribe"):
        jobs._running["transcribe"] = time.monotonic() - 100
        assert jobs.stuck(10) == ["transcribe"]
        heartbeat.beat()  # what the transcribe stage's progress callback does
        assert jobs.stuck(10) == []
    heartbeat.beat()  # outside a tracked job: nothing listens, nothing breaks
    assert jobs.running() == []


def test_engine_progress_reaches_the_heartbeat(tmp_path: Path) -> None:
    svc, _, storage, _ = services(tmp_path)
    storage.put_audio("b", "a.mp3")
    BY_NAME["scan"].run(svc, threading.Event())
    jobs = StageJobs(lambda _stage: None)
    beats: list[float] = []
    with jobs.tracking("transcribe"), heartbeat.listening(lambda: beats.append(time.monotonic())):
        transcribe.run(svc, threading.Event())
    assert len(beats) >= 2  # the submission and the fake engine's progress call


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> AwsTranscriber:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    s3 = S3Settings()
    return AwsTranscriber(TranscriberSettings(engine="aws", language="en-US"), s3, Storage(s3))


def _recording(svc: Any, storage: Any) -> Any:
    storage.put_audio("b", "calls/a.mp3")
    BY_NAME["scan"].run(svc, threading.Event())
    (rec,) = svc.state.recordings()
    return rec


def test_a_failed_transcribe_job_is_never_adopted_again(aws: AwsTranscriber, tmp_path: Path) -> None:
    svc, _, storage, _ = services(tmp_path)
    rec = _recording(svc, storage)
    failed = {"TranscriptionJobName": job_name(rec), "TranscriptionJobStatus": "FAILED", "FailureReason": "bad"}
    with Stubber(aws.client) as stub:
        stub.add_client_error("start_transcription_job", "ConflictException", "exists")
        stub.add_response("get_transcription_job", {"TranscriptionJob": failed})
        stub.add_response("start_transcription_job", {}, {**aws.job_request(rec, 1)})
        name = aws.start(rec)
    assert name == job_name(rec, 1) == f"{job_name(rec)}-r1"
    assert aws.output_location(rec, name)[1] == f"syncd-transcribe/{name}.json"


@pytest.mark.parametrize("code", ["ThrottlingException", "InternalFailureException"])
def test_throttling_and_service_errors_are_outages(aws: AwsTranscriber, tmp_path: Path, code: str) -> None:
    svc, _, storage, _ = services(tmp_path)
    rec = _recording(svc, storage)
    with Stubber(aws.client) as stub:
        stub.add_client_error("get_transcription_job", code, "slow down", http_status_code=400)
        with pytest.raises(OutageError) as outage:
            aws.poll(rec)
    assert outage.value.dependency == "transcribe" and code in outage.value.reason


def test_an_unreachable_endpoint_is_an_outage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    s3 = S3Settings()
    settings = TranscriberSettings(engine="aws", aws=AwsTranscribeSettings(endpoint_url=dead))
    engine = AwsTranscriber(settings, s3, Storage(s3))
    svc, _, storage, _ = services(tmp_path)
    with pytest.raises(OutageError) as outage:
        engine.poll(_recording(svc, storage))
    assert outage.value.dependency == "transcribe" and "EndpointConnectionError" in outage.value.reason


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'{"results": {"items": [{"type": "pronunciation", "alternatives": []}]}}'],
)
def test_malformed_output_is_a_permanent_failure_with_its_reason(
    aws: AwsTranscriber, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: bytes
) -> None:
    svc, _, storage, _ = services(tmp_path)
    rec = _recording(svc, storage)
    monkeypatch.setattr(aws.storage, "read", lambda bucket, key: body)
    done = {"TranscriptionJobName": job_name(rec), "TranscriptionJobStatus": "COMPLETED"}
    with Stubber(aws.client) as stub:
        stub.add_response("get_transcription_job", {"TranscriptionJob": done})
        with pytest.raises(TranscriptionError) as failure:
            aws.poll(rec)
    assert not failure.value.retryable and not isinstance(failure.value, OutageError)
    assert failure.value.reason.startswith("malformed output s3://b/syncd-transcribe/")
