"""The labeling layouts: the label config, predictions per layout, and reviews read back from every layout's results."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from dataclasses import replace
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from syncd.labelstudio import layouts
from tests.unit.scenarios import CALL_ASR, WORDY_CALL


def _texts(result: list[dict[str, Any]], name: str = layouts.TEXT) -> dict[str, list[str]]:
    return {i["id"]: i["value"]["text"] for i in result if i["from_name"] == name}


@pytest.mark.parametrize("layout", ["segments", "whole"])
def test_label_config_is_xml_with_our_controls(layout: str) -> None:
    root = ET.fromstring(layouts.label_config(layout, max_speakers=3))  # noqa: S314 (our own constant XML)
    names = {el.get("name") for el in root.iter()}
    assert {layouts.AUDIO, layouts.TEXT} <= names and layouts.CONFIDENCE not in names
    assert next(h.get("value") for h in root.iter("Header")) == "$key"
    if layout == "segments":
        labels = [el.get("value") for el in root.iter("Label")]
        assert labels == [
            "Speaker 1",
            "Speaker 2",
            "Speaker 3",
            "Channel 1",
            "Channel 2",
            layouts.CHECK_LABEL,
            layouts.WORD_LABEL,
        ]
        (text,) = root.iter("TextArea")
        # Every region's text is an editable field in the region list, one text per region: no "Add" box.
        assert text.attrib | {"perRegion": "true", "displayMode": "region-list", "maxSubmissions": "1"} == text.attrib
        assert text.get("editable") == "true"


def test_old_layout_results_read_back() -> None:
    """A project created before the region-list layout: a read-only confidence text per region and a text box
    that accepted a second text. Its results still export: the confidence text is ignored, one text is kept."""
    span = {"start": 2.8, "end": 5.0, "channel": 0}
    result = [
        {
            "id": "seg0001",
            "from_name": "speaker",
            "to_name": "audio",
            "type": "labels",
            "value": {**span, "labels": ["Speaker 2"]},
        },
        {
            "id": "seg0001",
            "from_name": "transcription",
            "to_name": "audio",
            "type": "textarea",
            "value": {**span, "text": [CALL_ASR.segments[1].text, "I have a question about my invoice."]},
        },
        {
            "id": "seg0001",
            "from_name": "asr_confidence",
            "to_name": "audio",
            "type": "textarea",
            "value": {**span, "text": ["CALL_ASR confidence 0.62"]},
        },
    ]
    with capture_logs() as logs:
        (segment,) = layouts.corrected_segments(result, CALL_ASR, "segments", log=structlog.get_logger())
    assert (segment.start, segment.end, segment.speaker) == (2.8, 5.0, "Speaker 2")
    assert segment.text == "I have a question about my invoice."
    assert segment.asr_text == CALL_ASR.segments[1].text and segment.confidence == 0.62
    (warning,) = logs
    assert warning["event"] == "annotation.region_texts" and warning["log_level"] == "warning"
    assert (warning["region"], warning["texts"], warning["kept"]) == ("seg0001", 2, segment.text)


@pytest.mark.parametrize(
    ("texts", "kept"),
    [
        (["I have a question about my bill.", "A typed sentence."], "A typed sentence."),
        (
            ["I have a question about my invoice.", "I have a question about my bill."],
            "I have a question about my invoice.",
        ),
        (["First edit.", "Second edit."], "Second edit."),
        (
            ["I have a question about my bill.", " I have a question  about my bill. "],
            "I have a question about my bill.",
        ),
    ],
)
def test_several_texts_on_a_region_keep_one_never_joined(texts: list[str], kept: str) -> None:
    assert layouts.pick_text(texts, CALL_ASR.segments[1].text) == kept


def test_segments_prediction_one_region_per_segment_with_speaker_text_and_score() -> None:
    result = layouts.prediction_result(CALL_ASR, "segments")
    assert len(result) == 2 * len(CALL_ASR.segments)
    assert _texts(result) == {
        "seg0000": [CALL_ASR.segments[0].text],
        "seg0001": [CALL_ASR.segments[1].text],
        "seg0002": [CALL_ASR.segments[2].text],
    }
    speakers = {i["id"]: i["value"]["labels"] for i in result if i["from_name"] == layouts.SPEAKER}
    assert speakers == {"seg0000": ["Speaker 1"], "seg0001": ["Speaker 2"], "seg0002": ["Speaker 1"]}
    assert not any(i["from_name"] == layouts.CONFIDENCE for i in result), "confidence is a score, not a text"
    for item in result:
        seg = CALL_ASR.segments[int(item["id"][3:])]
        assert (item["value"]["start"], item["value"]["end"], item["score"]) == (seg.start, seg.end, seg.confidence)


def test_low_confidence_segments_carry_a_check_label_and_are_named_in_the_header() -> None:
    low = replace(
        CALL_ASR, segments=(CALL_ASR.segments[0], replace(CALL_ASR.segments[1], confidence=0.41), CALL_ASR.segments[2])
    )
    result = layouts.prediction_result(low, "segments")
    checks = [(i["id"], i["value"]["labels"], i["score"]) for i in result if i["from_name"] == layouts.CHECK]
    assert checks == [("seg0001", [layouts.CHECK_LABEL], 0.41)]
    assert layouts.segments_to_check(low) == "check segment 2"
    assert layouts.segments_to_check(CALL_ASR) == "no segment below 0.60"
    # The check label is a marker for the reviewer, never part of the transcript.
    assert [s.speaker for s in layouts.corrected_segments(result, low, "segments")] == [
        "Speaker 1",
        "Speaker 2",
        "Speaker 1",
    ]


def test_low_confidence_words_are_read_only_hint_regions_over_their_time_after_the_segments() -> None:
    result = layouts.prediction_result(WORDY_CALL, "segments", flag_words_below=0.5)
    hints = [i for i in result if i["from_name"] == layouts.WORD]
    assert [(i["id"], i["value"]["start"], i["value"]["end"], i["score"]) for i in hints] == [
        ("word0000", 0.5, 0.9, 0.31),
        ("word0001", 1.2, 1.5, 0.49),
    ]
    assert all(i["readonly"] and i["value"]["labels"] == [layouts.WORD_LABEL] for i in hints)
    assert result[-len(hints) :] == hints, "segments keep their numbers in the region list"
    assert layouts.prediction_result(WORDY_CALL, "segments") == [i for i in result if i not in hints]
    # Hints never reach a transcript, and nobody is warned about them as regions without text.
    with capture_logs() as logs:
        segments = layouts.corrected_segments(result, WORDY_CALL, "segments", log=structlog.get_logger())
    assert [s.text for s in segments] == [s.text for s in WORDY_CALL.segments] and logs == []


def test_a_region_a_reviewer_labelled_check_word_and_gave_text_is_kept() -> None:
    drawn = [
        {
            "id": "mine",
            "from_name": layouts.WORD,
            "type": "labels",
            "value": {"start": 3.0, "end": 4.0, "labels": [layouts.WORD_LABEL]},
        },
        {
            "id": "mine",
            "from_name": layouts.TEXT,
            "type": "textarea",
            "value": {"start": 3.0, "end": 4.0, "text": ["Kept."]},
        },
    ]
    segments = layouts.corrected_segments(
        layouts.prediction_result(WORDY_CALL, "segments", 0.5) + drawn, WORDY_CALL, "segments"
    )
    assert [s.text for s in segments][-1] == "Kept."


def test_whole_prediction_is_one_text_box_with_a_line_per_segment() -> None:
    (item,) = layouts.prediction_result(CALL_ASR, "whole")
    assert item["type"] == "textarea" and item["from_name"] == layouts.TEXT
    assert item["value"]["text"] == ["\n".join(s.text for s in CALL_ASR.segments)]


def test_unchanged_prediction_reads_back_as_the_asr_segments() -> None:
    segments = layouts.corrected_segments(layouts.prediction_result(CALL_ASR, "segments"), CALL_ASR, "segments")
    assert [(s.start, s.end, s.text, s.asr_text, s.confidence) for s in segments] == [
        (a.start, a.end, a.text, a.text, a.confidence) for a in CALL_ASR.segments
    ]
    assert [s.speaker for s in segments] == ["Speaker 1", "Speaker 2", "Speaker 1"]


def test_reviewer_edits_deletes_adds_and_relabels() -> None:
    result = copy.deepcopy(layouts.prediction_result(CALL_ASR, "segments"))
    for item in result:
        if item["id"] == "seg0000" and item["from_name"] == layouts.TEXT:
            item["value"]["text"] = ["Hello, thank you for calling\nZoë's shop. "]
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
            "value": {**span, "text": ["Thanks, bye."]},
        },
    ]
    with capture_logs() as logs:
        segments = layouts.corrected_segments(result, CALL_ASR, "segments", log=structlog.get_logger())
    assert [(s.start, s.speaker, s.text, s.asr_text) for s in segments] == [
        (0.0, "Speaker 1", "Hello, thank you for calling Zoë's shop.", CALL_ASR.segments[0].text),
        (5.2, "Speaker 3", CALL_ASR.segments[2].text, CALL_ASR.segments[2].text),
        (8.0, "Speaker 2", "Thanks, bye.", None),
    ]
    assert segments[2].confidence is None and segments[1].confidence == 0.77
    assert logs == []


def test_region_without_text_is_logged_and_not_written() -> None:
    drawn = {"start": 8.0, "end": 9.5, "channel": 0, "labels": ["Speaker 2"]}
    result = [
        i
        for i in layouts.prediction_result(CALL_ASR, "segments")
        if not (i["id"] == "seg0001" and i["from_name"] == layouts.TEXT)
    ]
    result.append({"id": "new1", "from_name": layouts.SPEAKER, "to_name": "audio", "type": "labels", "value": drawn})
    result.append(
        {"id": "seg0002", "from_name": layouts.TEXT, "type": "textarea", "value": {"start": 5.2, "text": ["  "]}}
    )
    with capture_logs() as logs:
        segments = layouts.corrected_segments(result, CALL_ASR, "segments", log=structlog.get_logger())
    assert [s.start for s in segments] == [0.0, 5.2]
    assert segments[1].text == CALL_ASR.segments[2].text, "a blank second text is no text"
    assert [(e["event"], e["region"], e["start"], e["end"], e["drawn"]) for e in logs] == [
        ("annotation.region_without_text", "seg0001", 2.8, 5.0, False),
        ("annotation.region_without_text", "new1", 8.0, 9.5, True),
    ]


def test_region_missing_its_end_reads_back() -> None:
    result = [
        {"id": "seg0000", "from_name": layouts.TEXT, "type": "textarea", "value": {"start": 0.0, "text": ["Hi."]}},
        {"id": "new1", "from_name": layouts.TEXT, "type": "textarea", "value": {"start": 9.0, "text": ["Bye."]}},
    ]
    segments = layouts.corrected_segments(result, CALL_ASR, "segments")
    assert [(s.start, s.end, s.text) for s in segments] == [(0.0, 2.5, "Hi."), (9.0, 9.0, "Bye.")]


def test_whole_lines_keep_segment_times_when_one_line_per_segment() -> None:
    text = "Hello, thanks for calling.\nI have a question about my invoice.\nSure, let me look that up."
    result = [{"id": "x", "from_name": layouts.TEXT, "to_name": "audio", "type": "textarea", "value": {"text": [text]}}]
    segments = layouts.corrected_segments(result, CALL_ASR, "whole")
    assert [(s.start, s.end, s.asr_text) for s in segments] == [(a.start, a.end, a.text) for a in CALL_ASR.segments]
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
    (segment,) = layouts.corrected_segments(result, CALL_ASR, "whole")
    assert (segment.start, segment.end, segment.text, segment.asr_text) == (0.0, 8.0, "All new text.", CALL_ASR.text)


@pytest.mark.parametrize(
    ("raw", "shown"), [("spk_0", "Speaker 1"), ("ch_1", "Channel 2"), (None, "Speaker 1"), ("Agent", "Agent")]
)
def test_speaker_names(raw: str | None, shown: str) -> None:
    assert layouts.speaker_name(raw) == shown


# --- the transcript layout ---------------------------------------------------------------------------------------


def _transcript_review(texts: dict[int, list[str]]) -> list[dict[str, Any]]:
    """A submitted transcript-layout result: the prediction with some segments' texts replaced."""
    result = layouts.prediction_result(CALL_ASR, "transcript")
    for item in result:
        index = int(item["from_name"].split("_")[1])
        if index in texts:
            item["value"] = {"text": texts[index]}
    return result


def test_transcript_config_repeats_a_cue_and_a_text_box_per_segment_in_the_main_column() -> None:
    config = layouts.label_config("transcript", max_speakers=3)
    root = ET.fromstring(config)  # noqa: S314 (our own constant XML)
    (repeater,) = root.iter("Repeater")
    assert repeater.get("on") == "$segments" and repeater.get("indexFlag") == "{{idx}}"
    (row,) = repeater
    cue, text = list(row)
    assert (cue.tag, cue.get("name"), cue.get("audioUrl"), cue.get("value")) == (
        "Paragraphs",
        "cue_{{idx}}",
        "$audio",
        "$segments[{{idx}}].cue",
    )
    assert cue.get("sync") is None, "synced, Label Studio would play every row's audio at once"
    assert text.tag == "TextArea" and text.get("name") == "text_{{idx}}" and text.get("toName") == layouts.AUDIO
    assert text.attrib | {"editable": "true", "transcription": "true", "maxSubmissions": "1"} == text.attrib
    assert text.get("perRegion") is None, "nothing lives in the region list"
    assert not list(root.iter("Labels")), "no marker is offered as a label"
    assert not [a for a in root.iter("Audio") if a.get("hotkey") == "space"], "space plays the focused row's button"
    assert layouts.config_layout(config, "whole") == "transcript"


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
def test_a_project_keeps_the_layout_its_config_was_made_with(layout: str) -> None:
    assert layouts.config_layout(layouts.label_config(layout, 4), "transcript") == layout


def test_configs_syncd_did_not_make_keep_the_configured_layout() -> None:
    old_segments = (
        '<View><Labels name="speaker" toName="audio"><Label value="Speaker 1"/></Labels>'
        '<Audio name="audio" value="$audio"/>'
        '<TextArea name="transcription" toName="audio" perRegion="true" editable="true" rows="2"/></View>'
    )
    assert layouts.config_layout(old_segments, "transcript") == "segments"
    assert layouts.config_layout('<View><Image name="i" value="$image"/></View>', "transcript") == "transcript"
    assert layouts.config_layout(None, "whole") == "whole"


def test_transcript_prediction_is_one_text_per_segment_named_by_its_index() -> None:
    result = layouts.prediction_result(CALL_ASR, "transcript")
    assert [(i["from_name"], i["to_name"], i["type"]) for i in result] == [
        (f"text_{n}", layouts.AUDIO, "textarea") for n in range(3)
    ]
    assert [i["value"] for i in result] == [{"text": [s.text]} for s in CALL_ASR.segments]
    assert [i["score"] for i in result] == [s.confidence for s in CALL_ASR.segments]


def test_transcript_review_reads_back_exactly_times_kept_one_text_per_segment() -> None:
    result = _transcript_review({1: ["I have a question about my invoice."]})
    assert layouts.result_layout(result, "segments") == "transcript"
    with capture_logs() as logs:
        segments = layouts.corrected_segments(result, CALL_ASR, "segments", log=structlog.get_logger())
    assert [(s.start, s.end) for s in segments] == [(s.start, s.end) for s in CALL_ASR.segments]
    assert [s.text for s in segments] == [
        CALL_ASR.segments[0].text,
        "I have a question about my invoice.",
        CALL_ASR.segments[2].text,
    ]
    assert [s.speaker for s in segments] == ["Speaker 1", "Speaker 2", "Speaker 1"]
    assert [(s.asr_text, s.confidence) for s in segments] == [(s.text, s.confidence) for s in CALL_ASR.segments]
    assert not logs


def test_transcript_review_with_an_emptied_text_or_two_texts_drops_or_keeps_one() -> None:
    result = _transcript_review({0: [], 2: [CALL_ASR.segments[2].text, "Sure, let me check."]})
    result = [i for i in result if i["from_name"] != "text_1"]  # Label Studio drops a text the reviewer deleted
    with capture_logs() as logs:
        segments = layouts.corrected_segments(result, CALL_ASR, "transcript", log=structlog.get_logger())
    assert [(s.start, s.text) for s in segments] == [(5.2, "Sure, let me check.")]
    events = [(e["event"], e["region"]) for e in logs]
    assert events == [
        ("annotation.region_without_text", "seg0000"),
        ("annotation.region_without_text", "seg0001"),
        ("annotation.region_texts", "seg0002"),
    ]


def test_transcript_review_naming_a_segment_the_transcript_lacks_is_refused() -> None:
    result = [{"from_name": "text_7", "to_name": "audio", "type": "textarea", "value": {"text": ["Extra."]}}]
    with pytest.raises(ValueError, match="text_7 names no segment"):
        layouts.corrected_segments(result, CALL_ASR, "transcript")


@pytest.mark.parametrize(
    ("result", "layout"),
    [
        ([], "transcript"),
        ([{"from_name": "transcription", "type": "textarea", "value": {"text": ["a"]}}], "whole"),
        (
            [{"from_name": "speaker", "type": "labels", "value": {"start": 1.0, "end": 2.0, "labels": ["S"]}}],
            "segments",
        ),
        ([{"from_name": "text_0", "type": "textarea", "value": {"text": ["a"]}}], "transcript"),
    ],
)
def test_a_review_is_read_back_by_the_layout_it_was_made_with(result: list[dict[str, Any]], layout: str) -> None:
    assert layouts.result_layout(result, "transcript") == layout


def test_rows_name_doubtful_words_in_the_cue_and_confident_segments_as_such() -> None:
    rows = layouts.transcript_rows(WORDY_CALL, flag_words_below=0.5)
    first, second = (row["cue"] for row in rows)
    assert first == [
        {
            "speaker": "Speaker 1",
            "note": f"1 · {layouts.CHECK_MARK} 0.63 · listen for: Szymborska 0.31",
            "start": 0.0,
            "end": 0.9,
        }
    ]
    assert second[0]["note"] == f"2 · {layouts.CHECK_MARK} 0.49 · listen for: calling 0.49", "0.5 is not below 0.5"
    assert (
        layouts.transcript_rows(WORDY_CALL, flag_words_below=0.3)[1]["cue"][0]["note"]
        == f"2 · {layouts.CHECK_MARK} 0.49"
    )
    confident = replace(CALL_ASR, segments=(CALL_ASR.segments[0],))
    assert layouts.transcript_rows(confident, 0.5)[0]["cue"][0]["note"] == "1 · \u2713 0.91"
    assert layouts.segments_to_check(WORDY_CALL, 0.5) == "check segments 1, 2"
    assert layouts.segments_to_check(confident, 0.5) == "no segment below 0.60 and no word below 0.50"


def test_transcript_instructions_document_the_keyboard_flow() -> None:
    text = layouts.instructions("transcript")
    for key in ("Ctrl+F", layouts.CHECK_MARK[:-1], "Tab", "Space", "Ctrl+P", "Ctrl+Enter", "Esc"):
        assert key in text
