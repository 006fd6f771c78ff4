"""A review read back from Label Studio, in each layout: any JSON Label Studio could store as an annotation's result
(any reviewer, any tool, any version) becomes segments syncd can write, or a ValueError that names what is wrong.
Nothing else: a crash parks the task under a reason nobody can act on, and a wrong text is written beside the audio."""

from __future__ import annotations

import math
from typing import Any

import pytest
import srt
from hypothesis import example, given
from hypothesis import strategies as st

from syncd.domain.formats import OUTPUT_FORMATS, Review, render
from syncd.domain.transcript import Segment, Transcript, Word
from syncd.labelstudio.layouts import SPEAKER, TEXT, WORD, corrected_segments, prediction_result, result_layout
from tests.properties.conftest import Border

ASR = Transcript(
    segments=tuple(
        Segment(
            start=s,
            end=s + 2.5,
            text=f"segment {i} words",
            speaker=f"spk_{i % 2}",
            confidence=0.5 + i / 10,
            words=(Word(s, s + 1, "segment", 0.9), Word(s + 1, s + 2.5, "words", 0.4)),
        )
        for i, s in enumerate((0.0, 3.0, 6.5))
    ),
    engine="whisper",
    model="tiny.en",
    language="en",
    duration=9.0,
)

json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_any = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
times = st.none() | st.floats() | st.integers(-10, 10**9) | st.text(max_size=6) | json_any
texts = st.lists(st.text(max_size=40), max_size=4) | st.text(max_size=40) | json_any
labels = st.lists(st.text(max_size=10), max_size=3) | st.text(max_size=10) | json_any
value = (
    st.fixed_dictionaries(
        {}, optional={"start": times, "end": times, "text": texts, "labels": labels, "channel": json_any}
    )
    | json_any
)
from_name = (
    st.sampled_from([TEXT, SPEAKER, WORD, "labels", "text_0", "text_1", "text_2", "text_3", "text_99"]) | json_any
)
region = st.sampled_from(["seg-0", "seg-1", "seg-2", "x"]) | st.text(max_size=6) | json_any
item = (
    st.fixed_dictionaries({}, optional={"id": region, "from_name": from_name, "type": json_any, "value": value})
    | json_any
)
results = st.lists(item, max_size=12) | st.lists(item, min_size=30, max_size=60) | json_any
"""A result as Label Studio could hold it: mostly the shapes syncd writes, bent; sometimes anything at all."""


def _given_texts(result: Any) -> set[str]:
    """Every text the result holds, whitespace collapsed: a segment's text must be one of them (or, for the whole
    layout, made of their lines), never a piece of one."""
    found: set[str] = set()
    for entry in result if isinstance(result, list) else []:
        v = entry.get("value") if isinstance(entry, dict) else None
        t = v.get("text") if isinstance(v, dict) else None
        for text in t if isinstance(t, list) else [t]:
            if isinstance(text, str):
                found.add(" ".join(text.split()))
                found.update(" ".join(line.split()) for line in text.splitlines())
    return found


def _check(result: Any, layout: str, border: Border) -> None:
    try:
        layout = result_layout(result, layout)  # what the review was made with decides how it reads
        segments = corrected_segments(result, ASR, layout)
    except ValueError as exc:
        border.refused_for(str(exc))
        return
    given_texts = _given_texts(result)
    for seg in segments:
        assert isinstance(seg.text, str) and seg.text == " ".join(seg.text.split()) and seg.text, seg
        if layout != "whole":
            assert seg.text in given_texts, (seg.text, given_texts)
        else:
            assert all(part in " ".join(given_texts) for part in seg.text.split()), seg.text
        assert math.isfinite(seg.start) and math.isfinite(seg.end) and 0 <= seg.start <= seg.end, seg
        assert seg.speaker is None or isinstance(seg.speaker, str)
    review = Review("b", "calls/a.mp3", "e", ASR, tuple(segments), 1, 2, 3, "r@example.com", None, None, layout)
    bodies = render(review, list(OUTPUT_FORMATS))
    assert len(list(srt.parse(bodies["srt"].decode()))) == sum(1 for s in segments if s.text)
    border.took()


@pytest.mark.border("review: transcript")
@given(results)
@example(prediction_result(ASR, "transcript"))
@example([{"from_name": "text_0", "value": {"text": "typed as a string, not a list"}}])
@example([{"from_name": f"text_{i % 3}", "value": {"text": [f"line {i}"]}} for i in range(3000)])
def test_a_transcript_review_is_written_or_refused_by_name(border: Border, result: Any) -> None:
    _check(result, "transcript", border)


@pytest.mark.border("review: segments")
@given(results)
@example(prediction_result(ASR, "segments"))
@example([{"id": "r", "from_name": TEXT, "value": {"start": 1, "end": float("inf"), "text": ["x"]}}])
@example([{"id": "seg-0", "from_name": TEXT, "value": {"start": 86400000000000.0, "text": ["0"]}}])
@example([{"id": "r", "from_name": TEXT, "value": {"start": 1, "text": "a string"}}])
@example(
    [{"id": f"r{i}", "from_name": TEXT, "value": {"start": i, "end": i + 1, "text": [f"t{i}"]}} for i in range(3000)]
)
@example(
    [
        {"id": "r", "from_name": SPEAKER, "value": {"start": 1, "labels": "Alice"}},
        {"id": "r", "from_name": TEXT, "value": {"start": 1, "text": ["hi"]}},
    ]
)
def test_a_segments_review_is_written_or_refused_by_name(border: Border, result: Any) -> None:
    _check(result, "segments", border)


@pytest.mark.border("review: whole")
@given(results)
@example(prediction_result(ASR, "whole"))
@example([{"from_name": TEXT, "value": {"text": "one string\nnot a list"}}])
@example([{"from_name": TEXT, "value": {"text": ["0"]}}, {"from_name": TEXT, "value": {"text": ["0"]}}])
def test_a_whole_review_is_written_or_refused_by_name(border: Border, result: Any) -> None:
    _check(result, "whole", border)
