"""The contracts service's own tables, and every change to them in one transaction with its events.

As the visa service's: the tables live on the service's own metadata in its own database (an
SQLite file by default; its own PostgreSQL database or schema), and the transactional outbox's
tables are on the same metadata, so a contract's row, its transition, its signature, its
domain events and its notification requests commit or roll back together.

``contracts.document`` is the contract's current terms exactly as they were signed (the JSON
whose canonical form is hashed); the other columns repeat what listings and the object-level
checks need. ``contract_signatures`` holds each party's hub-signed signature per *signature
set*: ``""`` for the original version, an amendment's id for the version it proposes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import date, datetime
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
    Text,
    UniqueConstraint,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db.models import UTCDateTime
from hub.errors import ContractNotFound, EstablishmentMismatch, IdempotencyConflict
from hub.events.outbox import enqueue
from hub.events.tables import include_event_tables
from hub.servicekit.paging import Page
from hub.servicekit.store import (
    SEQUENCE,
    IdempotencyKeys,
    ServiceStore,
    Transitions,
    as_dict,
    equal_to,
    idempotency_table,
    locked,
    service_metadata,
    transitions_table,
    upsert,
)
from services.contracts.domain import Actor, State, check_transition

__all__ = [
    "METADATA",
    "Connection",
    "ContractStore",
    "amendments",
    "contracts",
    "signatures",
    "transitions",
]

METADATA = service_metadata()

contracts = Table(
    "contracts",
    METADATA,
    Column("id", String(40), primary_key=True),
    Column("state", String(20), nullable=False),
    Column("version", Integer, nullable=False),  # of the row (optimistic check)
    Column("terms_version", Integer, nullable=False),  # of the document
    Column("signature_set", String(40), nullable=False),  # "" or the applied amendment's id
    Column("establishment_id", String(100), nullable=False, index=True),
    Column("cr_number", String(10), nullable=False),
    Column("employee_id", String(100), nullable=False, index=True),
    Column("nationality", String(3), nullable=False),
    Column("citizen", Boolean, nullable=False),
    Column("visa_number", String(12), nullable=True),
    Column("occupation", String(4), nullable=False),
    Column("salary", Integer, nullable=False),
    Column("start_date", Date, nullable=False),
    Column("end_date", Date, nullable=True),
    Column("document", JSON, nullable=False),
    # who drafted it: the hub's principal, and where the employer hears of the contract
    Column("drafter_kind", String(20), nullable=False),
    Column("drafter_id", String(200), nullable=False),
    Column("drafter_client", String(200), nullable=True),
    Column("contact_email", String(260), nullable=True),
    Column("termination_reason", String(500), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
Index("ix_contracts_listing", contracts.c.created_at, contracts.c.id)

transitions = transitions_table(
    "contract_transitions", METADATA, owner="contract_id", rows="contracts", detail=False
)

amendments = Table(
    "contract_amendments",
    METADATA,
    Column("id", String(40), primary_key=True),
    Column(
        "contract_id",
        String(40),
        ForeignKey("contracts.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("state", String(20), nullable=False),
    Column("proposer", String(20), nullable=False),  # employer or employee
    Column("proposer_id", String(200), nullable=False),
    Column("changes", JSON, nullable=False),
    Column("document", JSON, nullable=False),  # the version it proposes, whole
    Column("reason", String(500), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

signatures = Table(
    "contract_signatures",
    METADATA,
    Column("seq", SEQUENCE, primary_key=True, autoincrement=True),
    Column(
        "contract_id",
        String(40),
        ForeignKey("contracts.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("signature_set", String(40), nullable=False),
    Column("terms_version", Integer, nullable=False),
    Column("party", String(20), nullable=False),
    Column("document_hash", String(64), nullable=False),
    Column("signer", JSON, nullable=False),
    Column("signed_at", String(40), nullable=False),  # exactly as the hub signed it
    Column("jws", Text, nullable=False),
    UniqueConstraint("contract_id", "signature_set", "party", name="uq_contract_signatures_party"),
    sqlite_autoincrement=True,
)

idempotency = idempotency_table("contract_idempotency", METADATA, result="resource_id")

establishments = Table(
    "contract_establishments",
    METADATA,
    # the hub's establishment id, bound to its CR number on first use
    Column("establishment_id", String(100), primary_key=True),
    Column("cr_number", String(10), nullable=False, unique=True),
    Column("bound_at", UTCDateTime(), nullable=False),
)

include_event_tables(METADATA)

_MOVES = Transitions(contracts, transitions, owner="contract_id", what="contract")
_KEYS = IdempotencyKeys(idempotency, result="resource_id")

#: The connection of an open transaction, as the workflow's steps receive it.
Connection = AsyncConnection
Events = Sequence[tuple[str, str, dict[str, Any]]]  # (event id, type, payload)


async def _emit(conn: AsyncConnection, contract_id: str, events: Events) -> None:
    for event_id, event_type, payload in events:
        # the outbox keeps ids of at most 64 characters: a longer stable id is hashed
        stable = event_id if len(event_id) <= 64 else hashlib.sha256(event_id.encode()).hexdigest()
        await enqueue(
            conn, type=event_type, payload=payload, key=f"contract:{contract_id}", event_id=stable
        )


class ContractStore(ServiceStore):
    """Reads and writes of the contract tables; every write is one transaction with its events."""

    metadata = METADATA

    # ---- reads ----------------------------------------------------------------------------

    async def get(self, contract_id: str) -> dict[str, Any]:
        row = await self._one(select(contracts).where(contracts.c.id == contract_id))
        if row is None:
            raise ContractNotFound(f"no contract {contract_id}")
        return row

    async def get_in(self, conn: AsyncConnection, contract_id: str) -> dict[str, Any]:
        """The contract, read (and locked on PostgreSQL) in ``conn``'s transaction."""
        row = await locked(conn, contracts, contract_id)
        if row is None:
            raise ContractNotFound(f"no contract {contract_id}")
        return row

    async def history(self, contract_id: str) -> list[dict[str, Any]]:
        async with self.reading() as conn:
            return await _MOVES.of(conn, contract_id)

    async def signatures_of(
        self, contract_id: str, signature_set: str, conn: AsyncConnection | None = None
    ) -> list[dict[str, Any]]:
        statement = (
            select(signatures)
            .where(
                signatures.c.contract_id == contract_id,
                signatures.c.signature_set == signature_set,
            )
            .order_by(signatures.c.seq)
        )
        if conn is not None:
            return [dict(row._mapping) for row in (await conn.execute(statement)).all()]
        return await self._all(statement)

    async def amendments_of(self, contract_id: str) -> list[dict[str, Any]]:
        return await self._all(
            select(amendments)
            .where(amendments.c.contract_id == contract_id)
            .order_by(amendments.c.created_at, amendments.c.id)
        )

    async def amendment_in(
        self, conn: AsyncConnection, contract_id: str, amendment_id: str
    ) -> dict[str, Any] | None:
        row = (
            await conn.execute(
                select(amendments).where(
                    amendments.c.id == amendment_id, amendments.c.contract_id == contract_id
                )
            )
        ).first()
        return as_dict(row)

    async def open_amendment(self, conn: AsyncConnection, contract_id: str) -> str | None:
        return (
            await conn.execute(
                select(amendments.c.id).where(
                    amendments.c.contract_id == contract_id, amendments.c.state == "proposed"
                )
            )
        ).scalar_one_or_none()

    async def idempotent(self, scope: str, key: str, digest: str) -> str | None:
        """The resource an earlier request with this key made; a different body refuses."""
        async with self.reading() as conn:
            return await _KEYS.made(conn, scope, key, digest)

    async def bound_establishment(self, cr_number: str) -> str | None:
        row = await self._one(
            select(establishments.c.establishment_id).where(establishments.c.cr_number == cr_number)
        )
        return None if row is None else str(row["establishment_id"])

    async def bound_cr(self, establishment_id: str) -> str | None:
        row = await self._one(
            select(establishments.c.cr_number).where(
                establishments.c.establishment_id == establishment_id
            )
        )
        return None if row is None else str(row["cr_number"])

    async def search(
        self,
        *,
        establishment_id: str | None = None,
        employee_id: str | None = None,
        state: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page:
        """Contracts matching the filters, newest first, one page at a time (keyset)."""
        conditions = equal_to(
            (contracts.c.establishment_id, establishment_id),
            (contracts.c.employee_id, employee_id),
            (contracts.c.state, state),
        )
        return await self._page(contracts, conditions, at="created_at", limit=limit, cursor=cursor)

    async def due(self, today: date, limit: int = 500) -> list[str]:
        """Active contracts past their end date (the sweep expires them)."""
        rows = await self._all(
            select(contracts.c.id)
            .where(contracts.c.state == "active", contracts.c.end_date < today)
            .limit(limit)
        )
        return [row["id"] for row in rows]

    # ---- writes ---------------------------------------------------------------------------

    async def create(
        self,
        row: dict[str, Any],
        *,
        actor: Actor,
        idempotency_scope: str,
        idempotency_key: str,
        digest: str,
        events: Events,
    ) -> tuple[str, bool]:
        """Insert a new draft with its first transition, key, binding and events.

        Answers ``(contract id, replayed)``: a concurrent retry with the same key that got
        there first wins, and this one answers its contract (no second row).
        """
        now = row["created_at"]
        try:
            async with self.writing() as conn:
                made = await _KEYS.made(conn, idempotency_scope, idempotency_key, digest)
                if made is not None:
                    return made, True
                await self._bind(conn, row["establishment_id"], row["cr_number"], now)
                await conn.execute(contracts.insert().values(**row))
                await _MOVES.record(
                    conn,
                    row["id"],
                    number=1,
                    from_state=None,
                    to_state=row["state"],
                    actor=actor,
                    at=now,
                )
                await _KEYS.remember(
                    conn, idempotency_scope, idempotency_key, digest, row["id"], at=now
                )
                await _emit(conn, row["id"], events)
        except IdempotencyConflict:
            raced = await self.idempotent(idempotency_scope, idempotency_key, digest)
            if raced is None:
                raise
            return raced, True
        return row["id"], False

    async def _bind(
        self, conn: AsyncConnection, establishment_id: str, cr_number: str, now: datetime
    ) -> None:
        """Bind the establishment to its CR number on first use; two first drafts may race."""
        values = {"establishment_id": establishment_id, "cr_number": cr_number, "bound_at": now}
        # on SQLite writers are serialised (BEGIN IMMEDIATE), but the same statement holds
        await conn.execute(upsert(conn, establishments).values(**values).on_conflict_do_nothing())
        bound = (
            await conn.execute(
                select(establishments.c.establishment_id, establishments.c.cr_number).where(
                    or_(
                        establishments.c.establishment_id == establishment_id,
                        establishments.c.cr_number == cr_number,
                    )
                )
            )
        ).all()
        if any((b.establishment_id, b.cr_number) != (establishment_id, cr_number) for b in bound):
            raise EstablishmentMismatch(
                f"CR number {cr_number} is not the one on record for establishment "
                f"{establishment_id}"
            )

    async def transition(
        self,
        conn: AsyncConnection,
        contract_id: str,
        target: State,
        actor: Actor,
        *,
        now: datetime,
        changes: dict[str, Any] | None = None,
        reason: str | None = None,
        events: Callable[[dict[str, Any], int], Events] = lambda row, number: (),
    ) -> dict[str, Any]:
        """Move one contract to ``target`` inside ``conn``'s open write transaction.

        ``events`` is given the contract as it becomes and the transition's number, so the
        events' ids are stable (``<contract>.<number>.<type>``).
        """
        current = await self.get_in(conn, contract_id)
        check_transition(current["state"], target, actor)
        moved, number = await _MOVES.move(
            conn, current, target, actor, now=now, changes=changes, reason=reason
        )
        await _emit(conn, contract_id, events(moved, number))
        return moved

    async def update(
        self, conn: AsyncConnection, contract_id: str, values: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        """Change a contract's columns without a state change (an applied amendment)."""
        current = await self.get_in(conn, contract_id)
        values = {**values, "updated_at": now, "version": current["version"] + 1}
        await conn.execute(contracts.update().where(contracts.c.id == contract_id).values(**values))
        return {**current, **values}

    async def add_signature(
        self, conn: AsyncConnection, row: dict[str, Any], events: Events
    ) -> None:
        """Record a party's signature (the unique key refuses a second one) and its events."""
        await conn.execute(signatures.insert().values(**row))
        await _emit(conn, row["contract_id"], events)

    async def add_amendment(
        self,
        conn: AsyncConnection,
        row: dict[str, Any],
        *,
        idempotency_scope: str,
        idempotency_key: str,
        digest: str,
        events: Events,
    ) -> None:
        await conn.execute(amendments.insert().values(**row))
        await _KEYS.remember(
            conn, idempotency_scope, idempotency_key, digest, row["id"], at=row["created_at"]
        )
        await _emit(conn, row["contract_id"], events)

    async def set_amendment(
        self,
        conn: AsyncConnection,
        *,
        amendment_id: str,
        state: str,
        now: datetime,
        events: Events,
        contract_id: str,
    ) -> None:
        await conn.execute(
            amendments.update()
            .where(amendments.c.id == amendment_id)
            .values(state=state, updated_at=now)
        )
        await _emit(conn, contract_id, events)
