"""The base of every store: an engine, a clock, and read and serialised-write connections."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.db.engine import WRITE_LOCK, database_errors

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC: the stores' default clock."""
    return datetime.now(UTC)


class Store:
    """An engine, a clock, and connections whose driver errors become hub errors."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock = utcnow) -> None:
        self._engine = engine
        self._clock = clock

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        with database_errors():
            async with self._engine.connect() as conn:
                yield conn

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that holds the write lock (one writer at a time, on both databases)."""
        with database_errors():
            async with self._engine.connect() as conn:
                await conn.execution_options(**WRITE_LOCK)
                async with conn.begin():
                    yield conn
