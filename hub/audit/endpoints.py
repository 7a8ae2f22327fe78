"""HTTP endpoints of the registrar audit log: the person's view and the admins' tools.

- ``GET /api/me/v1/data-access`` (``?limit=&before=``): a signed-in person (the hub's session
  cookie, or an access token the hub issued to the person) lists who read their data, when and
  why: only their own reads, restricted ones hidden until their embargo ends;
- ``GET /admin/api/audit/entries`` (``?person=&kind=&limit=&before=``), ``GET …/entries/{seq}``;
- ``POST /admin/api/audit/entries/{seq}/restrict`` ``{reason, embargo_until}``;
- ``GET /admin/api/audit/restrictions``, ``POST …/restrictions/{seq}/release`` ``{reason}``;
- ``GET /admin/api/audit/verify``: walk the chain, as ``hub audit verify`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from hub.admin.guard import ActorDep, actor_dependency, admin_guard
from hub.audit.access import DataAccess, Restriction
from hub.audit.verify import verify_chain
from hub.auth.principal import Principal, invalid_token
from hub.config.model import AuthSpec
from hub.db.audit_store import AuditEntry
from hub.errors import InvalidRequest, NotFound, ServiceUnavailable, UserAuthenticationRequired
from hub.runtime import Runtime

__all__ = ["AdminAuditController", "DataAccessController"]

RuntimeDep: TypeAlias = NamedDependency[Runtime]
_PERSON_AUTH = AuthSpec(methods=("jwt", "session"))
_KINDS = frozenset({"read", "restrict", "release"})


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _access(runtime: Runtime) -> DataAccess:
    if runtime.audit is None:
        raise ServiceUnavailable("the audit log is not started")
    return DataAccess(runtime.audit)


def _page(limit: int) -> int:
    if not 1 <= limit <= 200:
        raise InvalidRequest("limit must be between 1 and 200")
    return limit


@dataclass(frozen=True, slots=True, kw_only=True)
class Accessor:
    """Who read: a vendor application (by its name), an agency officer, or another caller."""

    kind: str
    name: str
    client_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PurposeView:
    code: str
    description: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DataAccessEntry:
    """One read of the person's data."""

    id: int
    at: datetime
    accessor: Accessor
    on_behalf_of: str | None
    purpose: PurposeView
    record_kind: str | None
    record: str | None
    fields: list[str]
    outcome: str | None
    restricted_until: datetime | None = None
    released_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DataAccessPage:
    entries: list[DataAccessEntry]
    next_before: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntryView:
    """An entry as stored, for admins."""

    seq: int
    at: datetime
    kind: str
    actor: str
    actor_kind: str
    client_id: str | None
    on_behalf_of: str | None
    adapter: str | None
    operation: str | None
    record_kind: str | None
    record_ref: str | None
    person_ref: str | None
    purpose: str | None
    fields: list[str]
    outcome: str | None
    request_id: str | None
    config_version: int | None
    target_seq: int | None
    embargo_until: datetime | None
    reason: str | None
    hash: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RestrictionView:
    restriction: AuditEntryView
    release: AuditEntryView | None
    active: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RestrictRequest:
    reason: str
    embargo_until: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseRequest:
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyView:
    ok: bool
    entries: int
    last_seq: int
    head_seq: int
    findings: list[str]


def _view(entry: AuditEntry) -> AuditEntryView:
    values = {name: getattr(entry, name) for name in AuditEntryView.__dataclass_fields__}
    values["fields"] = list(entry.fields)
    return AuditEntryView(**values)


def _restriction_view(restriction: Restriction, now: datetime) -> RestrictionView:
    return RestrictionView(
        restriction=_view(restriction.entry),
        release=_view(restriction.release) if restriction.release else None,
        active=restriction.active(now),
    )


async def _person(runtime: Runtime, request: Request[Any, Any, Any]) -> Principal:
    principal = await runtime.authenticate(_PERSON_AUTH, list(request.scope["headers"]))
    if principal.kind != "person":
        raise UserAuthenticationRequired(
            "this is a person's own view: sign in, or use a token issued to you"
        )
    if principal.issuer != runtime.settings.issuer:
        raise invalid_token("only tokens issued by this hub can name one of its people")
    return principal


class DataAccessController(Controller):
    """The signed-in person's record of who read their data."""

    path = "/api/me/v1"
    tags = ["data-access"]
    dependencies = {"runtime": Provide(_runtime, sync_to_thread=False)}

    @get("/data-access")
    async def data_access(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        limit: FromQuery[int] = 50,
        before: FromQuery[int | None] = None,
    ) -> Response[DataAccessPage]:
        """Who read my data, when and why (newest first)."""
        principal = await _person(runtime, request)
        assert runtime.identity is not None
        person = await runtime.identity.persons.get(principal.subject)
        if person is None or person.disabled_at is not None:
            raise UserAuthenticationRequired("no enabled person is signed in")
        now = datetime.now(UTC)
        shown, cursor = await _access(runtime).for_person(
            person.identifier, limit=_page(limit), before=before, now=now
        )
        purposes = (
            runtime.adapter_routes.purposes(runtime.snapshot)
            if (runtime.adapter_routes is not None and runtime.snapshot is not None)
            else None
        )
        names: dict[str, str] = {}
        entries: list[DataAccessEntry] = []
        for entry, restriction in shown:
            spec = purposes.get(entry.purpose or "") if purposes is not None else None
            entries.append(
                DataAccessEntry(
                    id=entry.seq,
                    at=entry.at,
                    accessor=await self._accessor(runtime, entry, names),
                    on_behalf_of=entry.on_behalf_of,
                    purpose=PurposeView(
                        code=entry.purpose or "",
                        description=spec.description if spec else "",
                    ),
                    record_kind=entry.record_kind,
                    record=entry.record_ref,
                    fields=list(entry.fields),
                    outcome=entry.outcome,
                    restricted_until=restriction.entry.embargo_until if restriction else None,
                    released_at=restriction.release.at
                    if restriction and restriction.release
                    else None,
                )
            )
        return Response(
            DataAccessPage(entries=entries, next_before=cursor),
            headers={"Cache-Control": "no-store"},
        )

    @staticmethod
    async def _accessor(runtime: Runtime, entry: AuditEntry, names: dict[str, str]) -> Accessor:
        if entry.actor_kind == "person":
            return Accessor(kind="person", name="an agency officer")
        client_id = entry.client_id
        if client_id is None:
            return Accessor(kind=entry.actor_kind, name="a service of the platform")
        if client_id not in names:
            assert runtime.identity is not None
            client = await runtime.identity.clients.get(client_id)
            names[client_id] = client.name if client is not None else client_id
        return Accessor(kind="client", name=names[client_id], client_id=client_id)


class AdminAuditController(Controller):
    """Admins: the audit log's entries, restrictions and verification."""

    path = "/admin/api/audit"
    guards = [admin_guard]
    tags = ["admin"]
    dependencies = {"runtime": Provide(_runtime, sync_to_thread=False), "actor": actor_dependency}

    @get("/entries")
    async def entries(
        self,
        runtime: RuntimeDep,
        person: FromQuery[str | None] = None,
        kind: FromQuery[str] = "read",
        limit: FromQuery[int] = 50,
        before: FromQuery[int | None] = None,
    ) -> list[AuditEntryView]:
        access = _access(runtime)
        if kind not in _KINDS:
            raise InvalidRequest("kind must be read, restrict or release")
        store = access.store
        if person is not None:
            rows = await store.for_person(person, limit=_page(limit), before=before)
        else:
            rows = await store.by_kind(kind, limit=_page(limit), before=before)
        return [_view(row) for row in rows]

    @get("/entries/{seq:int}")
    async def entry(self, runtime: RuntimeDep, seq: FromPath[int]) -> AuditEntryView:
        found = await _access(runtime).store.get(seq)
        if found is None:
            raise NotFound(f"audit entry {seq} does not exist")
        return _view(found)

    @post("/entries/{seq:int}/restrict", status_code=HTTP_201_CREATED)
    async def restrict(
        self,
        runtime: RuntimeDep,
        actor: ActorDep,
        seq: FromPath[int],
        data: JSONBody[RestrictRequest],
    ) -> AuditEntryView:
        """Hide a read from its person until the embargo date (an investigation, say)."""
        entry = await _access(runtime).restrict(
            seq,
            actor=actor,
            reason=data.reason,
            embargo_until=data.embargo_until,
            now=datetime.now(UTC),
        )
        return _view(entry)

    @get("/restrictions")
    async def restrictions(
        self, runtime: RuntimeDep, limit: FromQuery[int] = 50
    ) -> list[RestrictionView]:
        access = _access(runtime)
        now = datetime.now(UTC)
        entries = await access.store.by_kind("restrict", limit=_page(limit))
        found = await access.restrictions([e.target_seq or 0 for e in entries], now)
        wanted = {e.seq for e in entries}
        return [_restriction_view(r, now) for r in found if r.seq in wanted]

    @post("/restrictions/{seq:int}/release", status_code=HTTP_200_OK)
    async def release(
        self,
        runtime: RuntimeDep,
        actor: ActorDep,
        seq: FromPath[int],
        data: JSONBody[ReleaseRequest],
    ) -> AuditEntryView:
        """End a restriction before its embargo (the person then sees the read)."""
        entry = await _access(runtime).release(
            seq, actor=actor, reason=data.reason, now=datetime.now(UTC)
        )
        return _view(entry)

    @get("/verify")
    async def verify(self, runtime: RuntimeDep) -> VerifyView:
        """Walk the whole chain (as ``hub audit verify``)."""
        report = await verify_chain(_access(runtime).store)
        return VerifyView(
            ok=report.ok,
            entries=report.entries,
            last_seq=report.last_seq,
            head_seq=report.head_seq,
            findings=[str(f) for f in report.findings],
        )
