"""Webhook delivery: each event POSTed, signed, to the configured URL, retried until it is taken.

Signed and retried as every sandbox callback is (:mod:`adapters.sandbox._control.delivery`).
The faults may deliver an event twice, or hold a batch and deliver it in reverse order. The
log of deliveries (``GET /_sandbox/webhooks``) says what happened to each event.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

from adapters.sandbox._control.delivery import CallbackSender, Tally
from adapters.sandbox.payment_provider.book import Book, canonical
from adapters.sandbox.payment_provider.faults import PaymentFaults

__all__ = ["Delivery", "WebhookSender"]

_TICK = 0.02


@dataclass(slots=True)
class Delivery(Tally):
    """What happened to one event's delivery."""

    event_id: str
    type: str

    def as_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "type": self.type, **self.tally()}


class WebhookSender(CallbackSender[Delivery]):
    """Takes events from ``book.outbox`` and delivers them; a background task of the app."""

    def __init__(
        self,
        book: Book,
        faults: PaymentFaults,
        rng: random.Random,
        *,
        secret: str,
        url: str | None,
        max_attempts: int = 8,
        settle_seconds: float = 0.3,
    ) -> None:
        super().__init__(secret=secret, url=url, max_attempts=max_attempts)
        self.book = book
        self.faults = faults
        self.rng = rng
        self.settle_seconds = settle_seconds
        self._lapse_checked = 0.0
        self._events: dict[str, dict[str, Any]] = {}
        self._loop: asyncio.Task[None] | None = None
        self._processing_since: float | None = None

    def start(self) -> None:
        super().start()
        self._loop = asyncio.create_task(self._run(), name="sandbox-webhooks")

    async def aclose(self) -> None:
        await self._cancel(self._loop)
        await super().aclose()

    @property
    def pending(self) -> int:
        """Events not yet delivered nor given up."""
        return len(self.book.outbox) + len(self._tasks)

    def redeliver(self, event_id: str) -> bool:
        """Send a logged event again (a provider's "resend" button)."""
        event = self._events.get(event_id)
        if event is None:
            return False
        self._spawn(event, delay=0.0)
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(_TICK)
            self._settle_transfers()
            self._lapse_authorisations()
            outbox = self.book.outbox
            if not outbox:
                continue
            faults = self.faults
            delay = faults.webhook_delay_ms / 1000
            if faults.webhook_reorder:
                # Hold the batch a while (more events join it), then send it newest first.
                await asyncio.sleep(max(delay, 0.05))
                batch = list(reversed(outbox))
                delay = 0.0
            else:
                batch = list(outbox)
            outbox.clear()
            for position, event in enumerate(batch):
                self._events[event["id"]] = event
                self.log.setdefault(event["id"], Delivery(event["id"], event["type"]))
                # In order unless reordered: each one a little after the previous one.
                self._spawn(event, delay=delay + position * 0.005)
                if self.rng.random() < faults.webhook_duplicate_rate:
                    self._spawn(event, delay=delay + 0.05 + self.rng.random() * 0.1)

    def _settle_transfers(self) -> None:
        processing = any(i["status"] == "processing" for i in self.book.intents.values())
        if not processing:
            self._processing_since = None
            return
        now = time.monotonic()
        if self._processing_since is None:
            self._processing_since = now
        elif now - self._processing_since >= self.settle_seconds:
            self.book.settle_processing()
            self._processing_since = None

    def _lapse_authorisations(self) -> None:
        # Once a second is plenty for a term counted in days (or seconds in a test).
        now = time.monotonic()
        if now - self._lapse_checked >= 1.0:
            self._lapse_checked = now
            self.book.expire_lapsed()

    def _spawn(self, event: dict[str, Any], *, delay: float) -> None:
        entry = self.log.get(event["id"])
        if entry is None:
            return  # a reset cleared the log: the event is gone with it
        self._dispatch(entry, canonical(event), delay=delay, name=f"webhook-{event['id']}")
