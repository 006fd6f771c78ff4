"""The one transcript shape: words joined as text reads, confidence over scored words, a round trip as a dict."""

from __future__ import annotations

from syncd.domain.transcript import Segment, Transcript, Word, join_words, mean_confidence


def _words() -> list[Word]:
    return [Word(0.0, 0.4, "Hello", 0.9, "A"), Word(0.4, 0.5, ",", None, "A"), Word(0.5, 1.0, "world", 0.6, "A")]


def test_punctuation_sticks_to_the_word_before_it() -> None:
    assert join_words(["Hello", ",", " world ", "", "!", "(", "again", ")"]) == "Hello, world! ( again)"
    assert join_words(["it", "'", "s"]) == "it' s"  # only a lone mark sticks; a contraction is the engine's to join


def test_confidence_is_the_mean_over_scored_words_only() -> None:
    assert mean_confidence(_words()) == 0.75
    assert mean_confidence([Word(0, 1, ",")]) is None
    assert mean_confidence([Word(0, 1, "a", 1 / 3)]) == 0.3333


def test_a_segment_from_words_spans_them_and_joins_their_text() -> None:
    segment = Segment.from_words(_words(), speaker="A")
    assert (segment.start, segment.end, segment.text, segment.speaker) == (0.0, 1.0, "Hello, world", "A")
    assert segment.confidence == 0.75 and segment.words == tuple(_words())


def test_a_transcript_reads_its_segments_and_survives_a_round_trip_as_a_dict() -> None:
    transcript = Transcript(
        segments=(Segment.from_words(_words(), "B"), Segment(1.0, 2.0, "", "A"), Segment(2.0, 3.0, "bye", "A")),
        engine="whisper",
        model="small",
        language="en",
        duration=3.0,
        extra={"job": 1},
    )
    assert transcript.text == "Hello, world bye"
    assert transcript.speakers == ["A", "B"]
    assert [w.text for w in transcript.words] == ["Hello", ",", "world"]
    assert transcript.confidence == 0.75
    assert Transcript.from_dict(transcript.to_dict()) == transcript
