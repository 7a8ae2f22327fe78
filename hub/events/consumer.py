"""Idempotent consumers: an event's effect is applied once, however often the event arrives.

Delivery is at-least-once (a relay that died after publishing, a consumer that died before its
ack), so a consumer records each event id it applied in ``processed_events`` **in the same
transaction as its effect**. A redelivered event finds its id and is acknowledged without
effect; an effect that raises rolls the id back with it, so the bus retries the event (with
backoff, then dead-letters it: the bus's rules).

    consumer = IdempotentConsumer(engine, "notifications", send_notification)
    await bus.subscribe("notifications", "#.notify", consumer)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.backends.events.base import Event
from hub.db.engine import WRITE_LOCK, database_errors
from hub.events.tables import processed_events

__all__ = ["Effect", "IdempotentConsumer", "mark_processed"]

log = structlog.get_logger(__name__)

#: The consumer's effect: runs inside the transaction that records the event as processed.
Effect = Callable[[AsyncConnection, Event], Awaitable[None]]


async def mark_processed(conn: AsyncConnection, consumer: str, event: Event) -> bool:
    """Record ``event`` as applied by ``consumer`` in the open transaction; False if it was."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    result = await conn.execute(
        insert(processed_events)
        .values(
            consumer=consumer,
            event_id=event.id,
            event_type=event.type,
            processed_at=datetime.now(UTC),
        )
        .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
    )
    return bool(result.rowcount)


class IdempotentConsumer:
    """An event handler that applies ``effect`` at most once per event id for ``name``."""

    def __init__(self, engine: AsyncEngine, name: str, effect: Effect) -> None:
        if not name:
            raise ValueError("a consumer needs a name")
        self._engine = engine
        self.name = name
        self._effect = effect
        self.duplicates = 0

    async def __call__(self, event: Event) -> None:
        with database_errors():
            async with self._engine.connect() as conn:
                # The id is written first: on PostgreSQL a concurrent duplicate waits on it.
                await conn.execution_options(**WRITE_LOCK)
                async with conn.begin():
                    if not await mark_processed(conn, self.name, event):
                        self.duplicates += 1
                        log.info(
                            "events.duplicate_skipped",
                            consumer=self.name,
                            event_id=event.id,
                            event_type=event.type,
                        )
                        return
                    await self._effect(conn, event)
