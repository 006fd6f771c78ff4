"""Fixtures the stage tests share."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from syncd.domain.recording import Status
from syncd.stages import import_, scan
from tests.unit.fakes import GO, services
from tests.unit.scenarios import KEY, SECONDS, SplitUp, tone_wav, transcript


@pytest.fixture
def split_up(tmp_path: Path) -> SplitUp:
    """A 90-second recording whose transcript has pauses to cut at, split into three units and imported."""
    svc, ls, storage, _ = services(tmp_path, review={"max_task_minutes": 0.5})
    storage.put_audio("b", KEY, tone_wav(SECONDS))
    scan.run(svc, GO)
    (rec,) = svc.state.recordings.all()
    svc.state.recordings.move(rec.id, Status.DISCOVERED, Status.TRANSCRIBING)
    svc.state.recordings.move(
        rec.id, Status.TRANSCRIBING, Status.TRANSCRIBED, transcript=transcript(), duration=SECONDS - 3.0
    )
    with capture_logs() as logs:
        assert import_.run(svc, GO) == 3
    (split,) = [e for e in logs if e["event"] == "recording.split"]
    assert split["bounds"] == [[0.0, 29.0], [29.0, 59.0], [59.0, 90.0]], "cut in pauses; the last ends with the audio"
    return svc, ls, storage, svc.state.recordings.get(rec.id)
