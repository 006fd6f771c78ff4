"""The state database behind a URL, SQLite (the embedded default, one file) or PostgreSQL (shared by many instances),
and the one way syncd talks to it: short transactions (``tx``) and reads (``read``, ``read_one``, ``scalar``).

SQLAlchemy owns the connections and the dialects; syncd's SQL is written once, in the subset both back ends speak
(``INSERT ... ON CONFLICT``, ``RETURNING``, DB-API ``?`` placeholders), and the one thing only PostgreSQL needs to claim
work safely among many writers, ``FOR UPDATE SKIP LOCKED``, is ``Database.skip_locked``. Within one process every call
takes one lock, so a transaction is never interleaved with another thread's.

Work done under a lease is fenced (``Database.fenced``): while a thread holds a ``Fence``, every write transaction it
opens first checks, with the lease's row locked, that the lease still has the holder and the generation the fence
names, and is refused (``FencedError``, nothing written) when another instance has taken the lease since. A holder that
froze past its lease and woke up therefore changes nothing another holder may have changed meanwhile.

A process can also freeze (SIGSTOP, a VM paused, swap) in the middle of a transaction, holding that lease row's lock:
every other instance trying to take the lease would then queue behind it for as long as it stays frozen. On
PostgreSQL each session therefore has an ``idle_in_transaction_session_timeout`` (``hold_limit``, a third of the lease
under the daemon): the server ends a transaction that has sat idle that long, rolls it back and frees its locks, so the
lease runs out and is taken on time. The woken process finds its connection closed; that transaction fails and
nothing of it was written.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, CursorResult, Engine, RowMapping, TextClause, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

HOLD_LIMIT = 10.0
"""Seconds a PostgreSQL transaction may sit idle before the server ends it (a third of the default lease)."""


@dataclass(frozen=True)
class Fence:
    """The authority a piece of work runs on: the lease ``name`` held by ``holder`` at ``generation`` (which grows on
    each change of holder, so a lease lost and taken back is a new generation)."""

    name: str
    holder: str
    generation: int


class FencedError(Exception):
    """The lease a piece of work ran on was taken by another instance (or cannot be made sure of): nothing of what
    it was about to do may happen."""

    def __init__(self, fence: Fence, why: str) -> None:
        super().__init__(f"lease {fence.name!r} (generation {fence.generation}) {why}")
        self.fence = fence
        self.why = why


class Database:
    """One state database: its engine, and the lock that serializes this process's transactions on it."""

    def __init__(self, target: str | Path = ":memory:", hold_limit: float = HOLD_LIMIT) -> None:
        """``target``: a SQLite file path (its folder is created) or a ``postgresql://`` URL with its password;
        ``hold_limit``: seconds a PostgreSQL transaction may sit idle, holding its locks, before the server ends it."""
        target = str(target)
        if "://" not in target and target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        self.url = url_for(target)
        self.engine = make_engine(self.url, hold_limit)
        self.shared = is_shared(self.engine)
        self.skip_locked = skip_locked(self.engine)
        self._lock = threading.RLock()
        self._open: Connection | None = None
        self._local = threading.local()
        """Per thread: the fences its write transactions check (``fenced``)."""
        self._grown: dict[str, tuple[int, int]] = {}
        """Per table: rows this process added, and the count at which it next refreshes the planner's statistics."""

    @property
    def where(self) -> str:
        """The database, for people: its URL without the password, or the SQLite file."""
        return self.url.render_as_string(hide_password=True) if self.shared else str(self.url.database or ":memory:")

    def close(self) -> None:
        with self._lock:
            self.engine.dispose()

    def one_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """The condition that ``column`` is one of ``values``, and its arguments (``one_of``)."""
        return one_of(column, values, shared=self.shared)

    def grew(self, table: str, rows: int) -> None:
        """``rows`` were just added to ``table``. PostgreSQL plans from statistics its autovacuum refreshes at most
        once a minute, while a first scan grows an empty table by 100 000 rows in less; planned for the few rows it
        last counted, a page's lookups read the whole table instead of the index. Each time this process has doubled
        what it added (from 1000 rows), the table is analyzed: a handful of times, whatever the bucket's size."""
        if not self.shared or rows <= 0:
            return
        with self._lock:
            added, due = self._grown.get(table, (0, 1000))
            added += rows
            if added >= due:
                due = added * 2
                with self.engine.connect() as conn:
                    conn.execution_options(write=True)
                    conn.exec_driver_sql(f"ANALYZE {table}")
                    conn.commit()
            self._grown[table] = (added, due)

    def read(self, sql: str, args: Iterable[Any] = ()) -> list[RowMapping]:
        """Reads share the database with the stages' threads, so they take the lock and fetch everything inside
        it; inside a transaction they see its writes."""
        with self._lock:
            if self._open is not None:
                return list(_execute(self._open, sql, args).mappings())
            with self.engine.connect() as conn:
                rows = _execute(conn, sql, args).mappings().all()
                conn.rollback()
            return list(rows)

    def read_one(self, sql: str, args: Iterable[Any] = ()) -> RowMapping | None:
        rows = self.read(sql, args)
        return rows[0] if rows else None

    def scalar(self, sql: str, args: Iterable[Any] = ()) -> Any:
        row = self.read_one(sql, args)
        return None if row is None else next(iter(row.values()))

    @contextmanager
    def fenced(self, fence: Fence) -> Iterator[None]:
        """Every write transaction this thread opens inside the block checks ``fence`` first."""
        fences: list[Fence] = self._local.__dict__.setdefault("fences", [])
        fences.append(fence)
        try:
            yield
        finally:
            fences.remove(fence)

    def fence_for(self, name: str) -> Fence | None:
        """The fence on lease ``name`` this thread's work runs under, if any."""
        return next((f for f in self._local.__dict__.get("fences", ()) if f.name == name), None)

    @contextmanager
    def tx(self) -> Iterator[Tx]:
        """One write transaction; nested calls join the open one (so a batch of writes commits once). Under a fence
        (``fenced``) it begins by checking the fence, and raises ``FencedError`` (nothing written) when that fails."""
        with self._lock:
            if self._open is not None:
                yield Tx(self._open, self.shared)
                return
            with self.engine.connect() as conn:
                conn.execution_options(write=True)
                with conn.begin():
                    self._open = conn
                    try:
                        for fence in self._local.__dict__.get("fences", ()):
                            self._check(Tx(conn, self.shared), fence)
                        yield Tx(conn, self.shared)
                    finally:
                        self._open = None

    def _check(self, tx: Tx, fence: Fence) -> None:
        """The lease row stays locked until this transaction ends (PostgreSQL's ``FOR UPDATE``; SQLite's one
        writer), so no other instance can take the lease between this check and the commit."""
        lock = " FOR UPDATE" if self.shared else ""
        row = (
            tx.execute(f"SELECT holder, generation FROM leases WHERE name = ?{lock}", (fence.name,)).mappings().first()
        )
        if row is None or row["holder"] != fence.holder or int(row["generation"]) != fence.generation:
            holder, generation = (None, None) if row is None else (row["holder"], row["generation"])
            raise FencedError(fence, f"is now held by {holder!r} (generation {generation})")


class Tx:
    """The open transaction's connection, taking the database's ``?``-placeholder SQL."""

    def __init__(self, conn: Connection, shared: bool) -> None:
        self.conn = conn
        self.shared = shared

    def one_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """The condition that ``column`` is one of ``values``, and its arguments (``one_of``)."""
        return one_of(column, values, shared=self.shared)

    @property
    def rows_per_statement(self) -> int:
        """How many rows one multi-row statement takes: on SQLite 100 (a ``?`` per value, 1000 parameters, far below
        its limit); on PostgreSQL, whose statements take one array per column (``rows``, ``one_of``), a listing page
        of 1000, so a page costs one round trip per statement."""
        return 1000 if self.shared else 100

    def rows(self, types: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
        """``rows`` as the source of an ``INSERT`` (``types``: each column's PostgreSQL type), and its arguments. On
        PostgreSQL one array per column (``SELECT * FROM unnest(...)``), so the statement has as many parameters as
        columns whatever the count (see ``one_of``); on SQLite a ``VALUES`` list."""
        if self.shared:
            columns = [list(column) for column in zip(*rows, strict=True)] or [[] for _ in types]
            return "SELECT * FROM unnest(" + ", ".join(f"CAST(? AS {t}[])" for t in types) + ")", columns
        marks = "(" + ", ".join("?" * len(types)) + ")"
        return "VALUES " + ", ".join([marks] * len(rows)), [v for row in rows for v in row]

    def execute(self, sql: str, args: Iterable[Any] = ()) -> CursorResult[Any]:
        return _execute(self.conn, sql, args)

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        params = [_params(row) for row in rows]
        if params:
            self.conn.execute(_text(sql), params)


def one_of(column: str, values: Sequence[Any], *, shared: bool) -> tuple[str, list[Any]]:
    """``column`` is one of ``values`` (a listing page's keys, a batch's ids): on PostgreSQL one array parameter
    (``= ANY(?)``), planned as an index lookup and parsed once whatever the count (psycopg re-parses a statement with
    more than 50 parameters every time, and a first scan sends thousands); on SQLite, which has no arrays, one ``?``
    each."""
    if shared:
        return f"{column} = ANY(?)", [list(values)]
    return f"{column} IN ({','.join('?' * len(values))})", list(values)


def _execute(conn: Connection, sql: str, args: Iterable[Any]) -> CursorResult[Any]:
    return conn.execute(_text(sql), _params(args))


@functools.lru_cache(maxsize=1024)
def _text(sql: str) -> TextClause:
    """DB-API ``?`` placeholders as SQLAlchemy's named ones (``:p0``, ``:p1``...), which every dialect binds."""
    parts = sql.split("?")
    return text("".join(f"{part}:p{i}" for i, part in enumerate(parts[:-1])) + parts[-1])


def _params(args: Iterable[Any]) -> dict[str, Any]:
    return {f"p{i}": value.value if isinstance(value, Enum) else value for i, value in enumerate(args)}


def url_for(target: str) -> URL:
    """A SQLAlchemy URL for a ``postgresql://`` URL or a SQLite file path (``:memory:`` for tests)."""
    if "://" in target:
        url = make_url(target)
        return url.set(drivername="postgresql+psycopg") if url.drivername in ("postgresql", "postgres") else url
    return make_url("sqlite://") if target == ":memory:" else URL.create("sqlite", database=target)


def make_engine(url: URL, hold_limit: float = HOLD_LIMIT) -> Engine:
    if url.get_backend_name() == "sqlite":
        return _sqlite(url)
    options = f"-c idle_in_transaction_session_timeout={max(1, round(hold_limit * 1000))}"
    # pool_pre_ping: a pooled connection the server ended (the hold limit above, a restart) is replaced at checkout
    # instead of failing the next transaction, so a woken holder's next write reaches its fence check.
    return create_engine(
        url,
        pool_size=2,
        max_overflow=2,
        pool_recycle=1800,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 10, "options": options},
    )


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
