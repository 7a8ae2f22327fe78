"""Delegations: an establishment's owner lets an HR officer or a vendor application act for it.

A delegation names its scopes and a window of at most a year. Every grant and revocation is
appended to ``delegation_events`` (who, what, when, why) in the same transaction as the change,
and the database refuses to alter that trail afterwards. A delegation counts as active at a
moment when that moment lies in its window, it was not revoked by then, and neither the grantor
nor the grantee had been disabled by then (ending a membership revokes outright: see
:mod:`hub.db.establishment_store`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import ColumnElement, Select, Table, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import QueryableAttribute, aliased

from hub.db._identity_common import Store, check_aware, check_label, check_scopes
from hub.db._people_common import (
    check_reason,
    insert_new,
    locked_establishment,
    person_row,
    record_event,
)
from hub.db.identity_tables import OAuthClientRow
from hub.db.people_tables import (
    DelegationEventRow,
    DelegationRow,
    EstablishmentRow,
    MembershipRow,
    PersonRow,
)
from hub.errors import Conflict, Forbidden, InvalidRequest, InvalidScope, NotFound

__all__ = [
    "MAX_DELEGATION",
    "Delegation",
    "DelegationEvent",
    "DelegationStore",
]

#: The longest window a delegation may have; the owner renews it after that.
MAX_DELEGATION = timedelta(days=365)
# A valid_from a little in the past is the caller's "now" on a clock slightly behind ours.
_CLOCK_SKEW = timedelta(minutes=5)
_PERSON_PREFIX = "per_"

_DELEGATIONS = cast(Table, DelegationRow.__table__)
_EVENTS = cast(Table, DelegationEventRow.__table__)
_CLIENTS = cast(Table, OAuthClientRow.__table__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Delegation:
    """Rights to act for an establishment on ``scopes``, from ``valid_from`` to ``valid_until``.

    Exactly one of ``grantee_person`` (an HR officer) and ``grantee_client`` (a vendor
    application's client id) is set.
    """

    id: str
    establishment_id: str
    grantor: str
    grantee_person: str | None
    grantee_client: str | None
    scopes: tuple[str, ...]
    valid_from: datetime
    valid_until: datetime
    created_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None

    @property
    def grantee(self) -> str:
        """The grantee's id: a person id or a client id."""
        return self.grantee_person or self.grantee_client or ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DelegationEvent:
    """One line of a delegation's audit trail."""

    id: int
    delegation_id: str
    action: Literal["granted", "revoked"]
    actor: str
    at: datetime
    reason: str
    details: dict[str, Any]


def _delegation(row: Mapping[Any, Any]) -> Delegation:
    return Delegation(
        id=row["id"],
        establishment_id=row["establishment_id"],
        grantor=row["grantor_id"],
        grantee_person=row["grantee_person_id"],
        grantee_client=row["grantee_client_id"],
        scopes=tuple(row["scopes"]),
        valid_from=row["valid_from"],
        valid_until=row["valid_until"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        revoked_by=row["revoked_by"],
    )


def _event(row: Mapping[Any, Any]) -> DelegationEvent:
    return DelegationEvent(
        id=row["id"],
        delegation_id=row["delegation_id"],
        action=cast(Literal["granted", "revoked"], row["action"]),
        actor=row["actor"],
        at=row["at"],
        reason=row["reason"],
        details=dict(row["details"]),
    )


def _live(disabled_at: QueryableAttribute[datetime | None], at: datetime) -> ColumnElement[bool]:
    """Not disabled at ``at``."""
    return or_(disabled_at.is_(None), disabled_at > at)


async def _holds(conn: AsyncConnection, establishment_id: str, person_id: str, role: str) -> bool:
    statement = select(MembershipRow.id).where(
        MembershipRow.establishment_id == establishment_id,
        MembershipRow.person_id == person_id,
        MembershipRow.role == role,
        MembershipRow.until.is_(None),
    )
    return (await conn.execute(statement)).first() is not None


class DelegationStore(Store):
    """Delegations and their audit trail."""

    async def grant(
        self,
        establishment_id: str,
        *,
        grantor: str,
        scopes: Sequence[str],
        valid_until: datetime,
        grantee_person: str | None = None,
        grantee_client: str | None = None,
        valid_from: datetime | None = None,
        reason: str = "",
    ) -> Delegation:
        """Record an owner's delegation and its ``granted`` event.

        Forbidden unless ``grantor`` is an active owner of the establishment; Conflict unless a
        person grantee is its active HR officer, or a client grantee is enabled.
        """
        if (grantee_person is None) == (grantee_client is None):
            raise InvalidRequest("name exactly one grantee: grantee_person or grantee_client")
        if grantee_person is not None and grantee_person == grantor:
            raise InvalidRequest("an owner cannot delegate to themselves")
        names = check_scopes(scopes)
        if not names:
            raise InvalidRequest("a delegation names at least one scope")
        check_aware(valid_from, "valid_from")
        check_aware(valid_until, "valid_until")
        check_reason(reason, required=False)
        now = self._clock()
        start = now if valid_from is None else valid_from
        if start < now - _CLOCK_SKEW:
            raise InvalidRequest("valid_from must not be in the past")
        if valid_until <= now:
            raise InvalidRequest("valid_until must be in the future")
        if valid_until <= start:
            raise InvalidRequest("valid_until must be after valid_from")
        if valid_until - start > MAX_DELEGATION:
            raise InvalidRequest(f"a delegation lasts at most {MAX_DELEGATION.days} days")
        async with self._write() as conn:
            await locked_establishment(conn, establishment_id)
            # Persons are read, not locked: two grants naming the same two persons the other
            # way round would otherwise deadlock. A later disable is caught by active_for.
            if (await person_row(conn, grantor, lock=False))["disabled_at"] is not None:
                raise Forbidden(f"person {grantor!r} is disabled")
            if not await _holds(conn, establishment_id, grantor, "owner"):
                raise Forbidden(
                    f"person {grantor!r} is not an owner of establishment {establishment_id!r}"
                )
            if grantee_person is not None:
                await self._check_officer(conn, establishment_id, grantee_person)
            elif grantee_client is not None:
                await self._check_client(conn, grantee_client, names)
            values = {
                "establishment_id": establishment_id,
                "grantor_id": grantor,
                "grantee_person_id": grantee_person,
                "grantee_client_id": grantee_client,
                "scopes": names,
                "valid_from": start,
                "valid_until": valid_until,
                "created_at": now,
                "revoked_at": None,
                "revoked_by": None,
            }
            row = await insert_new(conn, _DELEGATIONS, "del", values)
            details = {
                "grantee_person": grantee_person,
                "grantee_client": grantee_client,
                "scopes": names,
                "valid_from": start.isoformat(),
                "valid_until": valid_until.isoformat(),
            }
            await record_event(
                conn,
                row["id"],
                action="granted",
                actor=grantor,
                at=now,
                reason=reason,
                details=details,
            )
        return _delegation(row)

    async def revoke(self, delegation_id: str, *, by: str, reason: str) -> Delegation:
        """Revoke a delegation with a ``revoked`` event; revoking again changes nothing."""
        check_label(by, "by")
        check_reason(reason, required=True)
        async with self._write() as conn:
            statement = (
                select(_DELEGATIONS).where(DelegationRow.id == delegation_id).with_for_update()
            )
            row = (await conn.execute(statement)).mappings().first()
            if row is None:
                raise NotFound(f"delegation {delegation_id!r} does not exist")
            if row["revoked_at"] is not None:
                return _delegation(row)
            now = self._clock()
            await conn.execute(
                update(DelegationRow)
                .where(DelegationRow.id == delegation_id)
                .values(revoked_at=now, revoked_by=by)
            )
            await record_event(
                conn, delegation_id, action="revoked", actor=by, at=now, reason=reason
            )
        return _delegation({**row, "revoked_at": now, "revoked_by": by})

    async def get(self, delegation_id: str) -> Delegation | None:
        """The delegation ``delegation_id``, or ``None``."""
        statement = select(_DELEGATIONS).where(DelegationRow.id == delegation_id)
        async with self._read() as conn:
            row = (await conn.execute(statement)).mappings().first()
        return None if row is None else _delegation(row)

    async def events(self, delegation_id: str) -> list[DelegationEvent]:
        """A delegation's audit trail, oldest first."""
        statement = (
            select(_EVENTS)
            .where(DelegationEventRow.delegation_id == delegation_id)
            .order_by(DelegationEventRow.id)
        )
        async with self._read() as conn:
            exists = select(DelegationRow.id).where(DelegationRow.id == delegation_id)
            if (await conn.execute(exists)).first() is None:
                raise NotFound(f"delegation {delegation_id!r} does not exist")
            rows = (await conn.execute(statement)).mappings().all()
        return [_event(row) for row in rows]

    async def active_for(
        self, establishment_id: str, grantee: str, *, at: datetime | None = None
    ) -> list[Delegation]:
        """The delegations ``grantee`` (a person or client id) holds for an establishment at ``at``.

        ``at`` defaults to now; earlier moments answer "what could it do then" for audits.
        """
        statement = self._active(grantee, at).where(
            DelegationRow.establishment_id == establishment_id
        )
        async with self._read() as conn:
            rows = (await conn.execute(statement)).mappings().all()
        return [_delegation(row) for row in rows]

    async def held_by(self, grantee: str, *, at: datetime | None = None) -> list[Delegation]:
        """Every delegation ``grantee`` holds at ``at`` (default now), from any establishment."""
        async with self._read() as conn:
            rows = (await conn.execute(self._active(grantee, at))).mappings().all()
        return [_delegation(row) for row in rows]

    async def revoked_since(self, moment: datetime) -> list[str]:
        """Ids of the delegations revoked at or after ``moment`` (tokens resting on them die)."""
        check_aware(moment, "moment")
        statement = select(DelegationRow.id).where(DelegationRow.revoked_at >= moment)
        async with self._read() as conn:
            return list((await conn.execute(statement)).scalars().all())

    def _active(self, grantee: str, at: datetime | None) -> Select[Any]:
        check_aware(at, "at")
        moment = self._clock() if at is None else at
        grantor = aliased(PersonRow)
        statement = (
            select(_DELEGATIONS)
            .join(grantor, grantor.id == DelegationRow.grantor_id)
            .where(
                DelegationRow.valid_from <= moment,
                DelegationRow.valid_until > moment,
                or_(DelegationRow.revoked_at.is_(None), DelegationRow.revoked_at > moment),
                _live(grantor.disabled_at, moment),
            )
            .order_by(DelegationRow.valid_from, DelegationRow.id)
        )
        if grantee.startswith(_PERSON_PREFIX):
            person = aliased(PersonRow)
            return statement.join(person, person.id == DelegationRow.grantee_person_id).where(
                person.id == grantee, _live(person.disabled_at, moment)
            )
        return statement.join(
            OAuthClientRow, OAuthClientRow.client_id == DelegationRow.grantee_client_id
        ).where(OAuthClientRow.client_id == grantee, _live(OAuthClientRow.disabled_at, moment))

    @staticmethod
    async def _check_officer(conn: AsyncConnection, establishment_id: str, person_id: str) -> None:
        if (await person_row(conn, person_id, lock=False))["disabled_at"] is not None:
            raise Conflict(f"person {person_id!r} is disabled")
        if not await _holds(conn, establishment_id, person_id, "hr_officer"):
            raise Conflict(
                f"person {person_id!r} is not an HR officer of establishment {establishment_id!r}"
            )

    @staticmethod
    async def _check_client(conn: AsyncConnection, client_id: str, scopes: list[str]) -> None:
        statement = select(_CLIENTS).where(OAuthClientRow.client_id == client_id)
        client = (await conn.execute(statement)).mappings().first()
        if client is None:
            raise NotFound(f"client {client_id!r} does not exist")
        if client["disabled_at"] is not None:
            raise Conflict(f"client {client_id!r} is disabled")
        beyond = [scope for scope in scopes if scope not in client["scopes"]]
        if beyond:
            raise InvalidScope(
                f"client {client_id!r} is not allowed the scope(s): {' '.join(beyond)}"
            )

    # Last in the class: below it, ``list`` in an annotation would name this method.
    async def list(self, establishment_id: str) -> list[Delegation]:
        """Every delegation of an establishment, revoked and expired included, oldest first."""
        statement = (
            select(_DELEGATIONS)
            .where(DelegationRow.establishment_id == establishment_id)
            .order_by(DelegationRow.created_at, DelegationRow.id)
        )
        async with self._read() as conn:
            exists = select(EstablishmentRow.id).where(EstablishmentRow.id == establishment_id)
            if (await conn.execute(exists)).first() is None:
                raise NotFound(f"establishment {establishment_id!r} does not exist")
            rows = (await conn.execute(statement)).mappings().all()
        return [_delegation(row) for row in rows]
