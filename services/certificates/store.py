"""The certificates service's own tables; each change commits in one transaction with its events.

As the visa service's store: its own metadata and database (its own PostgreSQL schema through
``schema_translate_map``), the outbox's tables copied onto the same metadata, so a certificate's
row, its domain event and the worker's notification request commit or roll back together.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db.models import UTCDateTime
from hub.errors import CertificateNotFound
from hub.events.tables import include_event_tables
from hub.servicekit.store import (
    Events,
    ServiceStore,
    VersionedRows,
    as_dict,
    locked,
    service_metadata,
)

__all__ = ["METADATA", "CertificateStore", "Connection", "certificates", "shares"]

METADATA = service_metadata()

certificates = Table(
    "certificates",
    METADATA,
    Column("id", String(40), primary_key=True),
    Column("person_id", String(200), nullable=False, index=True),  # the hub's subject
    Column("national_id", String(10), nullable=False),  # as the worker states it
    Column("number", String(20), nullable=False),
    Column("degree", String(20), nullable=False),
    Column("institution", String(200), nullable=False),
    Column("year", Integer, nullable=False),
    Column("state", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    Column("mismatches", JSON, nullable=False),
    #: What the registry said (the purpose's fields), once it answered.
    Column("registry", JSON, nullable=True),
    #: The hub's audit entry of the read that decided (X-Hub-Audit-Entry).
    Column("audit_entry", Integer, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("last_error", String(300), nullable=True),
    Column("next_check_at", UTCDateTime(), nullable=True),
    Column("checked_at", UTCDateTime(), nullable=True),
    Column("submitted_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
Index("ix_certificates_person_number", certificates.c.person_id, certificates.c.number)
Index("ix_certificates_due", certificates.c.state, certificates.c.next_check_at)

shares = Table(
    "certificate_shares",
    METADATA,
    Column(
        "certificate_id",
        String(40),
        ForeignKey("certificates.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("establishment_id", String(100), primary_key=True),
    Column("shared_at", UTCDateTime(), nullable=False),
)
Index("ix_certificate_shares_establishment", shares.c.establishment_id)

include_event_tables(METADATA)

_ROWS: Final = VersionedRows(certificates, stream="certificate", what="certificate")

Connection = AsyncConnection
_PAGE_MAX: Final = 200


class CertificateStore(ServiceStore):
    """Reads and writes of the certificate tables; every write is one transaction."""

    metadata = METADATA

    # ---- reads ----------------------------------------------------------------------------

    async def get(self, certificate_id: str) -> dict[str, Any]:
        async with self.reading() as conn:
            row = (
                await conn.execute(select(certificates).where(certificates.c.id == certificate_id))
            ).first()
            if row is None:
                raise CertificateNotFound(f"no certificate {certificate_id}")
            shared = (
                await conn.execute(
                    select(shares.c.establishment_id)
                    .where(shares.c.certificate_id == certificate_id)
                    .order_by(shares.c.establishment_id)
                )
            ).scalars()
            return {**row._mapping, "shared_with": list(shared)}

    async def of_person(self, person_id: str) -> list[dict[str, Any]]:
        statement = (
            select(certificates)
            .where(certificates.c.person_id == person_id)
            .order_by(certificates.c.submitted_at.desc(), certificates.c.id)
            .limit(_PAGE_MAX)
        )
        return await self._all(statement)

    async def shared_with(self, establishment_id: str) -> list[dict[str, Any]]:
        statement = (
            select(certificates)
            .join(shares, shares.c.certificate_id == certificates.c.id)
            .where(shares.c.establishment_id == establishment_id)
            .order_by(certificates.c.submitted_at.desc(), certificates.c.id)
            .limit(_PAGE_MAX)
        )
        return await self._all(statement)

    async def is_shared(self, certificate_id: str, establishment_id: str) -> bool:
        row = await self._one(
            select(shares.c.certificate_id).where(
                shares.c.certificate_id == certificate_id,
                shares.c.establishment_id == establishment_id,
            )
        )
        return row is not None

    async def find(
        self, person_id: str, number: str, states: Sequence[str]
    ) -> dict[str, Any] | None:
        """The person's certificate ``number`` in one of ``states``, if there is one."""
        async with self.reading() as conn:
            return await self.blocking(conn, person_id, number, states)

    async def blocking(
        self, conn: AsyncConnection, person_id: str, number: str, states: Sequence[str]
    ) -> dict[str, Any] | None:
        """The person's certificate ``number`` in one of ``states``, read in ``conn``."""
        row = (
            await conn.execute(
                select(certificates).where(
                    certificates.c.person_id == person_id,
                    certificates.c.number == number,
                    certificates.c.state.in_(list(states)),
                )
            )
        ).first()
        return as_dict(row)

    async def due(self, now: datetime, limit: int = 100) -> list[str]:
        """Pending certificates whose next check is due."""
        statement = (
            select(certificates.c.id)
            .where(certificates.c.state == "pending", certificates.c.next_check_at <= now)
            .order_by(certificates.c.next_check_at)
            .limit(limit)
        )
        async with self.reading() as conn:
            return list((await conn.execute(statement)).scalars())

    # ---- writes (inside a transaction of ``writing``) -------------------------------------

    async def lock(self, conn: AsyncConnection, certificate_id: str) -> dict[str, Any] | None:
        return await locked(conn, certificates, certificate_id)

    async def lock_person(self, conn: AsyncConnection, person_id: str) -> None:
        """Serialise one person's submissions (SQLite's write lock already does)."""
        await self._advisory_lock(conn, f"certificates:{person_id}")

    async def insert(self, conn: AsyncConnection, row: dict[str, Any], events: Events) -> None:
        """A new certificate and its events."""
        await _ROWS.insert(conn, row, events)

    async def update(
        self,
        conn: AsyncConnection,
        current: dict[str, Any],
        changes: dict[str, Any],
        events: Events,
    ) -> dict[str, Any]:
        """Change a certificate over its version, with its events; the row as it became."""
        return await _ROWS.update(conn, current, changes, events)

    async def share(
        self, conn: AsyncConnection, certificate_id: str, establishment_id: str, now: datetime
    ) -> bool:
        """Share with an establishment; ``False`` when it already was (nothing changes)."""
        exists = (
            await conn.execute(
                select(shares.c.certificate_id).where(
                    shares.c.certificate_id == certificate_id,
                    shares.c.establishment_id == establishment_id,
                )
            )
        ).first()
        if exists is not None:
            return False
        await conn.execute(
            shares.insert().values(
                certificate_id=certificate_id, establishment_id=establishment_id, shared_at=now
            )
        )
        return True

    async def unshare(
        self, conn: AsyncConnection, certificate_id: str, establishment_id: str
    ) -> bool:
        deleted = await conn.execute(
            shares.delete().where(
                shares.c.certificate_id == certificate_id,
                shares.c.establishment_id == establishment_id,
            )
        )
        return bool(deleted.rowcount)
