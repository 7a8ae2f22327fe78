"""Four-eyes approvals of configuration drafts, as the admin API shows and records them.

A draft needs an approval when its diff against the active version touches protected items
(:mod:`hub.config.governance`). ``POST /admin/api/config/drafts/{id}/approve`` ``{revision,
comment}`` records one by an admin who neither created nor edited the draft, for the revision
they read: any later edit makes a new revision and leaves the approval behind. A draft that
needs none may be approved all the same (a voluntary review, recorded alike). The draft, its
diff and the approval answer show ``approval``: whether one is required, the protected items,
and the latest approval with the revision it was given for (``approved`` says whether that is
the current revision).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from hub.config.governance import ProtectedChange, protected_changes
from hub.config.loader import document_from_raw
from hub.db.approval_store import ApprovalStore, StoredApproval
from hub.db.draft_store import StoredDraft, stale_revision
from hub.errors import Conflict, InvalidRequest
from hub.runtime import Runtime

__all__ = [
    "ApprovalView",
    "DraftApprove",
    "ProtectedItemView",
    "approval_of",
    "approvals_of",
    "approve_draft",
    "stale_draft",
]

log = structlog.get_logger("hub.admin")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtectedItemView:
    section: str
    id: str = field(metadata={"description": "the item's id; * for a whole section"})
    change: str = field(metadata={"description": "added, removed, changed or reordered"})
    rules: list[str] = field(metadata={"description": "the governance rules protecting it"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalView:
    """Whether publishing needs a second admin's approval, and the approval given, if any."""

    required: bool
    items: list[ProtectedItemView]
    approved: bool = field(
        default=False,
        metadata={"description": "an approval of the draft's current revision exists"},
    )
    approved_by: str | None = None
    approved_revision: int | None = field(
        default=None, metadata={"description": "the revision the latest approval was given for"}
    )
    approved_at: datetime | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DraftApprove:
    """A second admin's approval of the revision of a draft they read."""

    revision: int = field(metadata={"description": "the draft's revision this approval is for"})
    comment: str = field(metadata={"description": "what was checked: kept in the audit"})


def approvals_of(runtime: Runtime) -> ApprovalStore:
    assert runtime.approvals is not None
    return runtime.approvals


def _items(items: tuple[ProtectedChange, ...]) -> list[ProtectedItemView]:
    return [
        ProtectedItemView(section=i.section, id=i.id, change=i.change, rules=list(i.rules))
        for i in items
    ]


def _view(
    items: tuple[ProtectedChange, ...], approval: StoredApproval | None, revision: int | None
) -> ApprovalView:
    if approval is None:
        return ApprovalView(required=bool(items), items=_items(items))
    return ApprovalView(
        required=bool(items),
        items=_items(items),
        approved=approval.revision == revision,
        approved_by=approval.approver,
        approved_revision=approval.revision,
        approved_at=approval.at,
        comment=approval.comment,
    )


async def approval_of(
    runtime: Runtime, document: dict[str, Any], draft: StoredDraft | None = None
) -> ApprovalView:
    """The approval state of publishing ``document`` (a draft's) over the active version."""
    assert runtime.store is not None
    active = await runtime.store.active()
    items = protected_changes(active.document if active is not None else None, document)
    latest = await approvals_of(runtime).latest(draft.id) if draft is not None else None
    return _view(items, latest, draft.revision if draft is not None else None)


def stale_draft(draft: StoredDraft, active: int | None) -> Conflict:
    """409: the draft started from a version that is no longer the active one."""
    return Conflict(
        f"draft {draft.id} is based on version {draft.based_on}, but version {active}"
        " is active now: start a new draft from the active version",
        extra={"active_version": active, "based_on": draft.based_on},
    )


async def approve_draft(
    runtime: Runtime, draft: StoredDraft, *, actor: str, data: DraftApprove
) -> ApprovalView:
    """Record ``actor``'s approval of the draft at ``data.revision``, after every check."""
    assert runtime.store is not None
    comment = data.comment.strip()
    if not comment:
        raise InvalidRequest("a comment is required: say what you checked")
    if data.revision != draft.revision:
        raise stale_revision(draft.id, draft.revision, data.revision)
    active = await runtime.store.active()
    current = active.version if active is not None else None
    if draft.based_on is not None and current != draft.based_on:
        # It could never be published: an approval of it would approve nothing.
        raise stale_draft(draft, current)
    # An approval vouches for a document that can be published: invalid ones are 422.
    document_from_raw(draft.document, contracts_dir=runtime.settings.contracts_dir)
    items = protected_changes(active.document if active is not None else None, draft.document)
    approval = await approvals_of(runtime).approve(
        draft.id,
        revision=data.revision,
        approver=actor,
        comment=comment,
        items=[item.as_json() for item in items],
    )
    log.info(
        "admin.config_draft_approved",
        actor=actor,
        draft=draft.id,
        revision=approval.revision,
        based_on=approval.based_on,
        required=bool(items),
        items=[item.describe() for item in items],
    )
    return _view(items, approval, draft.revision)
