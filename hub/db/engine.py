"""The hub's database engine: SQLite through aiosqlite (embedded) or PostgreSQL through asyncpg.

Everything dialect-specific about connecting lives here. Callers that need a write transaction
serialised against other writers open it with :data:`WRITE_LOCK` as an execution option and lock
rows with ``SELECT ... FOR UPDATE``: PostgreSQL honours the row lock, and SQLite (which ignores
``FOR UPDATE``) starts the transaction with ``BEGIN IMMEDIATE`` instead, taking the write lock
up front so two writers cannot both read the same state and then race to commit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc, make_url, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hub.errors import BackendUnavailable, HubError

__all__ = ["WRITE_LOCK", "create_engine", "database_errors", "ping"]

#: Execution options for a connection whose next transaction must hold the database write lock.
WRITE_LOCK: dict[str, Any] = {"hub_write_lock": True}

_SQLITE_BUSY_TIMEOUT_MS = 10_000
_WAL_ATTEMPTS = 10  # about a second in all, only while a new file is being switched
_PG_CONNECT_TIMEOUT_S = 5.0
#: A pooled PostgreSQL connection idle for less than this is used without a ping first.
_PG_TRUST_IDLE_S = 2.0

# Failures that mean "the database cannot be reached or used right now", as opposed to a bug in
# a statement; they become BackendUnavailable (503) so callers and probes can tell them apart.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.DisconnectionError,
    exc.TimeoutError,
    OSError,
    TimeoutError,
)


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An async engine for ``sqlite+aiosqlite://`` or ``postgresql+asyncpg://`` URLs."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, echo=echo)
    if parsed.get_backend_name() == "postgresql":
        return _postgres_engine(parsed, echo=echo)
    raise HubError(f"unsupported database URL scheme: {parsed.drivername}")


def _postgres_engine(url: URL, *, echo: bool) -> AsyncEngine:
    engine = create_async_engine(
        url,
        echo=echo,
        pool_size=10,
        max_overflow=10,
        pool_timeout=10,
        # Connections are recycled before typical proxy/firewall idle cut-offs.
        pool_recycle=1800,
        connect_args={"timeout": _PG_CONNECT_TIMEOUT_S},
    )
    dialect = engine.sync_engine.dialect

    # Pessimistic checks, but only of connections that sat idle: SQLAlchemy's pool_pre_ping
    # costs a round trip on every checkout (about a tenth of a busy process's CPU, measured
    # with the visa benchmark). A connection back in the pool moments ago is trusted; if the
    # server went away meanwhile, the statement fails as unavailable and SQLAlchemy
    # invalidates the whole pool, so the next checkout connects afresh.
    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["hub_idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("hub_idle_since", None)
        if since is not None and time.monotonic() - since < _PG_TRUST_IDLE_S:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool discards this connection and checks out (or makes) another.
            raise exc.DisconnectionError(f"stale connection: {_describe(error)}") from error

    return engine


def _sqlite_engine(url: URL, *, echo: bool) -> AsyncEngine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BackendUnavailable(f"database unreachable: {error}") from error
    engine = create_async_engine(url, echo=echo)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy (see the "begin" hook) so that SELECTs and
        # DDL run inside real transactions and writers can ask for BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
            _use_wal(cursor)
            cursor.execute("PRAGMA foreign_keys=ON")
            # WAL is durable across crashes with NORMAL; FULL only adds an fsync per commit.
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("hub_write_lock", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _use_wal(cursor: Any) -> None:
    """Put the database in WAL mode; several processes may open a new file at the same moment.

    Switching the mode needs the exclusive lock, and SQLite answers "database is locked" at once,
    without waiting, when two connections would deadlock over it. Only a new file is switched
    (an existing one is already WAL and the pragma is a no-op), so a short, bounded retry is
    enough and blocks only the first connections to a new database.
    """
    for attempt in range(_WAL_ATTEMPTS):
        try:
            cursor.execute("PRAGMA journal_mode")
            row = cursor.fetchone()
            if row is not None and str(row[0]).lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as error:  # the driver's OperationalError, wrapped by the adapter
            if "locked" not in str(error) or attempt == _WAL_ATTEMPTS - 1:
                raise
            time.sleep(0.02 * (attempt + 1))


def _describe(error: BaseException) -> str:
    # The DBAPI's own message is the useful part; SQLAlchemy's wrapper adds the statement and
    # a documentation link that only clutter a problem-details response.
    orig = getattr(error, "orig", None)
    message = str(orig if orig is not None else error).strip()
    return message or type(error).__name__


@contextmanager
def database_errors() -> Iterator[None]:
    """Translate SQLAlchemy and driver exceptions raised inside the block into hub errors."""
    try:
        yield
    except HubError:
        raise
    except _UNAVAILABLE as error:
        raise BackendUnavailable(f"database unavailable: {_describe(error)}") from error
    except exc.DBAPIError as error:
        if error.connection_invalidated:
            raise BackendUnavailable(f"database unavailable: {_describe(error)}") from error
        raise HubError(f"database error: {_describe(error)}") from error
    except exc.SQLAlchemyError as error:
        raise HubError(f"database error: {_describe(error)}") from error


async def ping(engine: AsyncEngine) -> None:
    """Run ``SELECT 1``; raise :class:`BackendUnavailable` if the database does not answer."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (exc.SQLAlchemyError, OSError, TimeoutError) as error:
        raise BackendUnavailable(f"database unreachable: {_describe(error)}") from error
