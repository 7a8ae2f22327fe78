"""The notification service's HTTP API, behind the hub: ``/api/notifications/v1/me/...``
(contract: ``contracts/products/notifications/v1``).

Every endpoint but ``/healthz`` and ``/metrics`` needs the hub's ``X-Hub-Principal-Token``:
the service trusts nothing else about the caller, and serves only the caller's own inbox and
preferences (another's message is ``404 notification_not_found``, exactly like a missing one).
In the lifespan: the consumers of ``notification.requested`` and ``notification.receipt``
(idempotent, through the bus of the hub's system) and the dispatcher.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from litestar import Request, Response, get, post, put
from litestar.params import FromPath

from hub.backends.events.base import Event
from hub.errors import EstablishmentNotPermitted, InvalidRequest, NotFound
from hub.servicekit import http
from hub.servicekit.caller import Caller
from hub.servicekit.http import (
    ServiceApp,
    ServiceState,
    json_body,
    limit_of,
    no_store,
    refuse,
    unknown_parameters,
)
from hub.servicekit.runtime import ServiceRuntime
from services.notifications.domain import owner_of, parse_preferences
from services.notifications.hub_client import HubClient
from services.notifications.metrics import NotificationMetrics
from services.notifications.settings import NotificationSettings
from services.notifications.store import NotificationStore
from services.notifications.workflow import Notifications

__all__ = ["RECEIPTS_QUEUE", "REQUESTS_QUEUE", "Components", "create_app", "event_schema"]

REQUESTS_QUEUE: Final = "notifications.requests"
RECEIPTS_QUEUE: Final = "notifications.receipts"
_MAX_BODY: Final = 8 * 1024
_CONTRACTS: Final = Path(__file__).resolve().parent.parent.parent / "contracts"


class NotificationNotFound(NotFound):
    """No such message in the caller's inbox (another's is reported the same way)."""

    code = "notification_not_found"


def event_schema() -> dict[str, Any]:
    """The contract of ``notification.requested`` (validated on every incoming event)."""
    path = _CONTRACTS / "events" / "notification.requested.schema.json"
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


class Components(http.Components[Notifications]):
    """What the handlers use, made in the lifespan: the notification service is its workflow."""

    @property
    def service(self) -> Notifications:
        """The notification service (the workflow)."""
        return self.workflow


_STATE: Final = ServiceState[Notifications, Caller]("notifications", Caller)
_service: Final = _STATE.workflow


def _owner(request: Request[Any, Any, Any]) -> str:
    caller = _STATE.caller(request)
    return owner_of(caller.kind, caller.subject)


def _establishment_inbox(request: Request[Any, Any, Any], establishment_id: str) -> str:
    """The inbox of an establishment (its band changes), for its owner or whoever acts for it."""
    caller = _STATE.caller(request)
    owner = caller.kind == "person" and f"{establishment_id}:owner" in caller.memberships
    acting = caller.kind == "client" and caller.establishment == establishment_id
    if not (owner or acting):
        raise EstablishmentNotPermitted(
            "only the establishment's owner or an application acting for it reads its inbox"
        )
    return owner_of("establishment", establishment_id)


async def _message(request: Request[Any, Any, Any], owner: str, message_id: str) -> dict[str, Any]:
    service = _service(request)
    row = await service.store.owned(owner, message_id)
    if row is None:
        raise NotificationNotFound(f"no notification {message_id[:60]} in your inbox")
    delivered = await service.store.deliveries_of([row["id"]])
    return service.view(row, delivered[row["id"]])


@get("/metrics", sync_to_thread=False, media_type="text/plain; version=0.0.4")
def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus metrics: sends, deliveries and events by channel/type and outcome."""
    service = _service(request)
    return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")


@get("/api/notifications/v1/me/inbox")
async def list_inbox(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    owner = _owner(request)
    query = request.query_params
    establishment = query.get("establishment")
    if establishment is not None:  # an establishment's inbox instead of the caller's own
        if not 0 < len(establishment) <= 200:
            raise InvalidRequest(
                "establishment: an establishment's id", extra={"errors": ["establishment: an id"]}
            )
        owner = _establishment_inbox(request, establishment)
    errors = unknown_parameters(query, _INBOX_FILTERS)
    unread = query.get("unread", "false")
    if unread not in {"true", "false"}:
        errors.append("unread: true or false")
    limit = limit_of(query, errors)
    raw_cursor = query.get("cursor")
    if raw_cursor is not None and not (raw_cursor.isdigit() and len(raw_cursor) < 19):
        errors.append("cursor: the next_cursor of a previous page")
    refuse(errors)
    service = _service(request)
    page = await service.store.inbox(
        owner,
        unread_only=unread == "true",
        limit=limit,
        cursor=int(raw_cursor) if raw_cursor is not None else None,
    )
    delivered = await service.store.deliveries_of(row["id"] for row in page.items)
    body = {
        "items": [service.view(row, delivered[row["id"]]) for row in page.items],
        "next_cursor": page.next_cursor,
        "unread": page.unread,
    }
    return no_store(body)


_INBOX_FILTERS: Final = frozenset({"unread", "limit", "cursor", "establishment"})


@get("/api/notifications/v1/me/inbox/{message_id:str}")
async def get_message(
    request: Request[Any, Any, Any], message_id: FromPath[str]
) -> Response[dict[str, Any]]:
    owner = _owner(request)
    return no_store(await _message(request, owner, message_id))


@post("/api/notifications/v1/me/inbox/{message_id:str}/read", status_code=200)
async def mark_read(request: Request[Any, Any, Any], message_id: FromPath[str]) -> dict[str, Any]:
    owner = _owner(request)
    if not await _service(request).store.mark(owner, message_id, read=True):
        raise NotificationNotFound(f"no notification {message_id[:60]} in your inbox")
    return await _message(request, owner, message_id)


@post("/api/notifications/v1/me/inbox/{message_id:str}/unread", status_code=200)
async def mark_unread(request: Request[Any, Any, Any], message_id: FromPath[str]) -> dict[str, Any]:
    owner = _owner(request)
    if not await _service(request).store.mark(owner, message_id, read=False):
        raise NotificationNotFound(f"no notification {message_id[:60]} in your inbox")
    return await _message(request, owner, message_id)


def _preferences_view(chosen: Any, at: Any) -> dict[str, Any]:
    return {
        "channels": list(chosen.channels),
        "language": chosen.language,
        "email": chosen.email,
        "phone": chosen.phone,
        "stored": chosen.stored,
        "updated_at": at.isoformat() if at is not None else None,
    }


@get("/api/notifications/v1/me/preferences")
async def get_preferences(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    owner = _owner(request)
    chosen, at = await _service(request).store.preferences(owner)
    return no_store(_preferences_view(chosen, at))


@put("/api/notifications/v1/me/preferences", status_code=200)
async def put_preferences(request: Request[Any, Any, Any]) -> dict[str, Any]:
    owner = _owner(request)
    body = await json_body(request, limit=_MAX_BODY, what="a preferences body", required=False)
    chosen = parse_preferences(body)
    at = await _service(request).store.put_preferences(owner, chosen)
    return _preferences_view(chosen, at)


HANDLERS: Final = [
    metrics,
    list_inbox,
    get_message,
    mark_read,
    mark_unread,
    get_preferences,
    put_preferences,
]


async def _open(runtime: ServiceRuntime, settings: NotificationSettings) -> Components:
    """The notification service's components on its runtime."""
    store = await runtime.open_store(NotificationStore)
    hub = runtime.gateway(HubClient)
    service = Notifications(
        store,
        hub,
        schema=event_schema(),
        metrics=NotificationMetrics(),
        max_attempts=settings.max_attempts,
        retry_seconds=settings.retry_seconds,
        receipt_seconds=settings.receipt_seconds,
    )
    requested = runtime.consumer(REQUESTS_QUEUE, service.on_requested)
    receipts = runtime.consumer(RECEIPTS_QUEUE, service.on_receipt)

    async def on_requested(event: Event) -> None:
        service.check(event)  # a bad event raises: retried, then dead-lettered
        await requested(event)
        service.wake()

    # Requests are independent of each other: several subscriptions of the queue take
    # them in parallel (a duplicate still makes one message: the inbox is keyed by the
    # notification id). Receipts keep one: a delivery's reports apply one at a time.
    # No outbox of its own: no store is given, the relay is not started.
    await runtime.start(
        handlers=[
            *[(REQUESTS_QUEUE, "notification.requested", on_requested)] * settings.consumers,
            (RECEIPTS_QUEUE, "notification.receipt", receipts),
        ]
    )
    runtime.spawn(service.run(settings.dispatch_seconds), name="dispatch")
    return Components(service, runtime.verifier)


#: The notification service for its settings (``transport`` and ``bus`` are for tests).
create_app: Final = ServiceApp(HANDLERS, name="notifications", state=_STATE, open_components=_open)
