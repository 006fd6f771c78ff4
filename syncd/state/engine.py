"""The state database behind a URL: SQLite (the embedded default, one file) or PostgreSQL (shared by many instances).

SQLAlchemy owns the connections and the dialects; syncd's SQL is written once, in the subset both back ends speak
(``INSERT ... ON CONFLICT``, ``RETURNING``), and the one thing only PostgreSQL needs to claim work safely among many
writers, ``FOR UPDATE SKIP LOCKED``, is named by :func:`skip_locked`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool


def url_for(target: str) -> URL:
    """A SQLAlchemy URL for a ``postgresql://`` URL or a SQLite file path (``:memory:`` for tests)."""
    if "://" in target:
        url = make_url(target)
        return url.set(drivername="postgresql+psycopg") if url.drivername in ("postgresql", "postgres") else url
    return make_url("sqlite://") if target == ":memory:" else URL.create("sqlite", database=target)


def make_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        return _sqlite(url)
    return create_engine(url, pool_size=2, max_overflow=2, pool_recycle=1800, connect_args={"connect_timeout": 10})


def is_shared(engine: Engine) -> bool:
    """True on a server database that many instances may share."""
    return engine.dialect.name != "sqlite"


def skip_locked(engine: Engine) -> str:
    """The row-locking clause a claiming sub-select takes: concurrent claimers skip each other's rows instead of
    queueing behind them. SQLite needs none, since it admits one writer at a time."""
    return " FOR UPDATE SKIP LOCKED" if is_shared(engine) else ""


def _sqlite(url: URL) -> Engine:
    memory = url.database in (None, "", ":memory:")
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    if memory:
        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _connect(dbapi: Any, _record: Any) -> None:
        dbapi.isolation_level = None  # transactions are begun below, not by the driver
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            dbapi.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # A write takes the write lock up front: two writers never deadlock upgrading a read lock.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

    return engine
