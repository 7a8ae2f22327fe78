"""Upstream pools: target parsing, balancing, bulkhead, breakers in selection, retry budget."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.config.model import BreakerSpec, TargetSpec, UpstreamSpec
from hub.errors import CircuitOpen, ConfigError, UpstreamOverloaded, UpstreamUnavailable
from hub.upstream.breaker import BreakerState
from hub.upstream.pool import Lease, Target, TargetStatus, UpstreamPool
from hub.upstream.retry_budget import RetryBudget


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def make_pool(
    *weights: int,
    balancing: str = "round_robin",
    max_concurrent: int = 1024,
    breaker: BreakerSpec | None = None,
    clock: FakeClock | None = None,
) -> UpstreamPool:
    targets = tuple(
        TargetSpec(url=f"http://127.0.0.1:{9100 + i}", weight=w) for i, w in enumerate(weights)
    )
    spec = UpstreamSpec(
        id="echo",
        targets=targets,
        balancing=balancing,  # type: ignore[arg-type]
        max_concurrent=max_concurrent,
        breaker=breaker or BreakerSpec(failure_threshold=2, open_seconds=10, half_open_max=1),
    )
    return UpstreamPool(spec, clock=clock or FakeClock())


def ports(leases: list[Lease]) -> list[int]:
    return [lease.target.port for lease in leases]


def acquire_release(pool: UpstreamPool, exclude: tuple[Target, ...] = ()) -> Target:
    lease = pool.acquire(exclude)
    lease.release(True)
    return lease.target


# --- targets -------------------------------------------------------------------------------


def test_target_url_parts() -> None:
    spec = UpstreamSpec(
        id="x",
        targets=(
            TargetSpec(url="http://127.0.0.1:9101"),
            TargetSpec(url="https://api.example.gov/base/"),
            TargetSpec(url="http://[::1]:8080/v1"),
        ),
    )
    a, b, c = UpstreamPool(spec).targets
    assert (a.scheme, a.host, a.port, a.base_path, a.origin) == (
        "http",
        "127.0.0.1",
        9101,
        "",
        "http://127.0.0.1:9101",
    )
    assert (b.port, b.base_path, b.origin) == (443, "/base", "https://api.example.gov:443")
    assert (c.host, c.origin, c.url("/items/1")) == (
        "::1",
        "http://[::1]:8080",
        "http://[::1]:8080/v1/items/1",
    )
    assert [t.index for t in (a, b, c)] == [0, 1, 2]


@pytest.mark.parametrize(
    "url", ["ftp://example.gov", "http://", "http://host:99999", "http://host/?q=1", "host:80"]
)
def test_invalid_target_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        UpstreamPool(UpstreamSpec(id="x", targets=(TargetSpec(url=url),)))


def test_targets_hash_by_identity() -> None:
    pool = make_pool(1, 1)
    assert len({*pool.targets}) == 2


# --- balancing -----------------------------------------------------------------------------


def test_round_robin_is_smooth_like_nginx() -> None:
    pool = make_pool(5, 1, 1)
    picked = [acquire_release(pool).port - 9100 for _ in range(7)]
    assert picked == [0, 0, 1, 0, 2, 0, 0]


@given(weights=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=6))
def test_round_robin_honours_weights_exactly_per_cycle(weights: list[int]) -> None:
    pool = make_pool(*weights)
    cycles = 3
    counts = Counter(acquire_release(pool).index for _ in range(cycles * sum(weights)))
    assert counts == {i: cycles * w for i, w in enumerate(weights)}


def test_round_robin_skips_ejected_targets_without_starving_others() -> None:
    pool = make_pool(1, 1, 1)
    pool.targets[1].healthy = False
    counts = Counter(acquire_release(pool).index for _ in range(100))
    assert counts == {0: 50, 2: 50}


def test_least_outstanding_picks_the_least_loaded() -> None:
    pool = make_pool(1, 1, 1, balancing="least_outstanding")
    held = [pool.acquire() for _ in range(3)]
    assert sorted(ports(held)) == [9100, 9101, 9102]
    held[0].release(True)
    assert pool.acquire().target.port == 9100  # the only one with nothing in flight
    held[1].release(True)
    # Loads are now 1, 0, 1: every short request lands on target 1.
    assert {acquire_release(pool).index for _ in range(10)} == {1}
    busy = [pool.acquire() for _ in range(6)]
    assert busy[0].target.index == 1
    loads = [t.outstanding for t in pool.targets]
    assert sum(loads) == 8
    assert max(loads) - min(loads) <= 1


def test_least_outstanding_weighs_by_weight() -> None:
    pool = make_pool(3, 1, balancing="least_outstanding")
    held = [pool.acquire() for _ in range(8)]
    assert Counter(lease.target.index for lease in held) == {0: 6, 1: 2}


def test_least_outstanding_rotates_ties() -> None:
    pool = make_pool(1, 1, 1, balancing="least_outstanding")
    picked = [acquire_release(pool).index for _ in range(6)]
    assert picked == [0, 1, 2, 0, 1, 2]


def test_exclude_avoids_tried_targets_but_falls_back() -> None:
    pool = make_pool(1, 1)
    first, second = pool.targets
    assert all(acquire_release(pool, (first,)) is second for _ in range(5))
    # Every target tried: a retry may go to one of them again (single-target pools retry too).
    assert acquire_release(pool, (first, second)) in pool.targets
    single = make_pool(1)
    assert acquire_release(single, single.targets) is single.targets[0]


# --- bulkhead ------------------------------------------------------------------------------


def test_bulkhead_refuses_at_the_limit_and_frees_on_release() -> None:
    pool = make_pool(1, 1, max_concurrent=3)
    leases = [pool.acquire() for _ in range(3)]
    assert pool.in_flight == 3
    with pytest.raises(UpstreamOverloaded) as caught:
        pool.acquire()
    assert caught.value.code == "upstream_overloaded"
    assert caught.value.status == 503
    leases[0].release(None)
    assert pool.in_flight == 2
    pool.acquire()
    assert pool.in_flight == 3


def test_release_is_idempotent() -> None:
    pool = make_pool(1, breaker=BreakerSpec(failure_threshold=2))
    lease = pool.acquire()
    lease.release(False)
    lease.release(False)
    assert lease.released
    assert pool.in_flight == 0
    assert pool.targets[0].outstanding == 0
    assert pool.targets[0].breaker.consecutive_failures == 1


# --- breakers in selection -----------------------------------------------------------------


def fail(pool: UpstreamPool, target: Target, times: int) -> None:
    for _ in range(times):
        lease = pool.acquire()
        while lease.target is not target:
            lease.release(None)
            lease = pool.acquire()
        lease.release(False)


def test_open_breaker_target_is_skipped() -> None:
    pool = make_pool(1, 1, 1)
    fail(pool, pool.targets[1], 2)
    assert pool.targets[1].breaker.state is BreakerState.OPEN
    assert {acquire_release(pool).index for _ in range(20)} == {0, 2}


def test_circuit_open_when_every_breaker_is_open() -> None:
    pool = make_pool(1, 1)
    for target in pool.targets:
        fail(pool, target, 2)
    with pytest.raises(CircuitOpen) as caught:
        pool.acquire()
    assert caught.value.code == "circuit_open"
    assert pool.in_flight == 0
    assert not pool.available


def test_unhealthy_everywhere_is_unavailable_not_circuit_open() -> None:
    pool = make_pool(1, 1)
    for target in pool.targets:
        target.healthy = False
    with pytest.raises(UpstreamUnavailable) as caught:
        pool.acquire()
    assert type(caught.value) is UpstreamUnavailable


def test_mixed_unhealthy_and_open_is_circuit_open() -> None:
    pool = make_pool(1, 1)
    pool.targets[0].healthy = False
    fail(pool, pool.targets[1], 2)
    with pytest.raises(CircuitOpen):
        pool.acquire()


def test_half_open_lets_one_probe_through_and_closes_on_success() -> None:
    clock = FakeClock()
    pool = make_pool(1, clock=clock)
    target = pool.targets[0]
    fail(pool, target, 2)
    clock.now += 10
    probe = pool.acquire()
    assert probe.probe
    with pytest.raises(CircuitOpen):
        pool.acquire()
    probe.release(True)
    assert target.breaker.state is BreakerState.CLOSED
    assert not pool.acquire().probe


def test_half_open_probe_without_verdict_frees_the_slot() -> None:
    clock = FakeClock()
    pool = make_pool(1, clock=clock)
    fail(pool, pool.targets[0], 2)
    clock.now += 10
    pool.acquire().release(None)
    assert pool.targets[0].breaker.state is BreakerState.HALF_OPEN
    pool.acquire().release(False)
    assert pool.targets[0].breaker.state is BreakerState.OPEN


def test_stale_attempts_do_not_decide_a_half_open_breaker() -> None:
    clock = FakeClock()
    pool = make_pool(1, clock=clock)
    target = pool.targets[0]
    slow = pool.acquire()  # began while closed
    fail(pool, target, 2)
    clock.now += 10
    probe = pool.acquire()
    slow.release(True)
    assert target.breaker.state is BreakerState.HALF_OPEN
    assert target.breaker.probes_in_flight == 1
    probe.release(False)
    assert target.breaker.state is BreakerState.OPEN


def test_probe_from_an_earlier_spell_frees_nothing() -> None:
    clock = FakeClock()
    pool = make_pool(1, clock=clock, breaker=BreakerSpec(failure_threshold=1, half_open_max=1))
    target = pool.targets[0]
    fail(pool, target, 1)
    clock.now += 10
    old_probe = pool.acquire()
    target.breaker.record_failure()  # e.g. another path reopened it
    clock.now += 10
    new_probe = pool.acquire()
    old_probe.release(None)
    assert target.breaker.probes_in_flight == 1
    new_probe.release(True)
    assert target.breaker.state is BreakerState.CLOSED


def test_status_snapshot() -> None:
    pool = make_pool(1, 1)
    pool.targets[1].healthy = False
    lease = pool.acquire()
    assert pool.status() == [
        TargetStatus(
            origin="http://127.0.0.1:9100",
            base_path="",
            healthy=True,
            breaker=BreakerState.CLOSED,
            outstanding=1,
        ),
        TargetStatus(
            origin="http://127.0.0.1:9101",
            base_path="",
            healthy=False,
            breaker=BreakerState.CLOSED,
            outstanding=0,
        ),
    ]
    lease.release(True)
    assert pool.available


async def test_wait_idle_returns_when_the_last_lease_is_released() -> None:
    pool = make_pool(1)
    await asyncio.wait_for(pool.wait_idle(), 1)  # idle already
    leases = [pool.acquire(), pool.acquire()]
    waiter = asyncio.create_task(pool.wait_idle())
    await asyncio.sleep(0)
    leases[0].release(True)
    await asyncio.sleep(0)
    assert not waiter.done()
    leases[1].release(None)
    await asyncio.wait_for(waiter, 1)


# --- retry budget --------------------------------------------------------------------------


def test_retry_budget_allows_ratio_of_requests() -> None:
    clock = FakeClock()
    budget = RetryBudget(0.2, min_per_second=0, clock=clock)
    assert not budget.try_spend()
    for _ in range(50):
        budget.record_request()
    spent = sum(budget.try_spend() for _ in range(100))
    assert spent == 10


def test_retry_budget_floor_per_second() -> None:
    clock = FakeClock()
    budget = RetryBudget(0.0, min_per_second=3, ttl=10, clock=clock)
    assert sum(budget.try_spend() for _ in range(100)) == 30
    clock.now += 5
    assert not budget.try_spend()
    clock.now += 5  # withdrawals expire after the ttl
    assert sum(budget.try_spend() for _ in range(100)) == 30


def test_retry_budget_deposits_expire() -> None:
    clock = FakeClock()
    budget = RetryBudget(0.5, min_per_second=0, ttl=10, clock=clock)
    for _ in range(20):
        budget.record_request()
    assert budget.balance == pytest.approx(10)
    clock.now += 11
    assert budget.balance == 0
    assert not budget.try_spend()


@given(
    ratio=st.floats(min_value=0, max_value=1),
    requests=st.integers(min_value=0, max_value=300),
    steps=st.lists(st.floats(min_value=0, max_value=0.2), max_size=40),
)
def test_retry_budget_never_exceeds_ratio_plus_reserve(
    ratio: float, requests: int, steps: list[float]
) -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio, min_per_second=1, ttl=10, clock=clock)
    spent = 0
    for i in range(requests):
        budget.record_request()
        if i < len(steps):
            clock.now += steps[i]
        spent += budget.try_spend()
    # Everything happened within 8 s, less than one ttl, so nothing expired.
    assert spent <= ratio * requests + 10 + 1e-6


def test_pool_retry_budgets() -> None:
    pool = make_pool(1)
    assert pool.retry_budget.ratio == 0.2
    assert pool.retry_budget_for(0.2) is pool.retry_budget
    assert pool.retry_budget_for(0.5).ratio == 0.5
    with pytest.raises(ValueError):
        RetryBudget(-1)
