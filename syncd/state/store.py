"""The state store: the only thing the pipeline stages share (SQLite by default, PostgreSQL for many instances).

It is a cache of the truth held by S3 and Label Studio; every row can be rebuilt from them (``syncd_id`` is derived from
bucket, key and ETag, and travels in each task's data). Status changes are compare-and-set: a stage names the status it
expects to move a recording from, and a recording that moved meanwhile (superseded, failed) is left alone.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, CursorResult, RowMapping, TextClause, text

from syncd.recording import PENDING, TRANSITIONS, Recording, S3Object, Status, syncd_id
from syncd.state import migrate
from syncd.state.engine import is_shared, make_engine, skip_locked, url_for
from syncd.state.leases import Leases
from syncd.transcript import Transcript

if TYPE_CHECKING:
    from syncd.config import StateSettings


ADDED_WORDS_CHANGED = "added-words-changed"
"""A cursor counting changes to the reviewers' added words."""

_COLUMNS = ", ".join(Recording.__dataclass_fields__).replace("transcript_json", "transcript AS transcript_json")


class StateStore:
    """Thread-safe access to the state database; each method is one short transaction.

    Within one process every call takes one lock, so a transaction is never interleaved with another thread's; many
    processes share a PostgreSQL state through row leases (``claim``) and named leases (``syncd.state.leases``).
    """

    def __init__(self, target: str | Path = ":memory:") -> None:
        """``target``: a SQLite file path (its folder is created) or a ``postgresql://`` URL with its password."""
        target = str(target)
        if "://" not in target and target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        self.url = url_for(target)
        self.engine = make_engine(self.url)
        self.shared = is_shared(self.engine)
        self._skip_locked = skip_locked(self.engine)
        self._lock = threading.RLock()
        self._open: Connection | None = None
        migrate.upgrade(self.engine)

    @classmethod
    def open(cls, settings: StateSettings) -> StateStore:
        """The store the configuration names: ``[state] url`` with its password, else the SQLite ``path``."""
        return cls(settings.target())

    @property
    def leases(self) -> Leases:
        """Named leases, the instances' register and the renewal of their claims."""
        return Leases(self)

    @property
    def where(self) -> str:
        """The database, for people: its URL without the password, or the SQLite file."""
        return self.url.render_as_string(hide_password=True) if self.shared else str(self.url.database or ":memory:")

    def close(self) -> None:
        with self._lock:
            self.engine.dispose()

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[RowMapping]:
        """Reads share the store with the stages' threads, so they take the lock and fetch everything inside it."""
        with self._lock:
            if self._open is not None:
                return list(_execute(self._open, sql, args).mappings())
            with self.engine.connect() as conn:
                rows = _execute(conn, sql, args).mappings().all()
                conn.rollback()
            return list(rows)

    def _read_one(self, sql: str, args: Iterable[Any] = ()) -> RowMapping | None:
        rows = self._read(sql, args)
        return rows[0] if rows else None

    def _scalar(self, sql: str, args: Iterable[Any] = ()) -> Any:
        row = self._read_one(sql, args)
        return None if row is None else next(iter(row.values()))

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group several writes into one transaction (one commit instead of many)."""
        with self._tx():
            yield

    @contextmanager
    def _tx(self) -> Iterator[_Tx]:
        with self._lock:
            if self._open is not None:
                yield _Tx(self._open)
                return
            with self.engine.connect() as conn:
                conn.execution_options(write=True)
                with conn.begin():
                    self._open = conn
                    try:
                        yield _Tx(conn)
                    finally:
                        self._open = None

    # --- scan ---------------------------------------------------------------------------------------------

    def known_versions(self, bucket: str, keys: list[str]) -> dict[str, set[str]]:
        """key -> ETags already recorded for these keys (one listing page), in one indexed query: an idle scan costs
        no per-object I/O, and memory grows with a page, not with the bucket."""
        known: dict[str, set[str]] = {}
        if not keys:
            return known
        rows = self._read(
            f"SELECT key, etag FROM recordings WHERE bucket = ? AND key IN ({','.join('?' * len(keys))})",
            (bucket, *keys),
        )
        for row in rows:
            known.setdefault(row["key"], set()).add(row["etag"])
        return known

    def add_objects(
        self, objects: Iterable[S3Object], status: Status = Status.DISCOVERED, reason: str | None = None
    ) -> list[tuple[int, S3Object]]:
        """Record new object versions; an older version of the same key becomes ``superseded``. Returns the ones
        recorded now (not before), in the order given. One statement per kind for the whole batch (a first scan
        records a listing page at a time)."""
        now = time.time()
        fresh = {syncd_id(o.bucket, o.key, o.etag): o for o in objects}
        rows = [
            (sid, o.bucket, o.key, o.etag, o.size, o.last_modified, status, reason, now, now)
            for sid, o in fresh.items()
        ]
        added: list[tuple[int, S3Object]] = []
        with self._tx() as db:
            db.executemany(
                "INSERT INTO recordings (syncd_id, bucket, key, etag, size, last_modified, status, reason, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                rows,
            )
            ids: dict[str, int] = {}
            sids = list(fresh)
            for start in range(0, len(sids), 500):
                chunk = sids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT id, syncd_id FROM recordings WHERE created_at = ? AND syncd_id IN ({marks})"
                ids.update((str(r["syncd_id"]), int(r["id"])) for r in db.execute(sql, (now, *chunk)).mappings())
            added = [(ids[sid], obj) for sid, obj in fresh.items() if sid in ids]
            db.executemany(
                "UPDATE recordings SET status = 'superseded', reason = 'replaced by a newer version', updated_at = ?"
                " WHERE bucket = ? AND key = ? AND id != ? AND status != 'superseded'",
                [(now, obj.bucket, obj.key, rowid) for rowid, obj in added],
            )
        return added

    # --- reads --------------------------------------------------------------------------------------------

    def get(self, rec_id: int) -> Recording:
        row = self._read_one(f"SELECT {_COLUMNS} FROM recordings WHERE id = ?", (rec_id,))
        if row is None:
            raise KeyError(rec_id)
        return _recording(row)

    def by_syncd_id(self, sid: str) -> Recording | None:
        row = self._read_one(f"SELECT {_COLUMNS} FROM recordings WHERE syncd_id = ?", (sid,))
        return _recording(row) if row else None

    def recordings(self, bucket: str | None = None) -> list[Recording]:
        """Every recording (of one bucket), in discovery order: for operators and tests, not for the hot path."""
        where, args = ("WHERE bucket = ?", (bucket,)) if bucket else ("", ())
        rows = self._read(f"SELECT {_COLUMNS} FROM recordings {where} ORDER BY id", args)
        return [_recording(r) for r in rows]

    def due(
        self,
        status: Status,
        limit: int = 1000,
        *,
        least_confident_first: bool = False,
        whole_up_to: float | None = None,
    ) -> list[Recording]:
        """Recordings waiting in ``status`` whose back-off has run out: oldest first, or lowest score first.
        ``whole_up_to`` leaves out whole recordings longer than that many seconds (they are reviewed as units),
        except one that could not be cut (``unit_start`` 0 on a recording with no parent)."""
        order = "score, id" if least_confident_first else "id"
        where, args = "status = ? AND next_attempt_at <= ?", [status, time.time()]
        if whole_up_to is not None:
            where += " AND (parent_id IS NOT NULL OR unit_start IS NOT NULL OR duration IS NULL OR duration <= ?)"
            args.append(whole_up_to)
        rows = self._read(f"SELECT {_COLUMNS} FROM recordings WHERE {where} ORDER BY {order} LIMIT ?", (*args, limit))
        return [_recording(r) for r in rows]

    def claim(self, status: Status, limit: int, holder: str, seconds: float) -> list[Recording]:
        """Up to ``limit`` recordings in ``status`` whose back-off has run out and that no other live instance
        holds, oldest first, leased to ``holder`` for ``seconds`` (``syncd.state.leases`` renews it while the holder
        lives). Two claimers never get the same recording: each skips the rows the other is claiming (PostgreSQL's
        ``SKIP LOCKED``; SQLite admits one writer at a time)."""
        now = time.time()
        with self._tx() as db:
            rows = (
                db.execute(
                    "UPDATE recordings SET claimed_by = ?, lease_until = ? WHERE id IN (SELECT id FROM recordings"
                    " WHERE status = ? AND next_attempt_at <= ? AND (claimed_by IS NULL OR claimed_by = ?"
                    f" OR lease_until IS NULL OR lease_until < ?) ORDER BY id LIMIT ?{self._skip_locked})"
                    f" RETURNING {_COLUMNS}",
                    (holder, now + seconds, status, now, holder, now, limit),
                )
                .mappings()
                .all()
            )
        return sorted((_recording(r) for r in rows), key=lambda rec: rec.id)

    def count_in_hand(self, status: Status, holder: str) -> int:
        """Recordings in ``status`` that ``holder`` works on or would take over (claimed by no live instance): what
        counts against its in-flight limit. A cloud job keeps running while its instance restarts, and counts the
        same for the instance that picks it up."""
        sql = (
            "SELECT count(*) FROM recordings WHERE status = ? AND (claimed_by = ? OR claimed_by IS NULL"
            " OR lease_until IS NULL OR lease_until < ?)"
        )
        return int(self._scalar(sql, (status, holder, time.time())))

    def too_long(self, max_seconds: float, limit: int = 10) -> list[Recording]:
        """Transcribed whole recordings longer than ``max_seconds``, due to be split into review units."""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM recordings WHERE status = ? AND next_attempt_at <= ? AND parent_id IS NULL"
            " AND unit_start IS NULL AND duration > ? ORDER BY id LIMIT ?",
            (Status.TRANSCRIBED, time.time(), max_seconds, limit),
        )
        return [_recording(r) for r in rows]

    def units_of(self, parent_id: int) -> list[tuple[Recording, dict[str, Any]]]:
        """A recording's review units in time order, each with its review (``review``: JSON segments on the
        parent's clock, None until reviewed), ``annotator``, ``submitted_at`` and ``project_id``."""
        extra = ("review", "annotator", "submitted_at", "project_id")
        rows = self._read(
            f"SELECT {_COLUMNS}, {', '.join(extra)} FROM recordings WHERE parent_id = ? ORDER BY unit_start, id",
            (parent_id,),
        )
        return [_with_extra(row, *extra) for row in rows]

    def stitch_due(self, limit: int = 100) -> list[tuple[Recording, float]]:
        """Split recordings whose units' reviews changed since their transcripts were written, with that mark."""
        rows = self._read(
            f"SELECT {_COLUMNS}, units_changed FROM recordings WHERE units_changed IS NOT NULL"
            " AND next_attempt_at <= ? ORDER BY units_changed LIMIT ?",
            (time.time(), limit),
        )
        return [(rec, float(more["units_changed"])) for rec, more in (_with_extra(r, "units_changed") for r in rows)]

    def count(self, status: Status) -> int:
        return int(self._scalar("SELECT count(*) FROM recordings WHERE status = ?", (status,)))

    def counts(self) -> dict[str, int]:
        rows = self._read("SELECT status, count(*) AS n FROM recordings GROUP BY status")
        return {str(s): 0 for s in Status} | {r["status"]: r["n"] for r in rows}

    def oldest_pending(self) -> Recording | None:
        marks = ",".join("?" * len(PENDING))
        row = self._read_one(
            f"SELECT {_COLUMNS} FROM recordings WHERE status IN ({marks}) ORDER BY created_at LIMIT 1",
            PENDING,
        )
        return _recording(row) if row else None

    def last_errors(self, limit: int = 10) -> list[Recording]:
        rows = self._read(
            f"SELECT {_COLUMNS} FROM recordings WHERE reason IS NOT NULL AND status NOT IN ('superseded', 'exported')"
            " ORDER BY updated_at DESC LIMIT ?",
            (limit,),
        )
        return [_recording(r) for r in rows]

    def backlog_seconds(self) -> dict[str, float]:
        """Audio seconds per state, over recordings whose length is known (transcribed or later). A split
        recording counts through its units until it is written, then as itself."""
        rows = self._read(
            "SELECT status, coalesce(sum(duration), 0) AS seconds FROM recordings WHERE status NOT IN"
            " ('superseded', 'split') AND NOT (parent_id IS NOT NULL AND status = 'exported') GROUP BY status"
        )
        return {str(s): 0.0 for s in Status if s != Status.SUPERSEDED} | {r["status"]: r["seconds"] for r in rows}

    def triage_rows(self) -> list[dict[str, Any]]:
        """One row per transcribed recording with what ``syncd report`` groups and sums (not for the hot path); a
        split recording is one row, with its units' figures summed when it is written."""
        rows = self._read(
            "SELECT id, status, review_mode, score, duration, word_errors, reference_words, annotator,"
            " imported_at, submitted_at, exported_at, transcript FROM recordings"
            " WHERE transcript IS NOT NULL AND parent_id IS NULL"
            " AND (status != 'superseded' OR word_errors IS NOT NULL) ORDER BY id"
        )
        return [_triage_row(dict(r)) for r in rows]

    def top_added_words(self, limit: int, min_recordings: int) -> list[tuple[str, int]]:
        """(word, recordings it was added in), most recordings first, then alphabetical."""
        rows = self._read(
            "SELECT word, count(*) AS n FROM added_words GROUP BY word HAVING count(*) >= ?"
            " ORDER BY n DESC, word LIMIT ?",
            (min_recordings, limit),
        )
        return [(str(r["word"]), int(r["n"])) for r in rows]

    # --- writes -------------------------------------------------------------------------------------------

    def add_units(self, parent: Recording, units: list[tuple[S3Object, str, float, Transcript]]) -> bool:
        """Record a recording's review units (clip object, syncd_id, start in the parent, transcript on the clip's
        clock) as transcribed recordings of their own, and the parent as split, in one transaction. A unit recorded
        before (a crash after this, a lost state split again) is kept as it is. False when the parent was no longer
        transcribed (nothing is recorded then)."""
        now = time.time()
        with self._tx() as db:
            if not self.move(parent.id, Status.TRANSCRIBED, Status.SPLIT, reason=None):
                return False
            for obj, sid, start, transcript in units:
                db.execute(
                    "INSERT INTO recordings (syncd_id, bucket, key, etag, size, status, transcript, score,"
                    " duration, review_mode, engine, parent_id, unit_start, ready_at, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (
                        sid,
                        obj.bucket,
                        obj.key,
                        obj.etag,
                        obj.size,
                        Status.TRANSCRIBED,
                        json.dumps(transcript.to_dict()),
                        transcript.confidence,
                        transcript.duration,
                        parent.review_mode,
                        parent.engine,
                        parent.id,
                        start,
                        now,
                        now,
                        now,
                    ),
                )
        return True

    def store_unit_review(self, unit: Recording, source: Status, review: str, **fields: Any) -> bool:
        """A unit's review (JSON segments on its parent's clock) and its export fields, and the parent marked for
        stitching, in one transaction: a crash leaves both or neither."""
        with self._tx() as db:
            if not self.move(unit.id, source, Status.EXPORTED, review=review, **fields):
                return False
            db.execute("UPDATE recordings SET units_changed = ? WHERE id = ?", (time.time(), unit.parent_id))
        return True

    def stitched(self, parent_id: int, mark: float) -> None:
        """The units' reviews up to ``mark`` are written; a review stored meanwhile keeps the parent marked."""
        with self._tx() as db:
            db.execute(
                "UPDATE recordings SET units_changed = NULL WHERE id = ? AND units_changed = ?", (parent_id, mark)
            )

    def set_added_words(self, rec_id: int, project_id: int | None, words: Iterable[str]) -> None:
        """The words a recording's current review added (a re-export replaces those of the earlier review). A change
        bumps the ``ADDED_WORDS_CHANGED`` cursor, so the vocabulary is counted again only when it may have changed."""
        rows = [(rec_id, project_id, w) for w in sorted(set(words))]
        with self._tx() as db:
            deleted = db.execute("DELETE FROM added_words WHERE recording_id = ?", (rec_id,)).rowcount
            db.executemany("INSERT INTO added_words (recording_id, project_id, word) VALUES (?, ?, ?)", rows)
            if deleted or rows:
                db.execute(
                    "INSERT INTO cursors (name, value) VALUES (?, '1') ON CONFLICT (name)"
                    " DO UPDATE SET value = CAST(CAST(cursors.value AS INTEGER) + 1 AS TEXT)",
                    (ADDED_WORDS_CHANGED,),
                )

    def update(self, rec_id: int, **fields: Any) -> None:
        """Set columns other than the status on one recording; ``transcript`` may be given as a Transcript."""
        if "status" in fields:
            raise ValueError("status changes go through transition()")
        with self._tx() as db:
            db.execute(*_update_sql(fields, "id = ?", rec_id))

    def transition(self, rec_ids: Iterable[int], source: Status, target: Status, **fields: Any) -> list[int]:
        """Move recordings from ``source`` to ``target`` (and set ``fields``) in one transaction, compare-and-set:
        a recording no longer in ``source`` (superseded, failed, moved by another stage) is left as it is.
        Returns the ids that moved."""
        if target not in TRANSITIONS[source]:
            raise ValueError(f"status {source} cannot become {target}")
        if target == Status.TRANSCRIBED and source != Status.IMPORTING:
            fields = {"ready_at": time.time()} | fields
        moved: list[int] = []
        with self._tx() as db:
            for rec_id in rec_ids:
                sql, args = _update_sql(fields | {"status": target}, "id = ? AND status = ?", rec_id, source)
                if db.execute(sql, args).rowcount:
                    moved.append(rec_id)
        return moved

    def move(self, rec_id: int, source: Status, target: Status, **fields: Any) -> bool:
        """One recording's transition; False when it was no longer in ``source``."""
        return bool(self.transition([rec_id], source, target, **fields))

    def record_failure(
        self, rec_id: int, stage: Status, reason: str, *, retryable: bool, max_attempts: int, counted: bool = False
    ) -> bool:
        """Count a failed attempt (``counted``: ``begin_attempt`` already did). Retryable ones wait with exponential
        back-off; returns True once given up. Outages never come here: they do not spend the attempt budget."""
        rec = self.get(rec_id)
        attempts = rec.attempts if counted else rec.attempts + 1
        if retryable and attempts < max_attempts:
            delay = min(30.0 * 2 ** (attempts - 1), 3600.0)
            self.update(rec_id, attempts=attempts, reason=reason, next_attempt_at=time.time() + delay)
            return False
        self.move(rec_id, rec.status, Status.FAILED, failed_stage=stage, attempts=attempts, reason=reason)
        return True

    def begin_attempt(self, rec_id: int, status: Status) -> int:
        """Count an attempt as its work starts, before it can take the process down with it: an attempt that kills
        the daemon (OOM, watchdog, a crash in a native library) is counted all the same. Returns the count so far,
        this attempt included (0 when the recording is no longer in ``status``)."""
        with self._tx() as db:
            db.execute(
                "UPDATE recordings SET attempts = attempts + 1, updated_at = ? WHERE id = ? AND status = ?",
                (time.time(), rec_id, status),
            )
            row = db.execute("SELECT attempts, status FROM recordings WHERE id = ?", (rec_id,)).mappings().first()
        return int(row["attempts"]) if row is not None and row["status"] == status else 0

    def refund_attempt(self, rec_id: int) -> None:
        """Give back an attempt counted by ``begin_attempt`` that an outage cut short (not the recording's fault)."""
        with self._tx() as db:
            db.execute("UPDATE recordings SET attempts = attempts - 1 WHERE id = ? AND attempts > 0", (rec_id,))

    def requeue_failed(self, rec_ids: Iterable[int] | None = None) -> int:
        """Put failed recordings back where they failed, with a fresh attempt budget (``syncd retry``)."""
        query = (
            "UPDATE recordings SET status = coalesce(failed_stage, 'discovered'), failed_stage = NULL,"
            " attempts = 0, next_attempt_at = 0, reason = NULL, updated_at = ? WHERE status = 'failed'"
        )
        params: list[Any] = [time.time()]
        ids = list(rec_ids or [])
        if ids:
            query += f" AND id IN ({','.join('?' * len(ids))})"
            params += ids
        with self._tx() as db:
            return db.execute(query, params).rowcount

    def recording_for_task(self, task_id: int) -> Recording | None:
        row = self._read_one(f"SELECT {_COLUMNS} FROM recordings WHERE task_id = ?", (task_id,))
        return _recording(row) if row else None

    # --- cursors ------------------------------------------------------------------------------------------

    def cursor(self, name: str) -> str | None:
        row = self._read_one("SELECT value FROM cursors WHERE name = ?", (name,))
        return str(row["value"]) if row else None

    def cursors(self, prefix: str) -> dict[str, str]:
        """Every cursor whose name starts with ``prefix`` (the dependency records use ``dependency:``)."""
        rows = self._read("SELECT name, value FROM cursors WHERE substr(name, 1, ?) = ?", (len(prefix), prefix))
        return {str(r["name"]): str(r["value"]) for r in rows}

    def set_cursor(self, name: str, value: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO cursors (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    # --- export queue: tasks read again whatever the cursor says (failed, parked, audio restored) ----------------

    def queue_export(
        self,
        project_id: int,
        task_id: int,
        rec_id: int | None,
        reason: str,
        *,
        attempt: bool = False,
        park_after: int = 0,
        task_updated_at: str | None = None,
    ) -> bool:
        """Ask the exporter to read ``task_id`` again next cycle, with why. ``attempt`` counts a failed attempt; at
        ``park_after`` attempts the task is parked (left alone until `syncd retry` or until it changes again in
        Label Studio: ``task_updated_at`` is the version that failed). Returns True once parked."""
        counted = int(attempt)
        with self._tx() as db:
            db.execute(
                "INSERT INTO export_queue (task_id, project_id, recording_id, reason, task_updated_at, attempts,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (task_id) DO UPDATE SET"
                " reason = excluded.reason, recording_id = excluded.recording_id,"
                " task_updated_at = excluded.task_updated_at, attempts = export_queue.attempts + excluded.attempts,"
                " updated_at = excluded.updated_at",
                (task_id, project_id, rec_id, reason, task_updated_at, counted, time.time()),
            )
            if park_after:
                db.execute(
                    "UPDATE export_queue SET parked = 1 WHERE task_id = ? AND attempts >= ?", (task_id, park_after)
                )
            parked = db.execute("SELECT parked FROM export_queue WHERE task_id = ?", (task_id,)).scalar_one()
        return bool(parked)

    def export_queue(self, project_id: int) -> list[int]:
        """Task ids the exporter reads again this cycle (queued, not parked)."""
        rows = self._read(
            "SELECT task_id FROM export_queue WHERE project_id = ? AND parked = 0 ORDER BY task_id", (project_id,)
        )
        return [int(r["task_id"]) for r in rows]

    def parked_tasks(self, project_id: int) -> dict[int, str | None]:
        """task id -> the task version (updated_at) that was parked: an unchanged parked task is not read again."""
        rows = self._read(
            "SELECT task_id, task_updated_at FROM export_queue WHERE project_id = ? AND parked = 1", (project_id,)
        )
        return {int(r["task_id"]): r["task_updated_at"] for r in rows}

    def unqueue_exports(self, task_ids: Iterable[int]) -> None:
        """Exported (or nothing to export): these tasks leave the queue, parked or not."""
        ids = list(task_ids)
        with self._tx() as db:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                db.execute(f"DELETE FROM export_queue WHERE task_id IN ({','.join('?' * len(chunk))})", chunk)

    def parked_exports(self, limit: int = 100) -> list[dict[str, Any]]:
        """Parked tasks with their reason and recording (for `syncd status`)."""
        rows = self._read(
            "SELECT q.task_id, q.project_id, q.reason, q.attempts, q.updated_at, r.id AS recording, r.bucket, r.key"
            " FROM export_queue q LEFT JOIN recordings r ON r.id = q.recording_id WHERE q.parked = 1"
            " ORDER BY q.updated_at DESC LIMIT ?",
            (limit,),
        )
        return [dict(r) for r in rows]

    def parked_counts(self) -> dict[str, int]:
        """Items parked by stage: what /healthz ("degraded") and /metrics report."""
        return {"export": int(self._scalar("SELECT count(*) FROM export_queue WHERE parked = 1"))}

    def requeue_parked(self) -> int:
        """`syncd retry`: parked tasks are read again, with a fresh attempt budget."""
        with self._tx() as db:
            return db.execute("UPDATE export_queue SET parked = 0, attempts = 0 WHERE parked = 1").rowcount

    # --- versions: a key whose audio came back, outputs that need the audio suffix ----------------------------

    def superseded_versions(self, bucket: str, keys: list[str]) -> set[tuple[str, str]]:
        """(key, ETag) of superseded or deleted versions of these keys (one listing page): a listing that shows one
        again was reverted or put back."""
        if not keys:
            return set()
        rows = self._read(
            f"SELECT key, etag FROM recordings WHERE status IN ('superseded', 'deleted') AND bucket = ?"
            f" AND key IN ({','.join('?' * len(keys))})",
            (bucket, *keys),
        )
        return {(r["key"], r["etag"]) for r in rows}

    def delete_current(self, bucket: str, key: str, reason: str) -> list[Recording]:
        """The object is gone from S3: its current version (none, or one) becomes ``deleted``; returns it as it was."""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM recordings WHERE bucket = ? AND key = ? AND parent_id IS NULL"
            " AND status NOT IN ('superseded', 'deleted')",
            (bucket, key),
        )
        gone = [_recording(r) for r in rows]
        return [rec for rec in gone if self.move(rec.id, rec.status, Status.DELETED, reason=reason)]

    def current_keys(self, bucket: str, prefix: str, after: str, upto: str | None) -> list[str]:
        """Keys under ``prefix`` with a current version, in (``after``, ``upto``] (to the end when ``upto`` is None),
        in S3's listing order: what a full listing must show in that range, or they were deleted."""
        where = "bucket = ? AND key > ? AND substr(key, 1, ?) = ? AND parent_id IS NULL"
        args: list[Any] = [bucket, after, len(prefix), prefix]
        if upto is not None:
            where += " AND key <= ?"
            args.append(upto)
        rows = self._read(
            f"SELECT DISTINCT key FROM recordings WHERE {where} AND status NOT IN ('superseded', 'deleted')"
            " ORDER BY key",
            args,
        )
        return [str(r["key"]) for r in rows]

    def restore_version(self, bucket: str, key: str, etag: str) -> tuple[Recording, Status] | None:
        """Make a superseded or deleted version current again (an upload reverted X -> Y -> X, or put back): the
        others are superseded, and X resumes where its own work stands (its task, its transcript, or from the start),
        so it never gets a second task. Its review must then be written again (the outputs may hold Y's): the caller
        queues its export. Returns X as it is now and the status it was in."""
        with self._tx() as db:
            row = (
                db.execute(
                    f"SELECT {_COLUMNS} FROM recordings WHERE bucket = ? AND key = ? AND etag = ? AND status IN (?, ?)",
                    (bucket, key, etag, Status.SUPERSEDED, Status.DELETED),
                )
                .mappings()
                .first()
            )
            if row is None:
                return None
            rec = _recording(row)
            db.execute(
                "UPDATE recordings SET status = 'superseded', reason = 'replaced by a newer version', updated_at = ?"
                " WHERE bucket = ? AND key = ? AND id != ? AND status != 'superseded'",
                (time.time(), bucket, key, rec.id),
            )
            split = db.execute("SELECT 1 FROM recordings WHERE parent_id = ? LIMIT 1", (rec.id,)).first()
            target = (
                Status.SPLIT
                if split
                else Status.IMPORTED
                if rec.task_id
                else Status.DISCOVERED
                if not rec.transcript_json
                else Status.ACCEPTED
                if rec.review_mode == "auto"
                else Status.TRANSCRIBED
            )
            fields: dict[str, Any] = {"reason": "audio restored: the object holds this version again"}
            fields |= {"annotation_id": None}
            fields |= {"annotation_updated_at": None, "attempts": 0, "next_attempt_at": 0}
            if split:
                fields["units_changed"] = time.time()
            if self.transition([rec.id], rec.status, target, **fields):
                return self.get(rec.id), rec.status
        return None

    def stem_shared(self, bucket: str, key: str, stem: str) -> bool:
        """Another recorded key in the same folder shares ``stem`` (``calls/a.wav`` beside ``calls/a.mp3``)."""
        rows = self._read(
            "SELECT key FROM recordings WHERE bucket = ? AND key >= ? AND key < ? AND key != ?",
            (bucket, f"{stem}.", f"{stem}/", key),
        )
        return any("." not in r["key"][len(stem) + 1 :] and "/" not in r["key"][len(stem) + 1 :] for r in rows)

    def change_cursor(self, name: str, change: Callable[[str | None], str | None]) -> str | None:
        """Read-modify-write one cursor in one transaction (two stages may move it at once); ``change`` returning
        None deletes it. Returns the new value."""
        with self._tx() as db:
            old = db.execute("SELECT value FROM cursors WHERE name = ?", (name,)).scalar()
            value = change(None if old is None else str(old))
            if value is None:
                db.execute("DELETE FROM cursors WHERE name = ?", (name,))
            else:
                db.execute(
                    "INSERT INTO cursors (name, value) VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    (name, value),
                )
        return value

    # --- projects syncd writes to and reads from (oldest first; the last one takes new tasks) -------------------

    def projects(self) -> list[dict[str, Any]]:
        rows = self._read("SELECT id, title, seq, created_at FROM projects ORDER BY seq, id")
        return [dict(r) for r in rows]

    def add_project(self, project_id: int, title: str, seq: int) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO projects (id, title, seq, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET title = excluded.title, seq = excluded.seq",
                (project_id, title, seq, time.time()),
            )

    def project_task_counts(self) -> dict[str, int]:
        """Tasks seen per project syncd writes to or reads from (project id -> count, ours and others'): status and
        metrics, with no call to Label Studio."""
        rows = self._read(
            "SELECT p.id, (SELECT count(*) FROM labelstudio_tasks t WHERE t.project_id = p.id) AS n FROM projects p"
        )
        return {str(r["id"]): int(r["n"]) for r in rows}

    def oldest_ready(self) -> float | None:
        """Since when the longest-waiting transcribed recording has waited to be imported (paced imports)."""
        since = self._scalar(
            "SELECT min(coalesce(ready_at, updated_at)) FROM recordings WHERE status = ? AND next_attempt_at <= ?",
            (Status.TRANSCRIBED, time.time()),
        )
        return None if since is None else float(since)

    def count_due(self, status: Status) -> int:
        sql = "SELECT count(*) FROM recordings WHERE status = ? AND next_attempt_at <= ?"
        return int(self._scalar(sql, (status, time.time())))

    # --- Label Studio tasks seen ----------------------------------------------------------------------------

    def note_tasks(self, project_id: int, tasks: dict[int, str | None]) -> list[int]:
        """Remember tasks seen in Label Studio (task id -> the syncd_id in its data, None for others' tasks); returns
        the ids not seen before."""
        added = []
        with self._tx() as db:
            for task_id, sid in tasks.items():
                cur = db.execute(
                    "INSERT INTO labelstudio_tasks (project_id, task_id, syncd_id) VALUES (?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (project_id, task_id, sid),
                )
                if cur.rowcount:
                    added.append(task_id)
        return added

    def forget_tasks(self, project_id: int, task_ids: Iterable[int]) -> None:
        with self._tx() as db:
            db.executemany(
                "DELETE FROM labelstudio_tasks WHERE project_id = ? AND task_id = ?",
                [(project_id, task_id) for task_id in task_ids],
            )

    def seen_task_count(self, project_id: int) -> int:
        """How many tasks, ours or not, the project held when we last looked: one indexed count."""
        sql = "SELECT count(*) FROM labelstudio_tasks WHERE project_id = ?"
        return int(self._scalar(sql, (project_id,)))

    def seen_tasks(self, project_id: int) -> dict[int, str | None]:
        """task id -> syncd_id of every task seen in the project: read only when the counts disagree."""
        rows = self._read("SELECT task_id, syncd_id FROM labelstudio_tasks WHERE project_id = ?", (project_id,))
        return {int(r["task_id"]): r["syncd_id"] for r in rows}

    def adoptable(self, project_id: int) -> list[tuple[Recording, int]]:
        """Recordings waiting to be imported (transcribed or importing) whose task Label Studio already holds, with
        that task (the lowest id when there are several): these are adopted, never imported again."""
        columns = ", ".join(f"r.{c.strip()}" for c in _COLUMNS.split(","))
        rows = self._read(
            f"SELECT {columns}, min(t.task_id) AS found FROM recordings r JOIN labelstudio_tasks t"
            " ON t.syncd_id = r.syncd_id AND t.project_id = ? WHERE r.status IN (?, ?) GROUP BY r.id ORDER BY r.id",
            (project_id, Status.TRANSCRIBED, Status.IMPORTING),
        )
        return [(rec, int(more["found"])) for rec, more in (_with_extra(r, "found") for r in rows)]

    def project_tasks(self, project_id: int) -> dict[int, int]:
        """task id -> recording id of every task we hold in a project (export: notice tasks deleted there)."""
        rows = self._read(
            "SELECT task_id, id FROM recordings WHERE project_id = ? AND task_id IS NOT NULL", (project_id,)
        )
        return {int(r["task_id"]): int(r["id"]) for r in rows}

    def by_syncd_ids(self, sids: list[str]) -> dict[str, Recording]:
        """Many recordings in one query (export looks a page of tasks up at once)."""
        found: dict[str, Recording] = {}
        for start in range(0, len(sids), 500):
            chunk = sids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._read(f"SELECT {_COLUMNS} FROM recordings WHERE syncd_id IN ({marks})", chunk)
            found.update((r["syncd_id"], _recording(r)) for r in rows)
        return found


class _Tx:
    """The open transaction's connection, taking the store's ``?``-placeholder SQL."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, args: Iterable[Any] = ()) -> CursorResult[Any]:
        return _execute(self.conn, sql, args)

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        params = [_params(row) for row in rows]
        if params:
            self.conn.execute(_text(sql), params)


def _execute(conn: Connection, sql: str, args: Iterable[Any]) -> CursorResult[Any]:
    return conn.execute(_text(sql), _params(args))


@functools.lru_cache(maxsize=1024)
def _text(sql: str) -> TextClause:
    """DB-API ``?`` placeholders as SQLAlchemy's named ones (``:p0``, ``:p1``...), which every dialect binds."""
    parts = sql.split("?")
    return text("".join(f"{part}:p{i}" for i, part in enumerate(parts[:-1])) + parts[-1])


def _params(args: Iterable[Any]) -> dict[str, Any]:
    return {f"p{i}": value.value if isinstance(value, Enum) else value for i, value in enumerate(args)}


def _recording(row: RowMapping) -> Recording:
    return _with_extra(row)[0]


def _with_extra(row: RowMapping, *extra: str) -> tuple[Recording, dict[str, Any]]:
    """A row read with more columns than a Recording holds: the Recording, and those columns by name."""
    fields = dict(row)
    more = {name: fields.pop(name) for name in extra}
    return Recording(**fields | {"status": Status(fields["status"])}), more


def _triage_row(row: dict[str, Any]) -> dict[str, Any]:
    """The model and language the transcript was made with, read from it (report only, never the hot path)."""
    transcript = json.loads(row.pop("transcript") or "{}")
    return row | {"model": transcript.get("model"), "language": transcript.get("language")}


def _update_sql(fields: dict[str, Any], where: str, *where_args: Any) -> tuple[str, tuple[Any, ...]]:
    if isinstance(fields.get("transcript"), Transcript):
        fields = fields | {"transcript": json.dumps(fields["transcript"].to_dict())}
    fields = fields | {"updated_at": time.time()}
    assignments = ", ".join(f"{name} = ?" for name in fields)
    return f"UPDATE recordings SET {assignments} WHERE {where}", (*fields.values(), *where_args)
