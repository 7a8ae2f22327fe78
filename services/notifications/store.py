"""The notification service's own tables: messages (the inbox), deliveries, preferences.

The tables live on the service's own metadata in its own database (an SQLite file by default;
its own PostgreSQL database or schema through ``schema_translate_map``). The consumers'
``processed_events`` table is copied onto the same metadata, so an event's effect (a message
added, a receipt applied) commits with the record that the event was applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db.models import UTCDateTime
from hub.events.tables import include_event_tables
from hub.servicekit.store import SEQUENCE, ServiceStore, as_dict, service_metadata, upsert
from services.notifications.domain import Preferences

__all__ = [
    "METADATA",
    "Connection",
    "NotificationStore",
    "Page",
    "deliveries",
    "messages",
    "preferences",
]

METADATA = service_metadata()

messages = Table(
    "notification_messages",
    METADATA,
    Column("seq", SEQUENCE, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("notification_id", String(120), nullable=False, unique=True),
    Column("owner", String(220), nullable=False),
    Column("template", String(120), nullable=False),
    Column("language", String(2), nullable=False),
    Column("subject", String(400), nullable=False),
    Column("body", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("data", JSON, nullable=False),
    Column("reference", String(200), nullable=True),
    # pending (a channel to send), sent (waiting for its receipt), delivered, failed, inbox_only
    Column("status", String(16), nullable=False),
    Column("channel", String(8), nullable=True),
    Column("plan", JSON, nullable=False),  # [[channel, address], ...] in the order to try
    Column("step", Integer, nullable=False),  # the plan's entry being tried
    Column("attempts", Integer, nullable=False),  # sends of that entry so far
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("read_at", UTCDateTime(), nullable=True),
    sqlite_autoincrement=True,
)
Index("ix_notification_messages_inbox", messages.c.owner, messages.c.seq)
Index("ix_notification_messages_due", messages.c.status, messages.c.next_attempt_at)

deliveries = Table(
    "notification_deliveries",
    METADATA,
    Column("id", String(60), primary_key=True),  # "<message id>.<channel>": the provider reference
    Column(
        "message_id",
        String(40),
        ForeignKey("notification_messages.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("channel", String(8), nullable=False),
    Column("address", String(320), nullable=False),
    Column("status", String(16), nullable=False),
    Column("provider_id", String(64), nullable=True),
    Column("error", String(500), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
)

preferences = Table(
    "notification_preferences",
    METADATA,
    Column("owner", String(220), primary_key=True),
    Column("channels", JSON, nullable=False),
    Column("language", String(2), nullable=False),
    Column("email", String(320), nullable=True),
    Column("phone", String(16), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
)

include_event_tables(METADATA)

_PAGE_MAX: Final = 100
#: The connection of an open transaction, as the consumers' effects get it.
Connection = AsyncConnection


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    """A page of one inbox, newest first."""

    items: list[dict[str, Any]]
    next_cursor: str | None
    unread: int


class NotificationStore(ServiceStore):
    """Reads and writes of the notification tables."""

    metadata = METADATA
    #: A lost race is the database's error here: a consumer's effect is retried whole.
    lost_race = None

    # ---- preferences ----------------------------------------------------------------------

    async def preferences_in(self, conn: AsyncConnection, owner: str) -> Preferences:
        row = (
            (await conn.execute(select(preferences).where(preferences.c.owner == owner)))
            .mappings()
            .first()
        )
        if row is None:
            return Preferences()
        return Preferences(
            channels=tuple(row["channels"]),
            language=row["language"],
            email=row["email"],
            phone=row["phone"],
            stored=True,
        )

    async def preferences(self, owner: str) -> tuple[Preferences, datetime | None]:
        async with self.reading() as conn:
            found = await self.preferences_in(conn, owner)
            at = (
                await conn.execute(
                    select(preferences.c.updated_at).where(preferences.c.owner == owner)
                )
            ).scalar()
            return found, at

    async def put_preferences(self, owner: str, chosen: Preferences) -> datetime:
        now = datetime.now(UTC)
        values = {
            "channels": list(chosen.channels),
            "language": chosen.language,
            "email": chosen.email,
            "phone": chosen.phone,
            "updated_at": now,
        }
        async with self.writing() as conn:
            statement = upsert(conn, preferences).values(owner=owner, **values)
            await conn.execute(
                statement.on_conflict_do_update(index_elements=["owner"], set_=values)
            )
        return now

    # ---- messages -------------------------------------------------------------------------

    async def add_message(self, conn: AsyncConnection, row: dict[str, Any]) -> bool:
        """Add a message in the caller's transaction; False when its notification exists."""
        result = await conn.execute(
            upsert(conn, messages)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["notification_id"])
        )
        return bool(result.rowcount)

    async def add_delivery(self, conn: AsyncConnection, row: dict[str, Any]) -> None:
        await conn.execute(
            upsert(conn, deliveries).values(**row).on_conflict_do_nothing(index_elements=["id"])
        )

    async def message_in(self, conn: AsyncConnection, message_id: str) -> dict[str, Any] | None:
        return as_dict(
            (await conn.execute(select(messages).where(messages.c.id == message_id))).first()
        )

    async def delivery_in(self, conn: AsyncConnection, delivery_id: str) -> dict[str, Any] | None:
        return as_dict(
            (await conn.execute(select(deliveries).where(deliveries.c.id == delivery_id))).first()
        )

    async def set_message(self, conn: AsyncConnection, message_id: str, **values: Any) -> None:
        await conn.execute(update(messages).where(messages.c.id == message_id).values(**values))

    async def set_delivery(self, conn: AsyncConnection, delivery_id: str, **values: Any) -> None:
        await conn.execute(
            update(deliveries).where(deliveries.c.id == delivery_id).values(**values)
        )

    async def due(
        self, now: datetime, *, status: str = "pending", limit: int = 50
    ) -> list[dict[str, Any]]:
        """Messages due now, oldest first: ``pending`` to send, ``sent`` to look up."""
        async with self.reading() as conn:
            rows = await conn.execute(
                select(messages)
                .where(messages.c.status == status, messages.c.next_attempt_at <= now)
                .order_by(messages.c.seq)
                .limit(limit)
            )
            return [dict(row) for row in rows.mappings()]

    async def deliveries_of(self, message_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        ids = list(message_ids)
        found: dict[str, list[dict[str, Any]]] = {message_id: [] for message_id in ids}
        if not ids:
            return found
        async with self.reading() as conn:
            rows = await conn.execute(
                select(deliveries)
                .where(deliveries.c.message_id.in_(ids))
                .order_by(deliveries.c.updated_at)
            )
            for row in rows.mappings():
                found[row["message_id"]].append(dict(row))
        return found

    # ---- the inbox ------------------------------------------------------------------------

    async def inbox(self, owner: str, *, unread_only: bool, limit: int, cursor: int | None) -> Page:
        limit = max(1, min(limit, _PAGE_MAX))
        query = select(messages).where(messages.c.owner == owner)
        if unread_only:
            query = query.where(messages.c.read_at.is_(None))
        if cursor is not None:
            query = query.where(messages.c.seq < cursor)
        async with self.reading() as conn:
            rows = [
                dict(row)
                for row in (
                    await conn.execute(query.order_by(messages.c.seq.desc()).limit(limit + 1))
                ).mappings()
            ]
            unread = (
                await conn.execute(
                    select(func.count()).where(
                        messages.c.owner == owner, messages.c.read_at.is_(None)
                    )
                )
            ).scalar_one()
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(
            items=rows,
            next_cursor=str(rows[-1]["seq"]) if more and rows else None,
            unread=int(unread),
        )

    async def owned(self, owner: str, message_id: str) -> dict[str, Any] | None:
        """The message if ``owner`` owns it (another's is as absent as a missing one)."""
        async with self.reading() as conn:
            row = (
                (
                    await conn.execute(
                        select(messages).where(
                            messages.c.id == message_id, messages.c.owner == owner
                        )
                    )
                )
                .mappings()
                .first()
            )
            return dict(row) if row is not None else None

    async def mark(self, owner: str, message_id: str, *, read: bool) -> bool:
        """Mark an owned message read (first time kept) or unread; False if it is not there."""
        now = datetime.now(UTC)
        async with self.writing() as conn:
            result = await conn.execute(
                update(messages)
                .where(messages.c.id == message_id, messages.c.owner == owner)
                .values(read_at=func.coalesce(messages.c.read_at, now) if read else None)
            )
            return bool(result.rowcount)

    async def by_notification(self, notification_ids: Sequence[str]) -> list[dict[str, Any]]:
        async with self.reading() as conn:
            rows = await conn.execute(
                select(messages).where(messages.c.notification_id.in_(list(notification_ids)))
            )
            return [dict(row) for row in rows.mappings()]
