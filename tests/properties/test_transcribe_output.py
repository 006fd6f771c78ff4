"""Amazon Transcribe output: any document a job could leave at its output key (older and newer shapes, redactions,
speakers and channels, and bent ones: missing items, zero-length words, overlapping speaker segments, unsorted
times, numbers as strings or not numbers at all) becomes a transcript syncd can review and write, or a
TranscribeOutputError that names what is wrong."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from syncd.transcribers.aws_output import TranscribeOutputError, parse_transcribe_output
from tests.properties.conftest import Border

FIXTURES = Path(__file__).parents[1] / "fixtures" / "transcribe"

number = st.floats(0, 5000) | st.floats() | st.integers(-5, 10**6) | st.just(86400000000000.0)
as_text = number.map(str) | st.text(max_size=8)
seconds = as_text | number | st.none()
confidence = st.floats(0, 1).map(lambda c: f"{c:.4f}") | st.floats().map(str) | st.text(max_size=5) | st.none()
alternative = st.fixed_dictionaries(
    {"content": st.text(max_size=12)}, optional={"confidence": confidence, "redactions": st.lists(st.just({}))}
)
item = st.fixed_dictionaries(
    {"type": st.sampled_from(["pronunciation", "punctuation"]) | st.text(max_size=5)},
    optional={
        "start_time": seconds,
        "end_time": seconds,
        "alternatives": st.lists(alternative, max_size=2) | st.none() | st.lists(st.text(max_size=3), max_size=2),
        "speaker_label": st.sampled_from(["spk_0", "spk_1"]) | st.text(max_size=5) | st.none(),
        "channel_label": st.sampled_from(["ch_0", "ch_1"]),
        "id": st.integers(0, 50),
    },
)
segment = st.fixed_dictionaries(
    {"start_time": seconds, "end_time": seconds, "speaker_label": st.sampled_from(["spk_0", "spk_1"])},
    optional={"items": st.lists(st.fixed_dictionaries({"start_time": seconds, "end_time": seconds}), max_size=4)},
)
audio_segment = st.fixed_dictionaries(
    {"id": st.integers(0, 5), "transcript": st.text(max_size=20), "start_time": seconds, "end_time": seconds},
    optional={"speaker_label": st.text(max_size=5), "items": st.lists(st.integers(0, 50), max_size=6)},
)
results = st.fixed_dictionaries(
    {},
    optional={
        "transcripts": st.lists(st.fixed_dictionaries({"transcript": st.text(max_size=30)}), max_size=2),
        "items": st.lists(item, max_size=40) | st.text(max_size=3),
        "speaker_labels": st.fixed_dictionaries({"segments": st.lists(segment | st.text(max_size=2), max_size=4)})
        | st.text(max_size=2),
        "channel_labels": st.fixed_dictionaries(
            {
                "channels": st.lists(
                    st.fixed_dictionaries({"channel_label": st.just("ch_0"), "items": st.lists(item, max_size=6)}),
                    max_size=2,
                )
            }
        ),
        "audio_segments": st.lists(audio_segment | st.integers(), max_size=4) | st.text(max_size=2),
        "language_code": st.sampled_from(["en-US", "de-DE"]) | st.text(max_size=4),
        "language_identification": st.lists(
            st.fixed_dictionaries({"code": st.text(max_size=5), "score": as_text}), max_size=2
        ),
    },
)
documents = st.fixed_dictionaries(
    {"results": results}, optional={"jobName": st.text(max_size=10), "status": st.sampled_from(["COMPLETED", "FAILED"])}
) | st.recursive(
    st.none() | st.integers() | st.text(max_size=5),
    lambda x: st.lists(x, max_size=3) | st.dictionaries(st.text(max_size=5), x, max_size=3),
    max_leaves=8,
)


def _fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


@pytest.mark.border("transcribe output")
@given(documents)
@example(_fixture("two_speakers.json"))
@example(_fixture("two_speakers_new.json"))
@example(_fixture("channels.json"))
@example(_fixture("single_speaker.json"))
@example({"results": {"transcripts": [], "language_identification": [{"code": "", "score": ""}]}})
@example({"results": {"transcripts": [], "language_identification": [{"code": "en-US", "score": "inf"}]}})
@example({"results": {"items": [{"type": "pronunciation", "alternatives": [""]}]}})
@example(
    {"results": {"audio_segments": [{"id": 0}], "channel_labels": {"channels": [{"items": [{"alternatives": [""]}]}]}}}
)
@example(
    {
        "results": {
            "items": [
                {
                    "type": "pronunciation",
                    "start_time": "1",
                    "end_time": "2",
                    "alternatives": [{"content": "x", "confidence": ""}],
                }
            ]
        }
    }
)
@example(
    {
        "results": {
            "items": [
                {"type": "pronunciation", "start_time": "inf", "end_time": "inf", "alternatives": [{"content": "x"}]}
            ]
        }
    }
)
def test_a_transcribe_output_becomes_a_transcript_or_is_refused_by_name(border: Border, doc: Any) -> None:
    try:
        transcript = parse_transcribe_output(doc)
    except TranscribeOutputError as exc:
        border.refused_for(str(exc))
        return
    last_start = 0.0
    for seg in transcript.segments:
        assert math.isfinite(seg.start) and math.isfinite(seg.end) and 0 <= seg.start <= seg.end, seg
        assert seg.start >= last_start - 1e-9, ("segments out of order", transcript.segments)
        last_start = seg.start
        for word in seg.words:
            assert math.isfinite(word.start) and 0 <= word.start <= word.end, word
            assert word.confidence is None or 0 <= word.confidence <= 1, word
            assert seg.start <= word.start and word.end <= seg.end, (seg, word)
    assert transcript.confidence is None or 0 <= transcript.confidence <= 1
    assert transcript.duration is None or math.isfinite(transcript.duration)
    json.dumps(transcript.to_dict(), allow_nan=False)
    assert all(w.end <= 360_000 for w in transcript.words)
    border.took()
