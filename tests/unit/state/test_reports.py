"""Report rows and the vocabulary: the words each review added, counted over recordings, replaced on re-export."""

from __future__ import annotations

from pathlib import Path

from syncd.domain.recording import S3Object, Status
from syncd.domain.transcript import Segment, Transcript, Word
from syncd.state import keys
from tests.unit.fakes import new_store


def test_added_words_count_per_recording_and_a_re_export_replaces_them(tmp_path: Path) -> None:
    state = new_store(tmp_path)
    state.reports.set_added_words(1, 7, ["Kowalczyk", "Acme"])
    state.reports.set_added_words(2, 7, ["Kowalczyk"])
    assert state.reports.top_added_words(10, 2) == [("Kowalczyk", 2)]
    assert state.reports.top_added_words(10, 1) == [("Kowalczyk", 2), ("Acme", 1)]
    changed = state.cursors.get(keys.ADDED_WORDS_CHANGED.name)
    state.reports.set_added_words(2, 7, [])
    assert state.reports.top_added_words(10, 2) == [] and state.cursors.get(keys.ADDED_WORDS_CHANGED.name) != changed
    before = state.cursors.get(keys.ADDED_WORDS_CHANGED.name)
    state.reports.set_added_words(3, 7, [])
    assert state.cursors.get(keys.ADDED_WORDS_CHANGED.name) == before, "a review that added nothing changes nothing"


def test_the_published_vocabulary_reads_back(tmp_path: Path) -> None:
    state = new_store(tmp_path)
    assert state.reports.vocabulary() == []
    state.reports.set_vocabulary(["Kowalczyk", "Acme"])
    assert state.reports.vocabulary() == ["Kowalczyk", "Acme"]


def test_triage_rows_name_the_model_and_language_of_each_transcript(tmp_path: Path) -> None:
    state = new_store(tmp_path)
    [(rec_id, _), (other, _)] = state.recordings.add_objects(
        [S3Object("b", "a.wav", "e1", 1), S3Object("b", "b.wav", "e2", 1)]
    )
    words = (Word(0.0, 0.5, "hello", 0.9),)
    asr = Transcript(segments=(Segment.from_words(words),), engine="whisper", model="tiny.en", language="en")
    state.recordings.move(rec_id, Status.DISCOVERED, Status.TRANSCRIBING)
    state.recordings.move(rec_id, Status.TRANSCRIBING, Status.TRANSCRIBED, transcript=asr, score=0.9, duration=0.5)
    [row] = state.reports.triage_rows()
    assert (row["id"], row["model"], row["language"], row["status"]) == (rec_id, "tiny.en", "en", "transcribed")
    assert other != rec_id, "a recording without a transcript has no row"
