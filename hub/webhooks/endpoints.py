"""HTTP endpoints of vendor webhooks and of dead-lettered events.

Vendors (an OAuth client's token or API key; the subscriptions are the client's own):

- ``GET /api/webhooks/v1/event-types``: what this application may subscribe to;
- ``GET|POST /api/webhooks/v1/subscriptions`` ``{url, event_types, description}``: the answer
  to POST carries ``secret`` (``whsec_...``), shown this once;
- ``GET|DELETE /api/webhooks/v1/subscriptions/{id}``, ``POST …/{id}/test``,
  ``GET …/{id}/deliveries``.

Admins (the admin guard):

- ``GET|POST /admin/api/webhooks/subscriptions`` (POST names the ``client_id``),
  ``GET|DELETE …/subscriptions/{id}``;
- ``GET /admin/api/webhooks/deliveries`` (``?subscription_id=&status=&limit=``),
  ``POST …/deliveries/{id}/replay`` (parked ones only);
- ``GET /admin/api/events/dead-letters?queue=``, ``POST /admin/api/events/dead-letters/replay``
  ``{queue, event_ids}``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED

from hub.admin.guard import ActorDep, actor_dependency, admin_guard
from hub.auth.principal import Principal
from hub.config.model import AuthSpec
from hub.db.webhook_store import StoredDelivery, Subscription, WebhookStore
from hub.errors import (
    EventTypeNotAllowed,
    Forbidden,
    InvalidRequest,
    NotFound,
    NotReplayable,
    ServiceUnavailable,
    WebhookKeyMissing,
)
from hub.runtime import Runtime
from hub.webhooks.signing import new_secret

__all__ = [
    "AdminEventsController",
    "AdminWebhooksController",
    "VendorWebhooksController",
]

RuntimeDep: TypeAlias = NamedDependency[Runtime]
_VENDOR_AUTH = AuthSpec(methods=("jwt", "api_key"))
_STATUSES = frozenset({"pending", "delivered", "parked"})
_MAX_TYPES = 50


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionRequest:
    url: str
    event_types: list[str]
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminSubscriptionRequest:
    client_id: str
    url: str
    event_types: list[str]
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionView:
    id: str
    client_id: str
    url: str
    event_types: list[str]
    description: str
    created_at: datetime
    created_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CreatedSubscription(SubscriptionView):
    #: The signing secret: shown in this answer only.
    secret: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryView:
    id: int
    subscription_id: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class EventTypeView:
    type: str
    description: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TestDelivery:
    event_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetterView:
    queue: str
    event_id: str
    event_type: str
    payload: dict[str, Any]
    occurred_at: datetime
    error: str
    attempts: int
    dead_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayRequest:
    queue: str
    event_ids: list[str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Replayed:
    replayed: int


def _view(sub: Subscription) -> SubscriptionView:
    return SubscriptionView(
        id=sub.id,
        client_id=sub.client_id,
        url=sub.url,
        event_types=list(sub.event_types),
        description=sub.description,
        created_at=sub.created_at,
        created_by=sub.created_by,
    )


def _delivery(d: StoredDelivery) -> DeliveryView:
    return DeliveryView(
        id=d.id,
        subscription_id=d.subscription_id,
        event_id=d.event_id,
        event_type=d.event_type,
        status=d.status,
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
        last_status=d.last_status,
        last_error=d.last_error,
        created_at=d.created_at,
        delivered_at=d.delivered_at,
    )


def _check_url(url: str, *, development: bool) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        raise InvalidRequest("url must be an absolute https:// URL")
    if parts.username or parts.password:
        raise InvalidRequest("url must not carry credentials")
    if parts.scheme == "http":
        loopback = False
        try:
            loopback = ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            loopback = parts.hostname == "localhost"
        if not (development and loopback):
            raise InvalidRequest(
                "url must be https:// (plain http only to loopback in development)"
            )
    return url


async def _create(
    runtime: Runtime,
    *,
    client_id: str,
    url: str,
    event_types: list[str],
    description: str,
    actor: str,
) -> CreatedSubscription:
    store, sealer = runtime.webhooks, runtime.webhook_sealer
    if store is None:
        raise ServiceUnavailable("webhooks are not started")
    if sealer is None:
        raise WebhookKeyMissing("set HUB_WEBHOOK_KEY to store webhook secrets")
    assert runtime.identity is not None
    client = await runtime.identity.clients.get(client_id)
    if client is None or client.disabled_at is not None:
        raise NotFound(f"no enabled client {client_id!r}")
    if not event_types or len(event_types) > _MAX_TYPES:
        raise InvalidRequest(f"event_types must list 1 to {_MAX_TYPES} event types")
    catalog = runtime.webhook_catalog
    allowed = {t.type for t in catalog.allowed_for(client.scopes)}
    for name in event_types:
        if name not in catalog.types:
            raise InvalidRequest(
                f"unknown event type {name!r}: see GET /api/webhooks/v1/event-types"
            )
        if name not in allowed:
            scope = catalog.types[name].scope
            raise EventTypeNotAllowed(f"{name} needs the {scope} scope, which {client_id} lacks")
    _check_url(url, development=runtime.settings.environment == "development")
    secret = new_secret()
    sub_id = store.new_id()
    sub = await store.create(
        id=sub_id,
        client_id=client_id,
        url=url,
        event_types=sorted(set(event_types)),
        description=description[:500],
        secret_ciphertext=sealer.seal(secret, context=sub_id),
        created_by=actor,
        now=datetime.now(UTC),
    )
    return CreatedSubscription(**_fields(sub), secret=secret)


def _fields(sub: Subscription) -> dict[str, Any]:
    view = _view(sub)
    return {name: getattr(view, name) for name in SubscriptionView.__dataclass_fields__}


def _store(runtime: Runtime) -> WebhookStore:
    if runtime.webhooks is None:
        raise ServiceUnavailable("webhooks are not started")
    return runtime.webhooks


async def _vendor(runtime: Runtime, request: Request[Any, Any, Any]) -> str:
    principal: Principal = await runtime.authenticate(_VENDOR_AUTH, list(request.scope["headers"]))
    if principal.kind not in {"client", "api_key"} or not principal.client_id:
        raise Forbidden("webhook subscriptions belong to vendor applications (client tokens)")
    return principal.client_id


async def _own(runtime: Runtime, client_id: str, sub_id: str) -> Subscription:
    sub = await _store(runtime).get(sub_id)
    if sub is None or sub.client_id != client_id:
        raise NotFound(f"no subscription {sub_id!r}")
    return sub


def _limit(limit: int) -> int:
    if not 1 <= limit <= 200:
        raise InvalidRequest("limit must be between 1 and 200")
    return limit


class VendorWebhooksController(Controller):
    """A vendor application's own webhook subscriptions."""

    path = "/api/webhooks/v1"
    tags = ["webhooks"]
    dependencies = {"runtime": Provide(_runtime, sync_to_thread=False)}

    @get("/event-types")
    async def event_types(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep
    ) -> list[EventTypeView]:
        client_id = await _vendor(runtime, request)
        assert runtime.identity is not None
        client = await runtime.identity.clients.get(client_id)
        scopes = client.scopes if client is not None else ()
        return [
            EventTypeView(type=t.type, description=t.description)
            for t in runtime.webhook_catalog.allowed_for(scopes)
        ]

    @get("/subscriptions")
    async def list_subscriptions(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep
    ) -> list[SubscriptionView]:
        client_id = await _vendor(runtime, request)
        return [_view(s) for s in await _store(runtime).subscriptions(client_id=client_id)]

    @post("/subscriptions", status_code=HTTP_201_CREATED)
    async def create_subscription(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        data: JSONBody[SubscriptionRequest],
    ) -> CreatedSubscription:
        client_id = await _vendor(runtime, request)
        return await _create(
            runtime,
            client_id=client_id,
            url=data.url,
            event_types=data.event_types,
            description=data.description,
            actor=f"client:{client_id}",
        )

    @get("/subscriptions/{sub_id:str}")
    async def get_subscription(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep, sub_id: FromPath[str]
    ) -> SubscriptionView:
        return _view(await _own(runtime, await _vendor(runtime, request), sub_id))

    @delete("/subscriptions/{sub_id:str}", status_code=HTTP_200_OK)
    async def delete_subscription(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep, sub_id: FromPath[str]
    ) -> SubscriptionView:
        sub = await _own(runtime, await _vendor(runtime, request), sub_id)
        await _store(runtime).delete(sub.id)
        return _view(sub)

    @post("/subscriptions/{sub_id:str}/test", status_code=HTTP_202_ACCEPTED)
    async def test_delivery(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep, sub_id: FromPath[str]
    ) -> TestDelivery:
        sub = await _own(runtime, await _vendor(runtime, request), sub_id)
        if runtime.webhook_dispatcher is None:
            raise WebhookKeyMissing("set HUB_WEBHOOK_KEY to send webhooks")
        event = await runtime.webhook_dispatcher.send_test(sub)
        return TestDelivery(event_id=event.id)

    @get("/subscriptions/{sub_id:str}/deliveries")
    async def deliveries(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        sub_id: FromPath[str],
        limit: FromQuery[int] = 50,
    ) -> list[DeliveryView]:
        sub = await _own(runtime, await _vendor(runtime, request), sub_id)
        found = await _store(runtime).deliveries(subscription_id=sub.id, limit=_limit(limit))
        return [_delivery(d) for d in found]


class AdminWebhooksController(Controller):
    """Admins: every vendor's subscriptions and deliveries; replaying parked deliveries."""

    path = "/admin/api/webhooks"
    guards = [admin_guard]
    tags = ["admin"]
    dependencies = {"runtime": Provide(_runtime, sync_to_thread=False), "actor": actor_dependency}

    @get("/subscriptions")
    async def list_subscriptions(
        self, runtime: RuntimeDep, client_id: FromQuery[str | None] = None
    ) -> list[SubscriptionView]:
        return [_view(s) for s in await _store(runtime).subscriptions(client_id=client_id)]

    @post("/subscriptions", status_code=HTTP_201_CREATED)
    async def create_subscription(
        self, runtime: RuntimeDep, actor: ActorDep, data: JSONBody[AdminSubscriptionRequest]
    ) -> CreatedSubscription:
        return await _create(
            runtime,
            client_id=data.client_id,
            url=data.url,
            event_types=data.event_types,
            description=data.description,
            actor=actor,
        )

    @get("/subscriptions/{sub_id:str}")
    async def get_subscription(
        self, runtime: RuntimeDep, sub_id: FromPath[str]
    ) -> SubscriptionView:
        sub = await _store(runtime).get(sub_id)
        if sub is None:
            raise NotFound(f"no subscription {sub_id!r}")
        return _view(sub)

    @delete("/subscriptions/{sub_id:str}", status_code=HTTP_200_OK)
    async def delete_subscription(
        self, runtime: RuntimeDep, sub_id: FromPath[str]
    ) -> SubscriptionView:
        sub = await _store(runtime).get(sub_id)
        if sub is None:
            raise NotFound(f"no subscription {sub_id!r}")
        await _store(runtime).delete(sub_id)
        return _view(sub)

    @get("/deliveries")
    async def deliveries(
        self,
        runtime: RuntimeDep,
        subscription_id: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
    ) -> list[DeliveryView]:
        if status is not None and status not in _STATUSES:
            raise InvalidRequest("status must be pending, delivered or parked")
        found = await _store(runtime).deliveries(
            subscription_id=subscription_id, status=status, limit=_limit(limit)
        )
        return [_delivery(d) for d in found]

    @post("/deliveries/{delivery_id:int}/replay", status_code=HTTP_202_ACCEPTED)
    async def replay(self, runtime: RuntimeDep, delivery_id: FromPath[int]) -> DeliveryView:
        store = _store(runtime)
        found = await store.get_delivery(delivery_id)
        if found is None:
            raise NotFound(f"no delivery {delivery_id}")
        if not await store.replay(delivery_id, now=datetime.now(UTC)):
            raise NotReplayable(f"delivery {delivery_id} is {found.status}, not parked")
        if runtime.webhook_dispatcher is not None:
            runtime.webhook_dispatcher.wake()
        replayed = await store.get_delivery(delivery_id)
        assert replayed is not None
        return _delivery(replayed)


class AdminEventsController(Controller):
    """Admins: events their consumers gave up on, and putting them back."""

    path = "/admin/api/events"
    guards = [admin_guard]
    tags = ["admin"]
    dependencies = {"runtime": Provide(_runtime, sync_to_thread=False), "actor": actor_dependency}

    @get("/dead-letters")
    async def dead_letters(
        self, runtime: RuntimeDep, queue: FromQuery[str | None] = None, limit: FromQuery[int] = 50
    ) -> list[DeadLetterView]:
        if runtime.events is None:
            raise ServiceUnavailable("the event bus is not started")
        if runtime.settings.amqp_url and not queue:
            raise InvalidRequest("name the queue (?queue=): RabbitMQ lists one queue at a time")
        letters = await runtime.events.dead_letters(queue, limit=_limit(limit))
        return [
            DeadLetterView(
                queue=letter.queue,
                event_id=letter.event.id,
                event_type=letter.event.type,
                payload=letter.event.payload,
                occurred_at=letter.event.occurred_at,
                error=letter.error,
                attempts=letter.attempts,
                dead_at=letter.dead_at,
            )
            for letter in letters
        ]

    @post("/dead-letters/replay", status_code=HTTP_200_OK)
    async def replay(
        self, runtime: RuntimeDep, actor: ActorDep, data: JSONBody[ReplayRequest]
    ) -> Replayed:
        if runtime.events is None:
            raise ServiceUnavailable("the event bus is not started")
        if not data.queue:
            raise InvalidRequest("queue must name a queue")
        moved = await runtime.events.replay(data.queue, data.event_ids)
        if moved == 0:
            raise NotReplayable(f"no dead letters to replay on {data.queue}")
        return Replayed(replayed=moved)
