"""The Transcriber protocol: every engine starts a job for a recording and is polled until it has a result.

Polling never blocks the daemon: a cloud engine answers "not yet" (None) at once; a local engine does its work inside
``poll`` and reports progress through the ``progress`` callback while it does, so the daemon's watchdog can tell a
long recording from a hang. Both are driven by the same pipeline stage, so a restart picks up jobs where they were.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from syncd.domain.recording import Recording
from syncd.domain.transcript import Transcript

Progress = Callable[[float | None], None]
"""Called by an engine while it works: the fraction of the audio done (0..1), or None when it cannot tell."""


def no_progress(_fraction: float | None) -> None:
    """The default ``progress`` callback: nobody listens."""


class TranscriptionError(Exception):
    """A job that did not produce a transcript; ``retryable`` says whether trying again may help."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class OutageError(TranscriptionError):
    """A service the engine needs is unreachable, throttling or failing (connection error, 5xx): an outage, not a
    problem of the recording. It waits for as long as the outage lasts and never spends the attempt budget."""

    def __init__(self, dependency: str, reason: str) -> None:
        super().__init__(reason, retryable=True)
        self.dependency = dependency


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

    def poll(self, recording: Recording, progress: Progress = no_progress) -> Transcript | None:
        """The finished transcript, None while the job runs; raises TranscriptionError on failure. An engine that
        works inside ``poll`` calls ``progress`` every few seconds while it does."""
        ...

    def close(self) -> None:
        """Release what the engine holds (threads, models) before the process exits or the engine is replaced."""
        ...

    def use_vocabulary(self, words: list[str]) -> None:
        """The words reviewers keep adding (``syncd.stages.export_vocabulary``), most frequent first, for jobs
        started from now on; an engine that cannot bias its decoding ignores them."""
        ...

    def publish_vocabulary(self, words: list[str]) -> None:
        """The vocabulary changed: keep it where the engine's jobs find it (Amazon Transcribe: a custom vocabulary).
        An engine that takes its words per job (``use_vocabulary``) has nothing to do."""
        ...


def works_in_process(transcriber: Transcriber) -> bool:
    """True for engines that do the work inside ``poll`` (a crash there may be the recording's fault, so each poll
    counts as an attempt before it starts); cloud engines only ask how a remote job is doing."""
    return bool(getattr(transcriber, "in_process", False))
