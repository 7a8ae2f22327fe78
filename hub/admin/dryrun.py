"""Admin API for dry-runs: replay the request sample through a draft, count what would change.

``POST /admin/api/config/drafts/{id}/dry-run`` and ``POST /admin/api/config/dry-run``
``{document}`` check the document exactly as ``validate`` does (422 with every error's path),
compile it into a decision-only snapshot (no upstream pool is opened), and replay the fleet's
request sample (:mod:`hub.ops.sample`) through it and through the active version
(:mod:`hub.config.dryrun`). The answer counts the requests replayed, unchanged, and changed in
route, auth requirements, permission decision and limit; the access flips by permission; the
same per route; and up to 20 pseudonymised examples. An empty sample answers zero counts and a
note. The replay runs in a worker thread, so this replica keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from litestar import Controller, Request, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK

from hub.admin.guard import admin_guard
from hub.config.dryrun import dry_run
from hub.config.replay import DecisionSnapshot
from hub.errors import ServiceUnavailable
from hub.runtime import Runtime

__all__ = ["AdminDryRunController", "DryRunRequest", "DryRunView", "run_dry"]

RuntimeDep: TypeAlias = NamedDependency[Runtime]


@dataclass(frozen=True, slots=True, kw_only=True)
class DryRunRequest:
    """A whole document to replay the sample through."""

    document: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class DryRunView:
    """What replaying the sample through a draft changes against the active version."""

    active: str = field(metadata={"description": "the configuration compared with, e.g. version 3"})
    draft: str
    replayed: int
    unchanged: int
    skipped: int = field(metadata={"description": "records under another pseudonym key"})
    changed: dict[str, int] = field(
        metadata={"description": "per kind: route, auth, decision, limit"}
    )
    decisions: dict[str, Any] = field(
        metadata={"description": "allow_to_deny, deny_to_allow, and both by permission"}
    )
    routes: dict[str, dict[str, int]] = field(
        metadata={"description": "the counts per active route"}
    )
    examples: list[dict[str, Any]]
    sample: dict[str, Any]
    notes: list[str]


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def run_dry(
    runtime: Runtime, raw: dict[str, Any], *, label: str, allow_empty: bool
) -> DryRunView:
    """Validate ``raw`` as ``validate`` does, then replay the sample through it."""
    snapshot = runtime.snapshot
    if snapshot is None:
        raise ServiceUnavailable("the configuration is not loaded yet")
    document = await runtime.validate(raw, allow_empty=allow_empty)
    draft = DecisionSnapshot.compile(document, label=label)
    active = DecisionSnapshot.of(
        label=f"version {snapshot.version}",
        table=snapshot.table,
        policies=snapshot.policies,
        raw=snapshot.document.raw,
    )
    records = await runtime.sampler.records()
    report = await asyncio.to_thread(dry_run, records, active, draft, runtime.pseudonyms)
    return DryRunView(**report.as_dict())


class AdminDryRunController(Controller):
    """Dry-run a draft, or any document, against the request sample."""

    path = "/admin/api/config"
    guards = [admin_guard]
    tags = ["admin"]
    dependencies = {"runtime": Provide(_runtime, sync_to_thread=False)}

    @post("/drafts/{draft_id:int}/dry-run", status_code=HTTP_200_OK)
    async def dry_run_draft(
        self, runtime: RuntimeDep, draft_id: FromPath[int], allow_empty: FromQuery[bool] = False
    ) -> DryRunView:
        """Replay the sample through a draft (404 unknown draft, 422 invalid draft)."""
        assert runtime.drafts is not None
        draft = await runtime.drafts.get(draft_id)
        label = f"draft {draft.id} revision {draft.revision}"
        return await run_dry(runtime, draft.document, label=label, allow_empty=allow_empty)

    @post("/dry-run", status_code=HTTP_200_OK)
    async def dry_run_document(
        self,
        runtime: RuntimeDep,
        data: JSONBody[DryRunRequest],
        allow_empty: FromQuery[bool] = False,
    ) -> DryRunView:
        """Replay the sample through any document (422 invalid document)."""
        return await run_dry(runtime, data.document, label="document", allow_empty=allow_empty)
