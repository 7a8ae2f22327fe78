"""Government staff roles: agency officers (of one agency each) and platform admins."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast, get_args

from sqlalchemy import Table, select, update

from hub.db._identity_common import Store
from hub.db._people_common import check_choice, check_code, insert_new, person_row
from hub.db.people_tables import StaffRoleRow
from hub.errors import Conflict, InvalidRequest, NotFound

__all__ = ["StaffRole", "StaffRoleName", "StaffStore"]

StaffRoleName = Literal["agency_officer", "platform_admin"]

_STAFF = cast(Table, StaffRoleRow.__table__)


@dataclass(frozen=True, slots=True, kw_only=True)
class StaffRole:
    """A staff role held from ``granted_at`` until ``revoked_at`` (``None``: still held)."""

    id: str
    person_id: str
    role: StaffRoleName
    agency: str | None
    granted_at: datetime
    revoked_at: datetime | None


def _staff(row: Mapping[Any, Any]) -> StaffRole:
    return StaffRole(
        id=row["id"],
        person_id=row["person_id"],
        role=cast(StaffRoleName, row["role"]),
        agency=row["agency"],
        granted_at=row["granted_at"],
        revoked_at=row["revoked_at"],
    )


class StaffStore(Store):
    """Staff roles: grant, list, revoke."""

    async def grant(
        self, person_id: str, role: StaffRoleName, agency: str | None = None
    ) -> StaffRole:
        """Grant a role; an agency officer names an agency, a platform admin none."""
        check_choice(role, get_args(StaffRoleName), "role")
        if role == "agency_officer":
            if agency is None:
                raise InvalidRequest("an agency_officer role names its agency")
            check_code(agency, "agency")
        elif agency is not None:
            raise InvalidRequest("a platform_admin role belongs to no agency")
        async with self._write() as conn:
            # The person's row lock serialises grants to one person: no duplicate slips in.
            person = await person_row(conn, person_id, lock=True)
            if person["disabled_at"] is not None:
                raise Conflict(f"person {person_id!r} is disabled")
            held = select(StaffRoleRow.id).where(
                StaffRoleRow.person_id == person_id,
                StaffRoleRow.role == role,
                StaffRoleRow.revoked_at.is_(None),
                StaffRoleRow.agency.is_(None) if agency is None else StaffRoleRow.agency == agency,
            )
            if (await conn.execute(held)).first() is not None:
                where = f" of agency {agency!r}" if agency else ""
                raise Conflict(f"person {person_id!r} already is {role}{where}")
            values = {
                "person_id": person_id,
                "role": role,
                "agency": agency,
                "granted_at": self._clock(),
                "revoked_at": None,
            }
            row = await insert_new(conn, _STAFF, "stf", values)
        return _staff(row)

    async def get(self, staff_role_id: str) -> StaffRole | None:
        """The staff role ``staff_role_id``, or ``None``."""
        statement = select(_STAFF).where(StaffRoleRow.id == staff_role_id)
        async with self._read() as conn:
            row = (await conn.execute(statement)).mappings().first()
        return None if row is None else _staff(row)

    async def revoke(self, staff_role_id: str) -> StaffRole:
        """Revoke a staff role for good; revoking again keeps the first date."""
        async with self._write() as conn:
            statement = select(_STAFF).where(StaffRoleRow.id == staff_role_id).with_for_update()
            row = (await conn.execute(statement)).mappings().first()
            if row is None:
                raise NotFound(f"staff role {staff_role_id!r} does not exist")
            if row["revoked_at"] is not None:
                return _staff(row)
            now = self._clock()
            await conn.execute(
                update(StaffRoleRow).where(StaffRoleRow.id == staff_role_id).values(revoked_at=now)
            )
        return _staff({**row, "revoked_at": now})

    # Last in the class: below it, ``list`` in an annotation would name this method.
    async def list(
        self, *, person_id: str | None = None, active_only: bool = False
    ) -> list[StaffRole]:
        """Staff roles, oldest first: everyone's or one person's, revoked ones unless told."""
        statement = select(_STAFF).order_by(StaffRoleRow.granted_at, StaffRoleRow.id)
        if person_id is not None:
            statement = statement.where(StaffRoleRow.person_id == person_id)
        if active_only:
            statement = statement.where(StaffRoleRow.revoked_at.is_(None))
        async with self._read() as conn:
            rows = (await conn.execute(statement)).mappings().all()
        return [_staff(row) for row in rows]
