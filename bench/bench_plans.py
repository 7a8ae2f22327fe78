"""What a plan adds per request: a two-bucket limiter hit against one, and the usage meter.

Every figure comes with its baseline from the same run:

- Redis store, 50 concurrent callers, tick-batched: ``hit`` (the route's bucket) against
  ``hit_all`` of the route's and the plan's buckets (one Lua call over two keys);
- in-process store, one call at a time: the same pair;
- the usage meter's hot path (``used`` + ``count``, what a request under a quota costs) against
  an empty function call.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime

import redis.asyncio as aioredis

from hub.quota.meter import UsageMeter
from hub.ratelimit import Bucket, Limit, MemoryRateLimitStore, RateLimitStore, RedisRateLimitStore

URL = "redis://127.0.0.1:6379/15"
ROUTE = Limit(rate=100_000, period=1, burst=100_000)
PLAN = Limit(rate=50_000, period=1, burst=50_000)


async def throughput(store: RateLimitStore, *, multi: bool, concurrency: int, total: int) -> float:
    per_worker = total // concurrency

    async def worker(n: int) -> None:
        for i in range(per_worker):
            caller = f"client-{(n * 7919 + i) % 1000}"
            if multi:
                await store.hit_all(
                    [Bucket(key=f"r:{caller}", limit=ROUTE), Bucket(key=f"p:{caller}", limit=PLAN)]
                )
            else:
                await store.hit(f"r:{caller}", ROUTE)

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return per_worker * concurrency / (time.perf_counter() - started)


async def redis_pair(total: int) -> tuple[float, float]:
    prefix = f"bench:{uuid.uuid4().hex}:"
    client = aioredis.Redis.from_url(URL, max_connections=64)
    store = RedisRateLimitStore(client, prefix=prefix, owns_client=True)
    await store.hit_all([Bucket(key="warm", limit=ROUTE), Bucket(key="up", limit=PLAN)])
    await store.hit("warm", ROUTE)
    single = max(
        [await throughput(store, multi=False, concurrency=50, total=total) for _ in range(3)]
    )
    multi = max(
        [await throughput(store, multi=True, concurrency=50, total=total) for _ in range(3)]
    )
    cleanup = aioredis.Redis.from_url(URL)
    keys = [k async for k in cleanup.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await cleanup.delete(*keys)
    await cleanup.aclose()
    await store.aclose()
    return single, multi


async def memory_pair(total: int) -> tuple[float, float]:
    store = MemoryRateLimitStore()
    single = max(
        [await throughput(store, multi=False, concurrency=1, total=total) for _ in range(3)]
    )
    multi = max([await throughput(store, multi=True, concurrency=1, total=total) for _ in range(3)])
    return single, multi


class _Nowhere:
    async def add(self, increments: object) -> None:
        return None

    async def totals(self, pairs: object, day: object) -> dict[tuple[str, str], object]:
        return {}


def meter_cost(total: int) -> tuple[float, float]:
    meter = UsageMeter(_Nowhere())  # type: ignore[arg-type]
    today = datetime.now(UTC).date()

    def empty(client: str, product: str) -> None:
        return None

    def metered(client: str, product: str) -> None:
        meter.used(client, product, today)
        meter.count(client, product, today)

    def cost(call: object) -> float:
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for i in range(total):
                call(f"client-{i % 1000}", "echo")  # type: ignore[operator]
            best = min(best, (time.perf_counter() - started) / total)
        return best * 1e6

    return cost(empty), cost(metered)


async def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 40_000
    single, multi = await redis_pair(total)
    print(
        f"Redis, 50 callers:  hit {single:,.0f}/s   hit_all(2) {multi:,.0f}/s"
        f"   ratio {multi / single:.2f}"
    )
    single, multi = await memory_pair(total)
    print(
        f"in process, 1 caller: hit {1e6 / single:.2f} us   hit_all(2) {1e6 / multi:.2f} us"
        f"   ratio {single / multi:.2f}x the time"
    )
    empty, metered = meter_cost(total)
    print(f"usage meter used+count: {metered:.2f} us   (an empty call: {empty:.2f} us)")


if __name__ == "__main__":
    asyncio.run(main())
