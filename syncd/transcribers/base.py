"""The Transcriber protocol: every engine starts a job for a recording and is polled until it has a result.

Polling never blocks the daemon: a cloud engine answers "not yet" (None) at once; a local engine does its work inside
``poll``. Both are driven by the same pipeline stage, so a restart picks up jobs where they were.
"""

from __future__ import annotations

from typing import Protocol

from syncd.recording import Recording
from syncd.transcript import Transcript


class TranscriptionError(Exception):
    """A job that did not produce a transcript; ``retryable`` says whether trying again may help."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class Transcriber(Protocol):
    engine: str
    max_in_flight: int

    @property
    def model_version(self) -> str:
        """Goes into each prediction and the project, so Label Studio's uncertainty sampling counts it."""
        ...

    def start(self, recording: Recording) -> str:
        """Start (or find) the job for this recording; returns its job name. Must be idempotent."""
        ...

    def poll(self, recording: Recording) -> Transcript | None:
        """The finished transcript, None while the job runs; raises TranscriptionError on failure."""
        ...
