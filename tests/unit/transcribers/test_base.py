"""The engines' shared vocabulary: failures say whether a retry may help; an outage names what is down."""

from __future__ import annotations

from types import SimpleNamespace

from syncd.transcribers.base import OutageError, TranscriptionError, no_progress, works_in_process


def test_a_failure_carries_its_reason_and_whether_to_retry() -> None:
    exc = TranscriptionError("cannot decode audio: no stream", retryable=False)
    assert (exc.reason, exc.retryable, str(exc)) == ("cannot decode audio: no stream", False, exc.reason)


def test_an_outage_is_always_retryable_and_names_the_dependency() -> None:
    exc = OutageError("transcribe", "ThrottlingException")
    assert isinstance(exc, TranscriptionError)
    assert (exc.dependency, exc.reason, exc.retryable) == ("transcribe", "ThrottlingException", True)


def test_only_engines_that_say_so_work_in_process() -> None:
    assert works_in_process(SimpleNamespace(in_process=True))  # type: ignore[arg-type]
    assert not works_in_process(SimpleNamespace(in_process=False))  # type: ignore[arg-type]
    assert not works_in_process(SimpleNamespace())  # type: ignore[arg-type]  # a cloud engine has no such flag


def test_nobody_listens_to_the_default_progress() -> None:
    assert no_progress(0.5) is None and no_progress(None) is None
