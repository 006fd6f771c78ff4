import json
from pathlib import Path
from typing import Any

import pytest

from syncd.domain.transcript import Transcript, Word
from syncd.transcribers.aws_output import TranscribeOutputError, parse_transcribe_output

FIXTURES = Path(__file__).parents[2] / "fixtures" / "transcribe"

TWO_SPEAKER_SCORES = [
    0.9991, 0.9876, 0.9992, 0.9995, 0.9999, 0.9998, 0.9997, 0.9984,  # spk_0, first turn
    0.9953, 0.9921, 0.8762, 0.9634, 0.9987, 0.999,  # spk_1
    0.9412, 0.9981, 0.9994, 0.9989,  # spk_0 again
]  # fmt: skip


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


def mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4)


def pron(content: str, start: float, end: float, confidence: str = "0.99", **extra: Any) -> dict[str, Any]:
    return {
        "start_time": str(start),
        "end_time": str(end),
        "alternatives": [{"confidence": confidence, "content": content}],
        "type": "pronunciation",
        **extra,
    }


def punct(content: str, **extra: Any) -> dict[str, Any]:
    return {"alternatives": [{"confidence": "0.0", "content": content}], "type": "punctuation", **extra}


def doc_of(items: list[dict[str, Any]], transcript: str = "") -> dict[str, Any]:
    return {
        "jobName": "job-1",
        "accountId": "123456789012",
        "results": {"transcripts": [{"transcript": transcript}], "items": items},
        "status": "COMPLETED",
    }


def test_older_two_speaker_output_splits_on_sentences_and_speakers() -> None:
    doc = load("two_speakers.json")
    t = parse_transcribe_output(doc)

    assert (t.engine, t.model, t.job, t.language) == ("aws", "amazon-transcribe", "syncd-2b7f0c1e9a4d4e55", None)
    assert [(s.speaker, s.start, s.end, s.text) for s in t.segments] == [
        ("spk_0", 0.04, 1.02, "Hello, world."),
        ("spk_0", 1.31, 2.61, "How can I help you today?"),
        ("spk_1", 3.42, 5.8, "Hi, my *** router stopped working."),
        ("spk_0", 6.44, 7.52, "Okay, let me check."),
    ]
    assert t.text == doc["results"]["transcripts"][0]["transcript"]
    assert t.speakers == ["spk_0", "spk_1"]
    assert t.duration == 7.52


def test_words_carry_times_confidence_speaker_and_attached_punctuation() -> None:
    t = parse_transcribe_output(load("two_speakers.json"))

    assert t.words[:3] == [
        Word(start=0.04, end=0.52, text="Hello,", confidence=0.9991, speaker="spk_0"),
        Word(start=0.55, end=1.02, text="world.", confidence=0.9876, speaker="spk_0"),
        Word(start=1.31, end=1.48, text="How", confidence=0.9992, speaker="spk_0"),
    ]
    assert t.words[10] == Word(start=3.9, end=4.36, text="***", confidence=0.8762, speaker="spk_1")
    assert len(t.words) == len(TWO_SPEAKER_SCORES)  # punctuation items are not words
    assert [w.confidence for w in t.words] == TWO_SPEAKER_SCORES


def test_confidence_is_mean_of_pronunciations_only() -> None:
    t = parse_transcribe_output(load("two_speakers.json"))

    assert t.confidence == mean(TWO_SPEAKER_SCORES) == 0.9859
    assert [s.confidence for s in t.segments] == [
        mean(TWO_SPEAKER_SCORES[:2]),
        mean(TWO_SPEAKER_SCORES[2:8]),
        mean(TWO_SPEAKER_SCORES[8:14]),
        mean(TWO_SPEAKER_SCORES[14:]),
    ]
    assert t.extra["vocabulary_filtered_words"] == 1


def test_newer_output_uses_audio_segments() -> None:
    doc = load("two_speakers_new.json")
    t = parse_transcribe_output(doc)

    expected = [(a["speaker_label"], float(a["start_time"]), float(a["end_time"]), a["transcript"])
                for a in doc["results"]["audio_segments"]]  # fmt: skip
    assert [(s.speaker, s.start, s.end, s.text) for s in t.segments] == expected
    assert t.segments[0].text == "Hello, world. How can I help you today?"
    assert t.segments[0].confidence == mean(TWO_SPEAKER_SCORES[:8])
    assert t.words == parse_transcribe_output(load("two_speakers.json")).words
    assert t.confidence == 0.9859


def test_single_speaker_without_labels() -> None:
    t = parse_transcribe_output(load("single_speaker.json"))

    assert [(s.speaker, s.start, s.end, s.text) for s in t.segments] == [
        (None, 0.31, 1.88, "The quarterly report is ready."),
        (None, 2.45, 5.07, "Revenue grew by twelve percent in the third quarter."),
        (None, 5.83, 8.36, "Please review the attached figures before Friday."),
    ]
    assert t.speakers == []
    low = min(t.words, key=lambda w: w.confidence or 1.0)
    assert (low.text, low.start, low.end, low.confidence) == ("attached", 6.61, 7.05, 0.4127)
    assert t.segments[2].confidence == mean([0.9965, 0.9982, 0.9994, 0.4127, 0.9931, 0.9988, 0.9979])
    assert (t.segments[2].confidence or 1.0) < (t.segments[0].confidence or 0.0)
    assert t.duration == 8.36


def test_spanish_keeps_accents_and_inverted_question_mark() -> None:
    doc = load("spanish.json")
    t = parse_transcribe_output(doc)

    assert t.language == "es-ES"
    assert t.text == doc["results"]["transcripts"][0]["transcript"]
    assert t.text == "Hola, buenos días. ¿Dónde está la estación? Este año viajamos a Málaga."
    assert [s.text for s in t.segments] == [
        "Hola, buenos días.",
        "¿Dónde está la estación?",
        "Este año viajamos a Málaga.",
    ]
    assert t.segments[1].words[0] == Word(start=1.9, end=2.21, text="¿Dónde", confidence=0.9773)
    assert t.extra["language_identification"][0] == {"code": "es-ES", "score": 0.9914}
    assert t.extra["language_codes"] == [{"language_code": "es-ES", "duration": 5.43}]
    assert Transcript.from_dict(json.loads(json.dumps(t.to_dict(), ensure_ascii=False))) == t


def test_language_falls_back_to_identification_then_codes() -> None:
    doc = load("spanish.json")
    del doc["results"]["language_code"]
    doc["results"]["language_identification"].reverse()
    assert parse_transcribe_output(doc).language == "es-ES"

    del doc["results"]["language_identification"]
    doc["results"]["language_codes"] = [
        {"language_code": "en-US", "duration_in_seconds": "1.2"},
        {"language_code": "es-ES", "duration_in_seconds": "4.2"},
    ]
    assert parse_transcribe_output(doc).language == "es-ES"


def test_channel_identification_labels_speakers_by_channel() -> None:
    t = parse_transcribe_output(load("channels.json"))

    assert [(s.speaker, s.start, s.end, s.text) for s in t.segments] == [
        ("ch_0", 4.86, 6.87, "I've been on hold for an hour."),
        ("ch_1", 8.5, 9.25, "Sorry about that."),
        ("ch_0", 10.2, 11.4, "Can you help me?"),
        ("ch_1", 11.35, 12.3, "Yes, of course."),  # overlaps ch_0: each channel is segmented alone
    ]
    assert t.speakers == ["ch_0", "ch_1"]
    assert t.duration == 12.3


def test_items_channel_label_used_without_channel_labels_section() -> None:
    doc = load("channels.json")
    del doc["results"]["channel_labels"]
    t = parse_transcribe_output(doc)

    assert [s.speaker for s in t.segments] == ["ch_0", "ch_1", "ch_0", "ch_1"]
    assert t.segments[2].text == "Can you help me?"


def test_call_analytics_output_is_rejected() -> None:
    with pytest.raises(TranscribeOutputError, match="Call Analytics output") as info:
        parse_transcribe_output(load("call_analytics.json"))
    assert isinstance(info.value, ValueError)
    assert "not supported" in str(info.value)


def test_empty_transcript_has_no_segments() -> None:
    t = parse_transcribe_output(doc_of([]), job="syncd-abc", model="custom")

    assert t.segments == ()
    assert (t.text, t.confidence, t.duration, t.job, t.model) == ("", None, None, "syncd-abc", "custom")


def test_empty_transcript_without_items_is_not_an_error() -> None:
    doc = doc_of([])
    del doc["results"]["items"]
    assert parse_transcribe_output(doc).segments == ()


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"jobName": "x", "status": "COMPLETED"}, "missing the 'results' object"),
        ({"jobName": "x", "results": {"transcripts": [{"transcript": "Hi."}]}}, "no 'results.items'"),
        (doc_of([{"type": "pronunciation", "alternatives": [{"content": "Hi"}]}]), "no start_time/end_time"),
        (doc_of([{"type": "pronunciation", "start_time": "0.1", "end_time": "0.2"}]), "item 0"),
        ({"jobName": "x", "status": "FAILED", "results": {}}, "status 'FAILED'"),
        ([], "must be a JSON object"),
    ],
)
def test_malformed_documents_name_what_is_wrong(doc: Any, message: str) -> None:
    with pytest.raises(TranscribeOutputError, match=message):
        parse_transcribe_output(doc)


def test_hello_world_punctuation_stays_attached() -> None:
    items = [pron("Hello", 0.0, 0.4), punct(","), pron("world", 0.45, 0.9), punct(".")]
    t = parse_transcribe_output(doc_of(items, "Hello, world."))

    assert t.text == "Hello, world."
    assert [w.text for w in t.words] == ["Hello,", "world."]
    assert t.confidence == 0.99


def test_long_pause_starts_a_new_segment() -> None:
    items = [pron("so", 0.0, 0.3), pron("anyway", 0.3, 0.8), pron("right", 2.31, 2.6), pron("then", 2.6, 2.9)]
    t = parse_transcribe_output(doc_of(items))

    assert [(s.start, s.end, s.text) for s in t.segments] == [(0.0, 0.8, "so anyway"), (2.31, 2.9, "right then")]


def test_pause_of_exactly_the_limit_does_not_split() -> None:
    items = [pron("so", 0.0, 0.5), pron("anyway", 2.0, 2.4)]
    assert len(parse_transcribe_output(doc_of(items)).segments) == 1


def test_unpunctuated_monologue_is_cut_near_thirty_seconds() -> None:
    items = [pron(f"w{n}", n * 0.5, n * 0.5 + 0.4) for n in range(130)]  # 65 s, no punctuation, no pause
    t = parse_transcribe_output(doc_of(items))

    assert [(s.start, s.end) for s in t.segments] == [(0.0, 29.9), (30.0, 59.9), (60.0, 64.9)]
    assert all(s.end - s.start <= 30.0 for s in t.segments)
    assert len(t.words) == 130


def test_speaker_change_without_punctuation_splits() -> None:
    items = [
        pron("yes", 0.0, 0.3, speaker_label="spk_0"),
        pron("no", 0.35, 0.6, speaker_label="spk_1"),
        pron("maybe", 0.65, 1.0, speaker_label="spk_1"),
    ]
    t = parse_transcribe_output(doc_of(items))

    assert [(s.speaker, s.text) for s in t.segments] == [("spk_0", "yes"), ("spk_1", "no maybe")]


def test_numeric_values_are_accepted_as_numbers_too() -> None:
    item = pron("Hi", 0.0, 0.25)
    item.update(start_time=0.1, end_time=0.25)
    item["alternatives"][0]["confidence"] = 0.875
    t = parse_transcribe_output(doc_of([item]))

    assert t.words == [Word(start=0.1, end=0.25, text="Hi", confidence=0.875)]


def test_redacted_output_keeps_pii_markers_out_of_the_confidence_and_counts_them() -> None:
    doc = json.loads((FIXTURES / "redacted.json").read_text())
    transcript = parse_transcribe_output(doc)
    assert transcript.text.count("[PII]") == 4 and "my name is [PII]." in transcript.text
    redacted = [w for s in transcript.segments for w in s.words if w.text.startswith("[PII]")]
    assert len(redacted) == 4 and all(w.confidence is None for w in redacted)
    items = doc["results"]["items"]
    spoken = [i for i in items if i["type"] == "pronunciation" and "redactions" not in i["alternatives"][0]]
    heard = [float(i["alternatives"][0]["confidence"]) for i in spoken]
    assert transcript.confidence == pytest.approx(sum(heard) / len(heard), abs=1e-4)
    assert transcript.extra["redaction"] == {
        "type": "PII",
        "redacted_words": 4,
        "entities": {"NAME": 1, "CREDIT_DEBIT_NUMBER": 1, "CREDIT_DEBIT_EXPIRY": 1, "PHONE": 1},
    }
    assert "redaction" not in parse_transcribe_output(json.loads((FIXTURES / "single_speaker.json").read_text())).extra
