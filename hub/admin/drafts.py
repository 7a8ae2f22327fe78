"""Admin API for configuration drafts: edit a whole document, validate, diff, then publish.

``/admin/api/config/drafts``: a draft starts from the active document (or a given one) and
remembers that version as ``based_on``. Replacing its document names the ``revision`` it read
(409 when another edit came first). ``validate`` runs every check a publish runs; ``diff``
compares it with the active version, per section and item id, and as a unified YAML diff.
``publish`` needs a ``comment`` (the reason for the audit), refuses with 409 when the active
version is no longer ``based_on``, and deletes the draft with the publish. A draft touching
protected configuration needs a second admin's ``approve`` of its current revision first
(:mod:`hub.admin.approvals`); without it ``publish`` is ``403 approval_required``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from hub.admin.approvals import (
    ApprovalView,
    DraftApprove,
    approval_of,
    approvals_of,
    approve_draft,
    stale_draft,
)
from hub.admin.guard import ActorDep, actor_dependency, admin_guard
from hub.config.diff import ConfigDiff, diff_documents, render_text
from hub.config.model import ConfigDocument
from hub.db.draft_store import DraftStore, StoredDraft
from hub.errors import Conflict, InvalidRequest, NotFound
from hub.runtime import Runtime

# The advice of a refused publish of an unapproved draft.
_ASK_FOR_APPROVAL = (
    "ask an admin who neither created nor edited draft {id} to approve its revision"
    " {revision} (POST /admin/api/config/drafts/{id}/approve), then publish it"
)

__all__ = [
    "AdminDraftsController",
    "DiffView",
    "DraftDetail",
    "DraftSummary",
    "ValidationResult",
    "diff_view",
    "validation_result",
]

RuntimeDep: TypeAlias = NamedDependency[Runtime]


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationResult:
    valid: bool
    checksum: str
    routes: int
    upstreams: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldChangeView:
    path: str = field(metadata={"description": "JSON path inside the item, e.g. $.upstream"})
    change: str = field(metadata={"description": "added, removed or changed"})
    old: Any = None
    new: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemChangeView:
    id: str
    fields: list[FieldChangeView]


@dataclass(frozen=True, slots=True, kw_only=True)
class SectionView:
    section: str
    added: list[str]
    removed: list[str]
    changed: list[ItemChangeView]
    reordered: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class DiffView:
    """What publishing would change in the active version."""

    active_version: int | None
    changed: bool
    sections: list[SectionView]
    summary: dict[str, dict[str, Any]]
    lines: list[str] = field(metadata={"description": "the diff as short lines for a terminal"})
    text: str = field(metadata={"description": "unified diff of both documents as YAML"})
    based_on: int | None = None
    approval: ApprovalView | None = field(
        default=None, metadata={"description": "whether publishing needs a second admin"}
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DraftSummary:
    id: int
    based_on: int | None
    revision: int
    comment: str
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime
    editors: list[str] = field(metadata={"description": "who created or edited it"})


@dataclass(frozen=True, slots=True, kw_only=True)
class DraftDetail(DraftSummary):
    document: dict[str, Any]
    approval: ApprovalView


@dataclass(frozen=True, slots=True, kw_only=True)
class DraftCreate:
    """A new draft: of the given document, or of the active one when none is given."""

    document: dict[str, Any] | None = None
    comment: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DraftReplace:
    """The draft's new document, and the revision the edit started from."""

    document: dict[str, Any]
    revision: int = field(metadata={"description": "the draft's revision this edit read"})
    comment: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DraftPublish:
    comment: str = field(metadata={"description": "why: recorded with the new version"})
    allow_empty: bool = False


def validation_result(document: ConfigDocument) -> ValidationResult:
    return ValidationResult(
        valid=True,
        checksum=document.checksum,
        routes=len(document.routes),
        upstreams=len(document.upstreams),
    )


def _sections(diff: ConfigDiff) -> list[SectionView]:
    return [
        SectionView(
            section=s.section,
            added=list(s.added),
            removed=list(s.removed),
            changed=[
                ItemChangeView(
                    id=item.id,
                    fields=[
                        FieldChangeView(path=f.path, change=f.change, old=f.old, new=f.new)
                        for f in item.fields
                    ],
                )
                for item in s.changed
            ],
            reordered=s.reordered,
        )
        for s in diff.sections
    ]


async def diff_view(
    runtime: Runtime,
    document: dict[str, Any],
    *,
    based_on: int | None = None,
    draft: StoredDraft | None = None,
) -> DiffView:
    """The diff of ``document`` against the active version, and what publishing it needs."""
    assert runtime.store is not None
    active = await runtime.store.active()
    before = active.document if active is not None else None
    diff = diff_documents(before, document)
    return DiffView(
        active_version=active.version if active is not None else None,
        based_on=based_on,
        changed=not diff.empty,
        sections=_sections(diff),
        summary=diff.summary(),
        lines=diff.lines(),
        text=render_text(before, document),
        approval=await approval_of(runtime, document, draft),
    )


def _summary(draft: StoredDraft) -> DraftSummary:
    fields = (f for f in DraftSummary.__dataclass_fields__ if f != "editors")
    return DraftSummary(**{f: getattr(draft, f) for f in fields}, editors=list(draft.editors))


async def _detail(runtime: Runtime, draft: StoredDraft) -> DraftDetail:
    summary = _summary(draft)
    return DraftDetail(
        **{f: getattr(summary, f) for f in DraftSummary.__dataclass_fields__},
        document=draft.document,
        approval=await approval_of(runtime, draft.document, draft),
    )


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _drafts(runtime: Runtime) -> DraftStore:
    assert runtime.drafts is not None
    return runtime.drafts


class AdminDraftsController(Controller):
    """Configuration drafts: create, list, read, replace, delete, validate, diff, publish."""

    path = "/admin/api/config/drafts"
    guards = [admin_guard]
    tags = ["admin"]
    dependencies = {"runtime": Provide(_runtime, sync_to_thread=False), "actor": actor_dependency}

    @post("/", status_code=HTTP_201_CREATED)
    async def create(
        self, runtime: RuntimeDep, actor: ActorDep, data: JSONBody[DraftCreate | None] = None
    ) -> DraftDetail:
        assert runtime.store is not None
        active = await runtime.store.active()
        document = data.document if data is not None else None
        if document is None:
            if active is None:
                raise NotFound("no configuration version is active to start a draft from")
            document = active.document
        draft = await _drafts(runtime).create(
            document,
            based_on=active.version if active is not None else None,
            author=actor,
            comment=data.comment if data is not None else "",
        )
        return await _detail(runtime, draft)

    @get("/")
    async def list_drafts(
        self, runtime: RuntimeDep, limit: FromQuery[int] = 100
    ) -> list[DraftSummary]:
        drafts = await _drafts(runtime).list(limit=max(1, min(limit, 500)))
        return [_summary(d) for d in drafts]

    @get("/{draft_id:int}")
    async def get_draft(self, runtime: RuntimeDep, draft_id: FromPath[int]) -> DraftDetail:
        return await _detail(runtime, await _drafts(runtime).get(draft_id))

    @put("/{draft_id:int}")
    async def replace(
        self,
        runtime: RuntimeDep,
        actor: ActorDep,
        draft_id: FromPath[int],
        data: JSONBody[DraftReplace],
    ) -> DraftDetail:
        draft = await _drafts(runtime).replace(
            draft_id, data.document, revision=data.revision, author=actor, comment=data.comment
        )
        return await _detail(runtime, draft)

    @delete("/{draft_id:int}", status_code=HTTP_204_NO_CONTENT)
    async def delete_draft(self, runtime: RuntimeDep, draft_id: FromPath[int]) -> None:
        await _drafts(runtime).delete(draft_id)

    @post("/{draft_id:int}/validate", status_code=HTTP_200_OK)
    async def validate(
        self, runtime: RuntimeDep, draft_id: FromPath[int], allow_empty: FromQuery[bool] = False
    ) -> ValidationResult:
        draft = await _drafts(runtime).get(draft_id)
        return validation_result(await runtime.validate(draft.document, allow_empty=allow_empty))

    @get("/{draft_id:int}/diff")
    async def diff(self, runtime: RuntimeDep, draft_id: FromPath[int]) -> DiffView:
        draft = await _drafts(runtime).get(draft_id)
        return await diff_view(runtime, draft.document, based_on=draft.based_on, draft=draft)

    @post("/{draft_id:int}/approve", status_code=HTTP_200_OK)
    async def approve(
        self,
        runtime: RuntimeDep,
        actor: ActorDep,
        draft_id: FromPath[int],
        data: JSONBody[DraftApprove],
    ) -> ApprovalView:
        """A second admin approves the draft's revision (four eyes); editors may not."""
        draft = await _drafts(runtime).get(draft_id)
        return await approve_draft(runtime, draft, actor=actor, data=data)

    @post("/{draft_id:int}/publish", status_code=HTTP_201_CREATED)
    async def publish(
        self,
        runtime: RuntimeDep,
        actor: ActorDep,
        draft_id: FromPath[int],
        data: JSONBody[DraftPublish],
    ) -> dict[str, Any]:
        if not data.comment.strip():
            raise InvalidRequest("a comment is required: say why this change is made")
        draft = await _drafts(runtime).get(draft_id)
        latest = await approvals_of(runtime).latest(draft.id)
        # Only an approval of the revision being published counts: an edit voids it.
        approved_by = latest.approver if latest and latest.revision == draft.revision else None
        try:
            stored = await runtime.publish(
                draft.document,
                author=actor,
                comment=data.comment.strip(),
                # A draft of nothing (no version was active) publishes over whatever is there.
                expected_active=draft.based_on,
                allow_empty=data.allow_empty,
                draft_id=draft.id,
                draft_revision=draft.revision,
                approved_by=approved_by,
                approval_advice=_ASK_FOR_APPROVAL.format(id=draft.id, revision=draft.revision),
            )
        except Conflict as exc:
            if "active_version" not in exc.extra:
                raise  # the draft itself changed meanwhile
            active = exc.extra["active_version"]
            raise stale_draft(draft, active if isinstance(active, int) else None) from exc
        return {
            "version": stored.version,
            "checksum": stored.checksum,
            "created_at": stored.created_at,
            "created_by": stored.created_by,
            "comment": stored.comment,
            "based_on": stored.based_on,
            "active": stored.active,
            "draft": draft.id,
            "approved_by": approved_by,
        }
