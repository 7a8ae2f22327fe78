"""The hub's own endpoints (health, metrics, catalog, admin) as one Litestar app.

Documented at ``/schema``. Proxied traffic never passes through here: :mod:`hub.asgi` sends it
to the data plane (:mod:`hub.gateway`) before Litestar sees it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

from litestar import Controller, Litestar, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi import OpenAPIConfig
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_503_SERVICE_UNAVAILABLE

from hub import __version__
from hub.admin.credentials import AdminCredentialsController
from hub.admin.drafts import (
    AdminDraftsController,
    DiffView,
    ValidationResult,
    diff_view,
    validation_result,
)
from hub.admin.dryrun import AdminDryRunController
from hub.admin.guard import ActorDep, actor_dependency, admin_guard
from hub.admin.people import AdminPeopleController
from hub.admin.policies import AdminPoliciesController
from hub.admin.shadow import AdminShadowController
from hub.admin.subscriptions import AdminSubscriptionsController
from hub.audit.endpoints import AdminAuditController, DataAccessController
from hub.callbacks.endpoints import CallbacksController
from hub.catalog import catalog_entry, openapi_document
from hub.db.config_store import StoredChange, StoredVersion
from hub.errors import NotFound, ServiceUnavailable
from hub.identity.endpoints import identity_router
from hub.identity.login import account_router
from hub.ops.metrics import CONTENT_TYPE
from hub.payments.endpoints import AdminPaymentsController
from hub.problems import problem_details_plugin
from hub.runtime import Runtime
from hub.signing.endpoints import sign_signature
from hub.webhooks.endpoints import (
    AdminEventsController,
    AdminWebhooksController,
    VendorWebhooksController,
)

__all__ = ["build_litestar"]

# Named explicitly: Litestar 2.23+ deprecates inferring dependencies and parameters by name.
RuntimeDep: TypeAlias = NamedDependency[Runtime]


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionSummary:
    """A stored configuration version, without its document."""

    version: int
    checksum: str
    created_at: datetime
    created_by: str
    comment: str
    based_on: int | None
    active: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeRecord:
    """One change that made a version active: who, when, why, and what it changed."""

    action: str = field(metadata={"description": "seed, publish or activate"})
    previous: int | None = field(metadata={"description": "the version it replaced"})
    actor: str
    at: datetime
    comment: str
    draft: int | None
    diff_summary: dict[str, Any] | None = field(
        metadata={"description": "per section: ids added, removed, changed"}
    )
    protected: list[dict[str, Any]] | None = field(
        default=None, metadata={"description": "protected items it changed (four eyes)"}
    )
    approved_by: str | None = field(
        default=None, metadata={"description": "the second admin who approved the change"}
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionDetail(VersionSummary):
    """A stored configuration version with its whole document and its audit record."""

    document: dict[str, Any]
    diff_summary: dict[str, Any] | None = field(
        metadata={"description": "what its publish changed (none for versions before 0005)"}
    )
    changes: list[ChangeRecord]


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishRequest:
    """A whole configuration document to validate and make active."""

    document: dict[str, Any]
    comment: str = ""
    based_on: int | None = field(
        default=None, metadata={"description": "the active version this edit started from"}
    )
    allow_empty: bool = field(
        default=False, metadata={"description": "publish even if it removes every route"}
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivateRequest:
    """Roll back (or forward) to a stored version."""

    based_on: int | None = None
    comment: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DiffRequest:
    """A whole document to compare with the active version."""

    document: dict[str, Any]


def _summary(stored: StoredVersion) -> VersionSummary:
    return VersionSummary(
        version=stored.version,
        checksum=stored.checksum,
        created_at=stored.created_at,
        created_by=stored.created_by,
        comment=stored.comment,
        based_on=stored.based_on,
        active=stored.active,
    )


def _change(change: StoredChange) -> ChangeRecord:
    return ChangeRecord(
        action=change.action,
        previous=change.previous,
        actor=change.actor,
        at=change.at,
        comment=change.comment,
        draft=change.draft_id,
        diff_summary=change.summary,
        protected=change.protected,
        approved_by=change.approved_by,
    )


def _detail(stored: StoredVersion, changes: list[StoredChange]) -> VersionDetail:
    published = next((c for c in changes if c.action in {"publish", "seed"}), None)
    return VersionDetail(
        **{f: getattr(stored, f) for f in VersionSummary.__dataclass_fields__},
        document=stored.document,
        diff_summary=published.summary if published is not None else None,
        changes=[_change(c) for c in changes],
    )


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


class AdminConfigController(Controller):
    """Configuration versions: list, read, validate, publish, roll back."""

    path = "/admin/api/config"
    guards = [admin_guard]
    tags = ["admin"]
    dependencies = {"runtime": Provide(_runtime, sync_to_thread=False), "actor": actor_dependency}

    @get("/versions")
    async def list_versions(
        self, runtime: RuntimeDep, limit: FromQuery[int] = 50
    ) -> list[VersionSummary]:
        assert runtime.store is not None
        return [_summary(v) for v in await runtime.store.history(limit=max(1, min(limit, 500)))]

    @get("/versions/{version:int}")
    async def get_version(self, runtime: RuntimeDep, version: FromPath[int]) -> VersionDetail:
        assert runtime.store is not None
        stored = await runtime.store.get(version)
        if stored is None:
            raise NotFound(f"configuration version {version} does not exist")
        return _detail(stored, await runtime.store.changes(version))

    @get("/active")
    async def get_active(self, runtime: RuntimeDep) -> VersionDetail:
        assert runtime.store is not None
        stored = await runtime.store.active()
        if stored is None:
            raise NotFound("no configuration version is active")
        return _detail(stored, await runtime.store.changes(stored.version))

    @post("/validate", status_code=HTTP_200_OK)
    async def validate(
        self,
        runtime: RuntimeDep,
        data: JSONBody[dict[str, Any]],
        allow_empty: FromQuery[bool] = False,
    ) -> ValidationResult:
        return validation_result(await runtime.validate(data, allow_empty=allow_empty))

    @post("/diff", status_code=HTTP_200_OK)
    async def diff(self, runtime: RuntimeDep, data: JSONBody[DiffRequest]) -> DiffView:
        """Compare a whole document with the active version (nothing is validated or stored)."""
        return await diff_view(runtime, data.document)

    @post("/versions", status_code=HTTP_201_CREATED)
    async def publish(
        self, runtime: RuntimeDep, actor: ActorDep, data: JSONBody[PublishRequest]
    ) -> VersionSummary:
        stored = await runtime.publish(
            data.document,
            author=actor,
            comment=data.comment,
            expected_active=data.based_on,
            allow_empty=data.allow_empty,
        )
        return _summary(stored)

    @post("/versions/{version:int}/activate", status_code=HTTP_200_OK)
    async def activate(
        self,
        runtime: RuntimeDep,
        actor: ActorDep,
        version: FromPath[int],
        data: JSONBody[ActivateRequest | None] = None,
    ) -> VersionSummary:
        # The body is optional: a plain POST rolls back without a conflict check.
        stored = await runtime.activate(
            version,
            author=actor,
            expected_active=data.based_on if data else None,
            comment=data.comment if data else "",
        )
        return _summary(stored)


class CatalogController(Controller):
    """Managed API products and their OpenAPI documents."""

    path = "/api/catalog"
    tags = ["catalog"]
    dependencies = {"runtime": Provide(_runtime, sync_to_thread=False)}

    @get("/")
    async def catalog(self, runtime: RuntimeDep) -> dict[str, Any]:
        snapshot = runtime.snapshot
        if snapshot is None:
            raise ServiceUnavailable("the configuration is not loaded yet")
        return {
            "config_version": snapshot.version,
            "products": [catalog_entry(p) for p in snapshot.document.products],
        }

    @get("/{product:str}/{version:str}/openapi.json")
    async def openapi(
        self, runtime: RuntimeDep, product: FromPath[str], version: FromPath[str]
    ) -> dict[str, Any]:
        snapshot = runtime.snapshot
        if snapshot is None:
            raise ServiceUnavailable("the configuration is not loaded yet")
        number = version.removeprefix("v")
        for spec in snapshot.document.products:
            if spec.id == product and number.isdigit() and spec.version == int(number):
                return openapi_document(runtime.settings.contracts_dir, spec)
        raise NotFound(f"no product {product!r} version {version!r} in the catalog")


@get("/healthz", tags=["operations"], sync_to_thread=False)
def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@get("/readyz", tags=["operations"])
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """Ready when the configuration is loaded and every configured back-end answers."""
    checks = await _runtime(request).readiness()
    ready = all(c.ok for c in checks)
    body = {
        "status": "ready" if ready else "not_ready",
        "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks},
    }
    return Response(body, status_code=HTTP_200_OK if ready else HTTP_503_SERVICE_UNAVAILABLE)


# Litestar appends "; charset=utf-8" to text/* media types itself; naming it twice would send
# "charset=utf-8; charset=utf-8", which strict scrapers refuse.
_METRICS_MEDIA_TYPE = CONTENT_TYPE.partition("; charset=")[0]


@get("/metrics", tags=["operations"], sync_to_thread=False, media_type=_METRICS_MEDIA_TYPE)
def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus metrics of this process."""
    return Response(_runtime(request).metrics.render(), media_type=_METRICS_MEDIA_TYPE)


def build_litestar(runtime: Runtime) -> Litestar:
    """The Litestar app for the hub's own endpoints; its lifespan starts and stops the runtime."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await runtime.start()
        # What the OAuth endpoints read (hub.identity.endpoints).
        app.state.settings = runtime.settings
        app.state.keyring = runtime.keyring
        app.state.identity = runtime.identity
        app.state.directory = runtime.directory
        try:
            yield
        finally:
            await runtime.aclose()

    app = Litestar(
        route_handlers=[
            healthz,
            readyz,
            metrics,
            CatalogController,
            AdminConfigController,
            AdminDraftsController,
            AdminDryRunController,
            AdminShadowController,
            AdminCredentialsController,
            AdminPeopleController,
            AdminPoliciesController,
            AdminAuditController,
            AdminPaymentsController,
            CallbacksController,
            DataAccessController,
            AdminSubscriptionsController,
            AdminWebhooksController,
            AdminEventsController,
            VendorWebhooksController,
            identity_router(),
            account_router(),
            # employment contracts (issue 7): hub-signed signatures
            sign_signature,
        ],
        plugins=[problem_details_plugin()],
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(title="The hub", version=__version__, path="/schema"),
        logging_config=None,  # hub.ops.logging configures logging once for the process
        debug=False,
    )
    app.state.runtime = runtime
    return app
