"""Drafts: admins' edits of the whole configuration document before they are published.

A draft remembers the active version it started from (``based_on``), so publishing it can
refuse when someone else published in between. Edits are guarded by ``revision``: a replace
names the revision it read, and a stale one is refused with 409 instead of silently
overwriting another admin's edit. Publishing deletes the draft (:meth:`ConfigStore.publish`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from hub.db._store import Store
from hub.db.models import ConfigDraft
from hub.errors import Conflict, NotFound

__all__ = ["DraftStore", "StoredDraft"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredDraft:
    """One draft and the version it was based on."""

    id: int
    based_on: int | None
    document: dict[str, Any]
    revision: int
    comment: str
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime


def _draft(row: Mapping[Any, Any]) -> StoredDraft:
    return StoredDraft(**{name: row[name] for name in StoredDraft.__dataclass_fields__})


def _missing(draft_id: int) -> NotFound:
    return NotFound(f"draft {draft_id} does not exist")


class DraftStore(Store):
    """The ``config_drafts`` table."""

    async def create(
        self, document: dict[str, Any], *, based_on: int | None, author: str, comment: str = ""
    ) -> StoredDraft:
        """A new draft at revision 1."""
        now = self._clock()
        async with self._write() as conn:
            result = await conn.execute(
                insert(ConfigDraft).values(
                    based_on=based_on,
                    document=document,
                    revision=1,
                    comment=comment,
                    created_by=author,
                    created_at=now,
                    updated_by=author,
                    updated_at=now,
                )
            )
            (draft_id,) = result.inserted_primary_key or (None,)
            row = (
                (await conn.execute(select(ConfigDraft).where(ConfigDraft.id == draft_id)))
                .mappings()
                .one()
            )
        return _draft(row)

    async def get(self, draft_id: int) -> StoredDraft:
        """The draft, or 404."""
        async with self._read() as conn:
            row = (
                (await conn.execute(select(ConfigDraft).where(ConfigDraft.id == draft_id)))
                .mappings()
                .first()
            )
        if row is None:
            raise _missing(draft_id)
        return _draft(row)

    async def list(self, *, limit: int = 100) -> list[StoredDraft]:
        """The newest drafts first."""
        statement = select(ConfigDraft).order_by(ConfigDraft.id.desc()).limit(limit)
        async with self._read() as conn:
            rows = (await conn.execute(statement)).mappings().all()
        return [_draft(row) for row in rows]

    async def replace(
        self,
        draft_id: int,
        document: dict[str, Any],
        *,
        revision: int,
        author: str,
        comment: str | None = None,
    ) -> StoredDraft:
        """Replace the document if the draft is still at ``revision``; 409 otherwise."""
        values: dict[str, Any] = {
            "document": document,
            "revision": revision + 1,
            "updated_by": author,
            "updated_at": self._clock(),
        }
        if comment is not None:
            values["comment"] = comment
        async with self._write() as conn:
            result = await conn.execute(
                update(ConfigDraft)
                .where(ConfigDraft.id == draft_id, ConfigDraft.revision == revision)
                .values(**values)
            )
            if not result.rowcount:
                current = await conn.scalar(
                    select(ConfigDraft.revision).where(ConfigDraft.id == draft_id)
                )
                if current is None:
                    raise _missing(draft_id)
                raise Conflict(
                    f"draft {draft_id} changed: it is at revision {current}, not {revision}",
                    extra={"revision": current},
                )
            row = (
                (await conn.execute(select(ConfigDraft).where(ConfigDraft.id == draft_id)))
                .mappings()
                .one()
            )
        return _draft(row)

    async def delete(self, draft_id: int) -> None:
        """Delete the draft, or 404."""
        async with self._write() as conn:
            result = await conn.execute(delete(ConfigDraft).where(ConfigDraft.id == draft_id))
            if not result.rowcount:
                raise _missing(draft_id)
