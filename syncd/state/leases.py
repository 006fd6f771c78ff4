"""Who does what when many instances share one state: named leases for single-writer work, the instances' register,
and the renewal of the leases each instance holds on recordings (``StateStore.claim``).

A lease is a row with a holder and an expiry. Taking one succeeds when it is free, expired or already ours; holding it
means renewing it before it runs out. An instance that dies stops renewing, and another takes the lease once it has
expired: failover within one lease period, with no coordinator beyond the database. Clocks are the instances' own, so
lease periods should dwarf their skew (NTP keeps it in milliseconds).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncd.state.store import StateStore

CLAIMED = ("discovered", "transcribing")
"""Statuses whose recordings are leased to the instance working on them."""


class Leases:
    def __init__(self, store: StateStore) -> None:
        self._store = store

    def take(self, name: str, holder: str, seconds: float) -> bool:
        """Take or renew the lease ``name`` for ``seconds``; False while another holder's lease runs."""
        now = time.time()
        with self._store._tx() as db:
            db.execute(
                "INSERT INTO leases (name, holder, until, since) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE"
                " SET holder = excluded.holder, until = excluded.until,"
                " since = CASE WHEN leases.holder = excluded.holder THEN leases.since ELSE excluded.since END"
                " WHERE leases.holder = excluded.holder OR leases.until < ?",
                (name, holder, now + seconds, now, now),
            )
            owner = db.execute("SELECT holder FROM leases WHERE name = ?", (name,)).scalar()
        return bool(owner == holder)

    def release(self, name: str, holder: str) -> None:
        with self._store._tx() as db:
            db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

    def holder(self, name: str) -> str | None:
        """Who holds ``name`` now (None when free or expired)."""
        owner = self._store._scalar("SELECT holder FROM leases WHERE name = ? AND until >= ?", (name, time.time()))
        return None if owner is None else str(owner)

    def all(self) -> list[dict[str, Any]]:
        rows = self._store._read("SELECT name, holder, until, since FROM leases ORDER BY name")
        return [dict(r) for r in rows]

    # --- instances ------------------------------------------------------------------------------------------

    def join(self, name: str, host: str, pid: int, roles: list[str], version: str) -> dict[str, Any] | None:
        """Register this instance; returns the row it replaces (a previous run of the same name), if any."""
        now = time.time()
        with self._store._tx() as db:
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
        now = time.time()
        marks = ",".join("?" * len(CLAIMED))
        with self._store._tx() as db:
            db.execute("UPDATE instances SET seen_at = ? WHERE name = ?", (now, name))
            db.execute("UPDATE leases SET until = ? WHERE holder = ? AND until >= ?", (now + seconds, name, now))
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
        with self._store._tx() as db:
            db.execute("DELETE FROM leases WHERE holder = ?", (name,))
            db.execute("UPDATE recordings SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = ?", (name,))
            db.execute("DELETE FROM instances WHERE name = ?", (name,))

    def instances(self) -> list[dict[str, Any]]:
        """Every registered instance with the named leases it holds and how many recordings it is working on."""
        now = time.time()
        marks = ",".join("?" * len(CLAIMED))
        rows = self._store._read(
            "SELECT i.name, i.host, i.pid, i.roles, i.version, i.started_at, i.seen_at,"
            f" (SELECT count(*) FROM recordings r WHERE r.claimed_by = i.name AND r.status IN ({marks})"
            " AND r.lease_until >= ?) AS claimed FROM instances i ORDER BY i.name",
            (*CLAIMED, now),
        )
        held: dict[str, list[str]] = {}
        for lease in self.all():
            if lease["until"] >= now:
                held.setdefault(lease["holder"], []).append(lease["name"])
        return [dict(r) | {"holds": held.get(r["name"], [])} for r in rows]
