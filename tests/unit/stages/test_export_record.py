"""Recording an export: a unit's review goes back to its recording's clock exactly."""

from __future__ import annotations

import json

from devstack.transcribe import recording_for
from syncd.domain import units
from syncd.domain.transcript import Segment, Transcript, Word
from syncd.stages.export_record import unit_review


def _long(minutes: int, every: float = 30.0) -> Transcript:
    """A segment of 20 s every ``every`` seconds, one word each at its start."""
    segments = []
    t = 0.5
    while t + 20 < minutes * 60:
        words = (Word(t, t + 0.4, "word", 0.9),)
        segments.append(Segment(t, t + 20.0, f"at {t}", "spk_0", 0.9, words))
        t += every
    return Transcript(segments=tuple(segments), engine="aws", model="m", duration=minutes * 60.0)


def test_a_unit_is_on_its_clip_clock_and_its_review_goes_back_exactly() -> None:
    transcript = _long(40)
    unit = units.plan(transcript, 15 * 60)[1]
    on_clip = units.unit_transcript(transcript, unit, "calls/long.wav")
    assert on_clip.duration == round(unit.end - unit.start, 3)
    assert on_clip.segments[0].start == round(unit.segments[0].start - unit.start, 3)
    assert on_clip.segments[0].words[0].start == on_clip.segments[0].start
    assert units.unit_of(on_clip) == {
        "of": "calls/long.wav",
        "index": 1,
        "count": 3,
        "start": unit.start,
        "end": unit.end,
        "label": unit.label,
    }
    rec = recording_for("calls", "syncd/units/x.flac", "e1")
    rec = type(rec)(**{**rec.__dict__, "unit_start": unit.start})
    back = json.loads(unit_review(list(on_clip.segments), rec))
    assert [(s["start"], s["end"]) for s in back] == [(s.start, s.end) for s in unit.segments]
