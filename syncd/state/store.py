"""The state store: the only thing the pipeline stages share (SQLite by default, PostgreSQL for many instances).

It is a cache of the truth held by S3 and Label Studio; every row can be rebuilt from them. ``StateStore`` is the one
object the stages hold: one ``Database`` and one object per table, each in its own module and each method one short
transaction, so every call names the table it touches (``store.recordings.due(...)``, ``store.outages.mark_down(...)``).
A table that keeps values in the ``cursors`` table is handed that table, so the cursor SQL is written once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from syncd.state import migrate
from syncd.state.cursors import Cursors
from syncd.state.db import HOLD_LIMIT, Database
from syncd.state.export_queue import ExportQueue
from syncd.state.leases import Leases
from syncd.state.outages import Outages
from syncd.state.recordings import Recordings
from syncd.state.refusals import Refusals
from syncd.state.reports import Reports
from syncd.state.tasks import Tasks
from syncd.state.twins import Twins

if TYPE_CHECKING:
    from syncd.config import StateSettings


class StateStore:
    """Thread-safe access to the state database, migrated to the newest schema when opened, one object per table."""

    def __init__(self, target: str | Path = ":memory:", hold_limit: float = HOLD_LIMIT) -> None:
        """``target``: a SQLite file path (its folder is created) or a ``postgresql://`` URL with its password;
        ``hold_limit``: how long a PostgreSQL transaction may sit idle holding locks (``Database``)."""
        self.db = Database(target, hold_limit)
        migrate.upgrade(self.db.engine)
        self.cursors = Cursors(self.db)
        """Small named values kept between runs, under the names ``syncd.state.keys`` registers."""
        self.recordings = Recordings(self.db)
        self.export_queue = ExportQueue(self.db)
        self.tasks = Tasks(self.db, self.cursors)
        """Projects and the tasks seen in them."""
        self.reports = Reports(self.db, self.cursors)
        """What `syncd report` and the vocabulary read."""
        self.leases = Leases(self.db)
        """Named leases, claims on recordings and the instances' register."""
        self.outages = Outages(self.db)
        self.refusals = Refusals(self.db)
        self.twins = Twins(self.db)

    @classmethod
    def open(cls, settings: StateSettings, hold_limit: float = HOLD_LIMIT) -> StateStore:
        """The store the configuration names: ``[state] url`` with its password, else the SQLite ``path``."""
        return cls(settings.target(), hold_limit)

    @property
    def shared(self) -> bool:
        """True on a server database that many instances may share."""
        return self.db.shared

    @property
    def where(self) -> str:
        """The database, for people: its URL without the password, or the SQLite file."""
        return self.db.where

    def close(self) -> None:
        self.db.close()

    def schema(self) -> tuple[str | None, str | None]:
        """The schema revision and the syncd release that last brought the state up to date."""
        with self.db.engine.connect() as conn:
            return migrate.current(conn), migrate.app_version(conn)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group several writes into one transaction (one commit instead of many)."""
        with self.db.tx():
            yield
