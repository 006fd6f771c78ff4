"""Who does what when many instances share one state: named leases for single-writer work, the instances' register,
and the renewal of the leases each instance holds on recordings (``claim``).

A lease is a row with a holder and an expiry. Taking one succeeds when it is free, expired or already ours; holding it
means renewing it before it runs out. An instance that dies stops renewing, and another takes the lease once it has
expired: failover within one lease period, with no coordinator beyond the database.

Fencing: a named lease carries a ``generation`` that grows by one on each change of holder (its row is kept when it
is freed, so the count never restarts). Work done under a lease is fenced with the generation it began under
(``Database.fenced``), and right before a side effect outside the state the holder extends and re-checks its lease
(``extend``): a holder that froze past its lease and woke up finds the generation moved on and does nothing.

One clock: lease times are read from the database on PostgreSQL (``clock_timestamp()``), so instances whose clocks
disagree still agree on who holds what; on SQLite (one instance) they are this process's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from syncd.domain.recording import Recording, Status
from syncd.state.db import Database, Fence, FencedError
from syncd.state.recordings import COLUMNS, recording_of

CLAIMED = ("discovered", "transcribing")
"""Statuses whose recordings are leased to the instance working on them."""

__all__ = ["CLAIMED", "Fence", "FencedError", "Leases"]


class Leases:
    """Named leases, recording claims and the instances' register, over one database (``StateStore.leases``)."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock
        """This process's clock, used on SQLite only (tests inject a skewed one)."""

    def now(self) -> float:
        """The time leases are reckoned in: the database's clock on PostgreSQL, whatever the instances' clocks say;
        this process's on SQLite, where there is one instance. Inside a transaction it is read on its connection."""
        if self.db.shared:
            return float(self.db.scalar("SELECT EXTRACT(EPOCH FROM clock_timestamp())"))
        return self.clock()

    def take(self, name: str, holder: str, seconds: float) -> int | None:
        """Take or renew the lease ``name`` for ``seconds`` (never shortening it); its generation when ``holder``
        holds it now, None while another holder's lease runs. A change of holder is a new generation."""
        with self.db.tx() as db:
            now = self.now()
            db.execute(
                "INSERT INTO leases (name, holder, until, since, generation) VALUES (?, ?, ?, ?, 1)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                " until = CASE WHEN leases.holder = excluded.holder AND leases.until > excluded.until"
                " THEN leases.until ELSE excluded.until END,"
                " since = CASE WHEN leases.holder = excluded.holder THEN leases.since ELSE excluded.since END,"
                " generation = CASE WHEN leases.holder = excluded.holder THEN leases.generation"
                " ELSE leases.generation + 1 END"
                " WHERE leases.holder = excluded.holder OR leases.until < ?",
                (name, holder, now + seconds, now, now),
            )
            row = db.execute("SELECT holder, generation FROM leases WHERE name = ?", (name,)).mappings().first()
        return int(row["generation"]) if row is not None and row["holder"] == holder else None

    def extend(self, fence: Fence, seconds: float) -> float:
        """Right before a side effect under ``fence``: its lease made to last at least ``seconds`` more, provided
        no other instance has taken it since (the generation is unchanged; one that ran out untaken is taken
        back, as nothing happened under it meanwhile). Returns the seconds it now has left; raises ``FencedError``
        when it was taken."""
        with self.db.tx() as db:
            now = self.now()
            until = db.execute(
                "UPDATE leases SET until = CASE WHEN until > ? THEN until ELSE ? END"
                " WHERE name = ? AND holder = ? AND generation = ? RETURNING until",
                (now + seconds, now + seconds, fence.name, fence.holder, fence.generation),
            ).scalar()
        if until is None:
            raise FencedError(fence, f"was taken by another instance (now {self.holder(fence.name)!r})")
        return float(until) - now

    def release(self, name: str, holder: str) -> None:
        """Free ``name`` at once; its row (and generation) stays for the next holder."""
        with self.db.tx() as db:
            db.execute("UPDATE leases SET until = 0 WHERE name = ? AND holder = ?", (name, holder))

    def holder(self, name: str) -> str | None:
        """Who holds ``name`` now (None when free or expired)."""
        owner = self.db.scalar("SELECT holder FROM leases WHERE name = ? AND until >= ?", (name, self.now()))
        return None if owner is None else str(owner)

    def generation(self, name: str) -> int:
        """How many times ``name`` changed holder (0: never held)."""
        return int(self.db.scalar("SELECT generation FROM leases WHERE name = ?", (name,)) or 0)

    def all(self) -> list[dict[str, Any]]:
        """Every lease row, with ``held`` (it has not run out, by the lease clock)."""
        now = self.now()
        rows = self.db.read("SELECT name, holder, until, since, generation FROM leases ORDER BY name")
        return [dict(r) | {"held": r["until"] >= now} for r in rows]

    # --- claims on recordings ---------------------------------------------------------------------------

    def claim(self, status: Status, limit: int, holder: str, seconds: float) -> list[Recording]:
        """Up to ``limit`` recordings in ``status`` whose back-off has run out and that no other live instance
        holds, oldest first, leased to ``holder`` for ``seconds`` (``beat`` renews it while the holder lives). Two
        claimers never get the same recording: each skips the rows the other is claiming (PostgreSQL's ``SKIP
        LOCKED``; SQLite admits one writer at a time)."""
        with self.db.tx() as db:
            now = self.now()
            rows = (
                db.execute(
                    "UPDATE recordings SET claimed_by = ?, lease_until = ? WHERE id IN (SELECT id FROM recordings"
                    " WHERE status = ? AND next_attempt_at <= ? AND (claimed_by IS NULL OR claimed_by = ?"
                    f" OR lease_until IS NULL OR lease_until < ?) ORDER BY id LIMIT ?{self.db.skip_locked})"
                    f" RETURNING {COLUMNS}",
                    (holder, now + seconds, status, now, holder, now, limit),
                )
                .mappings()
                .all()
            )
        return sorted((recording_of(r) for r in rows), key=lambda rec: rec.id)

    def count_in_hand(self, status: Status, holder: str) -> int:
        """Recordings in ``status`` that ``holder`` works on or would take over (claimed by no live instance): what
        counts against its in-flight limit. A cloud job keeps running while its instance restarts, and counts the
        same for the instance that picks it up."""
        sql = (
            "SELECT count(*) FROM recordings WHERE status = ? AND (claimed_by = ? OR claimed_by IS NULL"
            " OR lease_until IS NULL OR lease_until < ?)"
        )
        return int(self.db.scalar(sql, (status, holder, self.now())))

    # --- instances ------------------------------------------------------------------------------------------

    def join(self, name: str, host: str, pid: int, roles: list[str], version: str) -> dict[str, Any] | None:
        """Register this instance; returns the row it replaces (a previous run of the same name), if any."""
        with self.db.tx() as db:
            now = self.now()
            old = db.execute("SELECT * FROM instances WHERE name = ?", (name,)).mappings().first()
            db.execute(
                "INSERT INTO instances (name, host, pid, roles, version, started_at, seen_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET host = excluded.host,"
                " pid = excluded.pid, roles = excluded.roles, version = excluded.version,"
                " started_at = excluded.started_at, seen_at = excluded.seen_at",
                (name, host, pid, ",".join(roles), version, now, now),
            )
        return None if old is None else dict(old)

    def beat(self, name: str, seconds: float) -> list[str]:
        """This instance is alive: renew every lease it still holds, named or on recordings, for ``seconds``.
        Returns the named leases it holds: one that ran out before this renewal is not among them, taken by another
        instance or not."""
        marks = ",".join("?" * len(CLAIMED))
        with self.db.tx() as db:
            now = self.now()
            db.execute("UPDATE instances SET seen_at = ? WHERE name = ?", (now, name))
            db.execute(  # never shortens a lease extended for a request (``extend``)
                "UPDATE leases SET until = ? WHERE holder = ? AND until >= ? AND until < ?",
                (now + seconds, name, now, now + seconds),
            )
            db.execute(
                f"UPDATE recordings SET lease_until = ? WHERE claimed_by = ? AND status IN ({marks})",
                (now + seconds, name, *CLAIMED),
            )
            held = (
                db.execute("SELECT name FROM leases WHERE holder = ? AND until >= ? ORDER BY name", (name, now))
                .scalars()
                .all()
            )
        return [str(h) for h in held]

    def leave(self, name: str) -> None:
        """A clean stop: its named leases and its recordings are free for the others at once."""
        with self.db.tx() as db:
            db.execute("UPDATE leases SET until = 0 WHERE holder = ?", (name,))
            db.execute("UPDATE recordings SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = ?", (name,))
            db.execute("DELETE FROM instances WHERE name = ?", (name,))

    def instances(self) -> list[dict[str, Any]]:
        """Every registered instance with the named leases it holds and how many recordings it is working on."""
        now = self.now()
        marks = ",".join("?" * len(CLAIMED))
        rows = self.db.read(
            "SELECT i.name, i.host, i.pid, i.roles, i.version, i.started_at, i.seen_at,"
            f" (SELECT count(*) FROM recordings r WHERE r.claimed_by = i.name AND r.status IN ({marks})"
            " AND r.lease_until >= ?) AS claimed FROM instances i ORDER BY i.name",
            (*CLAIMED, now),
        )
        held: dict[str, list[str]] = {}
        for lease in self.all():
            if lease["held"]:
                held.setdefault(lease["holder"], []).append(lease["name"])
        return [dict(r) | {"holds": held.get(r["name"], [])} for r in rows]
