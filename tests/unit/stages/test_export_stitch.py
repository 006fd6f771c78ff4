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
from syncd.domain.transcript import Segment, Transcript, Word
from syncd.services import Services
from syncd.stages import export, export_stitch, import_, scan
from tests.unit.fakes import GO, FakeLabelStudio, FakeStorage, services

KEY = "calls/long.wav"


SECONDS = 90


def _wav(seconds: int, rate: int = 8000) -> bytes:
    samples = (np.sin(np.arange(seconds * rate) * 2 * np.pi * 300 / rate) * 3000).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return out.getvalue()


def _transcript() -> Transcript:
    """A 6-second segment every 10 s: 9 segments, cut into units of at most 30 s."""
    segments = tuple(
        Segment.from_words([Word(t, t + 2.0, f"word{t}", 0.9), Word(t + 3.0, t + 6.0, "said.", 0.9)])
        for t in range(1, SECONDS - 6, 10)
    )
    return Transcript(segments=segments, engine="fake", model="fake-1", duration=SECONDS - 3.0)


@pytest.fixture
def split_up(tmp_path: Path) -> tuple[Services, FakeLabelStudio, FakeStorage, Recording]:
    svc, ls, storage, _ = services(tmp_path, review={"max_task_minutes": 0.5})
    storage.put_audio("b", KEY, _wav(SECONDS))
    scan.run(svc, GO)
    (rec,) = svc.state.recordings()
    svc.state.move(rec.id, Status.DISCOVERED, Status.TRANSCRIBING)
    svc.state.move(rec.id, Status.TRANSCRIBING, Status.TRANSCRIBED, transcript=_transcript(), duration=SECONDS - 3.0)
    with capture_logs() as logs:
        assert import_.run(svc, GO) == 3
    (split,) = [e for e in logs if e["event"] == "recording.split"]
    assert split["bounds"] == [[0.0, 29.0], [29.0, 59.0], [59.0, 90.0]], "cut in pauses; the last ends with the audio"
    return svc, ls, storage, svc.state.get(rec.id)


def _review_all(svc: Services, ls: FakeLabelStudio, but: int | None = None, text: str = "fixed") -> None:
    """Submit every unit's review (but one), one line per segment: "<text> <unit> <line>"."""
    for n, (unit, _) in enumerate(svc.state.units_of(svc.state.recordings()[0].id)):
        if n != but and unit.task_id is not None and unit.transcript is not None:
            lines = [f"{text} {n} {i}" for i in range(len(unit.transcript.segments))]
            ls.annotate(unit.task_id, "\n".join(lines))


def _stem_outputs(storage: FakeStorage) -> list[str]:
    return [k for k in storage.keys("b") if k.startswith("calls/long.transcript")]


def test_a_crash_between_a_units_review_and_the_stitch_writes_it_next_run(split_up: tuple) -> None:
    svc, ls, storage, _ = split_up
    _review_all(svc, ls)
    export.reviews(svc, GO)  # the process dies here, before the stitch
    assert _stem_outputs(storage) == []
    assert export_stitch.run(svc, GO) == 1
    assert len(_stem_outputs(storage)) == 4


def test_a_recording_replaced_before_its_last_unit_is_reviewed_gets_nothing_written(split_up: tuple) -> None:
    svc, ls, storage, parent = split_up
    storage.put_audio("b", KEY, _wav(SECONDS - 10))
    scan.run(svc, GO)
    _review_all(svc, ls)
    with capture_logs() as logs:
        export.reviews(svc, GO)
        assert export_stitch.run(svc, GO) == 0
    assert _stem_outputs(storage) == []
    assert svc.state.get(parent.id).status == Status.SUPERSEDED
    assert "units.waiting" in [e["event"] for e in logs]
