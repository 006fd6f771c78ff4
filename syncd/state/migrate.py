"""Bring a state database to the newest schema with Alembic: the same revisions for SQLite and PostgreSQL.

Many instances may start at once against one PostgreSQL; a transaction-scoped advisory lock lets one migrate while
the others wait, then find nothing left to do. A SQLite file from before Alembic is first brought to the baseline by
``syncd.state.legacy`` and stamped. A SQLite file is copied beside itself before its schema changes, since Alembic
cannot take it back (the revisions have no downgrade): restoring that copy is how an operator goes back to the release
they came from. The state records the release that last brought it up to date (``meta.app_version``).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from syncd import __version__
from syncd.errors import ConfigError
from syncd.log import get_logger
from syncd.state import legacy

_LOCK = 0x73796E6364  # "syncd": the advisory lock id migrations serialize on
BASELINE = "0001"
UNRECORDED = "0.4.0 or older"
"""What a state migrated from before revision 0004 says of the release that wrote it (none recorded one)."""


def _config(conn: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["connection"] = conn
    return config


def head() -> str:
    """The newest revision this syncd knows."""
    return str(ScriptDirectory.from_config(_config()).get_current_head())


def known(revision: str) -> bool:
    return revision in {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}


def current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def app_version(conn: Connection) -> str | None:
    """The syncd release that last brought this state up to date; None before revision 0004 made the table."""
    if "meta" not in inspect(conn).get_table_names():
        return None
    found = conn.execute(text("SELECT value FROM meta WHERE key = 'app_version'")).scalar()
    return None if found is None else str(found)


def upgrade(engine: Engine) -> None:
    backup = _backup(engine) if engine.dialect.name == "sqlite" else None
    with engine.connect() as conn:
        conn.execution_options(write=True)
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK})")
            before = current(conn)
            _refuse_newer(conn, before)
            recorded = app_version(conn)
            if before == head() and recorded == __version__:
                return
            if before != head():
                if engine.dialect.name == "sqlite" and _pre_alembic(conn):
                    before = f"user_version {legacy.user_version(conn)}"
                    legacy.upgrade(conn)
                    command.stamp(_config(conn), BASELINE)
                command.upgrade(_config(conn), "head")
            _record(conn)
    previous = recorded or (UNRECORDED if before else None)
    if before == head():
        get_logger().info("state.app_version", app_version=__version__, previous_app_version=previous)
        return
    get_logger().info(
        "state.migrated",
        backend=engine.dialect.name,
        revision=head(),
        previous=before,
        app_version=__version__,
        previous_app_version=previous,
        backup=None if backup is None else str(backup),
    )


def _record(conn: Connection) -> None:
    conn.execute(text("DELETE FROM meta WHERE key = 'app_version'"))
    conn.execute(text("INSERT INTO meta (key, value) VALUES ('app_version', :v)"), {"v": __version__})


def _refuse_newer(conn: Connection, revision: str | None) -> None:
    """A state a newer release migrated: Alembic would fail with "Can't locate revision"; say what to do instead."""
    if revision is None or known(revision):
        return
    by = app_version(conn) or "a newer syncd"
    raise ConfigError(
        f"state: schema revision {revision} was written by syncd {by}; this is syncd {__version__} (newest schema it"
        f" knows: {head()}). Run syncd {by} or newer, or restore the copy the upgrade left beside a SQLite state"
        " (<path>.before-<version>) or your PostgreSQL backup from before the upgrade"
    )


def _backup(engine: Engine) -> Path | None:
    """A copy of a SQLite state whose schema is about to change, as ``<path>.before-<this version>``; None when
    nothing changes (or there is no file yet). An existing copy is kept: it is the one from before the first try."""
    path = engine.url.database
    if not path or path == ":memory:" or not Path(path).is_file() or Path(path).stat().st_size == 0:
        return None
    with engine.connect() as conn:
        revision = current(conn)
        if revision == head() or (revision is None and not _pre_alembic(conn)):
            return None
    target = Path(f"{path}.before-{__version__}")
    if not target.exists():
        with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(target)) as copy:
            source.backup(copy)
            copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file to restore, no -wal beside it
    return target


def _pre_alembic(conn: Connection) -> bool:
    return "alembic_version" not in inspect(conn).get_table_names() and legacy.user_version(conn) > 0
