"""The ``recordings`` table: one row per S3 object version (and per review unit cut from one), with its status.

Status changes are compare-and-set: a stage names the status it expects to move a recording from, and a recording that
moved meanwhile (superseded, failed) is left alone. ``syncd_id`` is derived from bucket, key and ETag and travels in
each task's data, so every row can be rebuilt from S3 and Label Studio.
"""

from __future__ import annotations

import bisect
import json
import posixpath
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import RowMapping

from syncd.domain.recording import PENDING, TRANSITIONS, Recording, S3Object, Status, syncd_id
from syncd.domain.transcript import Transcript
from syncd.state.db import Database, Tx

COLUMNS = ", ".join(Recording.__dataclass_fields__).replace("transcript_json", "transcript AS transcript_json")
"""The columns a Recording is read from (its transcript as ``transcript_json``)."""
WAITING = (*PENDING, Status.IMPORTED)
"""States whose recordings wait: for a stage (pending), or for a reviewer (imported)."""


class Recordings:
    """Reads and compare-and-set writes of recordings (``StateStore.recordings``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def known_versions(self, bucket: str, keys: list[str]) -> dict[str, set[str]]:
        """key -> ETags already recorded for these keys (one listing page), in one indexed query: an idle scan costs
        no per-object I/O, and memory grows with a page, not with the bucket."""
        known: dict[str, set[str]] = {}
        if not keys:
            return known
        among, args = self.db.one_of("key", keys)
        rows = self.db.read(f"SELECT key, etag FROM recordings WHERE bucket = ? AND {among}", (bucket, *args))
        for row in rows:
            known.setdefault(row["key"], set()).add(row["etag"])
        return known

    def add_objects(
        self, objects: Iterable[S3Object], status: Status = Status.DISCOVERED, reason: str | None = None
    ) -> list[tuple[int, S3Object]]:
        """Record new object versions; an older version of the same key becomes ``superseded``. Returns the ones
        recorded now (not before), in the order given. Multi-row statements (``Tx.rows_per_statement``; a first scan
        records a listing page at a time): the inserts return the new ids, and the superseding is one UPDATE per
        statement's worth of keys."""
        now = time.time()
        fresh = {syncd_id(o.bucket, o.key, o.etag): o for o in objects}
        rows = [
            (sid, o.bucket, o.key, o.etag, o.size, o.last_modified, status, reason, now, now)
            for sid, o in fresh.items()
        ]
        ids: dict[str, int] = {}
        with self.db.tx() as db:
            for start in range(0, len(rows), db.rows_per_statement):
                source, args = db.rows(_NEW_ROW_TYPES, rows[start : start + db.rows_per_statement])
                sql = (
                    "INSERT INTO recordings (syncd_id, bucket, key, etag, size, last_modified, status, reason,"
                    f" created_at, updated_at) {source} ON CONFLICT DO NOTHING RETURNING id, syncd_id"
                )
                found = db.execute(sql, args).mappings()
                ids.update((str(r["syncd_id"]), int(r["id"])) for r in found)
            added = [(ids[sid], obj) for sid, obj in fresh.items() if sid in ids]
            _supersede_older(db, added, now)
        self.db.grew("recordings", len(added))
        return added

    def get(self, rec_id: int) -> Recording:
        row = self.db.read_one(f"SELECT {COLUMNS} FROM recordings WHERE id = ?", (rec_id,))
        if row is None:
            raise KeyError(rec_id)
        return recording_of(row)

    def by_syncd_id(self, sid: str) -> Recording | None:
        row = self.db.read_one(f"SELECT {COLUMNS} FROM recordings WHERE syncd_id = ?", (sid,))
        return recording_of(row) if row else None

    def by_syncd_ids(self, sids: list[str]) -> dict[str, Recording]:
        """Many recordings in one query (export looks a page of tasks up at once)."""
        found: dict[str, Recording] = {}
        for start in range(0, len(sids), 500):
            chunk = sids[start : start + 500]
            among, args = self.db.one_of("syncd_id", chunk)
            rows = self.db.read(f"SELECT {COLUMNS} FROM recordings WHERE {among}", args)
            found.update((r["syncd_id"], recording_of(r)) for r in rows)
        return found

    def all(self, bucket: str | None = None) -> list[Recording]:
        """Every recording (of one bucket), in discovery order: for operators and tests, not for the hot path."""
        where, args = ("WHERE bucket = ?", (bucket,)) if bucket else ("", ())
        rows = self.db.read(f"SELECT {COLUMNS} FROM recordings {where} ORDER BY id", args)
        return [recording_of(r) for r in rows]

    def recording_for_task(self, task_id: int) -> Recording | None:
        row = self.db.read_one(f"SELECT {COLUMNS} FROM recordings WHERE task_id = ?", (task_id,))
        return recording_of(row) if row else None

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
        rows = self.db.read(f"SELECT {COLUMNS} FROM recordings WHERE {where} ORDER BY {order} LIMIT ?", (*args, limit))
        return [recording_of(r) for r in rows]

    def too_long(self, max_seconds: float, limit: int = 10) -> list[Recording]:
        """Transcribed whole recordings longer than ``max_seconds``, due to be split into review units."""
        rows = self.db.read(
            f"SELECT {COLUMNS} FROM recordings WHERE status = ? AND next_attempt_at <= ? AND parent_id IS NULL"
            " AND unit_start IS NULL AND duration > ? ORDER BY id LIMIT ?",
            (Status.TRANSCRIBED, time.time(), max_seconds, limit),
        )
        return [recording_of(r) for r in rows]

    def units_of(self, parent_id: int) -> list[tuple[Recording, dict[str, Any]]]:
        """A recording's review units in time order, each with its review (``review``: JSON segments on the
        parent's clock, None until reviewed), ``annotator``, ``submitted_at`` and ``project_id``."""
        extra = ("review", "annotator", "submitted_at", "project_id")
        rows = self.db.read(
            f"SELECT {COLUMNS}, {', '.join(extra)} FROM recordings WHERE parent_id = ? ORDER BY unit_start, id",
            (parent_id,),
        )
        return [with_extra(row, *extra) for row in rows]

    def stitch_due(self, limit: int = 100) -> list[tuple[Recording, float]]:
        """Split recordings whose units' reviews changed since their transcripts were written, with that mark."""
        rows = self.db.read(
            f"SELECT {COLUMNS}, units_changed FROM recordings WHERE units_changed IS NOT NULL"
            " AND next_attempt_at <= ? ORDER BY units_changed LIMIT ?",
            (time.time(), limit),
        )
        return [(rec, float(more["units_changed"])) for rec, more in (with_extra(r, "units_changed") for r in rows)]

    def count(self, status: Status) -> int:
        return int(self.db.scalar("SELECT count(*) FROM recordings WHERE status = ?", (status,)))

    def count_due(self, status: Status) -> int:
        sql = "SELECT count(*) FROM recordings WHERE status = ? AND next_attempt_at <= ?"
        return int(self.db.scalar(sql, (status, time.time())))

    def counts(self) -> dict[str, int]:
        rows = self.db.read("SELECT status, count(*) AS n FROM recordings GROUP BY status")
        return {str(s): 0 for s in Status} | {r["status"]: r["n"] for r in rows}

    def oldest_pending(self) -> Recording | None:
        marks = ",".join("?" * len(PENDING))
        row = self.db.read_one(
            f"SELECT {COLUMNS} FROM recordings WHERE status IN ({marks}) ORDER BY created_at LIMIT 1",
            PENDING,
        )
        return recording_of(row) if row else None

    def oldest_since(self) -> dict[str, float]:
        """For each state holding work to do or awaiting review, when its longest-waiting recording last changed (unix
        time; usually when it entered the state): the backlog's age in /metrics."""
        marks = ",".join("?" * len(WAITING))
        rows = self.db.read(
            f"SELECT status, min(updated_at) AS since FROM recordings WHERE status IN ({marks}) GROUP BY status",
            WAITING,
        )
        return {str(r["status"]): float(r["since"]) for r in rows}

    def last_errors(self, limit: int = 10) -> list[Recording]:
        rows = self.db.read(
            f"SELECT {COLUMNS} FROM recordings WHERE reason IS NOT NULL AND status NOT IN ('superseded', 'exported')"
            " ORDER BY updated_at DESC LIMIT ?",
            (limit,),
        )
        return [recording_of(r) for r in rows]

    def backlog_seconds(self) -> dict[str, float]:
        """Audio seconds per state, over recordings whose length is known (transcribed or later). A split
        recording counts through its units until it is written, then as itself."""
        rows = self.db.read(
            "SELECT status, coalesce(sum(duration), 0) AS seconds FROM recordings WHERE status NOT IN"
            " ('superseded', 'split') AND NOT (parent_id IS NOT NULL AND status = 'exported') GROUP BY status"
        )
        return {str(s): 0.0 for s in Status if s != Status.SUPERSEDED} | {r["status"]: r["seconds"] for r in rows}

    def add_units(self, parent: Recording, units: list[tuple[S3Object, str, float, Transcript]]) -> bool:
        """Record a recording's review units (clip object, syncd_id, start in the parent, transcript on the clip's
        clock) as transcribed recordings of their own, and the parent as split, in one transaction. A unit recorded
        before (a crash after this, a lost state split again) is kept as it is. False when the parent was no longer
        transcribed (nothing is recorded then)."""
        now = time.time()
        with self.db.tx() as db:
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
        with self.db.tx() as db:
            if not self.move(unit.id, source, Status.EXPORTED, review=review, **fields):
                return False
            db.execute("UPDATE recordings SET units_changed = ? WHERE id = ?", (time.time(), unit.parent_id))
        return True

    def stitched(self, parent_id: int, mark: float) -> None:
        """The units' reviews up to ``mark`` are written; a review stored meanwhile keeps the parent marked."""
        with self.db.tx() as db:
            db.execute(
                "UPDATE recordings SET units_changed = NULL WHERE id = ? AND units_changed = ?", (parent_id, mark)
            )

    def update(self, rec_id: int, **fields: Any) -> None:
        """Set columns other than the status on one recording; ``transcript`` may be given as a Transcript."""
        if "status" in fields:
            raise ValueError("status changes go through transition()")
        with self.db.tx() as db:
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
        with self.db.tx() as db:
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
        with self.db.tx() as db:
            db.execute(
                "UPDATE recordings SET attempts = attempts + 1, updated_at = ? WHERE id = ? AND status = ?",
                (time.time(), rec_id, status),
            )
            row = db.execute("SELECT attempts, status FROM recordings WHERE id = ?", (rec_id,)).mappings().first()
        return int(row["attempts"]) if row is not None and row["status"] == status else 0

    def refund_attempt(self, rec_id: int) -> None:
        """Give back an attempt counted by ``begin_attempt`` that an outage cut short (not the recording's fault)."""
        with self.db.tx() as db:
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
            among, args = self.db.one_of("id", ids)
            query += f" AND {among}"
            params += args
        with self.db.tx() as db:
            return db.execute(query, params).rowcount

    def superseded_versions(self, bucket: str, keys: list[str]) -> set[tuple[str, str]]:
        """(key, ETag) of superseded or deleted versions of these keys (one listing page): a listing that shows one
        again was reverted or put back."""
        if not keys:
            return set()
        among, args = self.db.one_of("key", keys)
        rows = self.db.read(
            f"SELECT key, etag FROM recordings WHERE status IN ('superseded', 'deleted') AND bucket = ? AND {among}",
            (bucket, *args),
        )
        return {(r["key"], r["etag"]) for r in rows}

    def delete_current(self, bucket: str, key: str, reason: str) -> list[Recording]:
        """The object is gone from S3: its current version (none, or one) becomes ``deleted``; returns it as it was."""
        rows = self.db.read(
            f"SELECT {COLUMNS} FROM recordings WHERE bucket = ? AND key = ? AND parent_id IS NULL"
            " AND status NOT IN ('superseded', 'deleted')",
            (bucket, key),
        )
        gone = [recording_of(r) for r in rows]
        return [rec for rec in gone if self.move(rec.id, rec.status, Status.DELETED, reason=reason)]

    def current_keys(self, bucket: str, prefix: str, after: str, upto: str | None) -> list[str]:
        """Keys under ``prefix`` with a current version, in (``after``, ``upto``] (to the end when ``upto`` is None),
        in S3's listing order: what a full listing must show in that range, or they were deleted."""
        where = "bucket = ? AND key > ? AND substr(key, 1, ?) = ? AND parent_id IS NULL"
        args: list[Any] = [bucket, after, len(prefix), prefix]
        if upto is not None:
            where += " AND key <= ?"
            args.append(upto)
        rows = self.db.read(
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
        with self.db.tx() as db:
            row = (
                db.execute(
                    f"SELECT {COLUMNS} FROM recordings WHERE bucket = ? AND key = ? AND etag = ? AND status IN (?, ?)",
                    (bucket, key, etag, Status.SUPERSEDED, Status.DELETED),
                )
                .mappings()
                .first()
            )
            if row is None:
                return None
            rec = recording_of(row)
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
        rows = self.db.read(
            "SELECT key FROM recordings WHERE bucket = ? AND key >= ? AND key < ? AND key != ?",
            (bucket, f"{stem}.", f"{stem}/", key),
        )
        return any(_stem_sibling(stem, key, str(r["key"])) for r in rows)

    def stems_shared(self, bucket: str, keys: Iterable[str]) -> set[str]:
        """Which of these keys (a page of exports) share their stem with another recorded key in their folder, in one
        query per 100 keys instead of ``stem_shared``'s one per key."""
        wanted = sorted(set(keys))
        shared: set[str] = set()
        for start in range(0, len(wanted), 100):
            chunk = wanted[start : start + 100]
            ranges = [(f"{stem}.", f"{stem}/") for stem in (posixpath.splitext(k)[0] for k in chunk)]
            where = " OR ".join(["(key >= ? AND key < ?)"] * len(ranges))
            args = [bucket, *(bound for pair in ranges for bound in pair)]
            rows = sorted(
                str(r["key"]) for r in self.db.read(f"SELECT key FROM recordings WHERE bucket = ? AND ({where})", args)
            )
            for key, (low, high) in zip(chunk, ranges, strict=True):
                stem = low[:-1]
                siblings = rows[bisect.bisect_left(rows, low) : bisect.bisect_left(rows, high)]
                if any(_stem_sibling(stem, key, other) for other in siblings):
                    shared.add(key)
        return shared


def _stem_sibling(stem: str, key: str, other: str) -> bool:
    rest = other[len(stem) + 1 :]
    return other != key and "." not in rest and "/" not in rest


_NEW_ROW_TYPES = ("text", "text", "text", "text", "bigint", "text", "text", "text", "float8", "float8")
"""The PostgreSQL types of a new recording's columns, as ``add_objects`` inserts them."""


def _supersede_older(db: Tx, added: list[tuple[int, S3Object]], now: float) -> None:
    """Every other version of a key just recorded becomes ``superseded``, in one statement per bucket and
    ``rows_per_statement`` keys.
    A key recorded twice in one call (two versions) is updated row by row, in order, as before."""
    counts = Counter((obj.bucket, obj.key) for _, obj in added)
    once: dict[str, list[tuple[int, str]]] = {}
    for rowid, obj in added:
        if counts[(obj.bucket, obj.key)] == 1:
            once.setdefault(obj.bucket, []).append((rowid, obj.key))
    for bucket, pairs in once.items():
        for start in range(0, len(pairs), db.rows_per_statement):
            chunk = pairs[start : start + db.rows_per_statement]
            keys, key_args = db.one_of("key", [key for _, key in chunk])
            ids, id_args = db.one_of("id", [rowid for rowid, _ in chunk])
            db.execute(
                "UPDATE recordings SET status = 'superseded', reason = 'replaced by a newer version', updated_at = ?"
                f" WHERE bucket = ? AND {keys} AND NOT ({ids}) AND status != 'superseded'",
                (now, bucket, *key_args, *id_args),
            )
    db.executemany(
        "UPDATE recordings SET status = 'superseded', reason = 'replaced by a newer version', updated_at = ?"
        " WHERE bucket = ? AND key = ? AND id != ? AND status != 'superseded'",
        [(now, obj.bucket, obj.key, rowid) for rowid, obj in added if counts[(obj.bucket, obj.key)] > 1],
    )


def recording_of(row: RowMapping) -> Recording:
    return with_extra(row)[0]


def with_extra(row: RowMapping, *extra: str) -> tuple[Recording, dict[str, Any]]:
    """A row read with more columns than a Recording holds: the Recording, and those columns by name."""
    fields = dict(row)
    more = {name: fields.pop(name) for name in extra}
    return Recording(**fields | {"status": Status(fields["status"])}), more


def _update_sql(fields: dict[str, Any], where: str, *where_args: Any) -> tuple[str, tuple[Any, ...]]:
    if isinstance(fields.get("transcript"), Transcript):
        fields = fields | {"transcript": json.dumps(fields["transcript"].to_dict())}
    fields = fields | {"updated_at": time.time()}
    assignments = ", ".join(f"{name} = ?" for name in fields)
    return f"UPDATE recordings SET {assignments} WHERE {where}", (*fields.values(), *where_args)
