"""The Amazon Transcribe engine against botocore's Stubber: job names and requests, conflicts adopted, throttling and
outages, failures with their reasons."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from botocore.stub import Stubber

from syncd.config import AwsTranscribeSettings, S3Settings, TranscriberSettings
from syncd.s3.storage import Storage
from syncd.transcribers.aws import AwsTranscriber, job_name
from syncd.transcribers.base import OutageError, TranscriptionError
from tests.unit.fakes import recording, services
from tests.unit.scenarios import scanned_recording


@pytest.mark.parametrize("code", ["ThrottlingException", "InternalFailureException"])
def test_throttling_and_service_errors_are_outages(aws: AwsTranscriber, tmp_path: Path, code: str) -> None:
    svc, _, storage, _ = services(tmp_path)
    rec = scanned_recording(svc, storage)
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
        engine.poll(scanned_recording(svc, storage))
    assert outage.value.dependency == "transcribe" and "EndpointConnectionError" in outage.value.reason


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'{"results": {"items": [{"type": "pronunciation", "alternatives": []}]}}'],
)
def test_malformed_output_is_a_permanent_failure_with_its_reason(
    aws: AwsTranscriber, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: bytes
) -> None:
    svc, _, storage, _ = services(tmp_path)
    rec = scanned_recording(svc, storage)
    monkeypatch.setattr(aws.storage, "read", lambda bucket, key: body)
    done = {"TranscriptionJobName": job_name(rec), "TranscriptionJobStatus": "COMPLETED"}
    with Stubber(aws.client) as stub:
        stub.add_response("get_transcription_job", {"TranscriptionJob": done})
        with pytest.raises(TranscriptionError) as failure:
            aws.poll(rec)
    assert not failure.value.retryable and not isinstance(failure.value, OutageError)
    assert failure.value.reason.startswith("malformed output s3://b/syncd-transcribe/")


@pytest.mark.parametrize(
    "key",
    ["calls/a.mp3", "calls/Zoë interview 1.mp3", "x/" + "long name " * 40 + ".wav", "calls/.mp3", "日本語.flac"],
)
def test_job_names_follow_transcribes_rules(key: str) -> None:
    name = job_name(recording(key))
    assert re.fullmatch(r"[0-9a-zA-Z._-]+", name) and len(name) <= 200
    assert name == job_name(recording(key)), "deterministic"
    assert recording(key).syncd_id in name


def test_request_carries_format_language_speakers_and_output(aws: AwsTranscriber) -> None:
    request = aws.job_request(recording("calls/b.m4a"))
    assert request["MediaFormat"] == "m4a"
    assert request["LanguageCode"] == "en-US" and "IdentifyLanguage" not in request
    assert request["Settings"] == {"ShowSpeakerLabels": True, "MaxSpeakerLabels": 4}
    assert request["OutputBucketName"] == "bucket"
    assert request["OutputKey"] == f"syncd-transcribe/{request['TranscriptionJobName']}.json"


def test_unsupported_format_is_a_final_failure(aws: AwsTranscriber) -> None:
    with pytest.raises(TranscriptionError) as failure:
        aws.start(recording("calls/a.aiff"))
    assert not failure.value.retryable and ".aiff" in failure.value.reason


def test_conflict_means_the_job_exists_and_is_adopted(aws: AwsTranscriber) -> None:
    rec = recording()
    with Stubber(aws.client) as stub:
        stub.add_client_error("start_transcription_job", "ConflictException", "The requested job name already exists")
        running = {"TranscriptionJobName": job_name(rec), "TranscriptionJobStatus": "IN_PROGRESS"}
        stub.add_response("get_transcription_job", {"TranscriptionJob": running})
        assert aws.start(rec) == job_name(rec)


@pytest.mark.parametrize("code", ["ThrottlingException", "LimitExceededException"])
def test_throttling_is_retryable(aws: AwsTranscriber, code: str) -> None:
    with Stubber(aws.client) as stub:
        stub.add_client_error("start_transcription_job", code, "slow down", http_status_code=400)
        with pytest.raises(TranscriptionError) as failure:
            aws.start(recording())
    assert failure.value.retryable and code in failure.value.reason


def test_failed_job_records_transcribes_reason(aws: AwsTranscriber) -> None:
    rec = recording()
    job = {
        "TranscriptionJobName": job_name(rec),
        "TranscriptionJobStatus": "FAILED",
        "FailureReason": "The media format provided does not match the detected media format.",
    }
    with Stubber(aws.client) as stub:
        stub.add_response("get_transcription_job", {"TranscriptionJob": job})
        with pytest.raises(TranscriptionError) as failure:
            aws.poll(rec)
    assert not failure.value.retryable
    assert failure.value.reason == "Transcribe: The media format provided does not match the detected media format."


def test_running_job_is_not_waited_for(aws: AwsTranscriber) -> None:
    rec = recording()
    job = {"TranscriptionJobName": job_name(rec), "TranscriptionJobStatus": "IN_PROGRESS"}
    with Stubber(aws.client) as stub:
        stub.add_response("get_transcription_job", {"TranscriptionJob": job})
        assert aws.poll(rec) is None


def test_pii_redaction_is_asked_for_with_the_entity_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    s3 = S3Settings()
    every = TranscriberSettings.model_validate({"engine": "aws", "aws": {"redact_pii": True}})
    some = TranscriberSettings.model_validate(
        {"engine": "aws", "aws": {"redact_pii": True, "pii_entity_types": ["NAME", "SSN"]}}
    )
    request = AwsTranscriber(every, s3, Storage(s3)).job_request(recording())
    assert request["ContentRedaction"] == {"RedactionType": "PII", "RedactionOutput": "redacted"}
    request = AwsTranscriber(some, s3, Storage(s3)).job_request(recording())
    assert request["ContentRedaction"]["PiiEntityTypes"] == ["NAME", "SSN"]


def test_no_redaction_unless_asked(aws: AwsTranscriber) -> None:
    assert "ContentRedaction" not in aws.job_request(recording())
