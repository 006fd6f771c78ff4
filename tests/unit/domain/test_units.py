"""Review units: long recordings cut in pauses into units on their clips' clocks."""

from __future__ import annotations

import itertools

import pytest

from syncd.domain import units
from syncd.domain.transcript import Segment, Transcript
from tests.unit.scenarios import long


def test_a_forty_minute_recording_becomes_three_fifteen_minute_units_cut_in_pauses() -> None:
    transcript = long(40)
    plan = units.plan(transcript, 15 * 60)
    assert [u.index for u in plan] == [0, 1, 2] and {u.count for u in plan} == {3}
    assert plan[0].start == 0.0 and plan[-1].end == 2400.0
    for unit, following in itertools.pairwise(plan):
        assert unit.end == following.start, "units tile the recording"
        assert unit.segments[-1].end < unit.end < following.segments[0].start, "cut inside a pause"
    assert all(u.segments[-1].end - u.start <= 15 * 60 for u in plan)
    assert sum(len(u.segments) for u in plan) == len(transcript.segments)
    assert plan[1].label == "part 2 of 3, 14:56-29:56"


def test_a_recording_that_fits_or_cannot_be_cut_is_one_unit() -> None:
    assert len(units.plan(long(10), 15 * 60)) == 1
    silent = Transcript(segments=(), engine="aws", model="m", duration=3000.0)
    assert [(u.start, u.end) for u in units.plan(silent, 60)] == [(0.0, 3000.0)]
    one = Transcript(segments=(Segment(0.0, 2000.0, "long"),), engine="aws", model="m", duration=2000.0)
    assert len(units.plan(one, 60)) == 1


@pytest.mark.parametrize(("seconds", "shown"), [(59.6, "1:00"), (905.0, "15:05"), (3725.0, "1:02:05")])
def test_clock(seconds: float, shown: str) -> None:
    assert units.clock(seconds) == shown
