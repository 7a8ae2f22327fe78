"""The limiter's fallback while Redis is unreachable: local share, open, closed, backoff, recovery.

The rules on a fake shared store and a fake clock first (exact, no sockets); then the same
promises with a real Redis behind a :class:`TcpProxy` that is cut, stalled and restored (the
shared Redis itself is never touched).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.backends.factory import build_limiter
from hub.errors import BackendUnavailable, LimiterUnavailable
from hub.ratelimit import (
    Bucket,
    Decision,
    FallbackMode,
    FallbackRateLimitStore,
    Limit,
    MemoryRateLimitStore,
    RateLimitStore,
    RedisRateLimitStore,
)
from hub.ratelimit.fallback import local_share
from hub.ratelimit.gcra import emission_interval
from hub.settings import Settings
from tests.fixtures_services import free_port, proxied_url
from tests.tcpproxy import TcpProxy

# six at once (burst 5), then one every ten seconds; three replicas share it
SIX = Limit(rate=6, period=60, burst=5)
REPLICAS = 3


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class FlakyStore(RateLimitStore):
    """An in-process shared store that fails on demand and counts how often it was asked."""

    def __init__(self) -> None:
        self.inner = MemoryRateLimitStore()
        self.down = False
        self.hits = 0
        self.checks = 0
        self.closed = False

    async def hit(self, key: str, limit: Limit, cost: int = 1) -> Decision:
        self.hits += 1
        if self.down:
            raise BackendUnavailable("shared store down")
        return await self.inner.hit(key, limit, cost)

    async def hit_all(self, buckets: Sequence[Bucket], cost: int = 1) -> tuple[Decision, ...]:
        self.hits += 1
        if self.down:
            raise BackendUnavailable("shared store down")
        return await self.inner.hit_all(buckets, cost)

    async def check(self) -> None:
        self.checks += 1
        if self.down:
            raise BackendUnavailable("shared store down")

    async def aclose(self) -> None:
        self.closed = True


class Recorder:
    """The metric hooks, as lists."""

    def __init__(self) -> None:
        self.unavailable: list[FallbackMode] = []
        self.engaged: list[bool] = []


def fallback_store(
    shared: RateLimitStore, clock: FakeClock | None = None, *, replicas: int = REPLICAS
) -> tuple[FallbackRateLimitStore, Recorder]:
    seen = Recorder()
    store = FallbackRateLimitStore(
        shared,
        replicas=replicas,
        backoff=1.0,
        clock=clock or time.monotonic,
        on_unavailable=seen.unavailable.append,
        on_engaged=seen.engaged.append,
    )
    return store, seen


async def settle() -> None:
    """Let a background probe run to its end."""
    for _ in range(5):
        await asyncio.sleep(0)


# ---- the rules, on a fake shared store -----------------------------------------------------


async def test_shared_store_decides_while_it_answers() -> None:
    shared = FlakyStore()
    store, seen = fallback_store(shared)
    decisions = [await store.hit("k", SIX) for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 6 + [False]
    assert shared.hits == 7
    assert not store.in_fallback
    assert seen.unavailable == []
    assert seen.engaged == []


async def test_local_fallback_allows_the_limit_divided_by_the_replicas_then_refuses() -> None:
    shared = FlakyStore()
    shared.down = True
    store, seen = fallback_store(shared)
    decisions = [await store.hit("k", SIX) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, False, False]
    assert decisions[0].limit == 2  # six at once shared by three replicas
    assert decisions[2].retry_after > 0
    assert store.in_fallback
    assert seen.unavailable == ["local"] * 4
    assert seen.engaged == [True]


async def test_local_fallback_refusals_consume_nothing() -> None:
    clock = FakeClock()
    shared = FlakyStore()
    shared.down = True
    local = MemoryRateLimitStore(clock=clock)
    store = FallbackRateLimitStore(shared, replicas=REPLICAS, local=local, clock=clock)
    assert [(await store.hit("k", SIX)).allowed for _ in range(2)] == [True, True]
    refusals = [await store.hit("k", SIX) for _ in range(20)]
    assert not any(d.allowed for d in refusals)
    assert len({d.retry_after for d in refusals}) == 1  # none of them moved the bucket
    clock.now += refusals[0].retry_after
    assert (await store.hit("k", SIX)).allowed


async def test_open_fallback_lets_everything_through() -> None:
    shared = FlakyStore()
    shared.down = True
    store, seen = fallback_store(shared)
    limit = Limit(rate=1, period=60, fallback="open")
    assert all([(await store.hit("k", limit)).allowed for _ in range(10)])
    assert seen.unavailable == ["open"] * 10


async def test_closed_fallback_refuses_with_503_and_retry_after() -> None:
    clock = FakeClock()
    shared = FlakyStore()
    shared.down = True
    store, seen = fallback_store(shared, clock)
    limit = Limit(rate=100, period=1, fallback="closed")
    with pytest.raises(LimiterUnavailable) as caught:
        await store.hit("k", limit)
    error = caught.value
    assert (error.status, error.code) == (503, "limiter_unavailable")
    assert error.headers == {"Retry-After": "1"}
    assert not isinstance(error, BackendUnavailable | PermissionError)
    assert seen.unavailable == ["closed"]


async def test_modes_are_per_limit_in_one_outage() -> None:
    shared = FlakyStore()
    shared.down = True
    store, seen = fallback_store(shared)
    assert (await store.hit("a", Limit(rate=1, period=60, fallback="open"))).allowed
    assert (await store.hit("b", SIX)).allowed
    with pytest.raises(LimiterUnavailable):
        await store.hit("c", Limit(rate=1, period=60, fallback="closed"))
    assert seen.unavailable == ["open", "local", "closed"]
    assert seen.engaged == [True]


async def test_multi_hit_uses_the_shared_store_while_it_answers() -> None:
    shared = FlakyStore()
    store, seen = fallback_store(shared)
    buckets = [Bucket(key="route", limit=SIX), Bucket(key="plan", limit=Limit(rate=1, period=60))]
    assert [d.allowed for d in await store.hit_all(buckets)] == [True, True]
    assert [d.allowed for d in await store.hit_all(buckets)] == [False, False]
    assert shared.hits == 2
    assert seen.unavailable == []


async def test_multi_hit_in_fallback_decides_local_buckets_together_and_skips_open_ones() -> None:
    shared = FlakyStore()
    shared.down = True
    store, seen = fallback_store(shared)
    open_plan = Limit(rate=1, period=60, fallback="open")
    tight = Limit(rate=3, period=60, burst=2)  # three at once: one per replica of three
    buckets = [
        Bucket(key="route", limit=SIX),
        Bucket(key="plan", limit=tight),
        Bucket(key="quota", limit=open_plan),
    ]
    first = await store.hit_all(buckets)
    assert [d.allowed for d in first] == [True, True, True]
    assert [d.limit for d in first] == [2, 1, 1]  # the local shares, and the open limit
    refused = await store.hit_all(buckets)
    assert [d.allowed for d in refused] == [False, False, False]
    assert refused[1].retry_after > 0
    assert refused[0].retry_after == refused[2].retry_after == 0.0
    # the refusal took nothing from the route's local share
    assert (await store.hit("route", SIX)).allowed
    assert seen.unavailable == ["local", "local", "open"] * 2 + ["local"]


async def test_multi_hit_with_a_closed_bucket_refuses_with_503_in_fallback() -> None:
    shared = FlakyStore()
    shared.down = True
    store, seen = fallback_store(shared)
    closed = Limit(rate=100, period=1, fallback="closed")
    with pytest.raises(LimiterUnavailable):
        await store.hit_all([Bucket(key="route", limit=SIX), Bucket(key="plan", limit=closed)])
    # nothing was charged on the local bucket either
    assert (await store.hit("route", SIX)).remaining == 1
    assert "closed" in seen.unavailable


async def test_multi_hit_failure_engages_the_fallback_for_single_hits_too() -> None:
    clock = FakeClock()
    shared = FlakyStore()
    store, seen = fallback_store(shared, clock)
    shared.down = True
    assert all(d.allowed for d in await store.hit_all([Bucket(key="k", limit=SIX)]))
    assert store.in_fallback
    await store.hit("k", SIX)
    assert shared.hits == 1  # the backoff holds for every kind of hit
    assert seen.engaged == [True]


async def test_a_failed_store_is_left_alone_for_the_backoff_then_probed_once() -> None:
    clock = FakeClock()
    shared = FlakyStore()
    store, seen = fallback_store(shared, clock)
    shared.down = True
    for _ in range(50):
        await store.hit("k", SIX)
    await settle()
    assert (shared.hits, shared.checks) == (1, 0)  # one failure, then the backoff
    clock.now += 1.0
    for _ in range(50):
        await store.hit("k", SIX)
    await settle()
    assert (shared.hits, shared.checks) == (1, 1)  # a single background probe, which failed
    clock.now += 0.5
    await store.hit("k", SIX)
    await settle()
    assert shared.checks == 1  # the failed probe started a new backoff
    assert seen.engaged == [True]


async def test_recovery_releases_the_fallback_without_a_restart() -> None:
    clock = FakeClock()
    shared = FlakyStore()
    store, seen = fallback_store(shared, clock)
    shared.down = True
    await store.hit("k", SIX)
    shared.down = False
    clock.now += 1.0
    await store.hit("k", SIX)  # decided locally; it starts the probe
    await settle()
    assert not store.in_fallback
    hits = shared.hits
    await store.hit("k", SIX)
    assert shared.hits == hits + 1
    assert seen.engaged == [True, False]


async def test_check_reports_ready_in_fallback_and_releases_on_success() -> None:
    shared = FlakyStore()
    store, seen = fallback_store(shared)
    shared.down = True
    await store.check()  # unreachable is not unusable: the limits fall back
    assert store.in_fallback
    shared.down = False
    await store.check()
    assert not store.in_fallback
    assert seen.engaged == [True, False]


async def test_cost_is_checked_against_the_whole_limit_in_fallback() -> None:
    shared = FlakyStore()
    shared.down = True
    store, _ = fallback_store(shared)
    with pytest.raises(ValueError, match="cost"):
        await store.hit("k", SIX, cost=7)
    # larger than one replica's share (2) but within the limit: charged the whole share
    assert (await store.hit("k", SIX, cost=6)).allowed
    assert not (await store.hit("k", SIX)).allowed


async def test_aclose_closes_the_shared_store() -> None:
    shared = FlakyStore()
    store, _ = fallback_store(shared)
    await store.aclose()
    assert shared.closed


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="replicas"):
        FallbackRateLimitStore(FlakyStore(), replicas=0)
    with pytest.raises(ValueError, match="backoff"):
        FallbackRateLimitStore(FlakyStore(), backoff=0)


@given(
    rate=st.integers(1, 1000),
    period=st.floats(0.001, 3600),
    burst=st.integers(0, 1000),
    replicas=st.integers(1, 50),
)
def test_the_replicas_shares_never_add_up_to_more_than_the_limit(
    rate: int, period: float, burst: int, replicas: int
) -> None:
    limit = Limit(rate=rate, period=period, burst=burst)
    share = local_share(limit, replicas)
    # at once: every replica's bucket together holds no more than the whole bucket
    # (a replica's share is at least one request, so a limit smaller than the fleet is exceeded)
    assert replicas * (share.burst + 1) <= max(limit.burst + 1, replicas)
    # sustained: the replicas together emit no faster than the limit
    assert emission_interval(share) >= replicas * emission_interval(limit) - replicas
    assert share.fallback == limit.fallback


async def test_the_factory_shares_a_limit_among_replicas_and_their_workers() -> None:
    nobody = f"redis://127.0.0.1:{free_port()}/0"
    env = {"HUB_REDIS_URL": nobody, "HUB_REPLICAS": "2", "HUB_WORKERS": "2"}
    async with build_limiter(Settings.from_env(env)) as store:
        assert isinstance(store, FallbackRateLimitStore)
        eight = Limit(rate=8, period=60, burst=7)
        assert [(await store.hit("k", eight)).allowed for _ in range(3)] == [True, True, False]
    async with build_limiter(Settings.from_env({})) as embedded:
        assert isinstance(embedded, MemoryRateLimitStore)


# ---- a real Redis behind a proxy that is cut and restored ----------------------------------


@pytest.fixture
async def proxied(
    redis_url: str, redis_key_prefix: str, redis_proxy: TcpProxy
) -> AsyncIterator[tuple[FallbackRateLimitStore, Recorder]]:
    redis = RedisRateLimitStore.from_url(
        proxied_url(redis_url, redis_proxy), prefix=f"{redis_key_prefix}hub:rl:", timeout=0.5
    )
    store, seen = fallback_store(redis)
    async with store:
        yield store, seen


async def wait_released(store: FallbackRateLimitStore, limit: Limit, timeout: float = 5) -> None:
    """Hit until the background probe has found Redis again (no restart, no check call)."""
    deadline = time.monotonic() + timeout
    while store.in_fallback:
        assert time.monotonic() < deadline, "the fallback was not released"
        await store.hit("recovery-probe", limit)
        await asyncio.sleep(0.05)


@pytest.mark.backends
async def test_redis_cut_local_share_then_refused_and_recovered(
    proxied: tuple[FallbackRateLimitStore, Recorder], redis_proxy: TcpProxy
) -> None:
    store, seen = proxied
    assert (await store.hit("cut", SIX)).remaining == 5  # Redis decides
    await redis_proxy.cut()
    decisions = [await store.hit("cut", SIX) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, False, False]
    assert store.in_fallback
    assert seen.engaged == [True]
    await redis_proxy.restore()
    await wait_released(store, SIX)
    assert seen.engaged == [True, False]
    # the bucket lived on in Redis: one hit before the cut, this one now
    assert (await store.hit("cut", SIX)).remaining == 4


@pytest.mark.backends
async def test_redis_cut_open_and_closed(
    proxied: tuple[FallbackRateLimitStore, Recorder], redis_proxy: TcpProxy
) -> None:
    store, seen = proxied
    open_limit = Limit(rate=1, period=60, fallback="open")
    closed_limit = Limit(rate=100, period=1, fallback="closed")
    assert (await store.hit("closed", closed_limit)).allowed
    await redis_proxy.cut()
    assert all([(await store.hit("open", open_limit)).allowed for _ in range(5)])
    with pytest.raises(LimiterUnavailable) as caught:
        await store.hit("closed", closed_limit)
    assert caught.value.headers["Retry-After"] == "1"
    await redis_proxy.restore()
    await wait_released(store, open_limit)
    assert (await store.hit("closed", closed_limit)).allowed
    assert set(seen.unavailable) == {"open", "closed"}


@pytest.mark.backends
async def test_redis_cut_check_keeps_the_store_usable(
    proxied: tuple[FallbackRateLimitStore, Recorder], redis_proxy: TcpProxy
) -> None:
    store, _ = proxied
    await redis_proxy.cut()
    await store.check()
    assert store.in_fallback
    await redis_proxy.restore()
    await store.check()
    assert not store.in_fallback


@pytest.mark.backends
async def test_a_hung_redis_costs_one_timeout_per_backoff_not_one_per_request(
    proxied: tuple[FallbackRateLimitStore, Recorder], redis_proxy: TcpProxy
) -> None:
    store, _ = proxied
    assert (await store.hit("hung", SIX)).allowed
    await redis_proxy.stall()  # connections are accepted, then nothing: every try times out
    before = redis_proxy.connections_total
    started = time.monotonic()
    with pytest.raises(LimiterUnavailable):  # the first hit pays the timeout, then falls back
        await store.hit("hung", Limit(rate=1, period=1, fallback="closed"))
    first = time.monotonic() - started
    assert first >= 0.4  # it did wait for the hung Redis (0.5 s timeout)
    latencies = []
    deadline = time.monotonic() + 3.0
    hits = 0
    while time.monotonic() < deadline:
        began = time.monotonic()
        await store.hit("hung", Limit(rate=1000, period=1, burst=999, fallback="open"))
        latencies.append(time.monotonic() - began)
        hits += 1
        await asyncio.sleep(0.01)
    attempts = redis_proxy.connections_total - before
    assert hits > 100
    # the failed hit (a try and one retry) and a probe per backoff: 2 + 2 * 3, give or take
    assert attempts <= 10, attempts
    assert max(latencies) < 0.1  # no request waited on a timeout after the first
    await redis_proxy.restore()
    await wait_released(store, SIX)
