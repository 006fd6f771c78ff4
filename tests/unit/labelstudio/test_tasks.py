"""Task data: readable and numeric columns for the Data Manager, flagged words counted."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace

from devstack.transcribe import recording_for
from syncd.domain.transcript import Segment, Word
from syncd.labelstudio import layouts
from syncd.labelstudio.tasks import VIEW, task_for
from tests.unit.scenarios import CALL_ASR, WORDY_CALL


def test_flagged_words_are_counted_in_the_task_data_and_header() -> None:
    rec = replace(recording_for("calls", "a.wav", "e1"), transcript_json=json.dumps(WORDY_CALL.to_dict()))
    task = task_for(rec, "segments", "aws-1", flag_words_below=0.5)
    assert task["data"]["flagged_words"] == 2 and task["data"]["segments_to_check"].endswith("· 2 words marked")
    assert task_for(rec, "whole", "aws-1", flag_words_below=0.5)["data"]["flagged_words"] == 0


def test_task_data_is_readable_and_numeric() -> None:
    rec = recording_for("calls", "2026/support call.mp3", "abc")
    words = [Word(0.0, 0.5, "Hello,", 0.7064), Word(0.6, 1.0, "hi.", 0.9064)]
    asr = replace(CALL_ASR, segments=(Segment.from_words(words, speaker="spk_0"),))
    rec = replace(rec, transcript_json=json.dumps(asr.to_dict()))
    task = task_for(rec, "segments", "aws-1")
    data = task["data"]
    assert data["key"] == "2026/support call.mp3" and data["audio"] == "s3://calls/2026/support call.mp3"
    assert data["asr_confidence"] == 0.806 and data["duration"] == 8.0
    assert data["syncd_id"] == rec.syncd_id and data["etag"] == "abc"
    assert task["predictions"][0]["score"] == 0.8064
    header = " ".join(h.get("value", "") for h in ET.fromstring(layouts.label_config("segments")).iter("Header"))  # noqa: S314
    assert {v.strip("$") for v in header.split() if v.startswith("$")} <= set(data)


def test_transcript_task_carries_a_cue_row_per_segment_and_the_view_hides_them() -> None:
    rec = replace(recording_for("calls", "a.wav", "e1"), transcript_json=json.dumps(WORDY_CALL.to_dict()))
    task = task_for(rec, "transcript", "aws-1", flag_words_below=0.5)
    data = task["data"]
    assert [row["cue"][0]["note"].split(" · ")[0] for row in data["segments"]] == ["1", "2"]
    assert data["flagged_words"] == 2 and data["segments_to_check"] == "check segments 1, 2"
    assert [i["from_name"] for i in task["predictions"][0]["result"]] == ["text_0", "text_1"]
    assert "tasks:data.segments" in VIEW["hiddenColumns"]["explore"]
    config = ET.fromstring(layouts.label_config("transcript"))  # noqa: S314
    header = " ".join(h.get("value", "") for h in config.iter("Header"))
    assert {v.strip("$") for v in header.split() if v.startswith("$")} <= set(data)
    assert "segments" not in task_for(rec, "segments", "aws-1")["data"]
