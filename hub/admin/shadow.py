"""Admin API for shadow mode: run a draft beside the active configuration on live traffic.

- ``POST /admin/api/config/drafts/{id}/shadow`` ``{duration_seconds, comment}`` checks the
  draft as ``validate`` does and starts a run with its current document (201); 409
  ``shadow_running`` while another run is on, 400 for a duration outside
  1..``HUB_SHADOW_MAX_SECONDS`` or no comment, 404 for an unknown draft, 422 for an invalid one;
- ``GET /admin/api/config/shadow``: the run that is on, or else the latest, with its counts;
- ``DELETE /admin/api/config/shadow``: stop the run that is on (404 when none is);
- ``GET /admin/api/config/shadow/{run}``: one run; ``GET …/{run}/decisions`` its logged
  differences, oldest first, ``?kind=route|auth|decision|limit&after=ID&limit=N``, with the
  counts per kind and ``next_after`` for the next page.

Every replica learns of a start or stop through the notifier's ``shadow`` signal (and the
database poll); the run row is the audit: who started it, why, when it ends, who stopped it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

import structlog
from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from hub.admin.guard import ActorDep, actor_dependency, admin_guard
from hub.config.shadow import SIGNAL
from hub.db.shadow_store import DECISION_KINDS, ShadowStore, StoredDecision, StoredRun
from hub.errors import BackendUnavailable, InvalidRequest
from hub.runtime import Runtime

__all__ = ["AdminShadowController", "DecisionPage", "RunView", "ShadowStart", "ShadowStatus"]

RuntimeDep: TypeAlias = NamedDependency[Runtime]

log = structlog.get_logger("hub.admin")


@dataclass(frozen=True, slots=True, kw_only=True)
class ShadowStart:
    """How long to run the draft beside the active version, and why."""

    duration_seconds: int = field(metadata={"description": "1 to HUB_SHADOW_MAX_SECONDS"})
    comment: str = field(metadata={"description": "why: recorded with the run"})
    allow_empty: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RunView:
    """One shadow run: its draft, its audit, its state and its counts."""

    id: int
    state: str = field(metadata={"description": "running, stopped or expired"})
    draft_id: int
    draft_revision: int
    base_version: int | None = field(metadata={"description": "active version at the start"})
    comment: str
    started_by: str
    started_at: datetime
    ends_at: datetime
    stopped_by: str | None
    stopped_at: datetime | None
    compared: int = field(metadata={"description": "requests decided both ways, every replica"})
    differences: int
    dropped: int = field(metadata={"description": "differences lost to a full queue"})
    counts: dict[str, int] = field(metadata={"description": "logged differences per kind"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ShadowStatus:
    on: bool
    run: RunView | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionView:
    """One request the draft decided differently; identifiers are pseudonyms."""

    id: int
    request_id: str
    at: datetime
    method: str
    path: str
    changes: list[str]
    flip: str | None
    active: dict[str, Any]
    shadow: dict[str, Any]
    status: int
    config_version: int
    draft_id: int
    draft_revision: int
    principal: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionPage:
    run: RunView
    decisions: list[DecisionView]
    next_after: int | None = field(metadata={"description": "pass as ?after= for the next page"})


def _side(row: StoredDecision, side: str) -> dict[str, Any]:
    return {
        name: getattr(row, f"{name}_{side}")
        for name in ("route", "auth", "decision", "permission", "rule", "limit")
    }


def _decision(row: StoredDecision) -> DecisionView:
    return DecisionView(
        id=row.id,
        request_id=row.request_id,
        at=row.at,
        method=row.method,
        path=row.path,
        changes=[kind for kind in DECISION_KINDS if getattr(row, f"{kind}_changed")],
        flip=row.flip,
        active=_side(row, "active"),
        shadow=_side(row, "shadow"),
        status=row.status,
        config_version=row.config_version,
        draft_id=row.draft_id,
        draft_revision=row.draft_revision,
        principal=row.principal,
    )


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _runs(runtime: Runtime) -> ShadowStore:
    assert runtime.shadows is not None
    return runtime.shadows


async def _view(runtime: Runtime, run: StoredRun) -> RunView:
    counts = await _runs(runtime).counts(run.id)
    fields = {name: getattr(run, name) for name in RunView.__dataclass_fields__ if name != "counts"}
    return RunView(**fields, counts=counts)


async def _tell_replicas(runtime: Runtime) -> None:
    """This replica follows at once; the others through the notifier (or their next poll)."""
    await runtime.shadow.refresh()
    assert runtime.notifier is not None
    try:
        await runtime.notifier.publish_signal(SIGNAL)
    except BackendUnavailable as exc:
        log.warning("admin.shadow_announce_failed", error=str(exc))


class AdminShadowController(Controller):
    """Shadow runs: start one on a draft, read it and its differences, stop it."""

    path = "/admin/api/config"
    guards = [admin_guard]
    tags = ["admin"]
    dependencies = {"runtime": Provide(_runtime, sync_to_thread=False), "actor": actor_dependency}

    @post("/drafts/{draft_id:int}/shadow", status_code=HTTP_201_CREATED)
    async def start(
        self,
        runtime: RuntimeDep,
        actor: ActorDep,
        draft_id: FromPath[int],
        data: JSONBody[ShadowStart],
    ) -> RunView:
        """Run a draft beside the active version for ``duration_seconds``."""
        limit = runtime.settings.shadow_max_seconds
        if not 1 <= data.duration_seconds <= limit:
            raise InvalidRequest(f"duration_seconds must be between 1 and {limit}")
        comment = data.comment.strip()
        if not comment:
            raise InvalidRequest("a comment is required: say why this draft runs in shadow")
        assert runtime.drafts is not None
        draft = await runtime.drafts.get(draft_id)
        document = await runtime.validate(draft.document, allow_empty=data.allow_empty)
        snapshot = runtime.snapshot
        run = await _runs(runtime).start(
            draft_id=draft.id,
            draft_revision=draft.revision,
            document=document.raw,
            base_version=snapshot.version if snapshot is not None else None,
            comment=comment,
            author=actor,
            seconds=data.duration_seconds,
        )
        log.info(
            "admin.shadow_started", run=run.id, draft=draft.id, actor=actor, ends_at=run.ends_at
        )
        await _tell_replicas(runtime)
        return await _view(runtime, run)

    @get("/shadow")
    async def status(self, runtime: RuntimeDep) -> ShadowStatus:
        """The run that is on, else the latest one, with its counts."""
        await runtime.shadow.flush()
        runs = _runs(runtime)
        run = await runs.running() or await runs.latest()
        return ShadowStatus(
            on=run is not None and run.state == "running",
            run=await _view(runtime, run) if run is not None else None,
        )

    @delete("/shadow", status_code=HTTP_200_OK)
    async def stop(self, runtime: RuntimeDep, actor: ActorDep) -> RunView:
        """Stop the run that is on (404 when none is)."""
        run = await _runs(runtime).stop(author=actor)
        log.info("admin.shadow_stopped", run=run.id, actor=actor)
        await _tell_replicas(runtime)
        await runtime.shadow.flush()
        return await _view(runtime, await _runs(runtime).get(run.id))

    @get("/shadow/{run_id:int}")
    async def get_run(self, runtime: RuntimeDep, run_id: FromPath[int]) -> RunView:
        await runtime.shadow.flush()
        return await _view(runtime, await _runs(runtime).get(run_id))

    @get("/shadow/{run_id:int}/decisions")
    async def decisions(
        self,
        runtime: RuntimeDep,
        run_id: FromPath[int],
        kind: FromQuery[str | None] = None,
        after: FromQuery[int] = 0,
        limit: FromQuery[int] = 100,
    ) -> DecisionPage:
        """A page of the run's differences, oldest first."""
        if kind is not None and kind not in DECISION_KINDS:
            raise InvalidRequest(f"kind must be one of {', '.join(DECISION_KINDS)}")
        if not 1 <= limit <= 500:
            raise InvalidRequest("limit must be between 1 and 500")
        if after < 0:
            raise InvalidRequest("after must be a decision id (0 for the first page)")
        await runtime.shadow.flush()
        runs = _runs(runtime)
        run = await runs.get(run_id)
        rows = await runs.decisions(run_id, kind=kind, after=after, limit=limit)
        return DecisionPage(
            run=await _view(runtime, run),
            decisions=[_decision(row) for row in rows],
            next_after=rows[-1].id if len(rows) == limit else None,
        )
