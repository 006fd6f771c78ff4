"""Review units: a recording longer than ``review.max_task_minutes`` is reviewed as several shorter tasks.

Pure planning, no I/O. A recording is cut at segment boundaries (the middle of the pause between two segments) into
units no longer than the limit; a segment longer than the limit is never cut and becomes a unit of its own. Each
unit's transcript is the recording's segments moved to the unit's own clock (the clip starts at 0), and its review
moves back by the unit's start, so the stitched transcript keeps the original times exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from syncd.domain.transcript import Segment, Transcript, Word


@dataclass(frozen=True)
class Unit:
    index: int
    count: int
    start: float
    end: float
    segments: tuple[Segment, ...]

    @property
    def label(self) -> str:
        """What the reviewer reads beside the file name: "part 2 of 3, 15:00-30:00"."""
        return f"part {self.index + 1} of {self.count}, {clock(self.start)}-{clock(self.end)}"


def clock(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def plan(transcript: Transcript, max_seconds: float, audio_seconds: float = 0.0) -> list[Unit]:
    """The units of a transcript; one unit (the whole recording) when it fits or cannot be cut. The last unit ends
    with the audio (``audio_seconds``, when known: an engine's duration may stop at the last word)."""
    duration = max(audio_seconds, transcript.duration or 0.0)
    groups: list[list[Segment]] = [[]]
    starts = [0.0]
    for seg in transcript.segments:
        current = groups[-1]
        if current and seg.end - starts[-1] > max_seconds:
            starts.append(round((current[-1].end + seg.start) / 2, 3))
            groups.append([])
        groups[-1].append(seg)
    ends = [*starts[1:], max(duration, transcript.segments[-1].end if transcript.segments else 0.0)]
    count = len(groups)
    return [
        Unit(index, count, start, end, tuple(group))
        for index, (start, end, group) in enumerate(zip(starts, ends, groups, strict=True))
    ]


def _shift_word(word: Word, by: float) -> Word:
    return replace(word, start=round(word.start + by, 3), end=round(word.end + by, 3))


def shift(segment: Segment, by: float) -> Segment:
    """The segment (and its words) ``by`` seconds later (earlier when negative)."""
    return replace(
        segment,
        start=round(segment.start + by, 3),
        end=round(segment.end + by, 3),
        words=tuple(_shift_word(w, by) for w in segment.words),
    )


def unit_transcript(transcript: Transcript, unit: Unit, parent_key: str) -> Transcript:
    """The unit's transcript on the clip's clock; ``extra["unit"]`` says which part of which file it is."""
    about: dict[str, Any] = {
        "of": parent_key,
        "index": unit.index,
        "count": unit.count,
        "start": unit.start,
        "end": unit.end,
        "label": unit.label,
    }
    return replace(
        transcript,
        segments=tuple(shift(s, -unit.start) for s in unit.segments),
        duration=round(unit.end - unit.start, 3),
        extra={**transcript.extra, "unit": about},
    )


def unit_of(transcript: Transcript | None) -> dict[str, Any] | None:
    """The ``extra["unit"]`` of a unit's transcript, or None for a whole recording."""
    found = transcript.extra.get("unit") if transcript else None
    return dict(found) if isinstance(found, dict) else None
