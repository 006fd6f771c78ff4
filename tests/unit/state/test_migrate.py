"""The state schema: one Alembic path for new databases and for SQLite files made before Alembic."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import asdict
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text
from structlog.testing import capture_logs

from syncd import __version__
from syncd.domain.recording import S3Object, Status
from syncd.errors import ConfigError
from syncd.state import StateStore, legacy, migrate
from syncd.state.db import make_engine, url_for
from syncd.state.outages import Dependency
from syncd.state.refusals import Refusal
from tests.unit.fakes import new_target


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
    [rec] = store.recordings.all()
    assert (rec.syncd_id, rec.key, rec.status) == ("sid", "calls/a.wav", Status.TRANSCRIBED)
    with store.db.engine.connect() as conn:
        assert migrate.current(conn) == migrate.head()
        assert legacy.user_version(conn) == legacy.LAST
    added = store.recordings.add_objects([S3Object(bucket="b", key="calls/b.wav", etag="e2", size=1)])
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
    store.recordings.add_objects([S3Object(bucket="b", key="a.wav", etag="e1", size=1)])
    store.close()
    with capture_logs() as second:
        again = StateStore(tmp_path / "s.db")
    assert [e["revision"] for e in first if e["event"] == "state.migrated"] == [migrate.head()]
    assert [e for e in second if e["event"] == "state.migrated"] == []
    assert [r.key for r in again.recordings.all()] == ["a.wav"]
    with again.db.engine.connect() as conn:
        assert migrate.current(conn) == migrate.head()


def test_the_state_records_the_release_that_brought_it_up_to_date(tmp_path: Path) -> None:
    """A state from before revision 0004 says so in the log; opened again by the same release nothing is logged;
    opened by another release (same schema) the new one is recorded and logged with the one it replaces."""
    _legacy_file(tmp_path / "old.db", legacy.LAST)
    with capture_logs() as logs:
        store = StateStore(tmp_path / "old.db")
    [migrated] = [e for e in logs if e["event"] == "state.migrated"]
    assert (migrated["app_version"], migrated["previous_app_version"]) == (__version__, migrate.UNRECORDED)
    assert store.schema() == (migrate.head(), __version__)
    store.close()
    with capture_logs() as again:
        StateStore(tmp_path / "old.db").close()
    assert [e["event"] for e in again if e["event"].startswith("state.")] == []
    with sqlite3.connect(tmp_path / "old.db") as db:
        db.execute("UPDATE meta SET value = '0.4.9' WHERE key = 'app_version'")
    with capture_logs() as other:
        StateStore(tmp_path / "old.db").close()
    assert [(e["event"], e["app_version"], e["previous_app_version"]) for e in other] == [
        ("state.app_version", __version__, "0.4.9")
    ]


def test_a_sqlite_state_is_copied_before_its_schema_changes(tmp_path: Path) -> None:
    """The copy holds the file as the earlier release left it; a new file or one already at head gets none, and a
    copy from a first try is kept."""
    path = tmp_path / "old.db"
    _legacy_file(path, 4)
    copy = tmp_path / f"old.db.before-{__version__}"
    with capture_logs() as logs:
        StateStore(path).close()
    assert [e["backup"] for e in logs if e["event"] == "state.migrated"] == [str(copy)]
    with closing(sqlite3.connect(copy)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (4,)
        assert db.execute("SELECT key FROM recordings").fetchall() == [("calls/a.wav",)]
    StateStore(path).close()
    StateStore(tmp_path / "new.db").close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.db", "old.db", copy.name]


def test_a_schema_newer_than_this_release_is_refused_with_what_to_do(tmp_path: Path) -> None:
    """Alembic alone would fail with "Can't locate revision"; the operator is told which release wrote the state and
    how to go back instead, and the file is left as it was."""
    path = tmp_path / "s.db"
    StateStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE alembic_version SET version_num = '0099'")
        db.execute("UPDATE meta SET value = '9.0.0' WHERE key = 'app_version'")
    with pytest.raises(ConfigError, match=r"revision 0099 was written by syncd 9\.0\.0; this is syncd") as refused:
        StateStore(path)
    assert "restore the copy the upgrade left" in str(refused.value)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("0099",)]


def _upgrade_to(engine: Engine, revision: str) -> None:
    """The schema an earlier release left: Alembic's own revisions up to ``revision``, nothing after it."""
    config = Config()
    config.set_main_option("script_location", str(Path(migrate.__file__).parent / "migrations"))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def test_twins_outages_and_refusals_move_from_cursor_documents_to_their_tables(tmp_path: Path) -> None:
    """Revision 0005: the JSON documents releases up to 0004 kept in the cursors table, written as they wrote them,
    arrive in the new tables field by field; their cursor rows go, every other cursor stays."""
    target = new_target(tmp_path, "old.db")
    engine = make_engine(url_for(target))
    _upgrade_to(engine, "0004")
    down = Dependency("s3", False, "HTTP 503", 100.0, 3, 140.5)
    refused = Refusal("webhook", 2, "http://10.0.0.5/hook", "SSRF protection", 99.25)
    twins = {
        "sid-a": {"tasks": [4, 9], "reviewed": [4, 9], "key": "calls/a.wav", "checked": 50.0},
        "sid-b": {"tasks": [5, 6], "reviewed": [], "checked": 0},
    }
    documents = {
        "task-twins": json.dumps(twins, sort_keys=True),
        "dependency:s3": json.dumps(asdict(down)),
        "dependency:transcribe": json.dumps(asdict(Dependency("transcribe", ok=True))),
        "refused:webhook:2": json.dumps(asdict(refused)),
        "export:2": '{"at": "2026-12-03T13:32:39.244869Z", "id": 6}',
    }
    with engine.begin() as conn:
        for name, value in documents.items():
            conn.execute(text("INSERT INTO cursors (name, value) VALUES (:n, :v)"), {"n": name, "v": value})
    engine.dispose()

    store = StateStore(target)
    assert store.schema()[0] == migrate.head() == "0005"
    assert store.twins.all() == {
        "sid-a": twins["sid-a"],
        "sid-b": {"tasks": [5, 6], "reviewed": [], "checked": 0.0},
    }
    assert store.outages.all_known() == {"s3": down, "transcribe": Dependency("transcribe", ok=True)}
    assert store.refusals.all_known() == [refused]
    rows = store.db.read("SELECT name, value FROM cursors")
    assert {r["name"]: r["value"] for r in rows} == {"export:2": documents["export:2"]}
