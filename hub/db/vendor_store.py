"""Vendor organisations: the companies whose applications call the hub as OAuth clients."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select

from hub.db._identity_common import Store, check_label
from hub.db._people_common import check_email, insert_new
from hub.db.people_tables import VendorRow

__all__ = ["Vendor", "VendorStore"]

_VENDORS = cast(Table, VendorRow.__table__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Vendor:
    """A vendor organisation and whom to contact there."""

    id: str
    name: str
    contact_email: str
    created_at: datetime


def _vendor(row: Mapping[Any, Any]) -> Vendor:
    return Vendor(
        id=row["id"],
        name=row["name"],
        contact_email=row["contact_email"],
        created_at=row["created_at"],
    )


class VendorStore(Store):
    """Vendor organisations."""

    async def create(self, *, name: str, contact_email: str) -> Vendor:
        """Record a vendor organisation."""
        values = {
            "name": check_label(name, "name"),
            "contact_email": check_email(contact_email, "contact_email"),
            "created_at": self._clock(),
        }
        async with self._write() as conn:
            row = await insert_new(conn, _VENDORS, "ven", values)
        return _vendor(row)

    async def get(self, vendor_id: str) -> Vendor | None:
        """The vendor ``vendor_id``, or ``None``."""
        statement = select(_VENDORS).where(VendorRow.id == vendor_id)
        async with self._read() as conn:
            row = (await conn.execute(statement)).mappings().first()
        return None if row is None else _vendor(row)

    async def list(self) -> list[Vendor]:
        """Every vendor organisation, oldest first."""
        statement = select(_VENDORS).order_by(VendorRow.created_at, VendorRow.id)
        async with self._read() as conn:
            rows = (await conn.execute(statement)).mappings().all()
        return [_vendor(row) for row in rows]
