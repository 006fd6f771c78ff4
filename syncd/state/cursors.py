"""The ``cursors`` table: small named values the stages keep between runs (read positions, intents, outage records,
doubt records), each read and changed in one transaction."""

from __future__ import annotations

from collections.abc import Callable

from syncd.state.db import Database

ADDED_WORDS_CHANGED = "added-words-changed"
"""A cursor counting changes to the reviewers' added words."""


class Cursors:
    """Named cursors (a part of ``StateStore``)."""

    db: Database

    def cursor(self, name: str) -> str | None:
        row = self.db.read_one("SELECT value FROM cursors WHERE name = ?", (name,))
        return str(row["value"]) if row else None

    def cursors(self, prefix: str) -> dict[str, str]:
        """Every cursor whose name starts with ``prefix`` (the dependency records use ``dependency:``)."""
        rows = self.db.read("SELECT name, value FROM cursors WHERE substr(name, 1, ?) = ?", (len(prefix), prefix))
        return {str(r["name"]): str(r["value"]) for r in rows}

    def set_cursor(self, name: str, value: str) -> None:
        with self.db.tx() as db:
            db.execute(
                "INSERT INTO cursors (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    def change_cursor(self, name: str, change: Callable[[str | None], str | None]) -> str | None:
        """Read-modify-write one cursor in one transaction (two stages may move it at once); ``change`` returning
        None deletes it. Returns the new value."""
        with self.db.tx() as db:
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
