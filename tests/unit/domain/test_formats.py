"""Output writers: txt, srt, vtt (parsed back with maintained subtitle libraries), json schema and word error rate."""

from __future__ import annotations

import dataclasses
import io
import json
from datetime import timedelta

import pytest
import srt
import webvtt

from syncd.domain.formats import Review, changed_words, rate_of, render, to_document, word_error_rate, word_errors
from syncd.domain.transcript import Segment, Transcript

ASR = Transcript(
    segments=(
        Segment(0.0, 2.5, "Hello thanks for calling", "spk_0", 0.9),
        Segment(2.8, 65.25, "I have a question about my bill", "spk_1", 0.6),
    ),
    engine="aws",
    model="transcribe",
    language="en-US",
    job="syncd-abc",
    duration=66.0,
)
REVIEWED = (
    Segment(0.0, 2.5, "Hello, thanks for calling Zoë.", "Speaker 1", 0.9, asr_text="Hello thanks for calling"),
    Segment(2.8, 65.25, "I have a question about my invoice.", "Speaker 2", 0.6, asr_text=ASR.segments[1].text),
    Segment(3700.0, 3701.5, "Bye.", None, None, asr_text=None),
)


def _review(layout: str = "segments", segments: tuple[Segment, ...] = REVIEWED) -> Review:
    return Review(
        bucket="rec",
        key="calls/Zoë interview 1.mp3",
        etag="abc123",
        asr=ASR,
        segments=segments,
        project=3,
        task=42,
        annotation=7,
        annotator="reviewer@example.com",
        created_at="2026-01-02T03:04:05.000000Z",
        updated_at="2026-01-02T03:09:00.000000Z",
        layout=layout,
    )


def test_txt_prefixes_speakers_in_the_segments_layout() -> None:
    txt = render(_review(), ["txt"])["txt"].decode()
    assert txt == "Speaker 1: Hello, thanks for calling Zoë.\nSpeaker 2: I have a question about my invoice.\nBye.\n"


def test_txt_is_plain_in_the_whole_layout() -> None:
    txt = render(_review("whole"), ["txt"])["txt"].decode()
    assert txt == "Hello, thanks for calling Zoë.\nI have a question about my invoice.\nBye.\n"


def test_srt_parses_back_with_times_and_text() -> None:
    cues = list(srt.parse(render(_review(), ["srt"])["srt"].decode()))
    assert [(c.index, c.start, c.end, c.content) for c in cues] == [
        (1, timedelta(0), timedelta(seconds=2.5), "Speaker 1: Hello, thanks for calling Zoë."),
        (2, timedelta(seconds=2.8), timedelta(seconds=65.25), "Speaker 2: I have a question about my invoice."),
        (3, timedelta(hours=1, seconds=100), timedelta(hours=1, seconds=101.5), "Bye."),
    ]


def test_vtt_parses_back_with_times_and_text() -> None:
    body = render(_review(), ["vtt"])["vtt"].decode()
    assert body.startswith("WEBVTT")
    captions = webvtt.from_buffer(io.StringIO(body)).captions
    assert [(c.start, c.end, c.text) for c in captions] == [
        ("00:00:00.000", "00:00:02.500", "Speaker 1: Hello, thanks for calling Zoë."),
        ("00:00:02.800", "00:01:05.250", "Speaker 2: I have a question about my invoice."),
        ("01:01:40.000", "01:01:41.500", "Bye."),
    ]


def test_zero_length_segment_still_makes_valid_cues() -> None:
    review = _review(segments=(Segment(1.0, 1.0, "Hm.", "Speaker 1"),))
    bodies = render(review, ["srt", "vtt"])
    (cue,) = srt.parse(bodies["srt"].decode())
    assert cue.end > cue.start
    (caption,) = webvtt.from_buffer(io.StringIO(bodies["vtt"].decode())).captions
    assert caption.end > caption.start


def test_json_document_schema() -> None:
    doc = json.loads(render(_review(), ["json"])["json"])
    assert doc["schema"] == "syncd.transcript/1"
    assert doc["source"] == {"bucket": "rec", "key": "calls/Zoë interview 1.mp3", "etag": "abc123"}
    assert doc["asr"] == {
        "engine": "aws",
        "model": "transcribe",
        "job": "syncd-abc",
        "language": "en-US",
        "confidence": None,
        "duration": 66.0,
        "redaction": None,
        "text": ASR.text,
    }
    assert doc["review"] == {
        "status": "reviewed",
        "layout": "segments",
        "project": 3,
        "task": 42,
        "annotation": 7,
        "annotator": "reviewer@example.com",
        "submitted_at": "2026-01-02T03:04:05.000000Z",
        "updated_at": "2026-01-02T03:09:00.000000Z",
    }
    assert doc["text"] == "Hello, thanks for calling Zoë. I have a question about my invoice. Bye."
    assert doc["segments"][1] == {
        "start": 2.8,
        "end": 65.25,
        "speaker": "Speaker 2",
        "text": "I have a question about my invoice.",
        "asr_text": "I have a question about my bill",
        "confidence": 0.6,
    }
    assert doc["word_error_rate"] == word_error_rate(doc["text"], ASR.text)


def test_json_keeps_unicode_readable() -> None:
    assert "Zoë" in render(_review(), ["json"])["json"].decode()


@pytest.mark.parametrize(
    ("reference", "hypothesis", "wer"),
    [
        ("one two three four", "one two three four", 0.0),
        ("one two three four", "one too three four", 0.25),
        ("Hello, World!", "hello world", 0.0),  # case and punctuation do not count
        ("one two", "one two three four", 1.0),  # two insertions over two reference words
        ("", "", None),
        ("", "something", 1.0),
    ],
)
def test_word_error_rate(reference: str, hypothesis: str, wer: float | None) -> None:
    assert word_error_rate(reference, hypothesis) == wer
    assert rate_of(*word_errors(reference, hypothesis)) == wer  # what a review reports, from its one alignment


def test_document_wer_is_of_asr_against_the_corrected_text() -> None:
    """Reference = what the reviewer says was spoken; hypothesis = what the ASR heard."""
    review = _review(segments=(Segment(0.0, 1.0, "one two three four", asr_text="one too three four"),))
    review = Review(**{**review.__dict__, "asr": Transcript((Segment(0.0, 1.0, "one too three four"),), "w", "m")})
    assert to_document(review)["word_error_rate"] == 0.25


def test_redacted_transcripts_say_so_in_json_and_vtt() -> None:
    found = {"type": "PII", "redacted_words": 1, "entities": {"NAME": 1}}
    review = dataclasses.replace(_review(), asr=dataclasses.replace(ASR, extra={"redaction": found}))
    bodies = render(review, ["json", "vtt", "srt"])
    assert json.loads(bodies["json"])["asr"]["redaction"] == found
    vtt = bodies["vtt"].decode()
    assert vtt.startswith("WEBVTT\n\nNOTE Redacted: Amazon Transcribe replaced personal information with [PII].")
    assert len(webvtt.from_buffer(io.StringIO(vtt)).captions) == len(REVIEWED)
    assert "NOTE" not in render(_review(), ["vtt"])["vtt"].decode()


def test_changed_words_mark_each_asr_word_the_reviewer_substituted_or_dropped() -> None:
    asr = ["Hi,", "my", "wife", "fight", "router", "stopped", "."]
    assert changed_words(asr, "Hi, my Wi-Fi router stopped working.") == [False, False, True, True, False, False, None]
    assert changed_words(["Hello", "there"], "") == [True, True], "an emptied segment changed every word"
    assert changed_words(["Hello"], "hello, HELLO") == [False], "an added word changes no ASR word"
    assert changed_words([], "Added.") == []
