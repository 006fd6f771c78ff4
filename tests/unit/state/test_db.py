"""The state database: nested transactions join the open one, reads inside a transaction see its writes, and a
transaction that raises leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event

from syncd.state.db import Database
from tests.unit.fakes import new_store


def _db(tmp_path: Path) -> Database:
    db = new_store(tmp_path).db  # migrated: the cursors table exists
    return db


def _value(db: Database, name: str) -> str | None:
    return db.scalar("SELECT value FROM cursors WHERE name = ?", (name,))


def _commits(db: Database) -> list[object]:
    """Every commit on the database's engine from now on (SQLAlchemy's ``commit`` connection event)."""
    seen: list[object] = []
    event.listen(db.engine, "commit", seen.append)
    return seen


def test_nested_transactions_commit_once_and_reads_inside_see_their_writes(tmp_path: Path) -> None:
    db = _db(tmp_path)
    commits = _commits(db)
    with db.tx() as outer:
        outer.execute("INSERT INTO cursors (name, value) VALUES (?, ?)", ("a", "1"))
        with db.tx() as inner:
            inner.executemany("INSERT INTO cursors (name, value) VALUES (?, ?)", [("b", "2"), ("c", "3")])
        assert commits == [], "the inner transaction joined the outer one: nothing committed yet"
        assert _value(db, "b") == "2", "a read inside the transaction sees its writes"
    assert len(commits) == 1
    assert [_value(db, n) for n in "abc"] == ["1", "2", "3"]


def test_a_transaction_that_raises_leaves_nothing(tmp_path: Path) -> None:
    db = _db(tmp_path)
    with pytest.raises(RuntimeError), db.tx() as tx:
        tx.execute("INSERT INTO cursors (name, value) VALUES (?, ?)", ("a", "1"))
        with db.tx() as inner:
            inner.execute("INSERT INTO cursors (name, value) VALUES (?, ?)", ("b", "2"))
        raise RuntimeError("crash inside")
    assert _value(db, "a") is None and _value(db, "b") is None


def test_where_names_the_database_without_its_password() -> None:
    assert Database(":memory:").where == ":memory:"
    db = Database("postgresql://syncd:secret@db.example:5432/syncd")
    assert "secret" not in db.where and "db.example" in db.where and db.shared
    assert db.skip_locked == " FOR UPDATE SKIP LOCKED" and Database(":memory:").skip_locked == ""
