"""In-process rate-limit store: one replica's buckets in a bounded, LRU-ordered dict."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from hub.ratelimit.base import Bucket, Decision, Limit, RateLimitStore, check_buckets
from hub.ratelimit.gcra import decide, decide_all, micros

__all__ = ["MemoryRateLimitStore"]


class MemoryRateLimitStore(RateLimitStore):
    """GCRA buckets in this process; limits hold per replica only.

    At most ``max_keys`` buckets are kept: a new key evicts the least recently hit one (whose
    client then starts from a full bucket, the price of bounded memory). Buckets that have
    refilled are dropped by a sweep at most every ``sweep_interval`` seconds of ``clock`` time.
    ``hit`` and ``hit_all`` never await, so each decision is atomic on the event loop without
    a lock.
    """

    def __init__(
        self,
        *,
        max_keys: int = 100_000,
        sweep_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self._tats: OrderedDict[str, int] = OrderedDict()
        self._max_keys = max_keys
        self._sweep_every = micros(sweep_interval)
        self._clock = clock
        self._next_sweep: int | None = None

    def __len__(self) -> int:
        """How many buckets are held (refilled ones may linger until the next sweep)."""
        return len(self._tats)

    async def hit(self, key: str, limit: Limit, cost: int = 1) -> Decision:
        now = self._now()
        tats = self._tats
        tat = tats.get(key)
        decision, new_tat = decide(tat, now, limit, cost)
        if new_tat is not None:
            if tat is None and len(tats) >= self._max_keys:
                tats.popitem(last=False)
            tats[key] = new_tat
        # refused hits count as use too: evicting an active abuser would hand them a full bucket
        if tat is not None or new_tat is not None:
            tats.move_to_end(key)
        return decision

    async def hit_all(self, buckets: Sequence[Bucket], cost: int = 1) -> tuple[Decision, ...]:
        check_buckets(buckets)
        now = self._now()
        tats = self._tats
        held = [tats.get(bucket.key) for bucket in buckets]
        decisions, new_tats = decide_all(held, now, [bucket.limit for bucket in buckets], cost)
        for bucket, tat, new_tat in zip(
            buckets, held, new_tats or (None,) * len(buckets), strict=True
        ):
            if new_tat is not None:
                if tat is None and len(tats) >= self._max_keys:
                    tats.popitem(last=False)
                tats[bucket.key] = new_tat
            if bucket.key in tats:
                tats.move_to_end(bucket.key)
        return decisions

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        self._tats.clear()

    def _now(self) -> int:
        """The clock in microseconds, sweeping refilled buckets when a sweep is due."""
        now = micros(self._clock())
        if self._next_sweep is None:
            self._next_sweep = now + self._sweep_every
        elif now >= self._next_sweep:
            self._sweep(now)
        return now

    def _sweep(self, now: int) -> None:
        # a bucket whose TAT has passed is indistinguishable from a missing one
        expired = [key for key, tat in self._tats.items() if tat <= now]
        for key in expired:
            del self._tats[key]
        self._next_sweep = now + self._sweep_every
