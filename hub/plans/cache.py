"""This replica's memory of subscriptions, so the gateway does not read the database per request.

An application's live subscription to a product (or the fact that it has none) is kept for
``ttl`` seconds. Concurrent misses of one key share a single read. A change made through this
replica's admin API drops the key at once; other replicas see it when their entry expires, so
within ``ttl`` (``HUB_SUBSCRIPTION_CACHE_SECONDS``). When the database cannot be read, an
expired entry is served a little longer rather than refusing every caller; without one the
request gets the database's 503.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from hub.db.subscription_store import Subscription
from hub.errors import BackendUnavailable

__all__ = ["SubscriptionCache"]

log = structlog.get_logger("hub.plans")

Lookup = Callable[[str, str], Awaitable[Subscription | None]]
_STALE_RETRY_SECONDS = 1.0


@dataclass(slots=True)
class _Entry:
    subscription: Subscription | None
    until: float


class SubscriptionCache:
    """Live subscriptions by (client id, product), with a short time to live."""

    def __init__(
        self,
        lookup: Lookup,
        *,
        ttl: float = 5.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._reading: dict[tuple[str, str], asyncio.Future[Subscription | None]] = {}
        # bumped by invalidate: a read that started before a change must not be cached
        self._epoch = 0

    async def get(self, client_id: str, product: str) -> Subscription | None:
        """The live (pending or active) subscription, or ``None``; cached for ``ttl``."""
        key = (client_id, product)
        entry = self._entries.get(key)
        now = self._clock()
        if entry is not None and now < entry.until:
            return entry.subscription
        reading = self._reading.get(key)
        if reading is not None:
            return await asyncio.shield(reading)
        future: asyncio.Future[Subscription | None] = asyncio.get_running_loop().create_future()
        self._reading[key] = future
        try:
            subscription = await self._read(key, entry)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the waiters, if any, raise it themselves
            raise
        else:
            future.set_result(subscription)
            return subscription
        finally:
            del self._reading[key]

    async def _read(self, key: tuple[str, str], stale: _Entry | None) -> Subscription | None:
        epoch = self._epoch
        try:
            subscription = await self._lookup(*key)
        except BackendUnavailable as exc:
            if stale is None or self._ttl == 0:
                raise
            log.warning("subscriptions.stale", client_id=key[0], product=key[1], error=str(exc))
            stale.until = self._clock() + _STALE_RETRY_SECONDS
            return stale.subscription
        if self._ttl > 0 and epoch == self._epoch:
            if key not in self._entries and len(self._entries) >= self._max_entries:
                self._entries.popitem(last=False)
            self._entries[key] = _Entry(subscription=subscription, until=self._clock() + self._ttl)
            self._entries.move_to_end(key)
        return subscription

    def invalidate(self, client_id: str, product: str) -> None:
        """Forget the key: the next request reads the database (a change on this replica)."""
        self._entries.pop((client_id, product), None)
        self._epoch += 1

    def __len__(self) -> int:
        return len(self._entries)
