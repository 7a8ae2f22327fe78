"""Delivering events to vendors' webhook endpoints: fan-out, signed POSTs, retries, parking.

Two halves, both safe with any number of hub replicas:

- :meth:`WebhookDispatcher.on_event` is a consumer of the event bus (queue ``hub.webhooks``):
  an event whose type is in the webhook catalogue becomes one ``pending`` delivery per active
  subscription to that type. The pair (subscription, event) is unique, so an event the bus
  delivers twice is still sent once.
- The sender leases due deliveries, POSTs each (Standard Webhooks headers, JSON body
  ``{"type", "timestamp", "data"}``), and settles it: a 2xx is ``delivered``; anything else
  (status, timeout, refused connection) is tried again after ``retry_seconds * 2^(n-1)``
  (jittered, at most six hours), and after ``max_attempts`` tries the delivery is ``parked``
  until an admin replays it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import structlog

from hub._aio import wait_set
from hub.backends.events.base import Event
from hub.db.webhook_store import StoredDelivery, Subscription, WebhookStore
from hub.errors import HubError
from hub.webhooks.catalog import WebhookCatalog
from hub.webhooks.sealing import SecretSealer
from hub.webhooks.signing import signature_headers

__all__ = ["QUEUE", "WebhookDispatcher", "delivery_body"]

log = structlog.get_logger(__name__)

#: The bus queue the hub's replicas share for webhook fan-out.
QUEUE = "hub.webhooks"
_MAX_DELAY = 6 * 3600.0


def _now() -> datetime:
    return datetime.now(UTC)


def delivery_body(event_type: str, payload: dict[str, object], occurred_at: datetime) -> bytes:
    """The JSON a vendor receives (the bytes that are signed)."""
    return json.dumps(
        {"type": event_type, "timestamp": occurred_at.astimezone(UTC).isoformat(), "data": payload},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


class WebhookDispatcher:
    """Turns events into deliveries and works the deliveries off."""

    def __init__(
        self,
        store: WebhookStore,
        *,
        catalog: WebhookCatalog,
        sealer: SecretSealer,
        http: httpx.AsyncClient,
        max_attempts: int = 8,
        retry_seconds: float = 5.0,
        poll_interval: float = 0.5,
        batch_size: int = 20,
        on_outcome: Callable[[str], None] | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._sealer = sealer
        self._http = http
        self.max_attempts = max_attempts
        self.retry_seconds = retry_seconds
        self._poll = poll_interval
        self._batch = batch_size
        self._on_outcome = on_outcome
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # ---- fan-out ----------------------------------------------------------------------------

    async def on_event(self, event: Event) -> None:
        """The bus handler: one delivery per subscription to the event's type."""
        if event.type not in self._catalog.types:
            return
        subscriptions = [
            sub
            for sub in await self._store.subscriptions()
            if sub.disabled_at is None and event.type in sub.event_types
        ]
        await self._fan_out(event, subscriptions)

    async def send_test(self, subscription: Subscription) -> Event:
        """Queue a ``webhook.test`` delivery to one subscription."""
        event = Event(type="webhook.test", payload={"subscription_id": subscription.id})
        await self._fan_out(event, [subscription])
        return event

    async def _fan_out(self, event: Event, subscriptions: list[Subscription]) -> None:
        payload = {"occurred_at": event.occurred_at.isoformat(), "data": event.payload}
        added = await self._store.fan_out(
            event_id=event.id,
            event_type=event.type,
            payload=payload,
            subscription_ids=[sub.id for sub in subscriptions],
            now=self._clock(),
        )
        if added:
            self._wake.set()

    # ---- sending ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="webhook-sender")

    def wake(self) -> None:
        self._wake.set()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run_once(self) -> int:
        """Send the deliveries that are due now; how many were tried."""
        due = await self._store.claim_due(
            now=self._clock(),
            limit=self._batch,
            lease=timedelta(seconds=self._http.timeout.read or 30.0) * 3,
        )
        if due:
            await asyncio.gather(*(self._attempt(delivery) for delivery in due))
        return len(due)

    async def _attempt(self, delivery: StoredDelivery) -> None:
        subscription = await self._store.get(delivery.subscription_id)
        if subscription is None:
            return  # deleted meanwhile: its deliveries went with it
        occurred = datetime.fromisoformat(str(delivery.payload["occurred_at"]))
        body = delivery_body(delivery.event_type, delivery.payload["data"], occurred)
        secret = self._sealer.open(subscription.secret_ciphertext, context=subscription.id)
        headers = {
            **signature_headers(secret, delivery.event_id, body),
            "content-type": "application/json",
            "user-agent": "hub-webhooks/1",
        }
        status: int | None = None
        error: str | None = None
        try:
            response = await self._http.post(subscription.url, content=body, headers=headers)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        now = self._clock()
        attempts = delivery.attempts + 1
        if error is None:
            outcome = "delivered"
            await self._store.settle(
                delivery.id,
                status="delivered",
                attempts=attempts,
                next_attempt_at=now,
                last_status=status,
                last_error=None,
                delivered_at=now,
            )
        else:
            outcome = "parked" if attempts >= self.max_attempts else "failed"
            await self._store.settle(
                delivery.id,
                status="parked" if outcome == "parked" else "pending",
                attempts=attempts,
                next_attempt_at=now + timedelta(seconds=self._delay(attempts)),
                last_status=status,
                last_error=error,
                delivered_at=None,
            )
            log.warning(
                "webhook.delivery_failed",
                subscription=subscription.id,
                event_id=delivery.event_id,
                attempts=attempts,
                outcome=outcome,
                error=error,
            )
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    def _delay(self, attempts: int) -> float:
        base: float = min(self.retry_seconds * float(2 ** min(attempts - 1, 30)), _MAX_DELAY)
        return base * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security

    async def _run(self) -> None:
        delay = self._poll
        while True:
            try:
                tried = await self.run_once()
                delay = self._poll
                if tried >= self._batch:
                    continue
            except HubError as exc:
                log.warning("webhook.sender_backoff", error=str(exc))
                delay = min(delay * 2, 30.0)
            await wait_set(self._wake, delay)
            self._wake.clear()
