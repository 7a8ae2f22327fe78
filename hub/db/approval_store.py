"""Four-eyes approvals: a second admin's approval of one revision of a configuration draft.

An approval names the draft's revision it was given for, so any later edit (a new revision)
leaves it behind: only an approval of the draft's current revision counts. Approving checks, in
the same write transaction as the insert, that the draft is still at that revision and that the
approver is none of its editors, so an edit cannot slip in between the check and the approval.
Approvals are append-only and outlive their draft, as the audit of who approved what.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from hub.db._store import Store
from hub.db.draft_store import stale_revision
from hub.db.models import ConfigApproval, ConfigDraft, ConfigDraftEditor
from hub.errors import HubError, NotFound, SelfApproval

__all__ = ["ApprovalStore", "StoredApproval"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredApproval:
    """Who approved which revision of a draft, when, why, and the protected items it covered."""

    id: int
    draft_id: int
    revision: int
    approver: str
    at: datetime
    comment: str
    based_on: int | None
    items: list[dict[str, Any]]


def _approval(row: Mapping[Any, Any]) -> StoredApproval:
    return StoredApproval(**{name: row[name] for name in StoredApproval.__dataclass_fields__})


class ApprovalStore(Store):
    """The ``config_approvals`` table."""

    async def approve(
        self,
        draft_id: int,
        *,
        revision: int,
        approver: str,
        comment: str,
        items: list[dict[str, Any]],
    ) -> StoredApproval:
        """Record ``approver``'s approval of ``revision``: 404, 409 (stale) or 403 (an editor)."""
        async with self._write() as conn:
            draft = (
                await conn.execute(
                    select(ConfigDraft.revision, ConfigDraft.based_on).where(
                        ConfigDraft.id == draft_id
                    )
                )
            ).first()
            if draft is None:
                raise NotFound(f"draft {draft_id} does not exist")
            if draft.revision != revision:
                raise stale_revision(draft_id, draft.revision, revision)
            edited = await conn.scalar(
                select(ConfigDraftEditor.first_revision).where(
                    ConfigDraftEditor.draft_id == draft_id, ConfigDraftEditor.actor == approver
                )
            )
            if edited is not None:
                raise SelfApproval(
                    f"{approver} created or edited draft {draft_id}: another admin must approve it"
                )
            result = await conn.execute(
                insert(ConfigApproval).values(
                    draft_id=draft_id,
                    revision=revision,
                    approver=approver,
                    at=self._clock(),
                    comment=comment,
                    based_on=draft.based_on,
                    items=items,
                )
            )
            (ident,) = result.inserted_primary_key or (None,)
            row = (
                (await conn.execute(select(ConfigApproval).where(ConfigApproval.id == ident)))
                .mappings()
                .first()
            )
        if row is None:
            raise HubError(f"the approval of draft {draft_id} vanished inside its transaction")
        return _approval(row)

    async def latest(self, draft_id: int) -> StoredApproval | None:
        """The newest approval of any revision of the draft, or ``None``."""
        statement = (
            select(ConfigApproval)
            .where(ConfigApproval.draft_id == draft_id)
            .order_by(ConfigApproval.id.desc())
            .limit(1)
        )
        async with self._read() as conn:
            row = (await conn.execute(statement)).mappings().first()
        return None if row is None else _approval(row)

    async def of_draft(self, draft_id: int) -> list[StoredApproval]:
        """Every approval the draft received, oldest first (also once it is gone)."""
        statement = (
            select(ConfigApproval)
            .where(ConfigApproval.draft_id == draft_id)
            .order_by(ConfigApproval.id)
        )
        async with self._read() as conn:
            rows = (await conn.execute(statement)).mappings().all()
        return [_approval(row) for row in rows]
