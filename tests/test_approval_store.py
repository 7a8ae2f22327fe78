"""Draft editors and four-eyes approvals in the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.db.approval_store import ApprovalStore
from hub.db.config_store import ConfigStore
from hub.db.draft_store import DraftStore
from hub.errors import ApprovalRequired, Conflict, NotFound, SelfApproval

ITEMS = [{"section": "routes", "id": "records", "change": "changed", "rules": ["pd"]}]


def _document(marker: str) -> dict[str, Any]:
    return {"routes": [], "marker": marker}


async def _active(engine: AsyncEngine) -> int:
    stored = await ConfigStore(engine).publish(_document("v1"), checksum="c1", author="seed")
    return stored.version


async def test_every_author_of_a_draft_is_one_of_its_editors(db_engine: AsyncEngine) -> None:
    drafts = DraftStore(db_engine)
    draft = await drafts.create(_document("a"), based_on=None, author="admin-token")
    assert draft.editors == ("admin-token",)
    draft = await drafts.replace(draft.id, _document("b"), revision=1, author="person:p2")
    draft = await drafts.replace(draft.id, _document("c"), revision=2, author="admin-token")
    assert draft.editors == ("admin-token", "person:p2")
    assert (await drafts.get(draft.id)).editors == ("admin-token", "person:p2")
    other = await drafts.create(_document("x"), based_on=None, author="person:p3")
    assert [(d.id, d.editors) for d in await drafts.list()] == [
        (other.id, ("person:p3",)),
        (draft.id, ("admin-token", "person:p2")),
    ]
    # A refused edit (stale revision) makes nobody an editor.
    with pytest.raises(Conflict):
        await drafts.replace(draft.id, _document("d"), revision=1, author="person:late")
    assert (await drafts.get(draft.id)).editors == ("admin-token", "person:p2")


async def test_an_approval_is_for_one_revision_by_someone_who_did_not_edit(
    db_engine: AsyncEngine,
) -> None:
    base = await _active(db_engine)
    drafts, approvals = DraftStore(db_engine), ApprovalStore(db_engine)
    draft = await drafts.create(_document("a"), based_on=base, author="person:author")

    with pytest.raises(SelfApproval) as own:
        await approvals.approve(
            draft.id, revision=1, approver="person:author", comment="lgtm", items=ITEMS
        )
    assert own.value.detail == (
        f"person:author created or edited draft {draft.id}: another admin must approve it"
    )
    with pytest.raises(Conflict) as stale:
        await approvals.approve(draft.id, revision=2, approver="admin-token", comment="x", items=[])
    assert stale.value.extra == {"revision": 1}
    with pytest.raises(NotFound):
        await approvals.approve(999, revision=1, approver="admin-token", comment="x", items=[])
    assert await approvals.latest(draft.id) is None

    approval = await approvals.approve(
        draft.id, revision=1, approver="admin-token", comment="checked", items=ITEMS
    )
    assert (approval.draft_id, approval.revision, approval.approver, approval.based_on) == (
        draft.id,
        1,
        "admin-token",
        base,
    )
    assert (approval.comment, approval.items) == ("checked", ITEMS)
    assert await approvals.latest(draft.id) == approval

    # Published (or deleted), the draft is gone; its approvals stay for the audit.
    await drafts.delete(draft.id)
    assert await approvals.of_draft(draft.id) == [approval]


async def test_a_publish_records_the_approver_and_refuses_a_draft_edited_meanwhile(
    db_engine: AsyncEngine,
) -> None:
    base = await _active(db_engine)
    store, drafts = ConfigStore(db_engine), DraftStore(db_engine)
    draft = await drafts.create(_document("a"), based_on=base, author="person:author")
    await drafts.replace(draft.id, _document("b"), revision=1, author="person:author")

    # The publisher read revision 1 (the one approved); the draft is at 2 now: nothing happens.
    with pytest.raises(Conflict) as changed:
        await store.publish(
            _document("a"),
            checksum="ca",
            author="person:author",
            expected_active=base,
            draft_id=draft.id,
            draft_revision=1,
            approved_by="admin-token",
        )
    assert changed.value.detail == (
        f"draft {draft.id} changed while it was being published: it is at revision 2, not 1"
    )
    assert await store.active_version() == base

    stored = await store.publish(
        _document("b"),
        checksum="cb",
        author="person:author",
        expected_active=base,
        draft_id=draft.id,
        draft_revision=2,
        protect=lambda active: [{**ITEMS[0], "was": active.version if active else None}],
        approved_by="admin-token",
    )
    [change] = await store.changes(stored.version)
    assert (change.approved_by, change.protected) == (
        "admin-token",
        [{**ITEMS[0], "was": base}],
    )
    with pytest.raises(NotFound):
        await drafts.get(draft.id)


async def test_a_refusing_protect_check_writes_nothing(db_engine: AsyncEngine) -> None:
    base = await _active(db_engine)
    store, drafts = ConfigStore(db_engine), DraftStore(db_engine)
    draft = await drafts.create(_document("a"), based_on=base, author="person:author")

    def refuse(_: object) -> list[dict[str, Any]]:
        raise ApprovalRequired("needs a second admin")

    with pytest.raises(ApprovalRequired):
        await store.publish(
            _document("a"), checksum="ca", author="x", draft_id=draft.id, protect=refuse
        )
    assert await store.active_version() == base
    assert [v.version for v in await store.history()] == [base]
    assert (await drafts.get(draft.id)).revision == 1


async def test_concurrent_edit_and_approval_never_approve_an_unseen_revision(
    db_engine: AsyncEngine,
) -> None:
    base = await _active(db_engine)
    drafts, approvals = DraftStore(db_engine), ApprovalStore(db_engine)
    for round_ in range(5):
        draft = await drafts.create(_document(f"{round_}"), based_on=base, author="person:a")
        edit = drafts.replace(draft.id, _document("edited"), revision=1, author="person:a")
        approve = approvals.approve(
            draft.id, revision=1, approver="person:b", comment="ok", items=[]
        )
        edited, approved = await asyncio.gather(edit, approve, return_exceptions=True)
        # Either order: an approval of revision 1 before the edit, or a 409 after it.
        assert not isinstance(edited, BaseException)
        assert edited.revision == 2
        if isinstance(approved, BaseException):
            assert isinstance(approved, Conflict)
            assert await approvals.latest(draft.id) is None
        else:
            assert approved.revision == 1
