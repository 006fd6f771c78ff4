"""What `syncd report` and the vocabulary read: per-recording triage rows, and the ``added_words`` table (the words each
review added that the ASR never produced)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from syncd.state import keys
from syncd.state.cursors import Cursors
from syncd.state.db import Database


class Reports:
    """Report rows, added words and the vocabulary made of them (``StateStore.reports``); the vocabulary and the
    count of its changes are cursors (``keys.VOCABULARY``, ``keys.ADDED_WORDS_CHANGED``)."""

    def __init__(self, db: Database, cursors: Cursors) -> None:
        self.db = db
        self.cursors = cursors

    def vocabulary(self) -> list[str]:
        """The vocabulary as last published, most frequent first (empty before the first): what the transcribe
        stage hands its engine."""
        raw = self.cursors.get(keys.VOCABULARY.name)
        return list(json.loads(raw)["words"]) if raw else []

    def set_vocabulary(self, words: list[str]) -> None:
        self.cursors.set(keys.VOCABULARY.name, json.dumps({"words": words}))

    def triage_rows(self) -> list[dict[str, Any]]:
        """One row per transcribed recording with what ``syncd report`` groups and sums (not for the hot path); a
        split recording is one row, with its units' figures summed when it is written."""
        rows = self.db.read(
            "SELECT id, status, review_mode, score, duration, word_errors, reference_words, annotator,"
            " imported_at, submitted_at, exported_at, transcript FROM recordings"
            " WHERE transcript IS NOT NULL AND parent_id IS NULL"
            " AND (status != 'superseded' OR word_errors IS NOT NULL) ORDER BY id"
        )
        return [_triage_row(dict(r)) for r in rows]

    def reviewed_segments(self) -> list[dict[str, Any]]:
        """One row per reviewed recording or review unit (not for the hot path): its reviewed segments (``review``,
        JSON, on the recording's clock), its ASR transcript (JSON, words with confidences, on its own clock),
        ``unit_start`` (where a unit's clock starts in its recording) and ``duration``: what `syncd report` reads
        per segment and per word."""
        rows = self.db.read(
            "SELECT id, key, parent_id, unit_start, duration, review, transcript FROM recordings"
            " WHERE review IS NOT NULL AND transcript IS NOT NULL ORDER BY id"
        )
        return [dict(r) for r in rows]

    def top_added_words(self, limit: int, min_recordings: int) -> list[tuple[str, int]]:
        """(word, recordings it was added in), most recordings first, then alphabetical."""
        rows = self.db.read(
            "SELECT word, count(*) AS n FROM added_words GROUP BY word HAVING count(*) >= ?"
            " ORDER BY n DESC, word LIMIT ?",
            (min_recordings, limit),
        )
        return [(str(r["word"]), int(r["n"])) for r in rows]

    def set_added_words(self, rec_id: int, project_id: int | None, words: Iterable[str]) -> None:
        """The words a recording's current review added (a re-export replaces those of the earlier review). A change
        bumps the ``keys.ADDED_WORDS_CHANGED`` cursor, so the vocabulary is counted again only when it may have
        changed."""
        rows = [(rec_id, project_id, w) for w in sorted(set(words))]
        with self.db.tx() as db:
            deleted = db.execute("DELETE FROM added_words WHERE recording_id = ?", (rec_id,)).rowcount
            db.executemany("INSERT INTO added_words (recording_id, project_id, word) VALUES (?, ?, ?)", rows)
            if deleted or rows:
                self.cursors.bump(keys.ADDED_WORDS_CHANGED.name)


def _triage_row(row: dict[str, Any]) -> dict[str, Any]:
    """The model and language the transcript was made with, read from it (report only, never the hot path)."""
    transcript = json.loads(row.pop("transcript") or "{}")
    return row | {"model": transcript.get("model"), "language": transcript.get("language")}
