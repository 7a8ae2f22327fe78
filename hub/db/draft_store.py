"""Drafts: admins' edits of the whole configuration document before they are published.

A draft remembers the active version it started from (``based_on``), so publishing it can
refuse when someone else published in between. Edits are guarded by ``revision``: a replace
names the revision it read, and a stale one is refused with 409 instead of silently
overwriting another admin's edit. Publishing deletes the draft (:meth:`ConfigStore.publish`).

Every admin who created or edited a draft is one of its ``editors``, recorded in the same
transaction as the edit: a four-eyes approval must come from someone else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db._store import Store
from hub.db.models import ConfigDraft, ConfigDraftEditor
from hub.errors import Conflict, HubError, NotFound

__all__ = ["DraftStore", "StoredDraft", "stale_revision"]


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
    editors: tuple[str, ...] = ()


def _draft(row: Mapping[Any, Any], editors: Iterable[str]) -> StoredDraft:
    fields = (name for name in StoredDraft.__dataclass_fields__ if name != "editors")
    return StoredDraft(**{name: row[name] for name in fields}, editors=tuple(editors))


async def _editors(conn: AsyncConnection, draft_ids: Iterable[int]) -> dict[int, list[str]]:
    """Each draft's editors, in the order they first edited it."""
    ids = list(draft_ids)
    found: dict[int, list[str]] = {draft_id: [] for draft_id in ids}
    if not ids:
        return found
    statement = (
        select(ConfigDraftEditor.draft_id, ConfigDraftEditor.actor)
        .where(ConfigDraftEditor.draft_id.in_(ids))
        .order_by(ConfigDraftEditor.first_revision, ConfigDraftEditor.at, ConfigDraftEditor.actor)
    )
    for row in await conn.execute(statement):
        found[row.draft_id].append(row.actor)
    return found


async def _read_draft(conn: AsyncConnection, draft_id: int) -> StoredDraft | None:
    row = (
        (await conn.execute(select(ConfigDraft).where(ConfigDraft.id == draft_id)))
        .mappings()
        .first()
    )
    if row is None:
        return None
    return _draft(row, (await _editors(conn, [draft_id]))[draft_id])


def _missing(draft_id: int) -> NotFound:
    return NotFound(f"draft {draft_id} does not exist")


def stale_revision(draft_id: int, current: int, revision: int) -> Conflict:
    """409: the caller read ``revision``, but the draft is at ``current`` now."""
    return Conflict(
        f"draft {draft_id} changed: it is at revision {current}, not {revision}",
        extra={"revision": current},
    )


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
            if not isinstance(draft_id, int):
                raise HubError("the database did not return the new draft's id")
            await self._add_editor(conn, draft_id, author, revision=1)
            draft = await _read_draft(conn, draft_id)
        assert draft is not None  # written in this very transaction
        return draft

    async def get(self, draft_id: int) -> StoredDraft:
        """The draft, or 404."""
        async with self._read() as conn:
            draft = await _read_draft(conn, draft_id)
        if draft is None:
            raise _missing(draft_id)
        return draft

    async def list(self, *, limit: int = 100) -> list[StoredDraft]:
        """The newest drafts first."""
        statement = select(ConfigDraft).order_by(ConfigDraft.id.desc()).limit(limit)
        async with self._read() as conn:
            rows = (await conn.execute(statement)).mappings().all()
            editors = await _editors(conn, [row["id"] for row in rows])
        return [_draft(row, editors[row["id"]]) for row in rows]

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
                raise stale_revision(draft_id, current, revision)
            await self._add_editor(conn, draft_id, author, revision=revision + 1)
            draft = await _read_draft(conn, draft_id)
        assert draft is not None  # updated in this very transaction
        return draft

    async def delete(self, draft_id: int) -> None:
        """Delete the draft, or 404."""
        async with self._write() as conn:
            result = await conn.execute(delete(ConfigDraft).where(ConfigDraft.id == draft_id))
            if not result.rowcount:
                raise _missing(draft_id)

    async def _add_editor(
        self, conn: AsyncConnection, draft_id: int, actor: str, *, revision: int
    ) -> None:
        # Inside the edit's write transaction: no other writer can add the same row meanwhile.
        known = await conn.scalar(
            select(ConfigDraftEditor.actor).where(
                ConfigDraftEditor.draft_id == draft_id, ConfigDraftEditor.actor == actor
            )
        )
        if known is None:
            await conn.execute(
                insert(ConfigDraftEditor).values(
                    draft_id=draft_id, actor=actor, first_revision=revision, at=self._clock()
                )
            )
