"""The event tables a database holds when it produces or consumes events.

``outbox_events`` holds the events a transaction produced, written in that transaction, until a
relay has published them; ``processed_events`` holds the ids of events a consumer has applied,
written in the same transaction as the consumer's effect. Both live on :data:`EVENTS_METADATA`;
a service that has its own tables copies them onto its metadata with :func:`include_event_tables`
(the hub's migration ``0012`` creates them in the hub's database).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

from hub.db.models import UTCDateTime

__all__ = [
    "EVENTS_METADATA",
    "include_event_tables",
    "outbox_events",
    "processed_events",
]

# The same convention as the hub's own tables, so names agree wherever the tables are copied.
EVENTS_METADATA = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_JSON = JSON().with_variant(JSONB(), "postgresql")
# SQLite numbers rows only for an INTEGER PRIMARY KEY; PostgreSQL gets a bigint identity.
_SEQ = BigInteger().with_variant(Integer(), "sqlite")

outbox_events = Table(
    "outbox_events",
    EVENTS_METADATA,
    # Insertion order: the relay publishes in it, which keeps the order of events of one key.
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("type", String(200), nullable=False),
    # Events of one key (an aggregate: "payment:42") are published in order.
    Column("key", String(200), nullable=True),
    Column("payload", _JSON, nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    # Backoff: the row is not tried again before this time.
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    # The lease: a relay that claimed the row owns it until then; a crashed relay's rows
    # come back when the lease runs out.
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_until", UTCDateTime(), nullable=True),
    Column("sent_at", UTCDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),
    sqlite_autoincrement=True,
)
Index("ix_outbox_events_pending", outbox_events.c.sent_at, outbox_events.c.seq)
Index("ix_outbox_events_key", outbox_events.c.key, outbox_events.c.seq)

processed_events = Table(
    "processed_events",
    EVENTS_METADATA,
    # One row per (consumer, event): several consumers may share one database.
    Column("consumer", String(200), primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("event_type", String(200), nullable=False),
    Column("processed_at", UTCDateTime(), nullable=False),
)


def include_event_tables(metadata: MetaData) -> tuple[Table, Table]:
    """Copy the outbox and processed-events tables onto ``metadata`` (a service's own)."""
    return outbox_events.to_metadata(metadata), processed_events.to_metadata(metadata)
