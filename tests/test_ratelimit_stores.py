"""Contract suite for the rate-limit stores (memory and Redis), plus what only one of them does."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from hub.errors import BackendUnavailable
from hub.ratelimit import (
    Bucket,
    Limit,
    MemoryRateLimitStore,
    RateLimitStore,
    RedisRateLimitStore,
)
from tests.fixtures_services import free_port, proxied_url
from tests.tcpproxy import TcpProxy

SLOW = Limit(rate=1, period=60, burst=9)  # ten at once, then nothing for a minute

# The controlled workload: (seconds from start, cost). T = 200 ms and three may pass at once,
# so every decision is at least 100 ms away from flipping: robust to scheduling jitter.
WORKLOAD_LIMIT = Limit(rate=5, period=1, burst=2)
WORKLOAD = [(0.0, 1)] * 4 + [(0.3, 1)] * 2 + [(0.7, 2), (0.7, 1)]
EXPECTED = [True, True, True, False, True, False, True, False]


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def redis_store(redis_url: str, redis_key_prefix: str) -> AsyncIterator[RedisRateLimitStore]:
    store = RedisRateLimitStore.from_url(redis_url, prefix=f"{redis_key_prefix}hub:rl:")
    yield store
    await store.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.backends)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RateLimitStore]:
    if request.param == "memory":
        async with MemoryRateLimitStore() as memory:
            yield memory
    else:
        # sync fixtures only: an async one cannot be started from inside this one
        url, prefix = (
            request.getfixturevalue("redis_url"),
            request.getfixturevalue("redis_key_prefix"),
        )
        async with RedisRateLimitStore.from_url(url, prefix=f"{prefix}hub:rl:") as redis_store:
            yield redis_store


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


# ---- the contract: every store -------------------------------------------------------------


async def test_controlled_workload_gives_the_expected_pattern(store: RateLimitStore) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    pattern = []
    for at, cost in WORKLOAD:
        await asyncio.sleep(max(0.0, start + at - loop.time()))
        pattern.append((await store.hit("workload", WORKLOAD_LIMIT, cost)).allowed)
    assert pattern == EXPECTED


async def test_workload_pattern_is_exact_on_a_fake_clock() -> None:
    clock = FakeClock()
    store = MemoryRateLimitStore(clock=clock)
    pattern, last = [], 0.0
    for at, cost in WORKLOAD:
        clock.advance(at - last)
        last = at
        pattern.append((await store.hit("workload", WORKLOAD_LIMIT, cost)).allowed)
    assert pattern == EXPECTED


async def test_decision_carries_limit_remaining_and_timings(store: RateLimitStore) -> None:
    first = await store.hit("numbers", SLOW)
    assert (first.allowed, first.limit, first.remaining, first.retry_after) == (True, 10, 9, 0.0)
    assert first.reset_after == pytest.approx(60, abs=0.5)
    for _ in range(9):
        await store.hit("numbers", SLOW)
    refused = await store.hit("numbers", SLOW)
    assert (refused.allowed, refused.remaining) == (False, 0)
    assert refused.retry_after == pytest.approx(60, abs=0.5)
    assert refused.reset_after == pytest.approx(600, abs=0.5)


async def test_concurrent_hits_let_exactly_burst_plus_one_through(store: RateLimitStore) -> None:
    decisions = await asyncio.gather(*(store.hit("crowd", SLOW) for _ in range(200)))
    assert sum(d.allowed for d in decisions) == SLOW.burst + 1
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(SLOW.burst + 1))


async def test_concurrent_hits_on_many_keys_count_per_key(store: RateLimitStore) -> None:
    keys = [f"tenant-{i}" for i in range(25)]
    calls = [(key, cost) for key in keys for cost in (1, 2, 3, 1, 4, 2, 1, 1)]
    decisions = await asyncio.gather(*(store.hit(key, SLOW, cost) for key, cost in calls))
    spent = dict.fromkeys(keys, 0)
    for (key, cost), decision in zip(calls, decisions, strict=True):
        spent[key] += cost if decision.allowed else 0
    # each key's hits are decided in call order: 1+2+3+1, the 4 is refused, 2+1, the last 1 not
    assert set(spent.values()) == {10}


async def test_keys_are_independent(store: RateLimitStore) -> None:
    tight = Limit(rate=1, period=60, burst=0)
    assert (await store.hit("alice", tight)).allowed
    assert not (await store.hit("alice", tight)).allowed
    assert (await store.hit("bob", tight)).allowed
    assert (await store.hit("alice:2", tight)).allowed


async def test_refused_hits_consume_nothing(store: RateLimitStore) -> None:
    limit = Limit(rate=10, period=1, burst=1)  # T = 100 ms
    # concurrent, so all land well inside one interval even on a loaded machine
    decisions = await asyncio.gather(*(store.hit("patient", limit) for _ in range(22)))
    refusals = [d for d in decisions if not d.allowed]
    assert len(refusals) == 20
    # had the refusals been counted, each would have to wait longer than the one before
    assert max(d.retry_after for d in refusals) <= 0.1
    await asyncio.sleep(refusals[0].retry_after + 0.01)
    assert (await store.hit("patient", limit)).allowed


async def test_bucket_is_full_again_after_reset_after(store: RateLimitStore) -> None:
    limit = Limit(rate=20, period=1, burst=3)  # T = 50 ms
    decisions = await asyncio.gather(*(store.hit("refill", limit) for _ in range(4)))
    assert min(d.remaining for d in decisions) == 0
    await asyncio.sleep(max(d.reset_after for d in decisions) + 0.01)
    assert (await store.hit("refill", limit)).remaining == limit.burst


async def test_cost_outside_the_bucket_is_a_value_error(store: RateLimitStore) -> None:
    with pytest.raises(ValueError, match="cost"):
        await store.hit("big", SLOW, cost=SLOW.burst + 2)
    assert (await store.hit("big", SLOW, cost=SLOW.burst + 1)).allowed


async def test_check_passes_when_usable(store: RateLimitStore) -> None:
    await store.check()


# ---- the contract: multi-bucket hits ---------------------------------------------------------

ROUTE = Limit(rate=1, period=60, burst=9)  # ten at once
PLAN = Limit(rate=1, period=60, burst=2)  # three at once


def route_and_plan(caller: str) -> list[Bucket]:
    return [Bucket(key="route", limit=ROUTE), Bucket(key=f"plan:{caller}", limit=PLAN)]


async def test_multi_hit_charges_every_bucket(store: RateLimitStore) -> None:
    route, plan = await store.hit_all(route_and_plan("a"))
    assert (route.allowed, route.remaining, plan.allowed, plan.remaining) == (True, 9, True, 2)
    # the same buckets as single hits see: one charge each
    assert (await store.hit("route", ROUTE)).remaining == 8
    assert (await store.hit("plan:a", PLAN)).remaining == 1


async def test_multi_hit_refused_by_one_bucket_charges_none(store: RateLimitStore) -> None:
    for _ in range(3):
        assert all(d.allowed for d in await store.hit_all(route_and_plan("a")))
    route, plan = await store.hit_all(route_and_plan("a"))
    assert not route.allowed
    assert not plan.allowed
    assert route.retry_after == 0.0  # the route had room: no wait of its own
    assert route.remaining == 7
    assert plan.retry_after == pytest.approx(60, abs=0.5)
    # the refusal took nothing from the route: another caller still finds seven there
    assert (await store.hit_all(route_and_plan("b")))[0].remaining == 6


async def test_concurrent_multi_hits_are_all_or_nothing(store: RateLimitStore) -> None:
    # 12 callers, 5 attempts each: each caller's plan admits 3, the shared route 10 in total
    calls = [f"c{i}" for i in range(12) for _ in range(5)]
    results = await asyncio.gather(*(store.hit_all(route_and_plan(c)) for c in calls))
    admitted = [c for c, (route, plan) in zip(calls, results, strict=True) if route.allowed]
    assert all(route.allowed == plan.allowed for route, plan in results)
    assert len(admitted) == ROUTE.burst + 1
    assert max(admitted.count(c) for c in set(admitted)) <= PLAN.burst + 1
    # had any refusal charged a bucket, the route would now be short of its last admissions
    plans = await asyncio.gather(*(store.hit(f"plan:c{i}", PLAN) for i in range(12)))
    charged = sum(3 - (p.remaining + 1 if p.allowed else 0) for p in plans)
    assert charged == len(admitted)


async def test_multi_hit_refuses_bad_bucket_lists(store: RateLimitStore) -> None:
    with pytest.raises(ValueError, match="at least one"):
        await store.hit_all([])
    with pytest.raises(ValueError, match="more than once"):
        await store.hit_all([Bucket(key="k", limit=ROUTE), Bucket(key="k", limit=PLAN)])
    with pytest.raises(ValueError, match="cost"):
        await store.hit_all(route_and_plan("big"), cost=PLAN.burst + 2)
    assert (await store.hit("route", ROUTE)).remaining == 9  # nothing was charged


# ---- memory store ----------------------------------------------------------------------------


async def test_memory_store_counts_on_its_clock_exactly() -> None:
    clock = FakeClock()
    store = MemoryRateLimitStore(clock=clock)
    limit = Limit(rate=10, period=1, burst=0)  # T = 100 ms
    assert (await store.hit("k", limit)).allowed
    refused = await store.hit("k", limit)
    assert refused.retry_after == pytest.approx(0.1)
    clock.advance(0.099999)
    assert not (await store.hit("k", limit)).allowed
    clock.advance(0.000001)
    assert (await store.hit("k", limit)).allowed


async def test_memory_store_evicts_the_least_recently_hit_key() -> None:
    store = MemoryRateLimitStore(max_keys=2, clock=FakeClock())
    tight = Limit(rate=1, period=60, burst=0)
    await store.hit("a", tight)
    await store.hit("b", tight)
    assert not (await store.hit("a", tight)).allowed  # a refusal still counts as use
    await store.hit("c", tight)  # evicts b, the least recently hit
    assert len(store) == 2
    assert not (await store.hit("a", tight)).allowed
    assert not (await store.hit("c", tight)).allowed
    assert (await store.hit("b", tight)).allowed  # forgotten: starts from a full bucket


async def test_memory_store_sweeps_refilled_buckets() -> None:
    clock = FakeClock()
    store = MemoryRateLimitStore(sweep_interval=10, clock=clock)
    quick, slow = Limit(rate=1, period=1), Limit(rate=1, period=60)
    for key in ("a", "b", "c"):
        await store.hit(key, quick)
    await store.hit("kept", slow)
    clock.advance(5)
    await store.hit("d", quick)
    assert len(store) == 5  # refilled, but no sweep is due yet
    clock.advance(6)
    await store.hit("e", quick)
    assert len(store) == 2  # "kept" (still refilling) and "e"
    assert not (await store.hit("kept", slow)).allowed


# ---- Redis store -----------------------------------------------------------------------------


async def server_micros(client: aioredis.Redis) -> int:
    seconds, micros = await client.time()
    return int(seconds) * 1_000_000 + int(micros)


@pytest.mark.backends
async def test_redis_keeps_the_tat_under_the_prefix_until_the_bucket_is_full(
    redis_store: RedisRateLimitStore, redis_client: aioredis.Redis, redis_key_prefix: str
) -> None:
    key = f"{redis_key_prefix}hub:rl:ttl"
    limit = Limit(rate=10, period=1)  # T = 100 ms
    before = await server_micros(redis_client)
    decision = await redis_store.hit("ttl", limit)
    after = await server_micros(redis_client)
    stored = await redis_client.get(key)
    assert isinstance(stored, bytes)
    # the TAT is one interval past the hit, on the server's clock, in microseconds
    assert before <= int(stored) - 100_000 <= after
    assert 0 < await redis_client.pttl(key) <= 100
    await asyncio.sleep(decision.reset_after + 0.02)
    assert await redis_client.exists(key) == 0


@pytest.mark.backends
async def test_redis_refusals_write_nothing(
    redis_store: RedisRateLimitStore, redis_client: aioredis.Redis, redis_key_prefix: str
) -> None:
    key = f"{redis_key_prefix}hub:rl:full"
    await asyncio.gather(*(redis_store.hit("full", SLOW) for _ in range(SLOW.burst + 1)))
    tat, ttl = await redis_client.get(key), await redis_client.pttl(key)
    assert not (await redis_store.hit("full", SLOW)).allowed
    assert await redis_client.get(key) == tat
    assert await redis_client.pttl(key) <= ttl  # not pushed back either


@pytest.mark.backends
async def test_redis_refused_multi_hit_writes_no_bucket(
    redis_store: RedisRateLimitStore, redis_client: aioredis.Redis, redis_key_prefix: str
) -> None:
    keys = [f"{redis_key_prefix}hub:rl:route", f"{redis_key_prefix}hub:rl:plan:a"]
    for _ in range(PLAN.burst + 1):
        await redis_store.hit_all(route_and_plan("a"))
    before = [await redis_client.get(key) for key in keys]
    assert all(value is not None for value in before)
    assert not (await redis_store.hit_all(route_and_plan("a")))[0].allowed
    assert [await redis_client.get(key) for key in keys] == before


@pytest.mark.backends
async def test_redis_multi_hits_share_the_tick_pipeline_with_single_hits(
    redis_url: str, redis_key_prefix: str
) -> None:
    client = aioredis.Redis.from_url(redis_url, max_connections=1)
    store = RedisRateLimitStore(client, prefix=f"{redis_key_prefix}hub:rl:", owns_client=True)
    async with store:
        singles = asyncio.gather(*(store.hit("route", ROUTE) for _ in range(5)))
        multis = asyncio.gather(*(store.hit_all(route_and_plan(f"c{i}")) for i in range(10)))
        single_results, multi_results = await asyncio.gather(singles, multis)
    admitted = sum(d.allowed for d in single_results) + sum(ds[0].allowed for ds in multi_results)
    assert admitted == ROUTE.burst + 1


@pytest.mark.backends
async def test_redis_limit_holds_across_replicas(redis_url: str, redis_key_prefix: str) -> None:
    # DESIGN promise: two hub replicas, each with its own store and client, share one bucket
    prefix = f"{redis_key_prefix}hub:rl:"
    async with (
        RedisRateLimitStore.from_url(redis_url, prefix=prefix) as one,
        RedisRateLimitStore.from_url(redis_url, prefix=prefix) as two,
    ):
        decisions = await asyncio.gather(
            *(replica.hit("shared", SLOW) for _ in range(60) for replica in (one, two))
        )
    assert sum(d.allowed for d in decisions) == SLOW.burst + 1


@pytest.mark.backends
async def test_redis_hits_of_one_tick_share_one_connection(
    redis_url: str, redis_key_prefix: str
) -> None:
    # a pool of one connection refuses a second concurrent command, so only a pipeline passes
    client = aioredis.Redis.from_url(redis_url, max_connections=1)
    store = RedisRateLimitStore(client, prefix=f"{redis_key_prefix}hub:rl:", owns_client=True)
    async with store:
        decisions = await asyncio.gather(*(store.hit(f"k{i % 7}", SLOW) for i in range(300)))
    assert sum(d.allowed for d in decisions) == 7 * (SLOW.burst + 1)


@pytest.mark.backends
async def test_redis_batches_are_split_at_max_batch(redis_url: str, redis_key_prefix: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    store = RedisRateLimitStore(
        client, prefix=f"{redis_key_prefix}hub:rl:", max_batch=16, owns_client=True
    )
    async with store:
        decisions = await asyncio.gather(*(store.hit("split", SLOW) for _ in range(100)))
    assert sum(d.allowed for d in decisions) == SLOW.burst + 1


@pytest.mark.backends
async def test_redis_foreign_value_under_a_key_is_backend_unavailable(
    redis_store: RedisRateLimitStore, redis_client: aioredis.Redis, redis_key_prefix: str
) -> None:
    await redis_client.rpush(f"{redis_key_prefix}hub:rl:clash", "x")
    with pytest.raises(BackendUnavailable) as caught:
        await redis_store.hit("clash", SLOW)
    assert "WRONGTYPE" in str(caught.value)
    assert (await redis_store.hit("fine", SLOW)).allowed


@pytest.mark.backends
async def test_redis_cut_and_restored_connection(
    redis_url: str, redis_key_prefix: str, redis_proxy: TcpProxy
) -> None:
    store = RedisRateLimitStore.from_url(
        proxied_url(redis_url, redis_proxy), prefix=f"{redis_key_prefix}hub:rl:", timeout=0.5
    )
    async with store:
        assert (await store.hit("cut", SLOW)).remaining == 9
        await redis_proxy.cut()
        results = await asyncio.gather(
            *(store.hit("cut", SLOW) for _ in range(5)), return_exceptions=True
        )
        assert all(isinstance(r, BackendUnavailable) for r in results)
        with pytest.raises(BackendUnavailable):
            await store.check()
        await redis_proxy.restore()
        await store.check()
        assert (await store.hit("cut", SLOW)).remaining == 8  # the bucket survived in Redis


async def test_redis_nobody_listening_is_backend_unavailable() -> None:
    store = RedisRateLimitStore.from_url(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    async with store:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable) as caught:
            await store.hit("k", SLOW)
        assert caught.value.__cause__ is not None
        with pytest.raises(BackendUnavailable):
            await store.check()
        assert time.monotonic() - started < 2


async def test_redis_closed_store_refuses_new_hits_and_finishes_sent_ones() -> None:
    store = RedisRateLimitStore.from_url(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    sent = asyncio.ensure_future(store.hit("k", SLOW))
    await asyncio.sleep(0)  # queued, flush not yet run
    await store.aclose()
    assert sent.done()
    with pytest.raises(BackendUnavailable):
        sent.result()
    with pytest.raises(BackendUnavailable, match="closed"):
        await store.hit("k", SLOW)


@pytest.fixture
def private_redis() -> Iterator[str]:
    """A throw-away redis-server on a free port (so SCRIPT FLUSH disturbs nobody)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("private redis-server did not start")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=5)


@pytest.mark.integration
async def test_redis_reloads_the_script_after_noscript(private_redis: str) -> None:
    client = aioredis.Redis.from_url(private_redis)
    async with RedisRateLimitStore(client) as store:
        assert (await store.hit("k", SLOW)).remaining == 9  # first use: NOSCRIPT, then loaded
        await client.script_flush()
        decisions = await asyncio.gather(*(store.hit("k", SLOW) for _ in range(3)))
        assert [d.remaining for d in decisions] == [8, 7, 6]
        assert await client.exists("hub:rl:k") == 1  # the default prefix
        await client.script_flush()
        route, plan = await store.hit_all(route_and_plan("a"))  # the multi script, loaded anew
        assert (route.remaining, plan.remaining) == (9, 2)
    await client.aclose()
