"""Admin API for plans in use: vendor applications' subscriptions, and usage for billing.

Subscriptions are checked against the active configuration (the product takes subscriptions
and offers the plan) and follow :mod:`hub.plans.subscriptions`' state machine; each change
names the acting admin and drops this replica's cached copy at once (other replicas within
``HUB_SUBSCRIPTION_CACHE_SECONDS``). Usage is read after this replica's meter has flushed, so
it includes every request this replica admitted; other replicas' within a flush interval.

Unknown ids answer 404, bad values 400 (``invalid_request``, or ``bad_request`` for an unknown
query parameter), a change from the wrong state or a second live subscription 409.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeAlias

import structlog
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from hub.admin.guard import ActorDep, actor_dependency, admin_guard
from hub.db.plans_tables import SUBSCRIPTION_STATUSES
from hub.db.subscription_store import Subscription, SubscriptionEvent
from hub.db.usage_store import UsageRecord
from hub.errors import InvalidRequest, NotFound, RequestRejected, ServiceUnavailable
from hub.plans.subscriptions import SubscriptionService
from hub.runtime import Runtime

__all__ = [
    "AdminSubscriptionsController",
    "PlanChange",
    "SubscriptionCreate",
    "SubscriptionNote",
    "SubscriptionRejection",
    "UsageReport",
    "UsageRow",
]

log = structlog.get_logger("hub.admin")

RuntimeDep: TypeAlias = NamedDependency[Runtime]
ServiceDep: TypeAlias = NamedDependency[SubscriptionService]

#: The longest period one usage query may cover.
MAX_USAGE_DAYS = 366
_SUBSCRIPTION_FILTERS = frozenset(
    {"client_id", "product", "plan", "status", "vendor", "limit", "offset"}
)
_USAGE_FILTERS = frozenset({"client_id", "vendor", "product", "from", "to", "format"})
_CSV_COLUMNS = ("day", "client_id", "client_name", "vendor", "product", "requests")


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionCreate:
    """Subscribe a vendor application (an OAuth client id) to a product under a plan."""

    client_id: str
    product: str
    plan: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionNote:
    """An optional reason recorded with an approval or a cancellation."""

    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionRejection:
    """Why a pending subscription is refused (required)."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanChange:
    """Move a pending or active subscription to another plan the product offers."""

    plan: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageRow:
    """An application's admitted requests on a product on one UTC day."""

    day: date
    client_id: str
    client_name: str | None
    vendor: str | None
    product: str
    requests: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageReport:
    """Usage rows from ``from`` to ``to`` (UTC days, both included), and their sum."""

    start: date
    end: date
    rows: list[UsageRow]
    total_requests: int


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _service(request: Request[Any, Any, Any]) -> SubscriptionService:
    service = _runtime(request).subscriptions
    if service is None:
        raise ServiceUnavailable("the subscription store is not started")
    return service


def _only(query: Mapping[str, Any], known: Collection[str]) -> None:
    unknown = sorted(set(query) - set(known))
    if unknown:
        raise RequestRejected(
            f"unknown query parameter {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )


def _day(value: str | None, name: str, default: date) -> date:
    if value is None:
        return default
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{name} must be a date as YYYY-MM-DD, not {value!r}") from None


def _number(value: str | None, name: str, default: int) -> int:
    if value is None:
        return default
    if not value.isdigit():
        raise InvalidRequest(f"{name} must be a whole number, not {value!r}")
    return int(value)


def _row(record: UsageRecord) -> UsageRow:
    return UsageRow(
        day=record.day,
        client_id=record.client_id,
        client_name=record.client_name,
        vendor=record.owner,
        product=record.product,
        requests=record.requests,
    )


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    # a spreadsheet would run a name starting with = + - @ as a formula (CSV injection)
    return "'" + text if text[:1] in {"=", "+", "-", "@", "\t", "\r"} else text


def _csv(report: UsageReport) -> Response[str]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(_CSV_COLUMNS)
    for row in report.rows:
        writer.writerow(_cell(getattr(row, column)) for column in _CSV_COLUMNS)
    name = f"usage-{report.start.isoformat()}-{report.end.isoformat()}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


async def _report(runtime: Runtime, query: Mapping[str, Any]) -> UsageReport:
    _only(query, _USAGE_FILTERS)
    if runtime.usage is None or runtime.identity is None:
        raise ServiceUnavailable("the usage store is not started")
    today = datetime.now(UTC).date()
    start = _day(query.get("from"), "from", today.replace(day=1))
    end = _day(query.get("to"), "to", today)
    if start > end:
        raise InvalidRequest(f"from ({start}) is after to ({end})")
    if end - start >= timedelta(days=MAX_USAGE_DAYS):
        raise InvalidRequest(f"a usage query covers at most {MAX_USAGE_DAYS} days")
    client_id, vendor, product = query.get("client_id"), query.get("vendor"), query.get("product")
    if client_id is not None and await runtime.identity.clients.get(client_id) is None:
        raise NotFound(f"client {client_id!r} does not exist")
    if vendor is not None and not any(
        client.owner == vendor for client in await runtime.identity.clients.list()
    ):
        raise NotFound(f"no client is owned by vendor {vendor!r}")
    if product is not None:
        snapshot = runtime.snapshot
        known = {p.id for p in snapshot.document.products} if snapshot is not None else set()
        if product not in known and product not in await runtime.usage.products():
            raise NotFound(f"product {product!r} is neither configured nor in the usage records")
    if runtime.meter is not None:
        await runtime.meter.flush()  # this replica's counts first, so the report holds them
    records = await runtime.usage.list(
        start=start, end=end, client_id=client_id, owner=vendor, product=product
    )
    rows = [_row(record) for record in records]
    return UsageReport(
        start=start, end=end, rows=rows, total_requests=sum(r.requests for r in rows)
    )


class AdminSubscriptionsController(Controller):
    """Subscriptions of vendor applications to products, and the usage they made."""

    path = "/admin/api"
    guards = [admin_guard]
    tags = ["admin"]
    dependencies = {
        "runtime": Provide(_runtime, sync_to_thread=False),
        "service": Provide(_service, sync_to_thread=False),
        "actor": actor_dependency,
    }

    @post("/subscriptions", status_code=HTTP_201_CREATED)
    async def create_subscription(
        self, service: ServiceDep, actor: ActorDep, data: JSONBody[SubscriptionCreate]
    ) -> Subscription:
        """Subscribe an application; ``pending`` when the product needs approval.

        404 for an unknown client, product or plan; 400 for a plan the product does not offer;
        409 when the client is disabled or already has a pending or active subscription.
        """
        subscription = await service.create(
            client_id=data.client_id,
            product=data.product,
            plan=data.plan,
            actor=actor,
            reason=data.reason,
        )
        _logged("admin.subscription_created", actor, subscription)
        return subscription

    @get("/subscriptions")
    async def list_subscriptions(
        self, request: Request[Any, Any, Any], service: ServiceDep
    ) -> list[Subscription]:
        """Subscriptions matching every filter given, oldest first.

        Filters: ``client_id``, ``product``, ``plan``, ``status``, ``vendor`` (the client's
        owner); pages with ``limit`` (1 to 500, 100 by default) and ``offset``.
        """
        query = request.query_params
        _only(query, _SUBSCRIPTION_FILTERS)
        status = query.get("status")
        if status is not None and status not in SUBSCRIPTION_STATUSES:
            raise InvalidRequest(
                f"status must be one of {', '.join(SUBSCRIPTION_STATUSES)}, not {status!r}"
            )
        return await service.store.list(
            client_id=query.get("client_id"),
            product=query.get("product"),
            plan=query.get("plan"),
            status=status,
            owner=query.get("vendor"),
            limit=_number(query.get("limit"), "limit", 100),
            offset=_number(query.get("offset"), "offset", 0),
        )

    @get("/subscriptions/{subscription_id:str}")
    async def get_subscription(
        self, service: ServiceDep, subscription_id: FromPath[str]
    ) -> Subscription:
        """One subscription."""
        subscription = await service.store.get(subscription_id)
        if subscription is None:
            raise NotFound(f"subscription {subscription_id!r} does not exist")
        return subscription

    @get("/subscriptions/{subscription_id:str}/events")
    async def subscription_events(
        self, service: ServiceDep, subscription_id: FromPath[str]
    ) -> list[SubscriptionEvent]:
        """What happened to the subscription, who did it and why, oldest first."""
        return await service.store.events(subscription_id)

    @post("/subscriptions/{subscription_id:str}/approve", status_code=HTTP_200_OK)
    async def approve(
        self,
        service: ServiceDep,
        actor: ActorDep,
        subscription_id: FromPath[str],
        data: JSONBody[SubscriptionNote | None] = None,
    ) -> Subscription:
        """A pending subscription becomes active (409 from any other state)."""
        reason = data.reason if data else ""
        subscription = await service.approve(subscription_id, actor=actor, reason=reason)
        _logged("admin.subscription_approved", actor, subscription)
        return subscription

    @post("/subscriptions/{subscription_id:str}/reject", status_code=HTTP_200_OK)
    async def reject(
        self,
        service: ServiceDep,
        actor: ActorDep,
        subscription_id: FromPath[str],
        data: JSONBody[SubscriptionRejection],
    ) -> Subscription:
        """A pending subscription is refused, with a reason (409 from any other state)."""
        subscription = await service.reject(subscription_id, actor=actor, reason=data.reason)
        _logged("admin.subscription_rejected", actor, subscription)
        return subscription

    @post("/subscriptions/{subscription_id:str}/cancel", status_code=HTTP_200_OK)
    async def cancel(
        self,
        service: ServiceDep,
        actor: ActorDep,
        subscription_id: FromPath[str],
        data: JSONBody[SubscriptionNote | None] = None,
    ) -> Subscription:
        """A pending or active subscription ends (409 once it is rejected or cancelled)."""
        reason = data.reason if data else ""
        subscription = await service.cancel(subscription_id, actor=actor, reason=reason)
        _logged("admin.subscription_cancelled", actor, subscription)
        return subscription

    @post("/subscriptions/{subscription_id:str}/plan", status_code=HTTP_200_OK)
    async def change_plan(
        self,
        service: ServiceDep,
        actor: ActorDep,
        subscription_id: FromPath[str],
        data: JSONBody[PlanChange],
    ) -> Subscription:
        """Move a pending or active subscription to another plan the product offers."""
        subscription = await service.change_plan(
            subscription_id, data.plan, actor=actor, reason=data.reason
        )
        _logged("admin.subscription_plan_changed", actor, subscription)
        return subscription

    @get("/usage")
    async def usage(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep
    ) -> UsageReport | Response[str]:
        """Usage per application, product and UTC day (``format=csv`` for the CSV export).

        Filters: ``client_id``, ``vendor`` (the client's owner), ``product``, ``from`` and
        ``to`` (YYYY-MM-DD, both included; the current UTC month so far by default).
        """
        report = await _report(runtime, request.query_params)
        fmt = request.query_params.get("format", "json")
        if fmt == "csv":
            return _csv(report)
        if fmt != "json":
            raise InvalidRequest(f"format must be json or csv, not {fmt!r}")
        return report

    @get("/usage.csv", media_type="text/csv")
    async def usage_csv(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep
    ) -> Response[str]:
        """The usage report as CSV for billing, with a header row, as a download."""
        return _csv(await _report(runtime, request.query_params))


def _logged(event: str, actor: str, subscription: Subscription) -> None:
    log.info(
        event,
        actor=actor,
        subscription_id=subscription.id,
        client_id=subscription.client_id,
        product=subscription.product,
        plan=subscription.plan,
        status=subscription.status,
    )
