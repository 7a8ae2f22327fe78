"""Establishments (employers) and the memberships of persons in them: owner, HR officer, employee.

Ending a membership ends the delegations that rested on it, in the same transaction and each
with an audit event: an owner's grants lapse with their ownership, and an HR officer's with
their office. Re-joining later does not revive them; the owner grants anew.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast, get_args

from sqlalchemy import RowMapping, Table, and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db._identity_common import Store, check_label, insert_ignore
from hub.db._people_common import (
    check_choice,
    check_code,
    check_page,
    check_reason,
    insert_new,
    locked_establishment,
    person_row,
    revoke_delegations,
)
from hub.db.people_tables import DelegationRow, EstablishmentRow, MembershipRow
from hub.errors import Conflict, InvalidRequest, NotFound

__all__ = [
    "Establishment",
    "EstablishmentSize",
    "EstablishmentStore",
    "Membership",
    "MembershipRole",
    "check_role",
]

EstablishmentSize = Literal["micro", "small", "medium", "large"]
MembershipRole = Literal["owner", "hr_officer", "employee"]

_CR_NUMBER = re.compile(r"[0-9]{10}")

_ESTABLISHMENTS = cast(Table, EstablishmentRow.__table__)
_MEMBERSHIPS = cast(Table, MembershipRow.__table__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Establishment:
    """An establishment, known by its commercial-registration number."""

    id: str
    cr_number: str
    name: str
    sector: str
    size: EstablishmentSize
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Membership:
    """A person's role in an establishment; ``until`` is ``None`` while it is held."""

    person_id: str
    establishment_id: str
    role: MembershipRole
    since: datetime
    until: datetime | None


def _establishment(row: Mapping[Any, Any]) -> Establishment:
    return Establishment(
        id=row["id"],
        cr_number=row["cr_number"],
        name=row["name"],
        sector=row["sector"],
        size=cast(EstablishmentSize, row["size"]),
        created_at=row["created_at"],
    )


def _membership(row: Mapping[Any, Any]) -> Membership:
    return Membership(
        person_id=row["person_id"],
        establishment_id=row["establishment_id"],
        role=cast(MembershipRole, row["role"]),
        since=row["since"],
        until=row["until"],
    )


def check_role(role: str) -> MembershipRole:
    """``role`` when it is a membership role; InvalidRequest otherwise."""
    return cast(MembershipRole, check_choice(role, get_args(MembershipRole), "role"))


class EstablishmentStore(Store):
    """Establishments and memberships."""

    async def create(
        self, *, cr_number: str, name: str, sector: str, size: EstablishmentSize
    ) -> Establishment:
        """Record an establishment; Conflict when the CR number is already registered."""
        if _CR_NUMBER.fullmatch(cr_number) is None:
            raise InvalidRequest("cr_number must be exactly 10 digits")
        values = {
            "cr_number": cr_number,
            "name": check_label(name, "name"),
            "sector": check_code(sector, "sector"),
            "size": check_choice(size, get_args(EstablishmentSize), "size"),
            "created_at": self._clock(),
        }
        async with self._write() as conn:

            async def taken() -> None:
                statement = select(EstablishmentRow.id).where(
                    EstablishmentRow.cr_number == cr_number
                )
                if (await conn.execute(statement)).first() is not None:
                    raise Conflict(f"an establishment with CR number {cr_number} already exists")

            row = await insert_new(conn, _ESTABLISHMENTS, "est", values, on_conflict=taken)
        return _establishment(row)

    async def get(self, establishment_id: str) -> Establishment | None:
        """The establishment ``establishment_id``, or ``None``."""
        statement = select(_ESTABLISHMENTS).where(EstablishmentRow.id == establishment_id)
        async with self._read() as conn:
            row = (await conn.execute(statement)).mappings().first()
        return None if row is None else _establishment(row)

    async def cr_numbers(self, establishment_ids: Iterable[str]) -> dict[str, str]:
        """The CR number of each of these establishments the register holds."""
        wanted = sorted(set(establishment_ids))
        if not wanted:
            return {}
        statement = select(EstablishmentRow.id, EstablishmentRow.cr_number).where(
            EstablishmentRow.id.in_(wanted)
        )
        async with self._read() as conn:
            rows = (await conn.execute(statement)).all()
        return {row.id: row.cr_number for row in rows}

    async def add_member(
        self, establishment_id: str, person_id: str, role: MembershipRole
    ) -> Membership:
        """Give a person a role in an establishment; Conflict if they hold it already."""
        check_role(role)
        async with self._write() as conn:
            await locked_establishment(conn, establishment_id)
            person = await person_row(conn, person_id, lock=True)
            if person["disabled_at"] is not None:
                raise Conflict(f"person {person_id!r} is disabled")
            statement = (
                insert_ignore(conn, _MEMBERSHIPS)
                .values(
                    person_id=person_id,
                    establishment_id=establishment_id,
                    role=role,
                    since=self._clock(),
                    until=None,
                )
                .returning(*_MEMBERSHIPS.columns)
            )
            row = (await conn.execute(statement)).mappings().first()
        if row is None:
            raise Conflict(
                f"person {person_id!r} already is {role} of establishment {establishment_id!r}"
            )
        return _membership(row)

    async def end_membership(
        self,
        establishment_id: str,
        person_id: str,
        role: MembershipRole | None = None,
        *,
        actor: str,
        reason: str = "membership ended",
    ) -> list[Membership]:
        """End the person's active roles there (or only ``role``); the ended memberships.

        Delegations granted by an ending owner, or to an ending HR officer, are revoked with
        them, audited under ``actor``. NotFound when there was nothing to end.
        """
        if role is not None:
            check_role(role)
        check_label(actor, "actor")
        check_reason(reason, required=True)
        now = self._clock()
        async with self._write() as conn:
            await locked_establishment(conn, establishment_id)
            active = await self._active(conn, establishment_id, person_id, role)
            if not active:
                held = f"no active {role} membership" if role else "no active membership"
                raise NotFound(
                    f"person {person_id!r} has {held} in establishment {establishment_id!r}"
                )
            await conn.execute(
                update(MembershipRow)
                .where(MembershipRow.id.in_([row["id"] for row in active]))
                .values(until=now)
            )
            roles = {row["role"] for row in active}
            here = DelegationRow.establishment_id == establishment_id
            if "owner" in roles:
                granted = and_(here, DelegationRow.grantor_id == person_id)
                await revoke_delegations(conn, granted, actor=actor, reason=reason, at=now)
            if "hr_officer" in roles:
                received = and_(here, DelegationRow.grantee_person_id == person_id)
                await revoke_delegations(conn, received, actor=actor, reason=reason, at=now)
        return [_membership({**row, "until": now}) for row in active]

    async def members(
        self, establishment_id: str, *, include_ended: bool = False
    ) -> list[Membership]:
        """The establishment's memberships, oldest first; ended ones only when asked."""
        statement = (
            select(_MEMBERSHIPS)
            .where(MembershipRow.establishment_id == establishment_id)
            .order_by(MembershipRow.since, MembershipRow.id)
        )
        if not include_ended:
            statement = statement.where(MembershipRow.until.is_(None))
        async with self._read() as conn:
            exists = select(EstablishmentRow.id).where(EstablishmentRow.id == establishment_id)
            if (await conn.execute(exists)).first() is None:
                raise NotFound(f"establishment {establishment_id!r} does not exist")
            rows = (await conn.execute(statement)).mappings().all()
        return [_membership(row) for row in rows]

    async def memberships_of(self, person_id: str) -> list[Membership]:
        """The person's active memberships in every establishment, oldest first."""
        statement = (
            select(_MEMBERSHIPS)
            .where(MembershipRow.person_id == person_id, MembershipRow.until.is_(None))
            .order_by(MembershipRow.since, MembershipRow.id)
        )
        async with self._read() as conn:
            rows = (await conn.execute(statement)).mappings().all()
        return [_membership(row) for row in rows]

    @staticmethod
    async def _active(
        conn: AsyncConnection, establishment_id: str, person_id: str, role: str | None
    ) -> list[RowMapping]:
        statement = select(_MEMBERSHIPS).where(
            MembershipRow.establishment_id == establishment_id,
            MembershipRow.person_id == person_id,
            MembershipRow.until.is_(None),
        )
        if role is not None:
            statement = statement.where(MembershipRow.role == role)
        return list((await conn.execute(statement.order_by(MembershipRow.id))).mappings().all())

    # Last in the class: below it, ``list`` in an annotation would name this method.
    async def list(
        self, *, cr_number: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[Establishment]:
        """A page of establishments, oldest first, optionally only the one with ``cr_number``."""
        check_page(limit, offset)
        statement = select(_ESTABLISHMENTS).order_by(
            EstablishmentRow.created_at, EstablishmentRow.id
        )
        if cr_number is not None:
            statement = statement.where(EstablishmentRow.cr_number == cr_number)
        async with self._read() as conn:
            rows = (await conn.execute(statement.limit(limit).offset(offset))).mappings().all()
        return [_establishment(row) for row in rows]
