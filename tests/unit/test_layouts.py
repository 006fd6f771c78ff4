"""The review layouts: label configs, the predictions we import, and reviewers' results read back into segments."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from syncd.labelstudio import layouts
from syncd.transcript import Segment, Transcript

ASR = Transcript(
    segments=(
        Segment(0.0, 2.5, "Hello, thanks for calling.", "spk_0", 0.91),
        Segment(2.8, 5.0, "I have a question about my bill.", "spk_1", 0.62),
        Segment(5.2, 7.9, "Sure, let me look that up.", "spk_0", 0.77),
    ),
    engine="aws",
    model="transcribe",
    duration=8.0,
)


def _texts(result: list[dict[str, Any]], name: str = layouts.TEXT) -> dict[str, list[str]]:
    return {i["id"]: i["value"]["text"] for i in result if i["from_name"] == name}


@pytest.mark.parametrize("layout", ["segments", "whole"])
def test_label_config_is_xml_with_our_controls(layout: str) -> None:
    root = ET.fromstring(layouts.label_config(layout, max_speakers=3))  # noqa: S314 (our own constant XML)
    names = {el.get("name") for el in root.iter()}
    assert {layouts.AUDIO, layouts.TEXT} <= names
    if layout == "segments":
        labels = [el.get("value") for el in root.iter("Label")]
        assert labels == ["Speaker 1", "Speaker 2", "Speaker 3"]
        per_region = {el.get("name"): el.get("perRegion") for el in root.iter("TextArea")}
        assert per_region == {layouts.TEXT: "true", layouts.CONFIDENCE: "true"}


def test_segments_prediction_one_region_per_segment_with_speaker_text_and_confidence() -> None:
    result = layouts.prediction_result(ASR, "segments")
    assert len(result) == 3 * len(ASR.segments)
    assert _texts(result) == {
        "seg0000": [ASR.segments[0].text],
        "seg0001": [ASR.segments[1].text],
        "seg0002": [ASR.segments[2].text],
    }
    speakers = {i["id"]: i["value"]["labels"] for i in result if i["from_name"] == layouts.SPEAKER}
    assert speakers == {"seg0000": ["Speaker 1"], "seg0001": ["Speaker 2"], "seg0002": ["Speaker 1"]}
    assert _texts(result, layouts.CONFIDENCE)["seg0001"] == ["ASR confidence 0.62"]
    for item in result:
        seg = ASR.segments[int(item["id"][3:])]
        assert (item["value"]["start"], item["value"]["end"], item["score"]) == (seg.start, seg.end, seg.confidence)


def test_whole_prediction_is_one_text_box_with_a_line_per_segment() -> None:
    (item,) = layouts.prediction_result(ASR, "whole")
    assert item["type"] == "textarea" and item["from_name"] == layouts.TEXT
    assert item["value"]["text"] == ["\n".join(s.text for s in ASR.segments)]


def test_unchanged_prediction_reads_back_as_the_asr_segments() -> None:
    segments = layouts.corrected_segments(layouts.prediction_result(ASR, "segments"), ASR, "segments")
    assert [(s.start, s.end, s.text, s.asr_text, s.confidence) for s in segments] == [
        (a.start, a.end, a.text, a.text, a.confidence) for a in ASR.segments
    ]
    assert [s.speaker for s in segments] == ["Speaker 1", "Speaker 2", "Speaker 1"]


def test_reviewer_edits_deletes_adds_and_relabels() -> None:
    result = copy.deepcopy(layouts.prediction_result(ASR, "segments"))
    for item in result:
        if item["id"] == "seg0000" and item["from_name"] == layouts.TEXT:
            item["value"]["text"] = ["Hello, thank you for calling Zoë's shop."]
        if item["id"] == "seg0002" and item["from_name"] == layouts.SPEAKER:
            item["value"]["labels"] = ["Speaker 3"]
    result = [i for i in result if i["id"] != "seg0001"]
    span = {"start": 8.0, "end": 9.5, "channel": 0}
    result += [
        {
            "id": "new1",
            "from_name": layouts.SPEAKER,
            "to_name": "audio",
            "type": "labels",
            "value": {**span, "labels": ["Speaker 2"]},
        },
        {
            "id": "new1",
            "from_name": layouts.TEXT,
            "to_name": "audio",
            "type": "textarea",
            "value": {**span, "text": ["Thanks,", "bye."]},
        },
    ]
    segments = layouts.corrected_segments(result, ASR, "segments")
    assert [(s.start, s.speaker, s.text, s.asr_text) for s in segments] == [
        (0.0, "Speaker 1", "Hello, thank you for calling Zoë's shop.", ASR.segments[0].text),
        (5.2, "Speaker 3", ASR.segments[2].text, ASR.segments[2].text),
        (8.0, "Speaker 2", "Thanks, bye.", None),
    ]
    assert segments[2].confidence is None and segments[1].confidence == 0.77


def test_region_without_text_is_dropped() -> None:
    result = [
        i
        for i in layouts.prediction_result(ASR, "segments")
        if not (i["id"] == "seg0001" and i["from_name"] == layouts.TEXT)
    ]
    assert [s.start for s in layouts.corrected_segments(result, ASR, "segments")] == [0.0, 5.2]


def test_whole_lines_keep_segment_times_when_one_line_per_segment() -> None:
    text = "Hello, thanks for calling.\nI have a question about my invoice.\nSure, let me look that up."
    result = [{"id": "x", "from_name": layouts.TEXT, "to_name": "audio", "type": "textarea", "value": {"text": [text]}}]
    segments = layouts.corrected_segments(result, ASR, "whole")
    assert [(s.start, s.end, s.asr_text) for s in segments] == [(a.start, a.end, a.text) for a in ASR.segments]
    assert segments[1].text == "I have a question about my invoice."


def test_whole_rewritten_text_becomes_one_span_over_the_file() -> None:
    result = [
        {
            "id": "x",
            "from_name": layouts.TEXT,
            "to_name": "audio",
            "type": "textarea",
            "value": {"text": ["All new text."]},
        }
    ]
    (segment,) = layouts.corrected_segments(result, ASR, "whole")
    assert (segment.start, segment.end, segment.text, segment.asr_text) == (0.0, 8.0, "All new text.", ASR.text)


@pytest.mark.parametrize(
    ("raw", "shown"), [("spk_0", "Speaker 1"), ("ch_1", "Channel 2"), (None, "Speaker 1"), ("Agent", "Agent")]
)
def test_speaker_names(raw: str | None, shown: str) -> None:
    assert layouts.speaker_name(raw) == shown
