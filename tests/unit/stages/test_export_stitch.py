"""Stitching: a split recording is written once all its units are reviewed, after a crash too, and never beside audio
replaced meanwhile."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from syncd.domain.recording import Recording, Status
from syncd.pipeline import run_cycle
from syncd.services import Services
from syncd.stages import export, export_stitch, import_, scan
from tests.unit.fakes import GO, FakeLabelStudio, FakeStorage, services
from tests.unit.scenarios import KEY, SECONDS, review_all, stem_outputs, transcript


def _wav(seconds: int, rate: int = 8000) -> bytes:
    samples = (np.sin(np.arange(seconds * rate) * 2 * np.pi * 300 / rate) * 3000).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return out.getvalue()


@pytest.fixture
def split_up(tmp_path: Path) -> tuple[Services, FakeLabelStudio, FakeStorage, Recording]:
    svc, ls, storage, _ = services(tmp_path, review={"max_task_minutes": 0.5})
    storage.put_audio("b", KEY, _wav(SECONDS))
    scan.run(svc, GO)
    (rec,) = svc.state.recordings()
    svc.state.move(rec.id, Status.DISCOVERED, Status.TRANSCRIBING)
    svc.state.move(rec.id, Status.TRANSCRIBING, Status.TRANSCRIBED, transcript=transcript(), duration=SECONDS - 3.0)
    with capture_logs() as logs:
        assert import_.run(svc, GO) == 3
    (split,) = [e for e in logs if e["event"] == "recording.split"]
    assert split["bounds"] == [[0.0, 29.0], [29.0, 59.0], [59.0, 90.0]], "cut in pauses; the last ends with the audio"
    return svc, ls, storage, svc.state.get(rec.id)


def test_a_crash_between_a_units_review_and_the_stitch_writes_it_next_run(split_up: tuple) -> None:
    svc, ls, storage, _ = split_up
    review_all(svc, ls)
    export.reviews(svc, GO)  # the process dies here, before the stitch
    assert stem_outputs(storage) == []
    assert export_stitch.run(svc, GO) == 1
    assert len(stem_outputs(storage)) == 4


def test_a_recording_replaced_before_its_last_unit_is_reviewed_gets_nothing_written(split_up: tuple) -> None:
    svc, ls, storage, parent = split_up
    storage.put_audio("b", KEY, _wav(SECONDS - 10))
    scan.run(svc, GO)
    review_all(svc, ls)
    with capture_logs() as logs:
        export.reviews(svc, GO)
        assert export_stitch.run(svc, GO) == 0
    assert stem_outputs(storage) == []
    assert svc.state.get(parent.id).status == Status.SUPERSEDED
    assert "units.waiting" in [e["event"] for e in logs]


def test_nothing_to_stitch_costs_one_read(tmp_path: Path) -> None:
    svc, _, storage, _ = services(tmp_path)
    storage.put_audio("b", "a.mp3")
    run_cycle(svc)
    assert export_stitch.run(svc, GO) == 0 and svc.state.stitch_due() == []
