"""The occupations service's own tables; each change commits in one transaction with its events.

Besides the change requests, two projections of other services' events: the workers'
employments (from ``contract.activated`` / ``contract.amended`` / ``contract.terminated``) and
their verified qualification certificates (from ``certificate.verified``). A projection row is
written in the consumer's transaction, with the event's id marked processed (at most once).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db.models import UTCDateTime
from hub.errors import ChangeRequestNotFound
from hub.events.tables import include_event_tables
from hub.servicekit.store import (
    Events,
    ServiceStore,
    VersionedRows,
    as_dict,
    equal_to,
    locked,
    service_metadata,
)

__all__ = [
    "METADATA",
    "Connection",
    "OccupationStore",
    "change_requests",
    "employments",
    "qualifications",
]

METADATA = service_metadata()

employments = Table(
    "occupation_employments",
    METADATA,
    Column("contract_id", String(100), primary_key=True),
    Column("establishment_id", String(100), nullable=False),
    Column("person_id", String(200), nullable=False),
    Column("citizen", Boolean, nullable=False),
    Column("occupation", String(4), nullable=False),
    Column("active", Boolean, nullable=False),
    #: A terminated contract stays terminated, whatever order its events come in.
    Column("terminated", Boolean, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
Index("ix_occupation_employments_worker", employments.c.establishment_id, employments.c.person_id)

qualifications = Table(
    "occupation_qualifications",
    METADATA,
    Column("certificate_id", String(100), primary_key=True),
    Column("person_id", String(200), nullable=False, index=True),
    Column("national_id", String(20), nullable=True, index=True),
    Column("degree", String(20), nullable=False),
    Column("field", String(100), nullable=True),
    Column("verified_at", UTCDateTime(), nullable=False),
)

change_requests = Table(
    "occupation_change_requests",
    METADATA,
    Column("id", String(40), primary_key=True),
    Column("person_id", String(200), nullable=False, index=True),
    Column("establishment_id", String(100), nullable=False, index=True),
    Column("contract_id", String(100), nullable=False),
    Column("from_code", String(4), nullable=False),
    Column("to_code", String(4), nullable=False),
    Column("state", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    Column("reason", String(500), nullable=True),  # the establishment's
    Column("review_reasons", JSON, nullable=False),
    Column("decision_reason", String(500), nullable=True),  # the officer's
    Column("requested_by", String(200), nullable=False),
    Column("requested_by_kind", String(20), nullable=False),
    Column("decided_by", String(200), nullable=True),
    Column("submitted_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
Index(
    "ix_occupation_change_requests_state", change_requests.c.state, change_requests.c.submitted_at
)

include_event_tables(METADATA)

_ROWS: Final = VersionedRows(change_requests, stream="occupation-change", what="request")

Connection = AsyncConnection
_PAGE_MAX: Final = 200


class OccupationStore(ServiceStore):
    """Reads and writes of the occupations tables."""

    metadata = METADATA

    # ---- projections (in the consumer's transaction) --------------------------------------

    async def employment_changed(
        self,
        conn: AsyncConnection,
        *,
        contract_id: str,
        establishment_id: str,
        person_id: str,
        citizen: bool,
        occupation: str | None,
        change: str,
        at: datetime,
    ) -> None:
        """Apply a contract event: ``activated``, ``amended`` or ``terminated``."""
        row = (
            await conn.execute(select(employments).where(employments.c.contract_id == contract_id))
        ).first()
        if row is None:
            if occupation is None:
                return  # nothing to record about a contract never seen with an occupation
            await conn.execute(
                employments.insert().values(
                    contract_id=contract_id,
                    establishment_id=establishment_id,
                    person_id=person_id,
                    citizen=citizen,
                    occupation=occupation,
                    active=change == "activated",
                    terminated=change == "terminated",
                    updated_at=at,
                )
            )
            return
        values: dict[str, Any] = {"updated_at": at}
        if change == "terminated":
            values.update(active=False, terminated=True)
        elif change == "activated" and not row.terminated:
            values["active"] = True
        if occupation is not None and change in {"activated", "amended"}:
            values["occupation"] = occupation
        await conn.execute(
            employments.update().where(employments.c.contract_id == contract_id).values(**values)
        )

    async def certificate_verified(
        self,
        conn: AsyncConnection,
        *,
        certificate_id: str,
        person_id: str,
        national_id: str | None,
        degree: str,
        field: str | None,
        at: datetime,
    ) -> None:
        exists = (
            await conn.execute(
                select(qualifications.c.certificate_id).where(
                    qualifications.c.certificate_id == certificate_id
                )
            )
        ).first()
        if exists is None:
            await conn.execute(
                qualifications.insert().values(
                    certificate_id=certificate_id,
                    person_id=person_id,
                    national_id=national_id,
                    degree=degree,
                    field=field,
                    verified_at=at,
                )
            )

    # ---- what the rules read --------------------------------------------------------------

    async def active_employment(
        self, conn: AsyncConnection, establishment_id: str, person_id: str
    ) -> dict[str, Any] | None:
        row = (
            await conn.execute(
                select(employments)
                .where(
                    employments.c.establishment_id == establishment_id,
                    employments.c.person_id == person_id,
                    employments.c.active.is_(True),
                )
                .order_by(employments.c.updated_at.desc())
            )
        ).first()
        return as_dict(row)

    async def degrees(self, conn: AsyncConnection, person_id: str) -> list[str]:
        """The degrees of the person's verified certificates (by hub subject or national ID)."""
        rows = await conn.execute(
            select(qualifications.c.degree).where(
                or_(
                    qualifications.c.person_id == person_id,
                    qualifications.c.national_id == person_id,
                )
            )
        )
        return list(rows.scalars())

    async def open_request(self, conn: AsyncConnection, person_id: str) -> dict[str, Any] | None:
        row = (
            await conn.execute(
                select(change_requests).where(
                    change_requests.c.person_id == person_id,
                    change_requests.c.state == "in_review",
                )
            )
        ).first()
        return as_dict(row)

    async def lock_worker(self, conn: AsyncConnection, person_id: str) -> None:
        """Serialise one worker's requests (SQLite's write lock already does)."""
        await self._advisory_lock(conn, f"occupations:{person_id}")

    # ---- change requests ------------------------------------------------------------------

    async def get(self, request_id: str) -> dict[str, Any]:
        row = await self._one(select(change_requests).where(change_requests.c.id == request_id))
        if row is None:
            raise ChangeRequestNotFound(f"no change request {request_id}")
        return row

    async def lock(self, conn: AsyncConnection, request_id: str) -> dict[str, Any] | None:
        return await locked(conn, change_requests, request_id)

    async def search(
        self,
        *,
        establishment_id: str | None = None,
        person_id: str | None = None,
        state: str | None = None,
    ) -> list[dict[str, Any]]:
        conditions = equal_to(
            (change_requests.c.establishment_id, establishment_id),
            (change_requests.c.person_id, person_id),
            (change_requests.c.state, state),
        )
        statement = (
            select(change_requests)
            .where(*conditions)
            .order_by(change_requests.c.submitted_at.desc(), change_requests.c.id)
            .limit(_PAGE_MAX)
        )
        return await self._all(statement)

    async def insert(self, conn: AsyncConnection, row: dict[str, Any], events: Events) -> None:
        """A new change request and its events."""
        await _ROWS.insert(conn, row, events)

    async def update(
        self,
        conn: AsyncConnection,
        current: dict[str, Any],
        changes: dict[str, Any],
        events: Events,
    ) -> dict[str, Any]:
        """Change a change request over its version, with its events; the row as it became."""
        return await _ROWS.update(conn, current, changes, events)

    async def set_occupation(self, conn: AsyncConnection, contract_id: str, code: str) -> None:
        await conn.execute(
            employments.update()
            .where(employments.c.contract_id == contract_id)
            .values(occupation=code)
        )
