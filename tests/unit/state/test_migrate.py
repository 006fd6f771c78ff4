"""The state schema: one Alembic path for new databases and for SQLite files made before Alembic."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from syncd.domain.recording import S3Object, Status
from syncd.state import StateStore, legacy, migrate


def _legacy_file(path: Path, version: int) -> None:
    """A state file as an older syncd left it, at ``PRAGMA user_version`` ``version``, holding one recording."""
    with sqlite3.connect(path) as db:
        for number, script in enumerate(legacy.MIGRATIONS[:version], start=1):
            for statement in filter(str.strip, script.split(";")):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")
        db.execute(
            "INSERT INTO recordings (syncd_id, bucket, key, etag, status, created_at, updated_at)"
            " VALUES ('sid', 'b', 'calls/a.wav', 'e1', 'transcribed', 1, 1)"
        )


@pytest.mark.parametrize("version", [1, 4, legacy.LAST])
def test_a_pre_alembic_state_file_is_carried_to_head_with_its_rows(tmp_path: Path, version: int) -> None:
    path = tmp_path / "old.db"
    _legacy_file(path, version)
    store = StateStore(path)
    [rec] = store.recordings()
    assert (rec.syncd_id, rec.key, rec.status) == ("sid", "calls/a.wav", Status.TRANSCRIBED)
    with store.db.engine.connect() as conn:
        assert migrate.current(conn) == migrate.head()
        assert legacy.user_version(conn) == legacy.LAST
    added = store.add_objects([S3Object(bucket="b", key="calls/b.wav", etag="e2", size=1)])
    assert [obj.key for _, obj in added] == ["calls/b.wav"]


def test_a_new_state_and_a_migrated_one_have_the_same_columns(tmp_path: Path) -> None:
    _legacy_file(tmp_path / "old.db", legacy.LAST)
    old, new = StateStore(tmp_path / "old.db"), StateStore(tmp_path / "new.db")
    for table in ("recordings", "export_queue", "labelstudio_tasks", "projects", "added_words", "leases", "instances"):
        with old.db.engine.connect() as a, new.db.engine.connect() as b:
            columns = [{row[1] for row in conn.exec_driver_sql(f"PRAGMA table_info({table})")} for conn in (a, b)]
        assert columns[0] == columns[1], table


def test_opening_twice_migrates_once(tmp_path: Path) -> None:
    """The second open finds the schema at head and runs no migration: no ``state.migrated``, and the rows the first
    one wrote are there (a re-run baseline would have failed on the existing tables, or emptied them)."""
    with capture_logs() as first:
        store = StateStore(tmp_path / "s.db")
    store.add_objects([S3Object(bucket="b", key="a.wav", etag="e1", size=1)])
    store.close()
    with capture_logs() as second:
        again = StateStore(tmp_path / "s.db")
    assert [e["revision"] for e in first if e["event"] == "state.migrated"] == [migrate.head()]
    assert [e for e in second if e["event"] == "state.migrated"] == []
    assert [r.key for r in again.recordings()] == ["a.wav"]
    with again.db.engine.connect() as conn:
        assert migrate.current(conn) == migrate.head()
