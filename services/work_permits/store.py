"""The work permits service's own tables, and every change to them in one transaction with events.

The tables live on the service's own metadata, in its own database (an SQLite file by default;
its own PostgreSQL database, or schema through ``schema_translate_map``): never the hub's. Next
to the permits, their transitions and transfers are the service's projections of what it
learnt from other services' events (visas, contracts, compliance bands), and the transactional
outbox's tables: a permit's row, its transition, its domain event and its notification
requests commit or roll back together; the relay publishes them afterwards.

One person holds at most one permit that is not cancelled or expired: ``work_permit_holders``
has the person as its primary key, so two requests racing for the same worker cannot both win.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db.models import UTCDateTime
from hub.errors import PermitNotFound, TransferNotFound
from hub.events.outbox import enqueue
from hub.events.tables import include_event_tables
from hub.servicekit.paging import PAGE_MAX, Page
from hub.servicekit.store import (
    IdempotencyKeys,
    PaymentReceipts,
    ServiceStore,
    Transitions,
    as_dict,
    emit,
    equal_to,
    idempotency_table,
    locked,
    receipts_table,
    service_metadata,
    transitions_table,
)
from services.work_permits.domain import Actor, ContractFacts, State, VisaFacts, check_transition

__all__ = [
    "METADATA",
    "Connection",
    "Idempotent",
    "PermitStore",
    "holders",
    "permits",
    "transfers",
    "transitions",
]

METADATA = service_metadata()

permits = Table(
    "work_permits",
    METADATA,
    Column("id", String(40), primary_key=True),
    Column("state", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    Column("person_id", String(100), nullable=False, index=True),
    Column("worker_name", String(200), nullable=True),
    Column("nationality", String(3), nullable=True),
    Column("passport_number", String(12), nullable=True),
    Column("establishment_id", String(100), nullable=False, index=True),
    Column("contract_id", String(100), nullable=False),
    Column("visa_number", String(12), nullable=False),
    Column("occupation", String(4), nullable=True),
    Column("issued_on", Date, nullable=False),
    Column("expires_on", Date, nullable=False),
    Column("renewals", Integer, nullable=False, default=0),
    Column("fee", Integer, nullable=True),
    Column("currency", String(3), nullable=True),
    Column("payment_id", String(100), nullable=True, unique=True),
    Column("paid_at", UTCDateTime(), nullable=True),
    #: the ``expires_on`` the expiry reminder went out for (once per validity)
    Column("reminded_for", Date, nullable=True),
    Column("transfer_id", String(40), nullable=True),
    Column("cancel_reason", String(500), nullable=True),
    # who asked for it: the hub's principal (kind, subject, client)
    Column("requested_by_kind", String(20), nullable=False),
    Column("requested_by", String(200), nullable=False),
    Column("requested_by_client", String(200), nullable=True),
    Column("issued_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
Index("ix_work_permits_listing", permits.c.issued_at, permits.c.id)
Index("ix_work_permits_expiry", permits.c.state, permits.c.expires_on)

transitions = transitions_table(
    "work_permit_transitions", METADATA, owner="permit_id", rows="work_permits"
)

holders = Table(
    "work_permit_holders",
    METADATA,
    # one row per person holding a permit that is neither cancelled nor expired
    Column("person_id", String(100), primary_key=True),
    Column("permit_id", String(40), nullable=False),
)

transfers = Table(
    "work_permit_transfers",
    METADATA,
    Column("id", String(40), primary_key=True),
    Column("permit_id", String(40), ForeignKey("work_permits.id"), nullable=False, index=True),
    Column("state", String(20), nullable=False),  # pending, completed, declined, cancelled
    Column("from_establishment", String(100), nullable=False, index=True),
    Column("to_establishment", String(100), nullable=False, index=True),
    Column("person_id", String(100), nullable=False),
    Column("contract_id", String(100), nullable=False),
    #: party -> {"by": who, "at": when} of each consent given so far
    Column("consents", JSON, nullable=False),
    Column("reason", String(500), nullable=True),
    Column("requested_by_kind", String(20), nullable=False),
    Column("requested_by", String(200), nullable=False),
    Column("requested_by_client", String(200), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# scope: who used the key for what, so keys never collide across callers or operations
idempotency = idempotency_table("work_permit_idempotency", METADATA, result="result_id")

# ---- projections of other services' events ------------------------------------------------

visas = Table(
    "permit_visas",
    METADATA,
    Column("visa_number", String(12), primary_key=True),
    Column("application_id", String(40), nullable=False),
    Column("establishment_id", String(100), nullable=True),
    Column("state", String(20), nullable=False),
    Column("nationality", String(3), nullable=True),
    Column("passport_number", String(12), nullable=True),
    Column("worker_name", String(200), nullable=True),
    Column("occupation", String(4), nullable=True),
    Column("valid_until", Date, nullable=True),
    Column("event_at", UTCDateTime(), nullable=False),
)

contracts = Table(
    "permit_contracts",
    METADATA,
    Column("contract_id", String(100), primary_key=True),
    Column("establishment_id", String(100), nullable=False),
    Column("person_id", String(100), nullable=False, index=True),
    Column("nationality", String(3), nullable=True),
    Column("citizen", Boolean, nullable=False, default=False),
    Column("state", String(20), nullable=False),
    Column("visa_number", String(12), nullable=True),
    Column("occupation", String(4), nullable=True),
    Column("start_date", Date, nullable=True),
    Column("end_date", Date, nullable=True),
    Column("event_at", UTCDateTime(), nullable=False),
)

bands = Table(
    "permit_compliance_bands",
    METADATA,
    Column("establishment_id", String(100), primary_key=True),
    Column("band", String(20), nullable=False),
    Column("event_at", UTCDateTime(), nullable=False),
)

# a payment event that may come before its renewal's row commits (a fast webhook)
payment_receipts = receipts_table("work_permit_payment_receipts", METADATA)

include_event_tables(METADATA)

_RECEIPTS = PaymentReceipts(payment_receipts)
_MOVES = Transitions(permits, transitions, owner="permit_id", what="permit")
_KEYS = IdempotencyKeys(idempotency, result="result_id")

#: The connection of an open transaction, as the workflow's steps receive it.
Connection = AsyncConnection


@dataclass(frozen=True, slots=True, kw_only=True)
class Idempotent:
    """A retried request's earlier result: the permit or transfer it made."""

    result_id: str


class PermitStore(ServiceStore):
    """Reads and writes of the permit tables; every write is one transaction with its events."""

    metadata = METADATA

    # ---- reads ----------------------------------------------------------------------------

    async def get(self, permit_id: str) -> dict[str, Any]:
        row = await self._one(select(permits).where(permits.c.id == permit_id))
        if row is None:
            raise PermitNotFound(f"no permit {permit_id}")
        return row

    async def get_in(self, conn: AsyncConnection, permit_id: str) -> dict[str, Any] | None:
        """The permit, read (and locked on PostgreSQL) in ``conn``'s transaction."""
        return await locked(conn, permits, permit_id)

    async def history(self, permit_id: str) -> list[dict[str, Any]]:
        async with self.reading() as conn:
            return await _MOVES.of(conn, permit_id)

    async def transfer(self, transfer_id: str) -> dict[str, Any]:
        row = await self._one(select(transfers).where(transfers.c.id == transfer_id))
        if row is None:
            raise TransferNotFound(f"no transfer {transfer_id}")
        return row

    async def transfer_in(self, conn: AsyncConnection, transfer_id: str) -> dict[str, Any] | None:
        return await locked(conn, transfers, transfer_id)

    async def idempotent(self, scope: str, key: str, digest: str) -> Idempotent | None:
        """What an earlier request with this key made; a different body refuses."""
        async with self.reading() as conn:
            return await self._idempotent(conn, scope, key, digest)

    async def _idempotent(
        self, conn: AsyncConnection, scope: str, key: str, digest: str
    ) -> Idempotent | None:
        made = await _KEYS.made(conn, scope, key, digest)
        return None if made is None else Idempotent(result_id=made)

    async def remember(
        self, conn: AsyncConnection, scope: str, key: str, digest: str, result_id: str
    ) -> None:
        """Record what a request with this key made, in the request's own transaction."""
        await _KEYS.remember(conn, scope, key, digest, result_id, at=datetime.now(UTC))

    async def holder(self, conn: AsyncConnection, person_id: str) -> str | None:
        """The permit ``person_id`` holds now (not cancelled or expired), if any."""
        return (
            await conn.execute(select(holders.c.permit_id).where(holders.c.person_id == person_id))
        ).scalar_one_or_none()

    async def held_by(self, person_id: str) -> dict[str, Any] | None:
        async with self.reading() as conn:
            permit_id = await self.holder(conn, person_id)
            if permit_id is None:
                return None
            return await self.get_in(conn, permit_id)

    async def visa(self, conn: AsyncConnection, visa_number: str) -> VisaFacts | None:
        row = (await conn.execute(select(visas).where(visas.c.visa_number == visa_number))).first()
        if row is None:
            return None
        return VisaFacts(
            visa_number=row.visa_number,
            establishment_id=row.establishment_id,
            state=row.state,
            valid_until=row.valid_until,
        )

    async def visa_row(self, conn: AsyncConnection, visa_number: str) -> dict[str, Any] | None:
        statement = select(visas).where(visas.c.visa_number == visa_number)
        return as_dict((await conn.execute(statement)).first())

    async def contract(self, conn: AsyncConnection, contract_id: str) -> ContractFacts | None:
        row = (
            await conn.execute(select(contracts).where(contracts.c.contract_id == contract_id))
        ).first()
        if row is None:
            return None
        return ContractFacts(
            contract_id=row.contract_id,
            establishment_id=row.establishment_id,
            person_id=row.person_id,
            state=row.state,
            visa_number=row.visa_number,
            occupation=row.occupation,
            end_date=row.end_date,
        )

    async def band(self, conn: AsyncConnection, establishment_id: str) -> str | None:
        return (
            await conn.execute(
                select(bands.c.band).where(bands.c.establishment_id == establishment_id)
            )
        ).scalar_one_or_none()

    async def facts(
        self, contract_id: str, establishment_id: str
    ) -> tuple[ContractFacts | None, str | None]:
        """A contract's projection and an establishment's band, read outside a write."""
        async with self.reading() as conn:
            return await self.contract(conn, contract_id), await self.band(conn, establishment_id)

    async def by_payment(self, conn: AsyncConnection, payment_id: str) -> dict[str, Any] | None:
        statement = select(permits).where(permits.c.payment_id == payment_id)
        return as_dict((await conn.execute(statement)).first())

    async def search(
        self,
        *,
        establishment_id: str | None = None,
        person_id: str | None = None,
        state: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page:
        """Permits matching the filters, newest first, one page at a time (keyset)."""
        conditions = equal_to(
            (permits.c.establishment_id, establishment_id),
            (permits.c.person_id, person_id),
            (permits.c.state, state),
        )
        return await self._page(permits, conditions, at="issued_at", limit=limit, cursor=cursor)

    async def transfers_of(self, establishment_id: str) -> list[dict[str, Any]]:
        """Transfers into or out of ``establishment_id``, newest first (at most 100)."""
        statement = (
            select(transfers)
            .where(
                or_(
                    transfers.c.from_establishment == establishment_id,
                    transfers.c.to_establishment == establishment_id,
                )
            )
            .order_by(transfers.c.created_at.desc(), transfers.c.id.desc())
            .limit(PAGE_MAX)
        )
        return await self._all(statement)

    async def due(self, today: date, reminder_until: date, limit: int = 500) -> list[str]:
        """Permits the sweep looks at: held ones expiring by ``reminder_until`` (or past)."""
        statement = (
            select(permits.c.id)
            .where(
                permits.c.state.in_(["active", "renewal_pending", "transfer_pending"]),
                permits.c.expires_on <= reminder_until,
                or_(
                    permits.c.expires_on < today,
                    permits.c.reminded_for.is_(None),
                    permits.c.reminded_for != permits.c.expires_on,
                ),
            )
            .order_by(permits.c.expires_on)
            .limit(limit)
        )
        async with self.reading() as conn:
            return [row.id for row in (await conn.execute(statement)).all()]

    # ---- writes ---------------------------------------------------------------------------

    async def insert_permit(
        self,
        conn: AsyncConnection,
        row: dict[str, Any],
        *,
        actor: Actor,
        detail: dict[str, Any],
        events: Sequence[tuple[str, dict[str, Any]]],
    ) -> None:
        """A new permit, active, with its first transition, its holder row and its events."""
        await conn.execute(permits.insert().values(**row))
        await conn.execute(holders.insert().values(person_id=row["person_id"], permit_id=row["id"]))
        await _MOVES.record(
            conn,
            row["id"],
            number=1,
            from_state=None,
            to_state=row["state"],
            actor=actor,
            at=row["issued_at"],
            detail=detail,
        )
        await self._enqueue(conn, row["id"], 1, events)

    async def transition(
        self,
        conn: AsyncConnection,
        permit_id: str,
        target: State,
        actor: Actor,
        *,
        now: datetime,
        changes: dict[str, Any] | None = None,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
        events: Sequence[tuple[str, dict[str, Any]]] = (),
    ) -> dict[str, Any]:
        """Move one permit to ``target`` inside ``conn``'s open write transaction."""
        current = await self.get_in(conn, permit_id)
        if current is None:
            raise PermitNotFound(f"no permit {permit_id}")
        check_transition(current["state"], target, actor)
        moved, number = await _MOVES.move(
            conn, current, target, actor, now=now, changes=changes, reason=reason, detail=detail
        )
        if target in {"cancelled", "expired"}:
            await conn.execute(holders.delete().where(holders.c.permit_id == permit_id))
        await self._enqueue(conn, permit_id, number, events)
        return moved

    async def note(
        self,
        conn: AsyncConnection,
        permit_id: str,
        *,
        now: datetime,
        changes: dict[str, Any],
        events: Sequence[tuple[str, dict[str, Any]]] = (),
        tag: str,
    ) -> None:
        """Change a permit without a transition (a reminder sent, a new occupation)."""
        await conn.execute(
            permits.update()
            .where(permits.c.id == permit_id)
            .values(**changes, updated_at=now, version=permits.c.version + 1)
        )
        for index, (event_type, payload) in enumerate(events):
            await enqueue(
                conn,
                type=event_type,
                payload=payload,
                key=f"permit:{permit_id}",
                # event ids are at most 64 characters: the tag is hashed into them
                event_id=f"{permit_id}.n"
                + hashlib.sha256(f"{tag}.{index}.{event_type}".encode()).hexdigest()[:16],
            )

    async def _enqueue(
        self,
        conn: AsyncConnection,
        permit_id: str,
        number: int,
        events: Sequence[tuple[str, dict[str, Any]]],
    ) -> None:
        await emit(conn, events, key=f"permit:{permit_id}", prefix=f"{permit_id}.{number}")

    async def insert_transfer(self, conn: AsyncConnection, row: dict[str, Any]) -> None:
        await conn.execute(transfers.insert().values(**row))

    async def update_transfer(self, conn: AsyncConnection, transfer_id: str, **values: Any) -> None:
        await conn.execute(transfers.update().where(transfers.c.id == transfer_id).values(**values))

    async def record_receipt(self, conn: AsyncConnection, payment_id: str, state: str) -> None:
        """Remember a payment event (its renewal may not be committed yet)."""
        await _RECEIPTS.record(conn, payment_id, state)

    async def receipt(self, conn: AsyncConnection, payment_id: str) -> str | None:
        """The state of an earlier payment event for ``payment_id``, if one came."""
        return await _RECEIPTS.state(conn, payment_id)

    # ---- projections ----------------------------------------------------------------------

    async def _newer(
        self, conn: AsyncConnection, table: Table, key: Any, value: str, at: datetime
    ) -> bool | None:
        """``None``: no row yet; else whether an event at ``at`` is not older than the row's."""
        row = (await conn.execute(select(table.c.event_at).where(key == value))).first()
        if row is None:
            return None
        return bool(at >= row.event_at)

    async def project_visa(self, conn: AsyncConnection, values: dict[str, Any]) -> None:
        """Upsert what a visa event says; an older event never overwrites a newer one."""
        newer = await self._newer(
            conn, visas, visas.c.visa_number, values["visa_number"], values["event_at"]
        )
        if newer is None:
            await conn.execute(visas.insert().values(**values))
        elif newer:
            known = {k: v for k, v in values.items() if v is not None}
            await conn.execute(
                visas.update().where(visas.c.visa_number == values["visa_number"]).values(**known)
            )

    async def project_contract(self, conn: AsyncConnection, values: dict[str, Any]) -> None:
        """Upsert what a contract event says; an older event never overwrites a newer one."""
        newer = await self._newer(
            conn, contracts, contracts.c.contract_id, values["contract_id"], values["event_at"]
        )
        if newer is None:
            await conn.execute(contracts.insert().values(**values))
        elif newer:
            await conn.execute(
                contracts.update()
                .where(contracts.c.contract_id == values["contract_id"])
                .values(**values)
            )

    async def project_band(
        self, conn: AsyncConnection, establishment_id: str, band: str, at: datetime
    ) -> None:
        newer = await self._newer(conn, bands, bands.c.establishment_id, establishment_id, at)
        if newer is None:
            await conn.execute(
                bands.insert().values(establishment_id=establishment_id, band=band, event_at=at)
            )
        elif newer:
            await conn.execute(
                bands.update()
                .where(bands.c.establishment_id == establishment_id)
                .values(band=band, event_at=at)
            )

    async def seed_demo(self, establishment_id: str, person_id: str) -> None:
        """Demo data (``hub dev``): an issued visa and an active contract, unless known."""
        now = datetime.now(UTC)
        async with self.writing() as conn:
            if await self.visa(conn, "W900000001") is None:
                await self.project_visa(
                    conn,
                    {
                        "visa_number": "W900000001",
                        "application_id": "va_demo",
                        "establishment_id": establishment_id,
                        "state": "issued",
                        "nationality": "PHL",
                        "passport_number": "P9000001",
                        "worker_name": "Maria Santos",
                        "occupation": "2512",
                        "valid_until": None,
                        "event_at": now,
                    },
                )
            if await self.contract(conn, "ct-demo-1") is None:
                await self.project_contract(
                    conn,
                    {
                        "contract_id": "ct-demo-1",
                        "establishment_id": establishment_id,
                        "person_id": person_id,
                        "nationality": "PHL",
                        "citizen": False,
                        "state": "active",
                        "visa_number": "W900000001",
                        "occupation": "2512",
                        "start_date": now.date(),
                        "end_date": None,
                        "event_at": now,
                    },
                )

    async def held_permits(
        self, conn: AsyncConnection, *, person_id: str, establishment_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The person's permits that are not cancelled or expired (at most one)."""
        conditions = [
            permits.c.person_id == person_id,
            permits.c.state.in_(["active", "renewal_pending", "transfer_pending"]),
        ]
        if establishment_id is not None:
            conditions.append(permits.c.establishment_id == establishment_id)
        rows = (await conn.execute(select(permits).where(*conditions))).all()
        return [dict(row._mapping) for row in rows]

    async def pending_transfer_of(
        self, conn: AsyncConnection, permit_id: str
    ) -> dict[str, Any] | None:
        statement = select(transfers).where(
            transfers.c.permit_id == permit_id, transfers.c.state == "pending"
        )
        return as_dict((await conn.execute(statement)).first())
