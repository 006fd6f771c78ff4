"""`syncd retry`: failed recordings, parked exports and services that are down, all tried again, and said so."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd import errors
from syncd.commands.retry import retry
from syncd.domain.recording import Status
from syncd.log import get_logger
from syncd.s3.storage import S3Object
from syncd.state import StateStore
from tests.unit.fakes import settings


def test_everything_stuck_is_tried_again_and_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = settings(tmp_path)
    state = StateStore(config.state.path)
    ((rec, _),) = state.recordings.add_objects([S3Object("b", "calls/a.wav", "e1", 10)])
    state.recordings.record_failure(rec, Status.DISCOVERED, "corrupt audio", retryable=False, max_attempts=1)
    state.export_queue.queue_export(1, 7, rec, "malformed review", attempt=True, park_after=1)
    state.outages.mark_down("transcribe", "ThrottlingException", 60, get_logger())
    state.close()
    capsys.readouterr()

    assert retry(config) == errors.OK
    assert capsys.readouterr().out.endswith(
        "re-queued 1 failed recording(s) and 1 parked export(s); 1 service(s) down tried again\n"
    )
    state = StateStore(config.state.path)
    try:
        assert state.recordings.get(rec).status == Status.DISCOVERED
        assert state.export_queue.queued(1) == [7]
        assert state.outages.all_known()["transcribe"].retry_at == 0.0  # tried at the stages' next run
    finally:
        state.close()


def test_nothing_stuck_is_said_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert retry(settings(tmp_path)) == errors.OK
    assert "re-queued 0 failed recording(s) and 0 parked export(s); 0 service(s) down" in capsys.readouterr().out
