"""Consents: the scopes a person let a third-party client have, so the screen is not shown twice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import RowMapping, Table, delete, select, update

from hub.db._identity_common import Store, check_scopes, insert_ignore
from hub.db.identity_tables import ConsentRow

__all__ = ["Consent", "ConsentStore"]

_CONSENTS = cast(Table, ConsentRow.__table__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Consent:
    """What one person granted one client."""

    person_id: str
    client_id: str
    scopes: frozenset[str]
    granted_at: datetime
    updated_at: datetime


def _consent(row: RowMapping) -> Consent:
    return Consent(
        person_id=row["person_id"],
        client_id=row["client_id"],
        scopes=frozenset(row["scopes"]),
        granted_at=row["granted_at"],
        updated_at=row["updated_at"],
    )


class ConsentStore(Store):
    """Consents by person and client."""

    async def granted(self, person_id: str, client_id: str) -> frozenset[str]:
        """The scopes ``person_id`` granted ``client_id`` (empty when none)."""
        async with self._read() as conn:
            scopes = await conn.scalar(
                select(ConsentRow.scopes).where(
                    ConsentRow.person_id == person_id, ConsentRow.client_id == client_id
                )
            )
        return frozenset(scopes or ())

    async def grant(self, person_id: str, client_id: str, scopes: Sequence[str]) -> frozenset[str]:
        """Add ``scopes`` to what was granted; the scopes granted now."""
        wanted = check_scopes(scopes)
        now = self._clock()
        where = (ConsentRow.person_id == person_id, ConsentRow.client_id == client_id)
        async with self._write() as conn:
            inserted = await conn.execute(
                insert_ignore(conn, _CONSENTS)
                .values(
                    person_id=person_id,
                    client_id=client_id,
                    scopes=sorted(wanted),
                    granted_at=now,
                    updated_at=now,
                )
                .returning(ConsentRow.scopes)
            )
            if inserted.first() is not None:
                return frozenset(wanted)
            current = await conn.scalar(select(ConsentRow.scopes).where(*where).with_for_update())
            merged = frozenset(current or ()) | frozenset(wanted)
            await conn.execute(
                update(ConsentRow).where(*where).values(scopes=sorted(merged), updated_at=now)
            )
        return merged

    async def revoke(self, person_id: str, client_id: str) -> bool:
        """Forget the consent; ``False`` when there was none."""
        async with self._write() as conn:
            result = await conn.execute(
                delete(ConsentRow).where(
                    ConsentRow.person_id == person_id, ConsentRow.client_id == client_id
                )
            )
        return bool(result.rowcount)

    async def list_for(self, person_id: str) -> list[Consent]:
        """Every consent ``person_id`` gave, by client id."""
        statement = (
            select(_CONSENTS)
            .where(ConsentRow.person_id == person_id)
            .order_by(ConsentRow.client_id)
        )
        async with self._read() as conn:
            rows = (await conn.execute(statement)).mappings().all()
        return [_consent(row) for row in rows]
