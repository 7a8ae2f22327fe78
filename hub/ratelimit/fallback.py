"""The shared store with a fallback: how the hub keeps deciding while Redis is unreachable.

Each :class:`~hub.ratelimit.base.Limit` names its fallback. ``local`` decides in this process
at the limit divided by the number of replicas (each replica gets its share, so the fleet as a
whole stays within the limit), ``open`` lets every request through, ``closed`` refuses with
:class:`~hub.errors.LimiterUnavailable` (503 and ``Retry-After``).

A failed hit engages the fallback for every key at once, and the shared store is left alone
for ``backoff`` seconds: a dead or hung Redis must not cost each request a connect timeout.
After that a single background probe (``check``) asks again; requests never wait on it, and
its success releases the fallback, so recovery needs no restart.

A multi-bucket hit without the shared store applies each bucket's own fallback: a ``closed``
bucket refuses the whole hit with 503, ``open`` buckets are not counted, and the ``local``
buckets are decided together (all or none) at their local share.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Sequence

import structlog

from hub.errors import BackendUnavailable, LimiterUnavailable
from hub.ratelimit.base import (
    Bucket,
    Decision,
    FallbackMode,
    Limit,
    RateLimitStore,
    check_buckets,
)
from hub.ratelimit.gcra import bounds
from hub.ratelimit.memory import MemoryRateLimitStore

__all__ = ["FallbackRateLimitStore", "local_share"]

log = structlog.get_logger("hub.ratelimit")


def local_share(limit: Limit, replicas: int) -> Limit:
    """``limit`` divided among ``replicas``: the same rate over a period ``replicas`` times as
    long, and the burst capacity (``burst + 1``) divided, rounded down but at least one."""
    if replicas == 1:
        return limit
    return Limit(
        rate=limit.rate,
        period=limit.period * replicas,
        burst=max(1, (limit.burst + 1) // replicas) - 1,
        fallback=limit.fallback,
    )


class FallbackRateLimitStore(RateLimitStore):
    """``shared`` while it answers; each limit's fallback while it does not.

    ``on_unavailable(mode)`` is called for every hit decided without the shared store,
    ``on_engaged(active)`` when the fallback is engaged or released (metrics hang on both).
    Owns ``shared`` and closes it.
    """

    def __init__(
        self,
        shared: RateLimitStore,
        *,
        replicas: int = 1,
        backoff: float = 1.0,
        local: RateLimitStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_unavailable: Callable[[FallbackMode], None] | None = None,
        on_engaged: Callable[[bool], None] | None = None,
    ) -> None:
        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {replicas}")
        if backoff <= 0:
            raise ValueError(f"backoff must be positive, got {backoff}")
        self._shared = shared
        self._local = local if local is not None else MemoryRateLimitStore()
        self._replicas = replicas
        self._backoff = backoff
        self._clock = clock
        self._on_unavailable = on_unavailable
        self._on_engaged = on_engaged
        self._engaged = False
        self._retry_at = 0.0
        self._probe: asyncio.Task[None] | None = None

    @property
    def in_fallback(self) -> bool:
        return self._engaged

    async def hit(self, key: str, limit: Limit, cost: int = 1) -> Decision:
        if not self._engaged:
            try:
                return await self._shared.hit(key, limit, cost)
            except BackendUnavailable as exc:
                self._engage(exc)
        elif self._probe is None and self._clock() >= self._retry_at:
            self._probe = asyncio.create_task(self._run_probe(), name="hub-limiter-probe")
        return await self._fallback(key, limit, cost)

    async def hit_all(self, buckets: Sequence[Bucket], cost: int = 1) -> tuple[Decision, ...]:
        check_buckets(buckets)
        if not self._engaged:
            try:
                return await self._shared.hit_all(buckets, cost)
            except BackendUnavailable as exc:
                self._engage(exc)
        elif self._probe is None and self._clock() >= self._retry_at:
            self._probe = asyncio.create_task(self._run_probe(), name="hub-limiter-probe")
        return await self._fallback_all(buckets, cost)

    async def check(self) -> None:
        """Probe the shared store: unreachable engages the fallback, reachable releases it."""
        try:
            await self._shared.check()
        except BackendUnavailable as exc:
            self._engage(exc)
        else:
            self._release()

    async def aclose(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        await self._shared.aclose()
        await self._local.aclose()

    async def _fallback(self, key: str, limit: Limit, cost: int) -> Decision:
        bounds(limit, cost)  # the same ValueError as the shared store would raise
        mode = limit.fallback
        if self._on_unavailable is not None:
            self._on_unavailable(mode)
        if mode == "open":
            return _full(limit, cost)
        if mode == "closed":
            raise self._closed_error()
        share = local_share(limit, self._replicas)
        # a hit larger than this replica's bucket would never pass: charge it the whole bucket
        return await self._local.hit(key, share, min(cost, share.burst + 1))

    async def _fallback_all(self, buckets: Sequence[Bucket], cost: int) -> tuple[Decision, ...]:
        for bucket in buckets:
            bounds(bucket.limit, cost)
        local: list[Bucket] = []
        for bucket in buckets:
            if self._on_unavailable is not None:
                self._on_unavailable(bucket.limit.fallback)
            if bucket.limit.fallback == "closed":
                raise self._closed_error()
            if bucket.limit.fallback == "local":
                share = local_share(bucket.limit, self._replicas)
                local.append(Bucket(key=bucket.key, limit=share))
        smallest = min((b.limit.burst + 1 for b in local), default=cost)
        decided = iter(await self._local.hit_all(local, min(cost, smallest)) if local else ())
        decisions = [
            next(decided) if bucket.limit.fallback == "local" else _full(bucket.limit, cost)
            for bucket in buckets
        ]
        if all(d.allowed for d in decisions):
            return tuple(decisions)
        # refused by a local bucket: the open ones report a bucket with room, nothing counted
        return tuple(d if not d.allowed else _unused(d) for d in decisions)

    def _closed_error(self) -> LimiterUnavailable:
        retry_after = max(1, math.ceil(self._retry_at - self._clock()))
        return LimiterUnavailable(
            f"the rate limiter is unavailable; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )

    def _engage(self, exc: BackendUnavailable) -> None:
        self._retry_at = self._clock() + self._backoff
        if not self._engaged:
            self._engaged = True
            log.warning("ratelimit.fallback_engaged", error=str(exc), retry_in=self._backoff)
            if self._on_engaged is not None:
                self._on_engaged(True)

    def _release(self) -> None:
        if self._engaged:
            self._engaged = False
            log.info("ratelimit.fallback_released")
            if self._on_engaged is not None:
                self._on_engaged(False)

    async def _run_probe(self) -> None:
        try:
            await self.check()
        except Exception as exc:  # a probe must never die unheard: wait and try again
            log.warning("ratelimit.probe_failed", error=str(exc))
            self._retry_at = self._clock() + self._backoff
        finally:
            self._probe = None


def _full(limit: Limit, cost: int) -> Decision:
    """An ``open`` limit without its store: nothing is counted, so the honest headers are a
    full bucket's."""
    capacity = limit.burst + 1
    return Decision(
        allowed=True,
        limit=capacity,
        remaining=capacity - cost,
        retry_after=0.0,
        reset_after=0.0,
    )


def _unused(decision: Decision) -> Decision:
    """A bucket that would have passed, in a multi-bucket hit refused by another bucket."""
    return Decision(
        allowed=False,
        limit=decision.limit,
        remaining=decision.limit,
        retry_after=0.0,
        reset_after=0.0,
    )
