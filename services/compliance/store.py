"""The compliance service's own tables: the workforce projection, standings and band history.

The workforce is projected from ``contract.activated`` / ``contract.terminated`` events, one row
per contract, in the consumer's transaction (the event id marked processed with it). An
establishment's standing is recomputed in the same transaction, and a band that moved writes
its history row and its ``compliance.band.changed`` event through the outbox together.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    func,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db.models import UTCDateTime
from hub.events.tables import include_event_tables
from hub.servicekit.store import SEQUENCE, ServiceStore, as_dict, emit, service_metadata

__all__ = [
    "METADATA",
    "ComplianceStore",
    "Connection",
    "band_changes",
    "establishments",
    "workforce",
]

METADATA = service_metadata()

workforce = Table(
    "compliance_workforce",
    METADATA,
    Column("contract_id", String(100), primary_key=True),
    Column("establishment_id", String(100), nullable=False, index=True),
    Column("person_id", String(200), nullable=False),
    Column("citizen", Boolean, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("terminated", Boolean, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

establishments = Table(
    "compliance_establishments",
    METADATA,
    Column("establishment_id", String(100), primary_key=True),
    Column("cr_number", String(10), nullable=True, unique=True),
    # the commercial registry's record (purpose compliance-monitoring), once read
    Column("sector", String(60), nullable=True),
    Column("registry_size", String(20), nullable=True),
    Column("registry_status", String(20), nullable=True),
    Column("registry_read_at", UTCDateTime(), nullable=True),
    # the standing: band is NULL until the sector is known
    Column("band", String(10), nullable=True),
    Column("ratio", Float, nullable=False),
    Column("citizens", Integer, nullable=False),
    Column("total", Integer, nullable=False),
    Column("required", Float, nullable=True),
    Column("size_band", String(10), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

band_changes = Table(
    "compliance_band_changes",
    METADATA,
    Column("seq", SEQUENCE, primary_key=True, autoincrement=True),
    Column("establishment_id", String(100), nullable=False),
    Column("band", String(10), nullable=False),
    Column("previous", String(10), nullable=True),
    Column("ratio", Float, nullable=False),
    Column("citizens", Integer, nullable=False),
    Column("total", Integer, nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    sqlite_autoincrement=True,
)
Index(
    "ix_compliance_band_changes_establishment", band_changes.c.establishment_id, band_changes.c.seq
)

include_event_tables(METADATA)

Connection = AsyncConnection
_PAGE_MAX: Final = 200


class ComplianceStore(ServiceStore):
    """Reads and writes of the compliance tables."""

    metadata = METADATA

    # ---- reads ----------------------------------------------------------------------------

    async def get(self, establishment_id: str) -> dict[str, Any] | None:
        async with self.reading() as conn:
            return await self.get_in(conn, establishment_id)

    async def get_in(self, conn: AsyncConnection, establishment_id: str) -> dict[str, Any] | None:
        row = (
            await conn.execute(
                select(establishments).where(establishments.c.establishment_id == establishment_id)
            )
        ).first()
        return as_dict(row)

    async def by_cr(self, cr_number: str) -> str | None:
        async with self.reading() as conn:
            return (
                await conn.execute(
                    select(establishments.c.establishment_id).where(
                        establishments.c.cr_number == cr_number
                    )
                )
            ).scalar_one_or_none()

    async def history(self, establishment_id: str) -> list[dict[str, Any]]:
        statement = (
            select(band_changes)
            .where(band_changes.c.establishment_id == establishment_id)
            .order_by(band_changes.c.seq.desc())
            .limit(_PAGE_MAX)
        )
        return await self._all(statement)

    async def stale(self, read_before: datetime, limit: int = 50) -> list[tuple[str, str]]:
        """Establishments with a CR number whose registry record is missing or too old."""
        statement = (
            select(establishments.c.establishment_id, establishments.c.cr_number)
            .where(
                establishments.c.cr_number.is_not(None),
                or_(
                    establishments.c.registry_read_at.is_(None),
                    establishments.c.registry_read_at < read_before,
                ),
            )
            .limit(limit)
        )
        async with self.reading() as conn:
            return [(row[0], row[1]) for row in (await conn.execute(statement)).all()]

    # ---- writes (inside a transaction of ``writing``) -------------------------------------

    async def lock_establishment(self, conn: AsyncConnection, establishment_id: str) -> None:
        await self._advisory_lock(conn, f"compliance:{establishment_id}")

    async def contract_changed(
        self,
        conn: AsyncConnection,
        *,
        contract_id: str,
        establishment_id: str,
        person_id: str,
        citizen: bool,
        change: str,
        at: datetime,
    ) -> None:
        """Apply ``activated`` or ``terminated``; a terminated contract stays terminated."""
        row = (
            await conn.execute(select(workforce).where(workforce.c.contract_id == contract_id))
        ).first()
        if row is None:
            await conn.execute(
                workforce.insert().values(
                    contract_id=contract_id,
                    establishment_id=establishment_id,
                    person_id=person_id,
                    citizen=citizen,
                    active=change == "activated",
                    terminated=change == "terminated",
                    updated_at=at,
                )
            )
            return
        values: dict[str, Any] = {"updated_at": at}
        if change == "terminated":
            values.update(active=False, terminated=True)
        elif not row.terminated:
            values.update(active=True, citizen=citizen)
        await conn.execute(
            workforce.update().where(workforce.c.contract_id == contract_id).values(**values)
        )

    async def headcount(self, conn: AsyncConnection, establishment_id: str) -> tuple[int, int]:
        """(citizens, total) of the establishment's active contracts (one person counts once)."""
        active = (
            select(workforce.c.person_id, func.max(workforce.c.citizen.cast(Integer)).label("c"))
            .where(workforce.c.establishment_id == establishment_id, workforce.c.active.is_(True))
            .group_by(workforce.c.person_id)
            .subquery()
        )
        row = (
            await conn.execute(select(func.count(), func.coalesce(func.sum(active.c.c), 0)))
        ).one()
        return int(row[1]), int(row[0])

    async def save(
        self,
        conn: AsyncConnection,
        establishment_id: str,
        values: dict[str, Any],
        *,
        exists: bool,
    ) -> None:
        if exists:
            await conn.execute(
                establishments.update()
                .where(establishments.c.establishment_id == establishment_id)
                .values(**values)
            )
        else:
            await conn.execute(
                establishments.insert().values(establishment_id=establishment_id, **values)
            )

    async def band_changed(
        self,
        conn: AsyncConnection,
        row: dict[str, Any],
        events: Sequence[tuple[str, dict[str, Any]]],
    ) -> None:
        inserted = await conn.execute(
            band_changes.insert().values(
                establishment_id=row["establishment_id"],
                band=row["band"],
                previous=row["previous"],
                ratio=row["ratio"],
                citizens=row["citizens"],
                total=row["total"],
                at=row["at"],
            )
        )
        seq = inserted.inserted_primary_key[0] if inserted.inserted_primary_key else 0
        establishment_id = row["establishment_id"]
        await emit(
            conn,
            events,
            key=f"compliance:{establishment_id}",
            prefix=f"compliance.{establishment_id}.{seq}",
        )
