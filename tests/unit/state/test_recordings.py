"""The recordings table: versions recorded once, compare-and-set transitions, failures backed off, transcripts round-
tripped."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.domain.recording import Status
from syncd.domain.transcript import Segment, Transcript, Word
from syncd.state import StateStore
from tests.unit.fakes import new_store
from tests.unit.scenarios import s3_object


@pytest.fixture
def state(tmp_path: Path) -> StateStore:
    return new_store(tmp_path, "s.db")


def test_add_is_idempotent_and_new_etag_supersedes(state: StateStore) -> None:
    [(first, _)] = state.recordings.add_objects([s3_object("calls/a.mp3")])
    assert state.recordings.add_objects([s3_object("calls/a.mp3")]) == []
    [(second, _)] = state.recordings.add_objects([s3_object("calls/a.mp3", etag="e2")])
    assert state.recordings.get(first).status == Status.SUPERSEDED
    assert state.recordings.get(second).status == Status.DISCOVERED
    assert state.recordings.known_versions("b", ["calls/a.mp3", "calls/b.mp3"]) == {"calls/a.mp3": {"e1", "e2"}}
    assert state.recordings.known_versions("other", ["calls/a.mp3"]) == {}
    assert state.recordings.known_versions("b", []) == {}


def test_transition_is_compare_and_set(state: StateStore) -> None:
    [(rec, _)] = state.recordings.add_objects([s3_object("a.mp3")])
    assert state.recordings.move(rec, Status.DISCOVERED, Status.TRANSCRIBING, job_name="j1")
    state.recordings.add_objects([s3_object("a.mp3", etag="e2")])  # replaced while transcribing
    assert not state.recordings.move(rec, Status.TRANSCRIBING, Status.TRANSCRIBED, score=0.5)
    superseded = state.recordings.get(rec)
    assert (superseded.status, superseded.score, superseded.job_name) == (Status.SUPERSEDED, None, "j1")


def test_transition_outside_the_table_is_refused(state: StateStore) -> None:
    [(rec, _)] = state.recordings.add_objects([s3_object("a.mp3")])
    with pytest.raises(ValueError, match="discovered cannot become imported"):
        state.recordings.move(rec, Status.DISCOVERED, Status.IMPORTED)
    with pytest.raises(ValueError, match="transition"):
        state.recordings.update(rec, status=Status.IMPORTED)
    assert state.recordings.get(rec).status == Status.DISCOVERED


def test_transition_moves_only_rows_still_in_the_source_state(state: StateStore) -> None:
    ids = [i for i, _ in state.recordings.add_objects([s3_object("a.mp3"), s3_object("b.mp3"), s3_object("c.mp3")])]
    state.recordings.move(ids[1], Status.DISCOVERED, Status.FAILED, reason="corrupt")
    moved = state.recordings.transition(ids, Status.DISCOVERED, Status.TRANSCRIBING)
    assert moved == [ids[0], ids[2]]
    assert [state.recordings.get(i).status for i in ids] == [Status.TRANSCRIBING, Status.FAILED, Status.TRANSCRIBING]


def test_failures_back_off_then_give_up_and_retry_requeues(state: StateStore) -> None:
    [(rec, _)] = state.recordings.add_objects([s3_object("a.mp3")])
    assert not state.recordings.record_failure(rec, Status.DISCOVERED, "throttled", retryable=True, max_attempts=3)
    assert state.recordings.due(Status.DISCOVERED) == []  # waiting out its back-off
    assert state.recordings.get(rec).attempts == 1
    assert state.recordings.record_failure(rec, Status.DISCOVERED, "throttled", retryable=True, max_attempts=2)
    failed = state.recordings.get(rec)
    assert (failed.status, failed.reason, failed.attempts) == (Status.FAILED, "throttled", 2)
    assert state.recordings.requeue_failed() == 1
    again = state.recordings.get(rec)
    assert (again.status, again.attempts, again.reason) == (Status.DISCOVERED, 0, None)
    assert state.recordings.due(Status.DISCOVERED)[0].id == rec


def test_non_retryable_fails_at_once(state: StateStore) -> None:
    [(rec, _)] = state.recordings.add_objects([s3_object("a.mp3")])
    assert state.recordings.record_failure(rec, Status.DISCOVERED, "corrupt", retryable=False, max_attempts=5)
    assert state.recordings.counts()["failed"] == 1
    assert state.recordings.last_errors()[0].reason == "corrupt"


def test_transcript_round_trips_and_orders_by_score(state: StateStore) -> None:
    ids = [i for i, _ in state.recordings.add_objects([s3_object("a.mp3"), s3_object("b.mp3"), s3_object("c.mp3")])]
    for rec_id, conf in zip(ids, (0.9, 0.4, 0.6), strict=True):
        words = (Word(0.0, 0.5, "hi", conf),)
        transcript = Transcript(segments=(Segment.from_words(list(words)),), engine="whisper", model="tiny.en")
        state.recordings.move(rec_id, Status.DISCOVERED, Status.TRANSCRIBING)
        state.recordings.move(rec_id, Status.TRANSCRIBING, Status.TRANSCRIBED, transcript=transcript, score=conf)
    due = state.recordings.due(Status.TRANSCRIBED, least_confident_first=True)
    assert [r.key for r in due] == ["b.mp3", "c.mp3", "a.mp3"]
    assert [r.key for r in state.recordings.due(Status.TRANSCRIBED)] == ["a.mp3", "b.mp3", "c.mp3"]
    assert due[0].transcript is not None and due[0].transcript.words[0].confidence == 0.4


def test_oldest_since_is_per_waiting_state_when_its_longest_waiting_recording_last_changed(state: StateStore) -> None:
    """The backlog's age in /metrics: states with work to do or awaiting review, nothing for done or failed."""
    ids = [rec_id for rec_id, _ in state.recordings.add_objects([s3_object(f"calls/{n}.mp3") for n in "abcd"])]
    assert state.recordings.transition(ids[2:], Status.DISCOVERED, Status.FAILED, reason="corrupt")
    since = state.recordings.oldest_since()
    assert set(since) == {"discovered"}
    assert since["discovered"] == min(state.recordings.get(i).updated_at for i in ids[:2])
    state.recordings.transition(ids[:1], Status.DISCOVERED, Status.TRANSCRIBING)
    assert set(state.recordings.oldest_since()) == {"discovered", "transcribing"}
    assert state.recordings.oldest_since()["transcribing"] == state.recordings.get(ids[0]).updated_at


def test_a_page_of_keys_learns_which_share_a_stem_in_one_query_as_stem_shared_says_key_by_key(
    state: StateStore,
) -> None:
    keys = ["calls/a.mp3", "calls/a.wav", "calls/a.b.mp3", "calls/b.mp3", "calls/c.mp3", "calls/c/d.mp3", "x/c.mp3"]
    keys += [f"bulk/{i:03d}.mp3" for i in range(150)] + ["bulk/007.wav"]
    state.recordings.add_objects([s3_object(k) for k in keys])
    one_by_one = {k for k in keys if state.recordings.stem_shared("b", k, k.rsplit(".", 1)[0])}
    assert (
        state.recordings.stems_shared("b", keys)
        == one_by_one
        == {"calls/a.mp3", "calls/a.wav", "bulk/007.mp3", "bulk/007.wav"}
    )
    assert state.recordings.stems_shared("other", keys) == set()


def test_a_large_batch_supersedes_exactly_the_older_versions_of_its_keys(state: StateStore) -> None:
    """Multi-row statements of 100: 250 objects, 120 of them new versions of recorded keys, across chunk borders."""
    old = dict(state.recordings.add_objects([s3_object(f"k/{i:03d}.mp3") for i in range(120)]))
    batch = [s3_object(f"k/{i:03d}.mp3", etag="e2") for i in range(120)] + [
        s3_object(f"n/{i:03d}.mp3") for i in range(130)
    ]
    added = state.recordings.add_objects(batch)
    assert [obj for _, obj in added] == batch
    assert {state.recordings.get(rec_id).status for rec_id in old} == {Status.SUPERSEDED}
    assert {state.recordings.get(rec_id).status for rec_id, _ in added} == {Status.DISCOVERED}
    assert state.recordings.add_objects(batch) == []
