"""State store: versions, supersession, compare-and-set transitions, back-off, retry, cursors."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.recording import TRANSITIONS, S3Object, Status, sources_of, syncd_id
from syncd.state import StateStore
from syncd.transcript import Segment, Transcript, Word
from tests.unit.fakes import new_store


def obj(key: str, etag: str = "e1", size: int = 10) -> S3Object:
    return S3Object(bucket="b", key=key, etag=etag, size=size)


@pytest.fixture
def state(tmp_path: Path) -> StateStore:
    return new_store(tmp_path, "s.db")


def test_add_is_idempotent_and_new_etag_supersedes(state: StateStore) -> None:
    [(first, _)] = state.add_objects([obj("calls/a.mp3")])
    assert state.add_objects([obj("calls/a.mp3")]) == []
    [(second, _)] = state.add_objects([obj("calls/a.mp3", etag="e2")])
    assert state.get(first).status == Status.SUPERSEDED
    assert state.get(second).status == Status.DISCOVERED
    assert state.known_versions("b", ["calls/a.mp3", "calls/b.mp3"]) == {"calls/a.mp3": {"e1", "e2"}}
    assert state.known_versions("other", ["calls/a.mp3"]) == {}
    assert state.known_versions("b", []) == {}


def test_syncd_id_is_pinned_and_version_specific() -> None:
    """Task data carries this id: changing the derivation would orphan every existing task."""
    assert syncd_id("b", "calls/a.mp3", "e1") == "e8a761b75f00237f4c253dcb"
    assert syncd_id("b", "calls/a.mp3", "e2") != syncd_id("b", "calls/a.mp3", "e1")
    assert syncd_id("b", "calls/a.mp3x", "e1") != syncd_id("b", "calls/a.mp3", "x\0e1")


def test_transition_is_compare_and_set(state: StateStore) -> None:
    [(rec, _)] = state.add_objects([obj("a.mp3")])
    assert state.move(rec, Status.DISCOVERED, Status.TRANSCRIBING, job_name="j1")
    state.add_objects([obj("a.mp3", etag="e2")])  # replaced while transcribing
    assert not state.move(rec, Status.TRANSCRIBING, Status.TRANSCRIBED, score=0.5)
    superseded = state.get(rec)
    assert (superseded.status, superseded.score, superseded.job_name) == (Status.SUPERSEDED, None, "j1")


def test_transition_outside_the_table_is_refused(state: StateStore) -> None:
    [(rec, _)] = state.add_objects([obj("a.mp3")])
    with pytest.raises(ValueError, match="discovered cannot become imported"):
        state.move(rec, Status.DISCOVERED, Status.IMPORTED)
    with pytest.raises(ValueError, match="transition"):
        state.update(rec, status=Status.IMPORTED)
    assert state.get(rec).status == Status.DISCOVERED


def test_transition_table_covers_every_status() -> None:
    assert set(TRANSITIONS) == set(Status)
    assert Status.SUPERSEDED in sources_of(Status.DISCOVERED)  # a reverted upload starts over
    assert sources_of(Status.SKIPPED) == frozenset()  # only the scan records a skip, on insert


def test_transition_moves_only_rows_still_in_the_source_state(state: StateStore) -> None:
    ids = [i for i, _ in state.add_objects([obj("a.mp3"), obj("b.mp3"), obj("c.mp3")])]
    state.move(ids[1], Status.DISCOVERED, Status.FAILED, reason="corrupt")
    moved = state.transition(ids, Status.DISCOVERED, Status.TRANSCRIBING)
    assert moved == [ids[0], ids[2]]
    assert [state.get(i).status for i in ids] == [Status.TRANSCRIBING, Status.FAILED, Status.TRANSCRIBING]


def test_failures_back_off_then_give_up_and_retry_requeues(state: StateStore) -> None:
    [(rec, _)] = state.add_objects([obj("a.mp3")])
    assert not state.record_failure(rec, Status.DISCOVERED, "throttled", retryable=True, max_attempts=3)
    assert state.due(Status.DISCOVERED) == []  # waiting out its back-off
    assert state.get(rec).attempts == 1
    assert state.record_failure(rec, Status.DISCOVERED, "throttled", retryable=True, max_attempts=2)
    failed = state.get(rec)
    assert (failed.status, failed.reason, failed.attempts) == (Status.FAILED, "throttled", 2)
    assert state.requeue_failed() == 1
    again = state.get(rec)
    assert (again.status, again.attempts, again.reason) == (Status.DISCOVERED, 0, None)
    assert state.due(Status.DISCOVERED)[0].id == rec


def test_non_retryable_fails_at_once(state: StateStore) -> None:
    [(rec, _)] = state.add_objects([obj("a.mp3")])
    assert state.record_failure(rec, Status.DISCOVERED, "corrupt", retryable=False, max_attempts=5)
    assert state.counts()["failed"] == 1
    assert state.last_errors()[0].reason == "corrupt"


def test_transcript_round_trips_and_orders_by_score(state: StateStore) -> None:
    ids = [i for i, _ in state.add_objects([obj("a.mp3"), obj("b.mp3"), obj("c.mp3")])]
    for rec_id, conf in zip(ids, (0.9, 0.4, 0.6), strict=True):
        words = (Word(0.0, 0.5, "hi", conf),)
        transcript = Transcript(segments=(Segment.from_words(list(words)),), engine="whisper", model="tiny.en")
        state.move(rec_id, Status.DISCOVERED, Status.TRANSCRIBING)
        state.move(rec_id, Status.TRANSCRIBING, Status.TRANSCRIBED, transcript=transcript, score=conf)
    due = state.due(Status.TRANSCRIBED, least_confident_first=True)
    assert [r.key for r in due] == ["b.mp3", "c.mp3", "a.mp3"]
    assert [r.key for r in state.due(Status.TRANSCRIBED)] == ["a.mp3", "b.mp3", "c.mp3"]
    assert due[0].transcript is not None and due[0].transcript.words[0].confidence == 0.4


def test_cursor_and_reopen_keeps_state(tmp_path: Path) -> None:
    state = new_store(tmp_path, "s.db")
    state.set_cursor("export:1", "2026-01-02T03:04:05.000000Z")
    [(rec, _)] = state.add_objects([obj("a.mp3")])
    state.close()
    again = new_store(tmp_path, "s.db")
    assert again.cursor("export:1") == "2026-01-02T03:04:05.000000Z"
    assert again.cursor("export:2") is None
    oldest = again.oldest_pending()
    assert oldest is not None and (oldest.id, oldest.status) == (rec, Status.DISCOVERED)
