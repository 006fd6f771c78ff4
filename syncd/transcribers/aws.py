"""Amazon Transcribe batch jobs: one deterministic job per object version, polled without blocking.

The job name is derived from (bucket, key, ETag), so a restart, a crash between StartTranscriptionJob and the state
commit, or a second daemon all land on the same job (``ConflictException`` means "already started": we adopt it).
Results are read with S3 GetObject from our own output bucket/prefix, never fetched over HTTP, so private buckets and
custom endpoints work alike.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import re
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from syncd.config import S3Settings, TranscriberSettings
from syncd.recording import AUDIO_FORMATS, Recording
from syncd.storage import Storage, boto_client
from syncd.transcribers.aws_output import TranscribeOutputError, parse_transcribe_output
from syncd.transcribers.base import TranscriptionError
from syncd.transcript import Transcript

MODEL = "amazon-transcribe"
MEDIA_FORMATS = set(AUDIO_FORMATS.values())
JOB_NAME_MAX = 200
_UNSAFE = re.compile(r"[^0-9a-zA-Z._-]+")
_THROTTLED = {"ThrottlingException", "LimitExceededException", "TooManyRequestsException", "InternalFailureException"}


def job_name(rec: Recording) -> str:
    """``syncd-<readable stem>-<syncd_id>``: unique per object version, valid for Transcribe, ≤ 200 characters."""
    stem = _UNSAFE.sub("-", posixpath.splitext(posixpath.basename(rec.key))[0]).strip("-._")
    room = JOB_NAME_MAX - len("syncd--") - len(rec.syncd_id)
    return f"syncd-{stem[:room]}-{rec.syncd_id}" if stem else f"syncd-{rec.syncd_id}"


def media_format(key: str) -> str:
    suffix = posixpath.splitext(key)[1].lower().lstrip(".")
    if suffix not in MEDIA_FORMATS:
        raise TranscriptionError(
            f"Amazon Transcribe cannot read .{suffix} files (allowed: {', '.join(sorted(MEDIA_FORMATS))})",
            retryable=False,
        )
    return suffix


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _as_transcription_error(exc: Exception, action: str) -> TranscriptionError:
    """Throttling and outages are retried with back-off by the stage; a rejected request is final."""
    if isinstance(exc, ClientError):
        code = _error_code(exc)
        message = exc.response.get("Error", {}).get("Message", "")
        retryable = code in _THROTTLED or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500
        return TranscriptionError(f"{action}: {code}: {message}", retryable=retryable)
    return TranscriptionError(f"{action}: {type(exc).__name__}: {exc}", retryable=True)


class AwsTranscriber:
    engine = "aws"

    def __init__(self, settings: TranscriberSettings, s3: S3Settings, storage: Storage) -> None:
        self.settings = settings
        self.aws = settings.aws
        self.storage = storage
        self.max_in_flight = self.aws.max_in_flight
        self.client = boto_client("transcribe", s3, self.aws.endpoint_url)

    @property
    def model_version(self) -> str:
        return MODEL

    def output_location(self, rec: Recording) -> tuple[str, str]:
        return self.aws.output_bucket or rec.bucket, f"{self.aws.output_prefix}{job_name(rec)}.json"

    def job_request(self, rec: Recording) -> dict[str, Any]:
        bucket, key = self.output_location(rec)
        request: dict[str, Any] = {
            "TranscriptionJobName": job_name(rec),
            "Media": {"MediaFileUri": rec.uri},
            "MediaFormat": media_format(rec.key),
            "OutputBucketName": bucket,
            "OutputKey": key,
        }
        if self.settings.language:
            request["LanguageCode"] = self.settings.language
        else:
            request["IdentifyLanguage"] = True
        if self.aws.speaker_labels:
            request["Settings"] = {"ShowSpeakerLabels": True, "MaxSpeakerLabels": self.aws.max_speakers}
        return request

    def start(self, recording: Recording) -> str:
        request = self.job_request(recording)
        try:
            self.client.start_transcription_job(**request)
        except ClientError as exc:
            if _error_code(exc) != "ConflictException":
                raise _as_transcription_error(exc, "StartTranscriptionJob") from exc
        except BotoCoreError as exc:
            raise _as_transcription_error(exc, "StartTranscriptionJob") from exc
        return str(request["TranscriptionJobName"])

    def poll(self, recording: Recording) -> Transcript | None:
        name = recording.job_name or job_name(recording)
        try:
            job = self.client.get_transcription_job(TranscriptionJobName=name)["TranscriptionJob"]
        except ClientError as exc:
            if _error_code(exc) in ("NotFoundException", "BadRequestException") and "not be found" in str(exc):
                self.start(recording)  # expired (Transcribe keeps jobs 90 days) or lost: start it again
                return None
            raise _as_transcription_error(exc, "GetTranscriptionJob") from exc
        except BotoCoreError as exc:
            raise _as_transcription_error(exc, "GetTranscriptionJob") from exc
        status = job.get("TranscriptionJobStatus")
        if status == "FAILED":
            raise TranscriptionError(f"Transcribe: {job.get('FailureReason', 'no reason given')}", retryable=False)
        if status != "COMPLETED":
            return None
        return self._result(recording, name, job)

    def _result(self, rec: Recording, name: str, job: dict[str, Any]) -> Transcript:
        bucket, key = self.output_location(rec)
        try:
            doc = json.loads(self.storage.read(bucket, key))
        except ClientError as exc:
            raise _as_transcription_error(exc, f"reading s3://{bucket}/{key}") from exc
        except ValueError as exc:
            raise TranscriptionError(f"s3://{bucket}/{key} is not JSON: {exc}", retryable=False) from exc
        try:
            transcript = parse_transcribe_output(doc, job=name, model=MODEL)
        except TranscribeOutputError as exc:
            raise TranscriptionError(str(exc), retryable=False) from exc
        language = transcript.language or job.get("LanguageCode") or self.settings.language or None
        return dataclasses.replace(transcript, language=language)
