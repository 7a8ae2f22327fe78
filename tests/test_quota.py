"""Quota arithmetic (UTC periods, what is left, when it comes back) and the subscription cache."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.db.subscription_store import Subscription
from hub.errors import BackendUnavailable
from hub.plans.cache import SubscriptionCache
from hub.quota.periods import Calendar, check_quota, month_seconds, period_end, seconds_until

instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 12, 31), timezones=st.just(UTC)
)
caps = st.one_of(st.none(), st.integers(1, 10_000))


# --- periods ---------------------------------------------------------------------------------


def test_known_period_ends() -> None:
    now = datetime(2025, 12, 31, 23, 59, 30, tzinfo=UTC)
    assert period_end(now, "daily") == datetime(2026, 1, 1, tzinfo=UTC)
    assert period_end(now, "monthly") == datetime(2026, 1, 1, tzinfo=UTC)
    assert seconds_until(now, "daily") == 30
    feb = datetime(2024, 2, 10, 12, tzinfo=UTC)
    assert period_end(feb, "monthly") == datetime(2024, 3, 1, tzinfo=UTC)
    assert month_seconds(date(2024, 2, 10)) == 29 * 86_400  # a leap year
    assert month_seconds(date(2025, 4, 1)) == 30 * 86_400
    # a clock in another zone is judged in UTC
    riyadh = datetime(2025, 5, 2, 2, 0, tzinfo=timezone(timedelta(hours=3)))  # 23:00 UTC on 1 May
    assert period_end(riyadh, "daily") == datetime(2025, 5, 2, tzinfo=UTC)
    assert seconds_until(riyadh, "daily") == 3600


@given(instants, st.sampled_from(["daily", "monthly"]))
def test_retry_after_reaches_the_reset_and_not_a_second_more(now: datetime, period: str) -> None:
    wait = seconds_until(now, period)  # type: ignore[arg-type]
    end = period_end(now, period)  # type: ignore[arg-type]
    assert wait >= 1
    assert now + timedelta(seconds=wait) >= end
    assert now + timedelta(seconds=wait - 1) < end or wait == 1
    # the end is midnight UTC, on the first of a month for monthly quotas
    assert (end.hour, end.minute, end.second, end.microsecond) == (0, 0, 0, 0)
    if period == "monthly":
        assert end.day == 1
    assert end > now


@given(st.lists(instants, min_size=1, max_size=20))
def test_the_cached_calendar_answers_as_the_functions(moments: list[datetime]) -> None:
    calendar = Calendar()
    # in order and out of order, with repeats: the cache must never answer for another day
    for now in [*sorted(moments), *moments, *moments]:
        assert calendar.day(now) == now.date()
        assert calendar.seconds_until(now, "daily") == seconds_until(now, "daily")
        assert calendar.seconds_until(now, "monthly") == seconds_until(now, "monthly")
        assert calendar.month_seconds(now) == month_seconds(now.date())


@given(instants)
def test_a_day_ends_no_later_than_its_month(now: datetime) -> None:
    assert period_end(now, "daily") <= period_end(now, "monthly")


# --- quota checks ----------------------------------------------------------------------------


def test_known_quota_checks() -> None:
    fresh = check_quota(daily=3, monthly=10, used_day=0, used_month=0)
    assert (fresh.allowed, fresh.remaining) == (True, {"daily": 2, "monthly": 9})
    last = check_quota(daily=3, monthly=10, used_day=2, used_month=5)
    assert (last.allowed, last.remaining) == (True, {"daily": 0, "monthly": 4})
    over = check_quota(daily=3, monthly=10, used_day=3, used_month=5)
    assert (over.allowed, over.exceeded, over.remaining) == (
        False,
        "daily",
        {"daily": 0, "monthly": 5},
    )
    both = check_quota(daily=3, monthly=10, used_day=3, used_month=10)
    assert both.exceeded == "monthly"  # the later reset is the one worth waiting for
    unlimited = check_quota(daily=None, monthly=None, used_day=10**9, used_month=10**9)
    assert (unlimited.allowed, unlimited.remaining) == (True, {})


@given(caps, caps, st.integers(0, 20_000), st.integers(0, 20_000))
def test_a_check_allows_exactly_while_every_cap_has_room(
    daily: int | None, monthly: int | None, used_day: int, used_month: int
) -> None:
    check = check_quota(daily=daily, monthly=monthly, used_day=used_day, used_month=used_month)
    fits = (daily is None or used_day < daily) and (monthly is None or used_month < monthly)
    assert check.allowed == fits
    assert all(left >= 0 for left in check.remaining.values())
    assert set(check.remaining) == {
        p for p, cap in (("daily", daily), ("monthly", monthly)) if cap is not None
    }
    if check.allowed:
        assert check.exceeded is None
        if daily is not None:
            assert check.remaining["daily"] == daily - used_day - 1
    else:
        assert check.exceeded in check.remaining
        assert check.remaining[check.exceeded] == 0


@given(caps, caps, st.lists(st.booleans(), max_size=300))
def test_counting_only_allowed_requests_never_passes_a_cap(
    daily: int | None, monthly: int | None, new_day: list[bool]
) -> None:
    # a day boundary resets the daily count; the monthly one runs on (one month here)
    used_day = used_month = 0
    for boundary in new_day:
        if boundary:
            used_day = 0
        check = check_quota(daily=daily, monthly=monthly, used_day=used_day, used_month=used_month)
        if check.allowed:
            used_day += 1
            used_month += 1
        assert daily is None or used_day <= daily
        assert monthly is None or used_month <= monthly


# --- the subscription cache ------------------------------------------------------------------


def subscription(status: str = "active", plan: str = "free") -> Subscription:
    now = datetime(2025, 5, 8, tzinfo=UTC)
    return Subscription(
        id="sub_1",
        client_id="cli_a",
        product="echo",
        plan=plan,
        status=status,  # type: ignore[arg-type]
        created_at=now,
        created_by="t",
        updated_at=now,
        updated_by="t",
        decided_at=None,
        decided_by=None,
        cancelled_at=None,
        cancelled_by=None,
        reason="",
    )


class Lookups:
    """A database stand-in that counts reads and can be made to fail or stall."""

    def __init__(self) -> None:
        self.reads = 0
        self.answer: Subscription | None = subscription()
        self.down = False
        self.gate: asyncio.Event | None = None

    async def __call__(self, client_id: str, product: str) -> Subscription | None:
        self.reads += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise BackendUnavailable("database unavailable")
        return self.answer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_the_cache_reads_once_per_ttl_and_caches_a_missing_subscription_too() -> None:
    lookups, clock = Lookups(), Clock()
    cache = SubscriptionCache(lookups, ttl=5, clock=clock)
    assert await cache.get("cli_a", "echo") == subscription()
    assert await cache.get("cli_a", "echo") == subscription()
    assert lookups.reads == 1
    lookups.answer = None
    assert await cache.get("cli_b", "echo") is None
    assert await cache.get("cli_b", "echo") is None
    assert lookups.reads == 2
    clock.now += 5
    assert await cache.get("cli_a", "echo") is None  # expired: read again
    assert lookups.reads == 3


async def test_invalidate_makes_the_next_request_read_the_database() -> None:
    lookups = Lookups()
    cache = SubscriptionCache(lookups, ttl=60, clock=Clock())
    await cache.get("cli_a", "echo")
    lookups.answer = subscription(status="pending")
    cache.invalidate("cli_a", "echo")
    got = await cache.get("cli_a", "echo")
    assert got is not None
    assert got.status == "pending"


async def test_concurrent_misses_share_one_read_and_a_change_meanwhile_is_not_cached() -> None:
    lookups = Lookups()
    lookups.gate = asyncio.Event()
    cache = SubscriptionCache(lookups, ttl=60, clock=Clock())
    waiting = [asyncio.ensure_future(cache.get("cli_a", "echo")) for _ in range(20)]
    await asyncio.sleep(0)
    cache.invalidate("cli_a", "echo")  # an admin change while the read is on its way
    lookups.gate.set()
    assert {s.status for s in await asyncio.gather(*waiting) if s is not None} == {"active"}
    assert lookups.reads == 1
    lookups.gate = None
    await cache.get("cli_a", "echo")
    assert lookups.reads == 2  # the answer read before the change was not kept


async def test_an_unreachable_database_serves_the_expired_entry_or_fails() -> None:
    lookups, clock = Lookups(), Clock()
    cache = SubscriptionCache(lookups, ttl=5, clock=clock)
    await cache.get("cli_a", "echo")
    lookups.down = True
    clock.now += 10
    assert await cache.get("cli_a", "echo") == subscription()  # stale beats refusing everyone
    reads = lookups.reads
    assert await cache.get("cli_a", "echo") == subscription()
    assert lookups.reads == reads  # retried after a second, not on every request
    with pytest.raises(BackendUnavailable):
        await cache.get("cli_new", "echo")


async def test_a_zero_ttl_reads_every_time_and_the_cache_is_bounded() -> None:
    lookups = Lookups()
    uncached = SubscriptionCache(lookups, ttl=0, clock=Clock())
    for _ in range(3):
        await uncached.get("cli_a", "echo")
    assert (lookups.reads, len(uncached)) == (3, 0)
    bounded = SubscriptionCache(lookups, ttl=60, max_entries=2, clock=Clock())
    for name in ("a", "b", "c"):
        await bounded.get(f"cli_{name}", "echo")
    assert len(bounded) == 2
