"""Usage per application, product and UTC day: added to by every replica, read for quotas and bills.

Replicas never overwrite a count: each flush adds its increments with
``INSERT ... ON CONFLICT (client_id, product, day) DO UPDATE SET count = count + excluded.count``
(the same statement on PostgreSQL and SQLite), all rows of one flush in one transaction, so a
flush is counted whole or not at all.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date
from typing import cast

from sqlalchemy import Insert, Table, case, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db._identity_common import Store
from hub.db.identity_tables import OAuthClientRow
from hub.db.plans_tables import UsageDailyRow

__all__ = ["UsageKey", "UsageRecord", "UsageStore", "UsageTotals"]

_USAGE = cast(Table, UsageDailyRow.__table__)
# Keys per SELECT of totals: far below either database's limit on bound parameters.
_CHUNK = 400

#: (client id, product, UTC day)
UsageKey = tuple[str, str, date]


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageTotals:
    """An application's requests on a product: on one day, and in that day's month so far."""

    day: int
    month: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageRecord:
    """One row of the usage report: an application's requests on a product on a day."""

    day: date
    client_id: str
    client_name: str | None
    owner: str | None
    product: str
    requests: int


def _upsert(conn: AsyncConnection) -> Insert:
    insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = insert(_USAGE)
    return statement.on_conflict_do_update(
        index_elements=[UsageDailyRow.client_id, UsageDailyRow.product, UsageDailyRow.day],
        set_={"count": UsageDailyRow.count + statement.excluded.count},
    )


class UsageStore(Store):
    """Daily usage counts."""

    async def add(self, increments: Mapping[UsageKey, int]) -> None:
        """Add every increment in one transaction (all or none)."""
        rows = [
            {"client_id": client, "product": product, "day": day, "count": count}
            for (client, product, day), count in increments.items()
            if count
        ]
        if not rows:
            return
        async with self._write() as conn:
            await conn.execute(_upsert(conn), rows)

    async def totals(
        self, pairs: Collection[tuple[str, str]], day: date
    ) -> dict[tuple[str, str], UsageTotals]:
        """Each (client, product)'s count on ``day`` and in its month up to ``day``."""
        month_start = day.replace(day=1)
        out: dict[tuple[str, str], UsageTotals] = {}
        wanted = builtins.list(pairs)
        async with self._read() as conn:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                statement = (
                    select(
                        UsageDailyRow.client_id,
                        UsageDailyRow.product,
                        func.sum(case((UsageDailyRow.day == day, UsageDailyRow.count), else_=0)),
                        func.sum(UsageDailyRow.count),
                    )
                    .where(
                        UsageDailyRow.day >= month_start,
                        UsageDailyRow.day <= day,
                        tuple_(UsageDailyRow.client_id, UsageDailyRow.product).in_(chunk),
                    )
                    .group_by(UsageDailyRow.client_id, UsageDailyRow.product)
                )
                for client, product, on_day, in_month in await conn.execute(statement):
                    out[(client, product)] = UsageTotals(day=int(on_day), month=int(in_month))
        return out

    async def list(
        self,
        *,
        start: date,
        end: date,
        client_id: str | None = None,
        owner: str | None = None,
        product: str | None = None,
    ) -> builtins.list[UsageRecord]:
        """Rows from ``start`` to ``end`` (both included), by day, client and product."""
        statement = (
            select(
                UsageDailyRow.day,
                UsageDailyRow.client_id,
                OAuthClientRow.name,
                OAuthClientRow.owner,
                UsageDailyRow.product,
                UsageDailyRow.count,
            )
            .outerjoin(OAuthClientRow, OAuthClientRow.client_id == UsageDailyRow.client_id)
            .where(UsageDailyRow.day >= start, UsageDailyRow.day <= end)
        )
        if client_id is not None:
            statement = statement.where(UsageDailyRow.client_id == client_id)
        if owner is not None:
            statement = statement.where(OAuthClientRow.owner == owner)
        if product is not None:
            statement = statement.where(UsageDailyRow.product == product)
        statement = statement.order_by(
            UsageDailyRow.day, UsageDailyRow.client_id, UsageDailyRow.product
        )
        async with self._read() as conn:
            rows = (await conn.execute(statement)).all()
        return [
            UsageRecord(
                day=row[0],
                client_id=row[1],
                client_name=row[2],
                owner=row[3],
                product=row[4],
                requests=int(row[5]),
            )
            for row in rows
        ]

    async def products(self) -> set[str]:
        """Every product with recorded usage."""
        async with self._read() as conn:
            return set((await conn.execute(select(UsageDailyRow.product).distinct())).scalars())
