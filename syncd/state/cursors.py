"""The ``cursors`` table: small named values the stages keep between runs (read positions, intents, counts), each
read and changed in one transaction. Every name is one the registry (``syncd.state.keys``) covers."""

from __future__ import annotations

from collections.abc import Callable

from syncd.state import keys
from syncd.state.db import Database

_UPSERT = "INSERT INTO cursors (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value"


class Cursors:
    """Named cursors (``StateStore.cursors``); a name no key of ``syncd.state.keys`` covers is refused
    (``keys.UnregisteredKeyError``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, name: str) -> str | None:
        keys.check(name)
        row = self.db.read_one("SELECT value FROM cursors WHERE name = ?", (name,))
        return str(row["value"]) if row else None

    def prefixed(self, prefix: str) -> dict[str, str]:
        """Every cursor whose name starts with ``prefix`` (a registered prefix key: ``import-doubt:``)."""
        keys.check_prefix(prefix)
        rows = self.db.read("SELECT name, value FROM cursors WHERE substr(name, 1, ?) = ?", (len(prefix), prefix))
        return {str(r["name"]): str(r["value"]) for r in rows}

    def set(self, name: str, value: str) -> None:
        keys.check(name)
        with self.db.tx() as db:
            db.execute(_UPSERT, (name, value))

    def change(self, name: str, change: Callable[[str | None], str | None]) -> str | None:
        """Read-modify-write one cursor in one transaction (two stages may move it at once); ``change`` returning
        None deletes it. Returns the new value."""
        keys.check(name)
        with self.db.tx() as db:
            old = db.execute("SELECT value FROM cursors WHERE name = ?", (name,)).scalar()
            value = change(None if old is None else str(old))
            if value is None:
                db.execute("DELETE FROM cursors WHERE name = ?", (name,))
            else:
                db.execute(_UPSERT, (name, value))
        return value

    def bump(self, name: str) -> None:
        """Count one more change on a counting cursor (from 1), in the open transaction if there is one."""
        keys.check(name)
        with self.db.tx() as db:
            db.execute(
                "INSERT INTO cursors (name, value) VALUES (?, '1') ON CONFLICT (name)"
                " DO UPDATE SET value = CAST(CAST(cursors.value AS INTEGER) + 1 AS TEXT)",
                (name,),
            )
