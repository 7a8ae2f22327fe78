"""The store of webhook subscriptions and deliveries (tables in :mod:`hub.db.webhook_tables`)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.db.engine import WRITE_LOCK, database_errors
from hub.db.webhook_tables import WebhookDeliveryRow, WebhookSubscriptionRow

__all__ = ["StoredDelivery", "Subscription", "WebhookStore", "new_subscription_id"]

_subs = cast(Table, WebhookSubscriptionRow.__table__)
_dels = cast(Table, WebhookDeliveryRow.__table__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscription:
    """A vendor application's webhook subscription (its secret stays sealed here)."""

    id: str
    client_id: str
    url: str
    event_types: tuple[str, ...]
    description: str
    secret_ciphertext: str
    created_at: datetime
    created_by: str
    disabled_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredDelivery:
    """One event for one subscription, with its attempts so far."""

    id: int
    subscription_id: str
    event_id: str
    event_type: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


def _subscription(row: Any) -> Subscription:
    return Subscription(
        id=row.id,
        client_id=row.client_id,
        url=row.url,
        event_types=tuple(row.event_types),
        description=row.description,
        secret_ciphertext=row.secret_ciphertext,
        created_at=row.created_at,
        created_by=row.created_by,
        disabled_at=row.disabled_at,
    )


def _delivery(row: Any) -> StoredDelivery:
    return StoredDelivery(
        id=row.id,
        subscription_id=row.subscription_id,
        event_id=row.event_id,
        event_type=row.event_type,
        payload=dict(row.payload),
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_status=row.last_status,
        last_error=row.last_error,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
    )


def new_subscription_id() -> str:
    return "whs_" + secrets.token_hex(12)


class WebhookStore:
    """Subscriptions, and the deliveries the dispatcher works through."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    new_id = staticmethod(new_subscription_id)

    async def create(
        self,
        *,
        id: str,
        client_id: str,
        url: str,
        event_types: list[str],
        description: str,
        secret_ciphertext: str,
        created_by: str,
        now: datetime,
    ) -> Subscription:
        values = {
            "id": id,
            "client_id": client_id,
            "url": url,
            "event_types": event_types,
            "description": description,
            "secret_ciphertext": secret_ciphertext,
            "created_at": now,
            "created_by": created_by,
            "disabled_at": None,
        }
        with database_errors():
            async with self._engine.begin() as conn:
                await conn.execute(_subs.insert().values(**values))
        return Subscription(
            id=id,
            client_id=client_id,
            url=url,
            event_types=tuple(event_types),
            description=description,
            secret_ciphertext=secret_ciphertext,
            created_at=now,
            created_by=created_by,
            disabled_at=None,
        )

    async def get(self, subscription_id: str) -> Subscription | None:
        with database_errors():
            async with self._engine.connect() as conn:
                row = (
                    await conn.execute(select(_subs).where(_subs.c.id == subscription_id))
                ).first()
        return None if row is None else _subscription(row)

    async def subscriptions(self, *, client_id: str | None = None) -> list[Subscription]:
        query = select(_subs).order_by(_subs.c.created_at, _subs.c.id)
        if client_id is not None:
            query = query.where(_subs.c.client_id == client_id)
        with database_errors():
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        return [_subscription(row) for row in rows]

    async def delete(self, subscription_id: str) -> bool:
        with database_errors():
            async with self._engine.begin() as conn:
                result = await conn.execute(_subs.delete().where(_subs.c.id == subscription_id))
        return bool(result.rowcount)

    async def fan_out(
        self,
        *,
        event_id: str,
        event_type: str,
        payload: dict[str, Any],
        subscription_ids: list[str],
        now: datetime,
    ) -> int:
        """One pending delivery per subscription; an event seen again adds nothing."""
        if not subscription_ids:
            return 0
        rows = [
            {
                "subscription_id": sid,
                "event_id": event_id,
                "event_type": event_type,
                "payload": payload,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for sid in subscription_ids
        ]
        added = 0
        with database_errors():
            async with self._engine.connect() as conn:
                await conn.execution_options(**WRITE_LOCK)
                async with conn.begin():
                    insert = (
                        postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
                    )
                    for row in rows:
                        result = await conn.execute(
                            insert(_dels)
                            .values(**row)
                            .on_conflict_do_nothing(index_elements=["subscription_id", "event_id"])
                        )
                        added += int(result.rowcount or 0)
        return added

    async def claim_due(
        self, *, now: datetime, limit: int, lease: timedelta
    ) -> list[StoredDelivery]:
        """Lease up to ``limit`` pending deliveries whose time has come."""
        due = (
            select(_dels.c.id)
            .where(
                _dels.c.status == "pending",
                _dels.c.next_attempt_at <= now,
                or_(_dels.c.claimed_until.is_(None), _dels.c.claimed_until <= now),
            )
            .order_by(_dels.c.next_attempt_at, _dels.c.id)
            .limit(limit)
        )
        with database_errors():
            async with self._engine.connect() as conn:
                await conn.execution_options(**WRITE_LOCK)
                async with conn.begin():
                    if conn.dialect.name == "postgresql":
                        due = due.with_for_update(skip_locked=True)
                    ids = list((await conn.scalars(due)).all())
                    if not ids:
                        return []
                    await conn.execute(
                        update(_dels).where(_dels.c.id.in_(ids)).values(claimed_until=now + lease)
                    )
                    rows = (await conn.execute(select(_dels).where(_dels.c.id.in_(ids)))).all()
        return sorted((_delivery(row) for row in rows), key=lambda d: d.id)

    async def settle(
        self,
        delivery_id: int,
        *,
        status: str,
        attempts: int,
        next_attempt_at: datetime,
        last_status: int | None,
        last_error: str | None,
        delivered_at: datetime | None,
    ) -> None:
        with database_errors():
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(_dels)
                    .where(_dels.c.id == delivery_id)
                    .values(
                        status=status,
                        attempts=attempts,
                        next_attempt_at=next_attempt_at,
                        last_status=last_status,
                        last_error=None if last_error is None else last_error[:2000],
                        delivered_at=delivered_at,
                        claimed_until=None,
                    )
                )

    async def get_delivery(self, delivery_id: int) -> StoredDelivery | None:
        with database_errors():
            async with self._engine.connect() as conn:
                row = (await conn.execute(select(_dels).where(_dels.c.id == delivery_id))).first()
        return None if row is None else _delivery(row)

    async def deliveries(
        self,
        *,
        subscription_id: str | None = None,
        client_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[StoredDelivery]:
        query = select(_dels).order_by(_dels.c.id.desc()).limit(limit)
        if subscription_id is not None:
            query = query.where(_dels.c.subscription_id == subscription_id)
        if status is not None:
            query = query.where(_dels.c.status == status)
        if client_id is not None:
            query = query.where(
                _dels.c.subscription_id.in_(
                    select(_subs.c.id).where(_subs.c.client_id == client_id)
                )
            )
        with database_errors():
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        return [_delivery(row) for row in rows]

    async def replay(self, delivery_id: int, *, now: datetime) -> bool:
        """Put a parked delivery back to pending with a fresh set of attempts."""
        with database_errors():
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    update(_dels)
                    .where(and_(_dels.c.id == delivery_id, _dels.c.status == "parked"))
                    .values(
                        status="pending",
                        attempts=0,
                        next_attempt_at=now,
                        claimed_until=None,
                        delivered_at=None,
                    )
                )
        return bool(result.rowcount)
