"""Subscriptions of vendor applications (OAuth clients) to API products, with their history.

The store keeps rows and enforces what rows alone can: the client exists, at most one live
(pending or active) subscription per client and product (checked under the write lock, and by
a partial unique index as the last word), and a change only from the states it names. Which
plans a product offers and whether it needs approval is the configuration's business
(:mod:`hub.plans.subscriptions`).
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import RowMapping, Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db._identity_common import Store
from hub.db._people_common import check_page, check_reason, insert_new
from hub.db.identity_tables import OAuthClientRow
from hub.db.plans_tables import LIVE_STATUSES, SubscriptionEventRow, SubscriptionRow
from hub.errors import Conflict, NotFound

__all__ = [
    "Subscription",
    "SubscriptionAction",
    "SubscriptionEvent",
    "SubscriptionStatus",
    "SubscriptionStore",
]

SubscriptionStatus = Literal["pending", "active", "rejected", "cancelled"]
SubscriptionAction = Literal["created", "approved", "rejected", "cancelled", "plan_changed"]

_SUBSCRIPTIONS = cast(Table, SubscriptionRow.__table__)
_EVENTS = cast(Table, SubscriptionEventRow.__table__)
_CLIENTS = cast(Table, OAuthClientRow.__table__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscription:
    """A subscription and who changed it last; ``decided_*`` is the approval or rejection."""

    id: str
    client_id: str
    product: str
    plan: str
    status: SubscriptionStatus
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    decided_at: datetime | None
    decided_by: str | None
    cancelled_at: datetime | None
    cancelled_by: str | None
    reason: str

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionEvent:
    """One line of a subscription's history."""

    action: SubscriptionAction
    actor: str
    at: datetime
    reason: str
    details: dict[str, Any]


def _subscription(row: Mapping[Any, Any]) -> Subscription:
    return Subscription(**{name: row[name] for name in Subscription.__dataclass_fields__})


class SubscriptionStore(Store):
    """Subscriptions and their append-only events."""

    async def create(
        self,
        *,
        client_id: str,
        product: str,
        plan: str,
        status: SubscriptionStatus,
        actor: str,
        reason: str = "",
    ) -> Subscription:
        """A new subscription; NotFound for an unknown client, Conflict for a disabled one or
        when a live one exists."""
        check_reason(reason, required=False)
        now = self._clock()
        values = {
            "client_id": client_id,
            "product": product,
            "plan": plan,
            "status": status,
            "created_at": now,
            "created_by": actor,
            "updated_at": now,
            "updated_by": actor,
            "reason": reason,
        }
        async with self._write() as conn:
            client = select(OAuthClientRow.disabled_at).where(OAuthClientRow.client_id == client_id)
            found = (await conn.execute(client)).first()
            if found is None:
                raise NotFound(f"client {client_id!r} does not exist")
            if found[0] is not None:
                raise Conflict(f"client {client_id!r} is disabled")
            await _refuse_live(conn, client_id, product)
            # the partial unique index has the last word on a race: the insert is ignored, and
            # the live subscription that won is named
            row = await insert_new(
                conn,
                _SUBSCRIPTIONS,
                "sub",
                values,
                on_conflict=lambda: _refuse_live(conn, client_id, product),
            )
            await _event(
                conn,
                row["id"],
                "created",
                actor=actor,
                at=now,
                reason=reason,
                plan=plan,
                status=status,
            )
        return _subscription(row)

    async def get(self, subscription_id: str) -> Subscription | None:
        """The subscription ``subscription_id``, or ``None``."""
        statement = select(_SUBSCRIPTIONS).where(SubscriptionRow.id == subscription_id)
        async with self._read() as conn:
            row = (await conn.execute(statement)).mappings().first()
        return None if row is None else _subscription(row)

    async def live(self, client_id: str, product: str) -> Subscription | None:
        """The pending or active subscription of ``client_id`` to ``product``, if any."""
        statement = select(_SUBSCRIPTIONS).where(
            SubscriptionRow.client_id == client_id,
            SubscriptionRow.product == product,
            SubscriptionRow.status.in_(LIVE_STATUSES),
        )
        async with self._read() as conn:
            row = (await conn.execute(statement)).mappings().first()
        return None if row is None else _subscription(row)

    async def list(
        self,
        *,
        client_id: str | None = None,
        product: str | None = None,
        plan: str | None = None,
        status: str | None = None,
        owner: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Subscription]:
        """Subscriptions matching every filter given, oldest first; ``owner`` is the client's."""
        check_page(limit, offset)
        statement = select(_SUBSCRIPTIONS)
        if client_id is not None:
            statement = statement.where(SubscriptionRow.client_id == client_id)
        if product is not None:
            statement = statement.where(SubscriptionRow.product == product)
        if plan is not None:
            statement = statement.where(SubscriptionRow.plan == plan)
        if status is not None:
            statement = statement.where(SubscriptionRow.status == status)
        if owner is not None:
            owned = select(OAuthClientRow.client_id).where(OAuthClientRow.owner == owner)
            statement = statement.where(SubscriptionRow.client_id.in_(owned))
        statement = (
            statement.order_by(SubscriptionRow.created_at, SubscriptionRow.id)
            .limit(limit)
            .offset(offset)
        )
        async with self._read() as conn:
            rows = (await conn.execute(statement)).mappings().all()
        return [_subscription(row) for row in rows]

    async def change(
        self,
        subscription_id: str,
        *,
        action: SubscriptionAction,
        allowed_from: Collection[SubscriptionStatus],
        actor: str,
        reason: str = "",
        status: SubscriptionStatus | None = None,
        plan: str | None = None,
    ) -> Subscription:
        """Move a subscription to ``status`` and/or ``plan``, only from ``allowed_from``.

        NotFound for an unknown id; Conflict (naming the current state) from any other state.
        """
        check_reason(reason, required=False)
        now = self._clock()
        async with self._write() as conn:
            statement = (
                select(_SUBSCRIPTIONS)
                .where(SubscriptionRow.id == subscription_id)
                .with_for_update()
            )
            row = (await conn.execute(statement)).mappings().first()
            if row is None:
                raise NotFound(f"subscription {subscription_id!r} does not exist")
            if row["status"] not in allowed_from:
                wanted = " or ".join(sorted(allowed_from))
                raise Conflict(
                    f"subscription {subscription_id!r} is {row['status']}:"
                    f" only a {wanted} subscription can be {action.replace('_', ' ')}"
                )
            values: dict[str, Any] = {"updated_at": now, "updated_by": actor, "reason": reason}
            details: dict[str, Any] = {}
            if status is not None:
                values["status"] = status
                details["status"] = {"from": row["status"], "to": status}
                if action in ("approved", "rejected"):
                    values.update(decided_at=now, decided_by=actor)
                if status == "cancelled":
                    values.update(cancelled_at=now, cancelled_by=actor)
            if plan is not None:
                values["plan"] = plan
                details["plan"] = {"from": row["plan"], "to": plan}
            updated = (
                (
                    await conn.execute(
                        update(_SUBSCRIPTIONS)
                        .where(SubscriptionRow.id == subscription_id)
                        .values(**values)
                        .returning(*_SUBSCRIPTIONS.columns)
                    )
                )
                .mappings()
                .one()
            )
            await _event(
                conn, subscription_id, action, actor=actor, at=now, reason=reason, **details
            )
        return _subscription(updated)

    async def events(self, subscription_id: str) -> builtins.list[SubscriptionEvent]:
        """The subscription's history, oldest first (NotFound for an unknown id)."""
        statement = (
            select(_EVENTS)
            .where(SubscriptionEventRow.subscription_id == subscription_id)
            .order_by(SubscriptionEventRow.id)
        )
        async with self._read() as conn:
            exists = select(SubscriptionRow.id).where(SubscriptionRow.id == subscription_id)
            if (await conn.execute(exists)).first() is None:
                raise NotFound(f"subscription {subscription_id!r} does not exist")
            rows = (await conn.execute(statement)).mappings().all()
        return [
            SubscriptionEvent(
                action=row["action"],
                actor=row["actor"],
                at=row["at"],
                reason=row["reason"],
                details=dict(row["details"]),
            )
            for row in rows
        ]

    async def in_use(self) -> dict[tuple[str, str], int]:
        """How many live (pending or active) subscriptions each (product, plan) has."""
        statement = (
            select(SubscriptionRow.product, SubscriptionRow.plan, func.count())
            .where(SubscriptionRow.status.in_(LIVE_STATUSES))
            .group_by(SubscriptionRow.product, SubscriptionRow.plan)
        )
        async with self._read() as conn:
            rows = (await conn.execute(statement)).all()
        return {(product, plan): int(count) for product, plan, count in rows}

    async def products(self) -> set[str]:
        """Every product any subscription names (for filters on retired products)."""
        statement = select(SubscriptionRow.product).distinct()
        async with self._read() as conn:
            return set((await conn.execute(statement)).scalars())


async def _refuse_live(conn: AsyncConnection, client_id: str, product: str) -> None:
    statement = select(SubscriptionRow.id, SubscriptionRow.status).where(
        SubscriptionRow.client_id == client_id,
        SubscriptionRow.product == product,
        SubscriptionRow.status.in_(LIVE_STATUSES),
    )
    live: RowMapping | None = (await conn.execute(statement)).mappings().first()
    if live is not None:
        raise Conflict(
            f"client {client_id!r} already has a {live['status']} subscription to"
            f" {product!r} ({live['id']}); change its plan or cancel it first",
            extra={"subscription": live["id"]},
        )


async def _event(
    conn: AsyncConnection,
    subscription_id: str,
    action: SubscriptionAction,
    *,
    actor: str,
    at: datetime,
    reason: str,
    **details: Any,
) -> None:
    await conn.execute(
        insert(_EVENTS).values(
            subscription_id=subscription_id,
            action=action,
            actor=actor,
            at=at,
            reason=reason,
            details=details,
        )
    )
