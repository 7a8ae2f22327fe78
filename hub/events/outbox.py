"""The transactional outbox: events written in the producer's own transaction, published later.

A producer calls :func:`enqueue` on the connection of the transaction that makes its change
(a payment captured, a contract signed). The event row commits or rolls back with that change,
so there is never a change without its event nor an event without its change; a relay
(:mod:`hub.events.relay`) publishes committed rows to the event bus afterwards and marks them
sent once the broker confirmed them. Delivery is therefore at-least-once: consumers dedupe by
event id (:mod:`hub.events.consumer`).

Usable by the hub and by domain services alike: a service copies the tables onto its own
metadata (:func:`hub.events.tables.include_event_tables`) and runs a relay in its process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.backends.events.base import Event
from hub.events.tables import outbox_events

__all__ = ["OutboxStats", "enqueue", "outbox_stats"]


async def enqueue(
    conn: AsyncConnection,
    *,
    type: str,
    payload: dict[str, Any],
    key: str | None = None,
    event_id: str | None = None,
) -> Event:
    """Add an event to the outbox inside the caller's open transaction; returns the event.

    ``key`` orders events: those of one key are published in the order they were enqueued.
    ``event_id`` makes enqueueing idempotent: a second enqueue of the same id (a retried
    request) adds nothing and returns the event as given. The payload must be JSON.
    """
    if not conn.in_transaction():
        raise RuntimeError("enqueue() needs the producer's open transaction (conn.begin())")
    event = (
        Event(type=type, payload=payload)
        if event_id is None
        else (Event(type=type, payload=payload, id=event_id))
    )
    # Refuses a payload that cannot travel now, in the producer's transaction, not at the relay.
    event.encode()
    if key is not None and not key:
        raise ValueError("an event key must not be empty")
    now = datetime.now(UTC)
    values = {
        "id": event.id,
        "type": event.type,
        "key": key,
        "payload": event.payload,
        "occurred_at": event.occurred_at,
        "created_at": now,
        "attempts": 0,
        "next_attempt_at": now,
    }
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(outbox_events).values(**values).on_conflict_do_nothing(index_elements=["id"])
    await conn.execute(statement)
    return event


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxStats:
    """How far behind the relay is: unsent rows and the age of the oldest, in seconds."""

    depth: int
    oldest_age_seconds: float


async def outbox_stats(conn: AsyncConnection, *, now: datetime | None = None) -> OutboxStats:
    """Count the unsent rows and age the oldest one."""
    row = (
        await conn.execute(
            select(func.count(), func.min(outbox_events.c.created_at)).where(
                outbox_events.c.sent_at.is_(None)
            )
        )
    ).one()
    depth, oldest = int(row[0]), row[1]
    if oldest is None:
        return OutboxStats(depth=0, oldest_age_seconds=0.0)
    if oldest.tzinfo is None:  # min() over SQLite text skips the column type's conversion
        oldest = datetime.fromisoformat(str(oldest)).replace(tzinfo=UTC)
    age = ((now or datetime.now(UTC)) - oldest).total_seconds()
    return OutboxStats(depth=depth, oldest_age_seconds=max(age, 0.0))
