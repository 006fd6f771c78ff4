"""State store: versions, supersession, back-off, retry, cursors."""

from __future__ import annotations

import time
from pathlib import Path

from syncd.state import S3Object, StateStore, syncd_id
from syncd.transcript import Segment, Transcript, Word


def obj(key: str, etag: str = "e1", size: int = 10) -> S3Object:
    return S3Object(bucket="b", key=key, etag=etag, size=size)


def test_add_is_idempotent_and_new_etag_supersedes(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "s.db")
    [(first, _)] = state.add_objects([obj("calls/a.mp3")])
    assert state.add_objects([obj("calls/a.mp3")]) == []
    [(second, _)] = state.add_objects([obj("calls/a.mp3", etag="e2")])
    assert state.get(first).status == "superseded"
    assert state.get(second).status == "discovered"
    assert state.known_versions("b", "calls/") == {"calls/a.mp3": {"e1", "e2"}}
    assert state.known_versions("b", "other/") == {}


def test_syncd_id_is_stable_and_version_specific() -> None:
    assert syncd_id("b", "k", "e") == syncd_id("b", "k", "e")
    assert syncd_id("b", "k", "e") != syncd_id("b", "k", "f")


def test_failures_back_off_then_give_up_and_retry_requeues(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "s.db")
    [(rec, _)] = state.add_objects([obj("a.mp3")])
    assert not state.record_failure(rec, "discovered", "throttled", retryable=True, max_attempts=3)
    assert state.due("discovered") == []  # waiting out its back-off
    assert state.record_failure(rec, "discovered", "throttled", retryable=True, max_attempts=2)
    failed = state.get(rec)
    assert (failed.status, failed.reason, failed.attempts) == ("failed", "throttled", 2)
    assert state.requeue_failed() == 1
    again = state.get(rec)
    assert (again.status, again.attempts, again.reason) == ("discovered", 0, None)


def test_non_retryable_fails_at_once(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "s.db")
    [(rec, _)] = state.add_objects([obj("a.mp3")])
    assert state.record_failure(rec, "discovered", "corrupt", retryable=False, max_attempts=5)
    assert state.counts()["failed"] == 1
    assert state.last_errors()[0].reason == "corrupt"


def test_transcript_round_trips_and_orders_by_score(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "s.db")
    ids = [i for i, _ in state.add_objects([obj("a.mp3"), obj("b.mp3")])]
    for rec_id, conf in zip(ids, (0.9, 0.4), strict=True):
        words = (Word(0.0, 0.5, "hi", conf),)
        transcript = Transcript(segments=(Segment.from_words(list(words)),), engine="whisper", model="tiny.en")
        state.update(rec_id, status="transcribed", transcript=transcript, score=transcript.confidence)
    due = state.due("transcribed", order="score, id")
    assert [r.key for r in due] == ["b.mp3", "a.mp3"]
    assert due[0].transcript is not None and due[0].transcript.words[0].confidence == 0.4


def test_cursor_and_reopen_keeps_state(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "s.db")
    state.set_cursor("export:1", "2026-01-02T03:04:05.000000Z")
    state.close()
    again = StateStore(tmp_path / "s.db")
    assert again.cursor("export:1") == "2026-01-02T03:04:05.000000Z"
    assert again.oldest_pending() is None
    assert time.time() > 0
