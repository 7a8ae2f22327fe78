"""Outbound rate limit: the hub never sends an external system more than its own quota.

The quota is a GCRA bucket in the hub's rate-limit store (in process, or Redis: shared by every
replica). A caller over the quota does not fail at once: the bucket is given ``q`` extra places,
``q = max_wait / T`` with ``T = period / rate``, and a caller granted one of them sleeps until its
slot, so requests leave at most ``rate`` per ``period`` (plus the system's own ``burst``) and each
waits at most ``max_wait``. A caller finding every place taken is refused at once with 503
``adapter_rate_limited``; the system never sees it. A refusal consumes nothing.

The slots are reserved ahead; the sleep can end late (a busy event loop wakes every sleeper whose
slot has passed at once), and late sleepers would leave together, a burst the system counts
against its quota. So each replica also paces its own departures by the clock when they leave:
at most ``burst + 1`` at once, then one per slot.
"""

from __future__ import annotations

import asyncio
import math

import httpx

from adapters.base import OutboundLimit
from hub.errors import AdapterRateLimited
from hub.ratelimit.base import Limit, RateLimitStore

__all__ = ["RateLimitTransport", "queue_limit"]


def queue_limit(limit: OutboundLimit) -> tuple[Limit, float]:
    """The GCRA limit with the waiting places added, and the slot of one request (seconds)."""
    interval = limit.period / limit.rate
    places = math.floor(limit.max_wait / interval + 1e-9)
    return (
        Limit(rate=limit.rate, period=limit.period, burst=limit.burst + places, fallback="local"),
        interval,
    )


class RateLimitTransport(httpx.AsyncBaseTransport):
    """Waits for a slot of the external system's quota before each attempt through ``inner``."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        *,
        name: str,
        store: RateLimitStore,
        limit: OutboundLimit,
        key: str,
    ) -> None:
        self._inner = inner
        self._name = name
        self._store = store
        self._key = key
        self._limit, self._interval = queue_limit(limit)
        # The system lets burst + 1 requests through at once; later ones wait for their slot.
        self._free = (limit.burst + 1) * self._interval
        self._tolerance = limit.burst * self._interval
        self._departure_tat = 0.0  # GCRA over this replica's actual departures
        self.waited = 0.0  # seconds spent waiting for slots, for metrics

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        decision = await self._store.hit(self._key, self._limit)
        if not decision.allowed:
            retry_after = max(1, math.ceil(decision.retry_after))
            raise AdapterRateLimited(
                f"{self._name}: its quota of {self._limit.rate} requests per"
                f" {self._limit.period:g}s is used up; retry in {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )
        wait = decision.reset_after - self._free
        if wait > 0:
            self.waited += wait
            await asyncio.sleep(wait)
        await self._pace()
        return await self._inner.handle_async_request(request)

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            tat = max(self._departure_tat, now)
            late = tat - now - self._tolerance
            if late <= 1e-9:
                self._departure_tat = tat + self._interval
                return
            self.waited += late
            await asyncio.sleep(late)

    async def aclose(self) -> None:
        await self._inner.aclose()
