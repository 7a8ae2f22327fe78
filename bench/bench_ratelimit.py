"""Throughput of RedisRateLimitStore.hit: tick-batched pipelines vs one round trip per hit."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

import redis.asyncio as aioredis

from hub.ratelimit import Limit, RedisRateLimitStore

URL = "redis://127.0.0.1:6379/15"
LIMIT = Limit(rate=1000, period=1, burst=100)


async def run(max_batch: int, concurrency: int, total: int) -> float:
    prefix = f"bench:{uuid.uuid4().hex}:"
    client = aioredis.Redis.from_url(URL, max_connections=max(concurrency, 8))
    store = RedisRateLimitStore(client, prefix=prefix, max_batch=max_batch, owns_client=True)
    per_worker = total // concurrency

    async def worker(n: int) -> None:
        for i in range(per_worker):
            await store.hit(f"client-{(n * 7919 + i) % 1000}", LIMIT)

    await store.hit("warm-up", LIMIT)  # load the script, open a connection
    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    cleanup = aioredis.Redis.from_url(URL)
    keys = [k async for k in cleanup.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await cleanup.delete(*keys)
    await cleanup.aclose()
    await store.aclose()
    return per_worker * concurrency / elapsed


async def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 40_000
    print(f"{'concurrency':>11} {'per-hit (max_batch=1)':>22} {'batched':>10} {'gain':>6}")
    for concurrency in (1, 10, 50, 200, 1000):
        # best of three: the figure least disturbed by whatever else the machine runs
        single = max([await run(1, concurrency, total) for _ in range(3)])
        batched = max([await run(1024, concurrency, total) for _ in range(3)])
        print(f"{concurrency:>11} {single:>18,.0f}/s {batched:>8,.0f}/s {batched / single:>5.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
