"""The visa service's own tables, and every change to them in one transaction with its events.

The tables live on the service's own metadata, in its own database (an SQLite file by default;
its own PostgreSQL database, or schema through ``schema_translate_map``): never the hub's. The
transactional outbox's tables are copied onto the same metadata, so an application's row, its
transition, its domain event and the applicant's notification request commit or roll back
together; the relay publishes them afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    Column,
    Date,
    Index,
    Integer,
    String,
    Table,
    and_,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db.models import UTCDateTime
from hub.errors import ApplicationNotFound, IdempotencyConflict, VisaIneligible
from hub.events.outbox import enqueue
from hub.events.tables import include_event_tables
from hub.servicekit.paging import Page
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
from services.visas.domain import ACTIVE_STATES, Actor, State, check_transition

__all__ = [
    "METADATA",
    "Connection",
    "Idempotent",
    "Page",
    "Search",
    "VisaStore",
    "applications",
    "compliance_bands",
    "payment_receipts",
    "transitions",
]

METADATA = service_metadata()

applications = Table(
    "visa_applications",
    METADATA,
    Column("id", String(40), primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("state", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    # who applied: the hub's principal (kind, subject, client) and the establishment acted for
    Column("applicant_kind", String(20), nullable=False),
    Column("applicant_id", String(200), nullable=False),
    Column("applicant_client", String(200), nullable=True),
    Column("delegation_id", String(200), nullable=True),
    Column("establishment_id", String(100), nullable=True, index=True),
    Column("cr_number", String(10), nullable=True),
    Column("establishment_name", String(200), nullable=True),
    Column("sponsor_national_id", String(10), nullable=True, index=True),
    Column("relationship", String(20), nullable=True),
    Column("given_name", String(100), nullable=False),
    Column("family_name", String(100), nullable=False),
    Column("nationality", String(3), nullable=False),
    Column("passport_number", String(12), nullable=False),
    Column("birth_date", Date, nullable=False),
    Column("occupation", String(4), nullable=True),
    Column("monthly_salary", Integer, nullable=True),
    Column("duration", Integer, nullable=False),  # months (work) or days (visit)
    Column("contact_email", String(260), nullable=True),
    Column("fee", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("payment_id", String(100), nullable=True, unique=True),
    Column("paid_at", UTCDateTime(), nullable=True),
    Column("refunded", Integer, nullable=False, default=0),
    Column("checks", JSON, nullable=False),
    Column("review_reasons", JSON, nullable=False),
    Column("decision_reason", String(500), nullable=True),
    Column("visa_number", String(12), nullable=True, unique=True),
    Column("valid_from", Date, nullable=True),
    Column("valid_until", Date, nullable=True),
    Column("issued_at", UTCDateTime(), nullable=True),
    Column("search_text", String(1000), nullable=False),
    Column("submitted_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("pay_by", UTCDateTime(), nullable=False),
)
Index("ix_visa_applications_listing", applications.c.submitted_at, applications.c.id)
Index("ix_visa_applications_state", applications.c.state, applications.c.submitted_at)
Index(
    "ix_visa_applications_traveller",
    applications.c.nationality,
    applications.c.passport_number,
)

transitions = transitions_table(
    "visa_transitions", METADATA, owner="application_id", rows="visa_applications"
)

# scope: who used the key (principal and establishment), so keys never collide across callers
idempotency = idempotency_table("visa_idempotency", METADATA, result="application_id")

establishments = Table(
    "visa_establishments",
    METADATA,
    # the hub's establishment id, bound to its CR number on first use
    Column("establishment_id", String(100), primary_key=True),
    Column("cr_number", String(10), nullable=False, unique=True),
    # citizens employed (declared; the compliance service of a later issue computes it)
    Column("citizens", Integer, nullable=False, default=0),
    Column("updated_at", UTCDateTime(), nullable=False),
)

blocked_travellers = Table(
    "visa_blocked_travellers",
    METADATA,
    Column("nationality", String(3), primary_key=True),
    Column("passport_number", String(12), primary_key=True),
    Column("reason", String(200), nullable=False),
)

# a payment event that may come before its application's row commits (a fast webhook)
payment_receipts = receipts_table("visa_payment_receipts", METADATA)

compliance_bands = Table(
    "visa_compliance_bands",
    METADATA,
    # the compliance service's band of an establishment (from compliance.band.changed events);
    # when known it is preferred over the service's own computation from declared citizens
    Column("establishment_id", String(100), primary_key=True),
    Column("band", String(10), nullable=False),
    Column("citizens", Integer, nullable=False),
    Column("total", Integer, nullable=False),
    Column("ratio", JSON, nullable=False),
    Column("required", JSON, nullable=True),
    Column("changed_at", UTCDateTime(), nullable=False),
)

include_event_tables(METADATA)

_RECEIPTS = PaymentReceipts(payment_receipts)
_MOVES = Transitions(applications, transitions, owner="application_id", what="application")
_KEYS = IdempotencyKeys(idempotency, result="application_id")

#: The connection of an open transaction, as the workflow's steps receive it.
Connection = AsyncConnection

_FTS_INDEX: Final = "ix_visa_applications_fts"


@dataclass(frozen=True, slots=True, kw_only=True)
class Idempotent:
    """A retried request's earlier result: the application it created."""

    application_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Search:
    """Filters of an application listing; ``None`` means any."""

    establishment_id: str | None = None
    applicant_id: str | None = None
    state: str | None = None
    kind: str | None = None
    nationality: str | None = None
    occupation: str | None = None
    submitted_from: datetime | None = None
    submitted_to: datetime | None = None
    text: str | None = None
    limit: int = 20
    cursor: str | None = None


class VisaStore(ServiceStore):
    """Reads and writes of the visa tables; every write is one transaction with its events."""

    metadata = METADATA

    async def _complete_schema(self, conn: AsyncConnection) -> None:
        """The full-text index on PostgreSQL (an expression index the metadata cannot spell)."""
        if self._postgres:
            table = f'"{self._schema}".visa_applications' if self._schema else "visa_applications"
            await conn.execute(
                text(
                    f"CREATE INDEX IF NOT EXISTS {_FTS_INDEX} ON {table} "
                    "USING gin (to_tsvector('simple', search_text))"
                )
            )

    # ---- reads ----------------------------------------------------------------------------

    async def get(self, application_id: str) -> dict[str, Any]:
        row = await self._one(select(applications).where(applications.c.id == application_id))
        if row is None:
            raise ApplicationNotFound(f"no application {application_id}")
        return row

    async def history(self, application_id: str) -> list[dict[str, Any]]:
        async with self.reading() as conn:
            return await _MOVES.of(conn, application_id)

    async def by_visa_number(self, visa_number: str) -> dict[str, Any] | None:
        return await self._one(
            select(applications).where(applications.c.visa_number == visa_number)
        )

    async def by_payment(self, conn: AsyncConnection, payment_id: str) -> dict[str, Any] | None:
        statement = select(applications).where(applications.c.payment_id == payment_id)
        return as_dict((await conn.execute(statement)).first())

    async def idempotent(self, scope: str, key: str, digest: str) -> Idempotent | None:
        """The application an earlier request with this key made; a different body refuses."""
        async with self.reading() as conn:
            made = await _KEYS.made(conn, scope, key, digest)
        return None if made is None else Idempotent(application_id=made)

    async def eligibility_counts(
        self,
        *,
        establishment_id: str | None,
        nationality: str,
        passport_number: str,
        sponsor_national_id: str | None = None,
    ) -> dict[str, Any]:
        """What the checks read from the service's own records, in one connection."""
        active = applications.c.state.in_(sorted(ACTIVE_STATES))
        async with self.reading() as conn:
            blocked = (
                await conn.execute(
                    select(blocked_travellers.c.reason).where(
                        blocked_travellers.c.nationality == nationality,
                        blocked_travellers.c.passport_number == passport_number,
                    )
                )
            ).first() is not None
            open_elsewhere = bool(
                (
                    await conn.execute(
                        select(func.count()).where(
                            active,
                            applications.c.nationality == nationality,
                            applications.c.passport_number == passport_number,
                        )
                    )
                ).scalar_one()
            )
            used = foreigners = citizens = 0
            bound_cr: str | None = None
            if establishment_id is not None:
                used = (
                    await conn.execute(
                        select(func.count()).where(
                            active,
                            applications.c.kind == "work",
                            applications.c.establishment_id == establishment_id,
                        )
                    )
                ).scalar_one()
                foreigners = (
                    await conn.execute(
                        select(func.count()).where(
                            applications.c.state == "issued",
                            applications.c.kind == "work",
                            applications.c.establishment_id == establishment_id,
                        )
                    )
                ).scalar_one()
                row = (
                    await conn.execute(
                        select(establishments).where(
                            establishments.c.establishment_id == establishment_id
                        )
                    )
                ).first()
                if row is not None:
                    citizens, bound_cr = row.citizens, row.cr_number
            band = None
            if establishment_id is not None:
                known = (
                    await conn.execute(
                        select(compliance_bands).where(
                            compliance_bands.c.establishment_id == establishment_id
                        )
                    )
                ).first()
                band = None if known is None else dict(known._mapping)
            open_visits = 0
            if sponsor_national_id is not None:
                open_visits = (
                    await conn.execute(
                        select(func.count()).where(
                            active,
                            applications.c.kind == "visit",
                            applications.c.sponsor_national_id == sponsor_national_id,
                        )
                    )
                ).scalar_one()
        return {
            "blocked": blocked,
            "open_elsewhere": open_elsewhere,
            "used": int(used),
            "foreigners": int(foreigners),
            "citizens": int(citizens),
            "bound_cr": bound_cr,
            "open_visits": int(open_visits),
            "compliance": band,
        }

    async def establishment_of_cr(self, cr_number: str) -> str | None:
        """The establishment a CR number is bound to, if any."""
        async with self.reading() as conn:
            return (
                await conn.execute(
                    select(establishments.c.establishment_id).where(
                        establishments.c.cr_number == cr_number
                    )
                )
            ).scalar_one_or_none()

    async def search(self, query: Search) -> Page:
        """Applications matching ``query``, newest first, one page at a time (keyset)."""
        conditions = equal_to(
            (applications.c.establishment_id, query.establishment_id),
            (applications.c.applicant_id, query.applicant_id),
            (applications.c.state, query.state),
            (applications.c.kind, query.kind),
            (applications.c.nationality, query.nationality),
            (applications.c.occupation, query.occupation),
        )
        if query.submitted_from is not None:
            conditions.append(applications.c.submitted_at >= query.submitted_from)
        if query.submitted_to is not None:
            conditions.append(applications.c.submitted_at < query.submitted_to)
        if query.text:
            conditions.append(self._matches(query.text))
        return await self._page(
            applications, conditions, at="submitted_at", limit=query.limit, cursor=query.cursor
        )

    def _matches(self, words: str) -> Any:
        if self._postgres:
            vector = func.to_tsvector(literal_column("'simple'"), applications.c.search_text)
            return vector.op("@@")(func.plainto_tsquery(literal_column("'simple'"), words))
        # SQLite: every word must occur in the searchable text (which is stored lower-cased).
        terms = [term for term in words.lower().split() if term][:10]
        return and_(*(applications.c.search_text.contains(term, autoescape=True) for term in terms))

    async def due(self, now: datetime, today: date, limit: int = 500) -> list[tuple[str, State]]:
        """Applications the sweep moves: unpaid past their deadline, and visas past validity."""
        async with self.reading() as conn:
            lapsed = (
                await conn.execute(
                    select(applications.c.id)
                    .where(
                        applications.c.state == "awaiting_payment",
                        applications.c.pay_by < now,
                    )
                    .limit(limit)
                )
            ).all()
            expired = (
                await conn.execute(
                    select(applications.c.id)
                    .where(applications.c.state == "issued", applications.c.valid_until < today)
                    .limit(limit)
                )
            ).all()
        return [(row.id, "lapsed") for row in lapsed] + [(row.id, "expired") for row in expired]

    # ---- writes ---------------------------------------------------------------------------

    async def create(
        self,
        row: dict[str, Any],
        *,
        actor: Actor,
        path: Sequence[State],
        detail: dict[str, Any],
        idempotency_scope: str,
        idempotency_key: str,
        digest: str,
        events: Sequence[tuple[str, dict[str, Any]]],
        bind: tuple[str, str] | None = None,
        quota: int | None = None,
    ) -> dict[str, Any] | Idempotent:
        """Insert a new application along ``path`` with its transitions, key and events.

        All of it commits together or not at all. A concurrent retry with the same key that
        got there first wins: this one answers its application instead (no second row).
        """
        now = row["submitted_at"]
        try:
            async with self.writing() as conn:
                made = await _KEYS.made(conn, idempotency_scope, idempotency_key, digest)
                if made is not None:
                    return Idempotent(application_id=made)
                if bind is not None:
                    await self._bind(conn, bind[0], bind[1], now)
                if quota is not None and row["establishment_id"] is not None:
                    # checked again under the establishment's lock: two applications racing
                    # for the last place cannot both take it
                    used = await self.lock_establishment(conn, row["establishment_id"])
                    if used >= quota:
                        raise VisaIneligible(
                            "the application is not eligible: visa_quota_exhausted",
                            extra={"reasons": ["visa_quota_exhausted"]},
                        )
                await conn.execute(applications.insert().values(**row))
                previous: str | None = None
                for number, state in enumerate(path, start=1):
                    await _MOVES.record(
                        conn,
                        row["id"],
                        number=number,
                        from_state=previous,
                        to_state=state,
                        actor=actor,
                        at=now,
                        detail=detail if number == 1 else {},
                    )
                    previous = state
                await _KEYS.remember(
                    conn, idempotency_scope, idempotency_key, digest, row["id"], at=now
                )
                await emit(conn, events, key=f"visa:{row['id']}", prefix=row["id"])
        except IdempotencyConflict:
            # the same application id: a retry racing the first try, which committed first
            raced = await self.idempotent(idempotency_scope, idempotency_key, digest)
            if raced is None:
                raise
            return raced
        return row

    async def _bind(
        self, conn: AsyncConnection, establishment_id: str, cr: str, now: datetime
    ) -> None:
        row = (
            await conn.execute(
                select(establishments).where(establishments.c.establishment_id == establishment_id)
            )
        ).first()
        if row is None:
            await conn.execute(
                establishments.insert().values(
                    establishment_id=establishment_id, cr_number=cr, citizens=0, updated_at=now
                )
            )

    async def transition(
        self,
        conn: AsyncConnection,
        application_id: str,
        target: State,
        actor: Actor,
        *,
        now: datetime,
        changes: dict[str, Any] | None = None,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
        events: Sequence[tuple[str, dict[str, Any]]] = (),
    ) -> dict[str, Any]:
        """Move one application to ``target`` inside ``conn``'s open write transaction."""
        current = await locked(conn, applications, application_id)
        if current is None:
            raise ApplicationNotFound(f"no application {application_id}")
        check_transition(current["state"], target, actor)
        moved, number = await _MOVES.move(
            conn, current, target, actor, now=now, changes=changes, reason=reason, detail=detail
        )
        for event_type, payload in events:
            await enqueue(
                conn,
                type=event_type,
                payload=payload,
                key=f"visa:{application_id}",
                event_id=f"{application_id}.{number}.{event_type}",
            )
        return moved

    async def declare_workforce(self, establishment_id: str, cr_number: str, citizens: int) -> None:
        """Record the citizens an establishment employs (demo data and tests)."""
        now = datetime.now(UTC)
        async with self.writing() as conn:
            row = (
                await conn.execute(
                    select(establishments).where(
                        establishments.c.establishment_id == establishment_id
                    )
                )
            ).first()
            if row is None:
                await conn.execute(
                    establishments.insert().values(
                        establishment_id=establishment_id,
                        cr_number=cr_number,
                        citizens=citizens,
                        updated_at=now,
                    )
                )
            else:
                await conn.execute(
                    establishments.update()
                    .where(establishments.c.establishment_id == establishment_id)
                    .values(citizens=citizens, updated_at=now)
                )

    async def block(self, nationality: str, passport_number: str, reason: str) -> None:
        """Put a traveller on the service's block list (idempotent)."""
        async with self.writing() as conn:
            exists = (
                await conn.execute(
                    select(blocked_travellers.c.reason).where(
                        blocked_travellers.c.nationality == nationality,
                        blocked_travellers.c.passport_number == passport_number,
                    )
                )
            ).first()
            if exists is None:
                await conn.execute(
                    blocked_travellers.insert().values(
                        nationality=nationality, passport_number=passport_number, reason=reason
                    )
                )

    async def record_receipt(self, conn: AsyncConnection, payment_id: str, state: str) -> None:
        """Remember a payment event (its application may not be committed yet)."""
        await _RECEIPTS.record(conn, payment_id, state)

    async def receipt(self, conn: AsyncConnection, payment_id: str) -> str | None:
        """The state of an earlier payment event for ``payment_id``, if one came."""
        return await _RECEIPTS.state(conn, payment_id)

    async def has_receipt(self, payment_id: str) -> bool:
        """Whether a payment event for ``payment_id`` came (a read outside any write lock)."""
        async with self.reading() as conn:
            return await self.receipt(conn, payment_id) is not None

    async def lock_establishment(self, conn: AsyncConnection, establishment_id: str) -> int:
        """Serialise quota use of one establishment; answers its active work applications."""
        await self._advisory_lock(conn, f"visas:{establishment_id}")
        return int(
            (
                await conn.execute(
                    select(func.count()).where(
                        applications.c.state.in_(sorted(ACTIVE_STATES)),
                        applications.c.kind == "work",
                        applications.c.establishment_id == establishment_id,
                    )
                )
            ).scalar_one()
        )

    async def get_in(self, conn: AsyncConnection, application_id: str) -> dict[str, Any] | None:
        """The application, read (and locked on PostgreSQL) in ``conn``'s transaction."""
        return await locked(conn, applications, application_id)

    async def record_band(
        self, conn: AsyncConnection, establishment_id: str, values: dict[str, Any]
    ) -> bool:
        """Keep the compliance service's latest band; an older one arriving late is ignored."""
        row = (
            await conn.execute(
                select(compliance_bands.c.changed_at).where(
                    compliance_bands.c.establishment_id == establishment_id
                )
            )
        ).first()
        if row is None:
            await conn.execute(
                compliance_bands.insert().values(establishment_id=establishment_id, **values)
            )
            return True
        if row.changed_at > values["changed_at"]:
            return False
        await conn.execute(
            compliance_bands.update()
            .where(compliance_bands.c.establishment_id == establishment_id)
            .values(**values)
        )
        return True
