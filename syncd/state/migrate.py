"""Bring a state database to the newest schema with Alembic: the same revisions for SQLite and PostgreSQL.

Many instances may start at once against one PostgreSQL; a transaction-scoped advisory lock lets one migrate while
the others wait, then find nothing left to do. A SQLite file from before Alembic is first brought to the baseline by
``syncd.state.legacy`` and stamped.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect

from syncd.log import get_logger
from syncd.state import legacy

_LOCK = 0x73796E6364  # "syncd": the advisory lock id migrations serialize on
BASELINE = "0001"


def _config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["connection"] = conn
    return config


def head() -> str:
    """The newest revision this syncd knows."""
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return str(ScriptDirectory.from_config(config).get_current_head())


def current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execution_options(write=True)
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK})")
            before = current(conn)
            if before == head():
                return
            if engine.dialect.name == "sqlite" and _pre_alembic(conn):
                before = f"user_version {legacy.user_version(conn)}"
                legacy.upgrade(conn)
                command.stamp(_config(conn), BASELINE)
            command.upgrade(_config(conn), "head")
    get_logger().info("state.migrated", backend=engine.dialect.name, revision=head(), previous=before)


def _pre_alembic(conn: Connection) -> bool:
    return "alembic_version" not in inspect(conn).get_table_names() and legacy.user_version(conn) > 0
