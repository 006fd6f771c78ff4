"""Which outside services are down right now, since when, and when to try them again.

A stage that meets an outage (connection refused, timeout, throttling, 5xx) records it here instead of failing the
recording it was working on: the recording keeps its attempt budget and waits, and the stage tries the service again
after a back-off that doubles up to ``schedule.outage_backoff_max`` for as long as the outage lasts. The records live in
the state store (the ``outages`` table, a row per service), so `syncd status` in another process sees them, /healthz
turns "failing" naming the service once it has been down longer than ``http.dependency_grace``, and
``syncd_dependency_up{dependency}`` follows them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import RowMapping

from syncd.state.db import Database

FIRST_BACKOFF = 5.0
LABELSTUDIO = "labelstudio"
"""Label Studio, recorded down while it refuses syncd's token mid-run (a 401 after a fresh access token); the stages
that call it keep trying each interval, the others never wait for it."""


class DependencyDownError(ConnectionError):
    """A stage is waiting for a service to come back; it fails the stage run (cause "unavailable"), not a recording."""


@dataclass(frozen=True)
class Dependency:
    name: str
    ok: bool
    error: str | None = None
    down_since: float | None = None  # unix time
    failures: int = 0
    retry_at: float = 0.0  # unix time

    def down_seconds(self, now: float | None = None) -> float:
        return 0.0 if self.down_since is None else max((now or time.time()) - self.down_since, 0.0)


class Outages:
    """The services known, up or down (``StateStore.outages``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, name: str) -> Dependency:
        row = self.db.read_one(f"SELECT {_COLUMNS} FROM outages WHERE name = ?", (name,))
        return _dependency(row) if row else Dependency(name, ok=True)

    def all_known(self) -> dict[str, Dependency]:
        rows = self.db.read(f"SELECT {_COLUMNS} FROM outages ORDER BY name")
        return {str(r["name"]): _dependency(r) for r in rows}

    def _save(self, dep: Dependency) -> None:
        with self.db.tx() as db:
            db.execute(
                f"INSERT INTO outages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " ok = excluded.ok, error = excluded.error, down_since = excluded.down_since,"
                " failures = excluded.failures, retry_at = excluded.retry_at",
                (dep.name, int(dep.ok), dep.error, dep.down_since, dep.failures, dep.retry_at),
            )

    def mark_down(self, name: str, error: str, backoff_max: float, log: Any) -> Dependency:
        """Record one more failed try; logs ``dependency.down`` when the service was up until now."""
        now = time.time()
        was = self.get(name)
        failures = was.failures + 1
        delay = min(FIRST_BACKOFF * 2 ** (failures - 1), backoff_max)
        dep = Dependency(name, False, error[:500], was.down_since or now, failures, now + delay)
        self._save(dep)
        if was.ok:
            log.warning("dependency.down", dependency=name, error=dep.error, retry_in=delay)
        else:
            log.debug("dependency.still_down", dependency=name, error=dep.error, retry_in=delay, failures=failures)
        return dep

    def mark_up(self, names: list[str], log: Any) -> None:
        """The services answered again; logs ``dependency.up`` with how long each was down."""
        for name in names:
            was = self.get(name)
            if not was.ok:
                self._save(Dependency(name, ok=True))
                log.info("dependency.up", dependency=name, down_seconds=round(was.down_seconds(), 3))

    def waiting(self) -> list[Dependency]:
        """Services that are down and not due for another try yet."""
        now = time.time()
        return [dep for dep in self.all_known().values() if not dep.ok and dep.retry_at > now]

    def retry_now(self) -> int:
        """`syncd retry`: every service that is down is tried again at the stages' next run, not after its
        back-off."""
        down = [dep for dep in self.all_known().values() if not dep.ok]
        for dep in down:
            self._save(replace(dep, retry_at=0.0))
        return len(down)


_COLUMNS = "name, ok, error, down_since, failures, retry_at"


def _dependency(row: RowMapping) -> Dependency:
    return Dependency(
        name=str(row["name"]),
        ok=bool(row["ok"]),
        error=row["error"],
        down_since=None if row["down_since"] is None else float(row["down_since"]),
        failures=int(row["failures"]),
        retry_at=float(row["retry_at"]),
    )
