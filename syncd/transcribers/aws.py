"""Amazon Transcribe batch jobs: one deterministic job per object version, polled without blocking.

The job name is derived from (bucket, key, ETag), so a restart, a crash between StartTranscriptionJob and the state
commit, or a second daemon all land on the same job (``ConflictException`` means "already started": we adopt it). A job
of that name that FAILED is never adopted: the next generation (``...-r1``, ``-r2``) is started instead, so
`syncd retry` of a failed recording really transcribes it again, and a crash while doing so still finds its job.
Connection errors, throttling and 5xx are outages (``OutageError``), not failures of the recording.
Results are read with S3 GetObject from our own output bucket/prefix, never fetched over HTTP, so private buckets and
custom endpoints work alike.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import re
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from syncd.config import S3Settings, TranscriberSettings
from syncd.domain.recording import AUDIO_FORMATS, Recording
from syncd.domain.transcript import Transcript
from syncd.log import describe_error
from syncd.s3.storage import Storage, boto_client
from syncd.transcribers.aws_output import TranscribeOutputError, parse_transcribe_output
from syncd.transcribers.base import OutageError, Progress, TranscriptionError, no_progress

MODEL = "amazon-transcribe"
MEDIA_FORMATS = set(AUDIO_FORMATS.values())
JOB_NAME_MAX = 200
MAX_GENERATIONS = 100
VOCABULARY_CHECK = 60.0
"""Seconds between two looks at whether the custom vocabulary is ready."""
_UNSAFE = re.compile(r"[^0-9a-zA-Z._-]+")
_THROTTLED = {"ThrottlingException", "LimitExceededException", "TooManyRequestsException", "InternalFailureException"}


def job_name(rec: Recording, generation: int = 0) -> str:
    """``syncd-<readable stem>-<syncd_id>[-r<generation>]``: unique per object version and retry generation, valid
    for Transcribe, ≤ 200 characters."""
    tail = f"{rec.syncd_id}-r{generation}" if generation else rec.syncd_id
    stem = _UNSAFE.sub("-", posixpath.splitext(posixpath.basename(rec.key))[0]).strip("-._")
    room = JOB_NAME_MAX - len("syncd--") - len(tail)
    return f"syncd-{stem[:room]}-{tail}" if stem else f"syncd-{tail}"


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


def _as_transcription_error(exc: Exception, action: str, dependency: str = "transcribe") -> TranscriptionError:
    """Throttling, 5xx and connection errors are an outage of ``dependency`` (waited out, never counted against the
    recording); a rejected request is final."""
    if isinstance(exc, ClientError):
        code = _error_code(exc)
        message = exc.response.get("Error", {}).get("Message", "")
        reason = f"{action}: {code}: {message}"
        if code in _THROTTLED or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
            return OutageError(dependency, reason)
        return TranscriptionError(reason, retryable=False)
    return OutageError(dependency, f"{action}: {describe_error(exc)}")


class AwsTranscriber:
    engine = "aws"

    def __init__(self, settings: TranscriberSettings, s3: S3Settings, storage: Storage) -> None:
        self.settings = settings
        self.aws = settings.aws
        self.storage = storage
        self.max_in_flight = self.aws.max_in_flight
        # Few botocore retries: an outage is waited out by the stage, without holding a poll for minutes.
        self.client = boto_client("transcribe", s3, self.aws.endpoint_url, attempts=3)
        self._vocabulary_checked = (-VOCABULARY_CHECK, False)

    @property
    def model_version(self) -> str:
        return MODEL

    def output_location(self, rec: Recording, name: str | None = None) -> tuple[str, str]:
        """Where the job ``name`` (default: the recording's job, else its first generation) writes its output."""
        name = name or rec.job_name or job_name(rec)
        return self.aws.output_bucket or rec.bucket, f"{self.aws.output_prefix}{name}.json"

    def job_request(self, rec: Recording, generation: int = 0) -> dict[str, Any]:
        name = job_name(rec, generation)
        bucket, key = self.output_location(rec, name)
        request: dict[str, Any] = {
            "TranscriptionJobName": name,
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
        if self._vocabulary_ready():
            request.setdefault("Settings", {})["VocabularyName"] = self.aws.vocabulary_name
        if self.aws.redact_pii:
            redaction: dict[str, Any] = {"RedactionType": "PII", "RedactionOutput": "redacted"}
            if self.aws.pii_entity_types:
                redaction["PiiEntityTypes"] = list(self.aws.pii_entity_types)
            request["ContentRedaction"] = redaction
        return request

    def close(self) -> None:
        """Nothing runs here: the jobs run in Transcribe and are found again by name."""

    def use_vocabulary(self, words: list[str]) -> None:
        """Nothing to do per job: requests name the custom vocabulary (``publish_vocabulary``) once it is ready."""

    def publish_vocabulary(self, words: list[str]) -> None:
        """Create or update the custom vocabulary ``vocabulary_name`` with ``words`` (most frequent first). Jobs
        started while Transcribe prepares it go without it."""
        name = self.aws.vocabulary_name
        if not name or not words:
            return
        args = {"VocabularyName": name, "LanguageCode": self.settings.language, "Phrases": words}
        try:
            self.client.get_vocabulary(VocabularyName=name)
        except ClientError as exc:
            if _error_code(exc) not in ("NotFoundException", "BadRequestException"):
                raise
            self.client.create_vocabulary(**args)
        else:
            self.client.update_vocabulary(**args)
        self._vocabulary_checked = (-VOCABULARY_CHECK, False)

    def _vocabulary_ready(self) -> bool:
        """Whether ``vocabulary_name`` is READY, asked at most every VOCABULARY_CHECK seconds; a vocabulary that is
        missing, pending or failed is left out of new jobs rather than failing them."""
        if not self.aws.vocabulary_name:
            return False
        checked_at, ready = self._vocabulary_checked
        if time.monotonic() - checked_at < VOCABULARY_CHECK:
            return ready
        try:
            state = self.client.get_vocabulary(VocabularyName=self.aws.vocabulary_name).get("VocabularyState")
        except (ClientError, BotoCoreError):
            state = None
        self._vocabulary_checked = (time.monotonic(), state == "READY")
        return state == "READY"

    def start(self, recording: Recording) -> str:
        """Start the recording's job, or adopt the one already started under its name unless that one FAILED."""
        for generation in range(MAX_GENERATIONS):
            request = self.job_request(recording, generation)
            name = str(request["TranscriptionJobName"])
            try:
                self.client.start_transcription_job(**request)
                return name
            except ClientError as exc:
                if _error_code(exc) != "ConflictException":
                    raise _as_transcription_error(exc, "StartTranscriptionJob") from exc
            except BotoCoreError as exc:
                raise _as_transcription_error(exc, "StartTranscriptionJob") from exc
            if self._job(name).get("TranscriptionJobStatus") != "FAILED":
                return name
        raise TranscriptionError(f"{MAX_GENERATIONS} Transcribe jobs of this recording failed", retryable=False)

    def _job(self, name: str) -> dict[str, Any]:
        try:
            job: dict[str, Any] = self.client.get_transcription_job(TranscriptionJobName=name)["TranscriptionJob"]
        except (ClientError, BotoCoreError) as exc:
            raise _as_transcription_error(exc, "GetTranscriptionJob") from exc
        return job

    def poll(self, recording: Recording, progress: Progress = no_progress) -> Transcript | None:
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
        bucket, key = self.output_location(rec, name)
        try:
            raw = self.storage.read(bucket, key)
        except (ClientError, BotoCoreError) as exc:
            raise _as_transcription_error(exc, f"reading s3://{bucket}/{key}", dependency="s3") from exc
        try:
            transcript = parse_transcribe_output(json.loads(raw), job=name, model=MODEL)
        except TranscribeOutputError as exc:
            raise TranscriptionError(f"malformed output s3://{bucket}/{key}: {exc}", retryable=False) from exc
        except (ValueError, LookupError, TypeError, AttributeError) as exc:  # not JSON, or JSON of the wrong shape
            reason = f"malformed output s3://{bucket}/{key}: {describe_error(exc)}"
            raise TranscriptionError(reason[:500], retryable=False) from exc
        language = transcript.language or job.get("LanguageCode") or self.settings.language or None
        return dataclasses.replace(transcript, language=language)
