"""Event tables of the hub's own database (migration ``0012``).

- ``outbox_events`` and ``processed_events``: the hub's copy of :mod:`hub.events.tables`, for
  the events the hub itself produces and consumes.
- ``event_bindings`` and ``event_deliveries``: the embedded event bus
  (:mod:`hub.backends.events.database`) when no RabbitMQ is configured. A binding is a queue's
  topic pattern; publishing writes one delivery row per queue whose pattern matches, and the
  queue's consumers (in any process that opens this database) claim rows with a lease.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db.models import Base, UTCDateTime
from hub.events.tables import include_event_tables

__all__ = ["EventBinding", "EventDelivery"]

include_event_tables(Base.metadata)

_SEQ = BigInteger().with_variant(Integer(), "sqlite")


class EventBinding(Base):
    """A queue bound to a topic pattern; publishes copy matching events into the queue."""

    __tablename__ = "event_bindings"

    queue: Mapped[str] = mapped_column(String(200), primary_key=True)
    pattern: Mapped[str] = mapped_column(String(200), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EventDelivery(Base):
    """One event waiting in one queue; gone once handled, kept with ``dead_at`` when dead."""

    __tablename__ = "event_deliveries"
    __table_args__ = (
        Index("ix_event_deliveries_ready", "queue", "dead_at", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(String(200))
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
