"""The domain record: one version of one S3 object, and the life cycle it moves through.

Nothing here touches the database, S3 or Label Studio; the store persists these records, the stages move them along
the transitions below and nowhere else.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum

from syncd.domain.transcript import Transcript

AUDIO_FORMATS = {
    ".mp3": "mp3",
    ".wav": "wav",
    ".flac": "flac",
    ".ogg": "ogg",
    ".m4a": "m4a",
    ".webm": "webm",
    ".mp4": "mp4",
    ".amr": "amr",
}
"""Suffixes taken for audio, and the media format each one names (Amazon Transcribe's MediaFormat values)."""
AUDIO_SUFFIXES = tuple(AUDIO_FORMATS)


class Status(StrEnum):
    DISCOVERED = "discovered"
    TRANSCRIBING = "transcribing"
    TRANSCRIBED = "transcribed"
    ACCEPTED = "accepted"
    IMPORTING = "importing"
    IMPORTED = "imported"
    EXPORTED = "exported"
    FAILED = "failed"
    SKIPPED = "skipped"
    SUPERSEDED = "superseded"
    DELETED = "deleted"
    SPLIT = "split"


MEANING: dict[Status, str] = {
    Status.DISCOVERED: "found in S3 and waiting for transcription (or sent back to it after an interrupted try)",
    Status.TRANSCRIBING: "claimed by a transcriber: a local whisper run or an Amazon Transcribe job",
    Status.TRANSCRIBED: "the machine transcript is stored; waiting to be imported into Label Studio",
    Status.ACCEPTED: "confident enough to auto-accept (review.auto_accept_above) and not drawn for audit: exported"
    " without a task",
    Status.IMPORTING: "in an import batch; a batch in doubt (timed out, 5xx, crash) waits here until Label Studio is"
    " asked again",
    Status.IMPORTED: "a task in Label Studio awaits review",
    Status.EXPORTED: "a review (or the auto-accepted transcript) is written beside the audio; an edited review exports"
    " again",
    Status.FAILED: "the input itself failed (corrupt audio, a malformed transcript) after its attempts, with a reason;"
    " `syncd retry` re-queues it",
    Status.SKIPPED: "never transcribed: empty, larger than the configured limit, or a key whose outputs would pass S3's"
    " 1024-byte key limit",
    Status.SUPERSEDED: "another version (ETag) of the object replaced it; that version has its own recording and task",
    Status.DELETED: "the object is gone from S3 (an event said so, or a full listing no longer found it); its task is"
    " kept or deleted as sources.on_audio_deleted says",
    Status.SPLIT: "longer than review.max_task_minutes: reviewed as units (recordings of their own, parent_id set),"
    " exported once every unit is",
}
"""What each status means, as `syncd status`'s reader and the states reference need it."""
assert set(MEANING) == set(Status)


PENDING = (Status.DISCOVERED, Status.TRANSCRIBING, Status.TRANSCRIBED, Status.ACCEPTED, Status.IMPORTING)
"""Work still to do before a reviewer can see the recording (or, auto-accepted, before its transcripts are written)."""

RESUMED = frozenset({Status.DISCOVERED, Status.TRANSCRIBED, Status.ACCEPTED, Status.IMPORTED, Status.SPLIT})
"""Where a version that is current again resumes: its own task, its transcript, or the start."""

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.DISCOVERED: frozenset({Status.TRANSCRIBING, Status.FAILED, Status.SUPERSEDED, Status.DELETED}),
    Status.TRANSCRIBING: frozenset(
        {Status.TRANSCRIBED, Status.ACCEPTED, Status.DISCOVERED, Status.FAILED, Status.SUPERSEDED, Status.DELETED}
    ),
    # Auto-accepted (confidence above review.auto_accept_above, not in the audit sample): export writes the ASR
    # transcript beside the audio without a task.
    Status.ACCEPTED: frozenset({Status.EXPORTED, Status.FAILED, Status.SUPERSEDED, Status.DELETED}),
    Status.TRANSCRIBED: frozenset(
        {Status.IMPORTING, Status.IMPORTED, Status.SPLIT, Status.FAILED, Status.SUPERSEDED, Status.DELETED}
    ),
    Status.SPLIT: frozenset({Status.EXPORTED, Status.SUPERSEDED, Status.DELETED}),
    Status.IMPORTING: frozenset(
        {Status.IMPORTED, Status.TRANSCRIBED, Status.FAILED, Status.SUPERSEDED, Status.DELETED}
    ),
    Status.IMPORTED: frozenset({Status.EXPORTED, Status.SUPERSEDED, Status.DELETED}),
    Status.EXPORTED: frozenset({Status.EXPORTED, Status.SUPERSEDED, Status.DELETED}),
    Status.FAILED: frozenset(
        {Status.DISCOVERED, Status.TRANSCRIBED, Status.ACCEPTED, Status.IMPORTED, Status.SUPERSEDED, Status.DELETED}
    ),
    Status.SKIPPED: frozenset({Status.SUPERSEDED, Status.DELETED}),
    # An upload reverted to an earlier version (X -> Y -> X) makes X current again: it resumes from its own task or
    # transcript (never a second task for one version), or starts over.
    Status.SUPERSEDED: RESUMED,
    # Audio deleted from S3 and put back (the same content has the same ETag) resumes the same way.
    Status.DELETED: RESUMED,
}
"""Every status change the stages may make; the store refuses any other (compare-and-set on the old status)."""


def sources_of(target: Status) -> frozenset[Status]:
    """The statuses a recording may move to ``target`` from."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


def syncd_id(bucket: str, key: str, etag: str) -> str:
    """Stable id of one version of one object; goes into the task data so a lost state can be rebuilt."""
    digest = hashlib.sha256(f"{bucket}\0{key}\0{etag}".encode()).hexdigest()
    return digest[:24]


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str
    etag: str
    size: int
    last_modified: str = ""


@dataclass(frozen=True)
class Recording:
    id: int
    syncd_id: str
    bucket: str
    key: str
    etag: str
    size: int
    status: Status
    reason: str | None
    attempts: int
    job_name: str | None
    transcript_json: str | None
    score: float | None
    task_id: int | None
    annotation_id: int | None
    annotation_updated_at: str | None
    engine: str | None
    updated_at: float
    review_mode: str | None = None
    parent_id: int | None = None
    """Set on a review unit: the recording it is a part of."""
    unit_start: float | None = None
    """A review unit's start in its parent recording (seconds)."""

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def transcript(self) -> Transcript | None:
        return Transcript.from_dict(json.loads(self.transcript_json)) if self.transcript_json else None
