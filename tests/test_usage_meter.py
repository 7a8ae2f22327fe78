"""The usage meter: counts in memory, flushes increments, keeps them when the database is down.

The rules on an in-memory back-end first (exact, no sockets); then two meters (two replicas)
on the real usage store on SQLite and PostgreSQL, and a PostgreSQL link cut by a TcpProxy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from hub.db.engine import create_engine
from hub.db.migrate import migrate
from hub.db.usage_store import UsageStore, UsageTotals
from hub.errors import BackendUnavailable
from hub.quota.meter import UsageMeter
from tests.tcpproxy import TcpProxy

DAY = date(2025, 5, 31)
NOON = datetime(2025, 5, 31, 12, tzinfo=UTC)


class Backend:
    """Usage rows in a dict; ``down`` makes every call fail as an unreachable database would."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, date], int] = {}
        self.down = False
        self.adds = 0
        self.reads = 0

    async def add(self, increments: Mapping[tuple[str, str, date], int]) -> None:
        self.adds += 1
        if self.down:
            raise BackendUnavailable("database unavailable")
        for key, count in increments.items():
            self.rows[key] = self.rows.get(key, 0) + count

    async def totals(
        self, pairs: Collection[tuple[str, str]], day: date
    ) -> dict[tuple[str, str], UsageTotals]:
        self.reads += 1
        if self.down:
            raise BackendUnavailable("database unavailable")
        out = {}
        for pair in pairs:
            month = sum(
                n
                for (c, p, d), n in self.rows.items()
                if (c, p) == pair and (d.year, d.month) == (day.year, day.month) and d <= day
            )
            on_day = self.rows.get((*pair, day), 0)
            if month:
                out[pair] = UsageTotals(day=on_day, month=month)
        return out


class Clocks:
    def __init__(self) -> None:
        self.now = NOON
        self.tick = 0.0

    def wall(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.tick


def meter(
    backend: Backend, clocks: Clocks | None = None
) -> tuple[UsageMeter, list[str], list[int]]:
    clocks = clocks or Clocks()
    flushes: list[str] = []
    pending: list[int] = []
    usage = UsageMeter(
        backend,
        flush_seconds=1.0,
        clock=clocks.wall,
        monotonic=clocks.monotonic,
        on_flush=flushes.append,
        on_pending=pending.append,
    )
    return usage, flushes, pending


async def test_counts_are_seen_at_once_and_flushed_without_double_counting() -> None:
    backend = Backend()
    usage, flushes, pending = meter(backend)
    await usage.ensure("a", "echo")
    for _ in range(5):
        usage.count("a", "echo", DAY)
    assert usage.used("a", "echo", DAY) == (5, 5)
    assert usage.pending == 5
    assert backend.rows == {}  # nothing written per request
    assert await usage.flush()
    assert backend.rows == {("a", "echo", DAY): 5}
    assert usage.used("a", "echo", DAY) == (5, 5)  # now from the flushed totals, once
    assert (usage.pending, flushes, pending[-1]) == (0, ["ok"], 0)
    assert await usage.flush()  # nothing new: no write
    assert backend.adds == 1


async def test_a_failed_flush_keeps_every_count_and_retries_with_a_backoff() -> None:
    backend = Backend()
    clocks = Clocks()
    usage, flushes, pending = meter(backend, clocks)
    for _ in range(3):
        usage.count("a", "echo", DAY)
    backend.down = True
    with capture_logs() as logs:
        assert not await usage.flush()
        usage.count("a", "echo", DAY)
        assert not await usage.flush()
    assert usage.pending == 4
    assert usage.used("a", "echo", DAY) == (4, 4)
    assert flushes == ["failed", "failed"]
    assert pending[-1] == 4
    failed = [e for e in logs if e["event"] == "usage.flush_failed"]
    assert [e["pending_requests"] for e in failed] == [3, 4]
    assert [e["retry_in"] for e in failed] == [1.0, 2.0]  # doubling, up to max_backoff
    backend.down = False
    with capture_logs() as logs:
        assert await usage.flush()
    assert backend.rows == {("a", "echo", DAY): 4}
    assert [e["event"] for e in logs if e["event"].startswith("usage.")] == [
        "usage.flush_recovered"
    ]
    assert usage.pending == 0


async def test_another_replicas_flushed_usage_is_seen_after_a_refresh() -> None:
    backend = Backend()
    one, _, _ = meter(backend)
    two, _, _ = meter(backend)
    await one.ensure("a", "echo")
    await two.ensure("a", "echo")
    for _ in range(3):
        one.count("a", "echo", DAY)
    two.count("a", "echo", DAY)
    assert await one.flush()
    assert two.used("a", "echo", DAY) == (1, 1)  # not yet refreshed
    assert await two.flush()  # writes its own, reads back the totals of the pairs in use
    assert two.used("a", "echo", DAY) == (4, 4)
    assert await one.flush()
    assert one.used("a", "echo", DAY) == (4, 4)


async def test_ensure_reads_the_database_once_and_fails_open() -> None:
    backend = Backend()
    backend.rows = {("a", "echo", date(2025, 5, 3)): 7, ("a", "echo", DAY): 2}
    usage, _, _ = meter(backend)
    await asyncio.gather(*(usage.ensure("a", "echo") for _ in range(10)))
    assert backend.reads == 1
    assert usage.used("a", "echo", DAY) == (2, 9)
    backend.down = True
    with capture_logs() as logs:
        await usage.ensure("b", "echo")
    assert usage.knows("b", "echo")
    assert usage.used("b", "echo", DAY) == (0, 0)  # judged on this replica's counts meanwhile
    assert logs[0]["event"] == "usage.totals_failed"


async def test_a_new_day_and_a_new_month_start_from_zero() -> None:
    backend = Backend()
    clocks = Clocks()
    usage, _, _ = meter(backend, clocks)
    await usage.ensure("a", "echo")
    usage.count("a", "echo", DAY)
    assert await usage.flush()
    usage.count("a", "echo", DAY)
    assert usage.used("a", "echo", date(2025, 6, 1)) == (0, 0)
    assert usage.used("a", "echo", DAY) == (2, 2)
    usage.count("a", "echo", date(2025, 6, 1))
    assert usage.used("a", "echo", date(2025, 6, 1)) == (1, 1)


async def test_aclose_flushes_and_logs_each_row_it_cannot_save() -> None:
    backend = Backend()
    usage, _, _ = meter(backend)
    usage.start()
    usage.count("a", "echo", DAY)
    await usage.aclose()
    assert backend.rows == {("a", "echo", DAY): 1}
    stuck, _, _ = meter(backend)
    stuck.count("a", "echo", DAY)
    stuck.count("a", "echo", DAY)
    stuck.count("b", "visas", DAY)
    backend.down = True
    with capture_logs() as logs:
        await stuck.aclose()
    assert [
        (e["client_id"], e["product"], e["day"], e["requests"])
        for e in logs
        if e["event"] == "usage.unflushed"
    ] == [("a", "echo", "2025-05-31", 2), ("b", "visas", "2025-05-31", 1)]


async def test_the_background_loop_flushes_every_interval() -> None:
    backend = Backend()
    usage = UsageMeter(backend, flush_seconds=0.05)
    usage.start()
    try:
        usage.count("a", "echo", DAY)
        for _ in range(100):
            if backend.rows:
                break
            await asyncio.sleep(0.02)
        assert backend.rows == {("a", "echo", DAY): 1}
    finally:
        await usage.aclose()
    with pytest.raises(ValueError, match="flush_seconds"):
        UsageMeter(backend, flush_seconds=0)


# --- the real store ---------------------------------------------------------------------------


async def test_two_replicas_on_the_database_count_every_request(db_engine: AsyncEngine) -> None:
    store = UsageStore(db_engine)
    replicas = [UsageMeter(store, clock=lambda: NOON) for _ in range(2)]
    for replica in replicas:
        await replica.ensure("a", "echo")
    for _ in range(5):
        for index, replica in enumerate(replicas):
            for _ in range(index + 1):
                replica.count("a", "echo", DAY)
        await asyncio.gather(*(replica.flush() for replica in replicas))
    await asyncio.gather(*(replica.flush() for replica in replicas))
    assert await store.totals([("a", "echo")], DAY) == {
        ("a", "echo"): UsageTotals(day=15, month=15)
    }
    for replica in replicas:
        assert replica.used("a", "echo", DAY) == (15, 15)


@pytest.mark.backends
async def test_a_postgresql_cut_loses_no_count(postgres_url: str) -> None:
    await migrate(postgres_url)
    url = make_url(postgres_url)
    async with TcpProxy(target_host=url.host or "127.0.0.1", target_port=url.port or 5432) as proxy:
        engine = create_engine(url.set(host="127.0.0.1", port=proxy.port).render_as_string(False))
        direct = create_engine(postgres_url)
        try:
            usage = UsageMeter(UsageStore(engine), clock=lambda: NOON)
            for _ in range(3):
                usage.count("a", "echo", DAY)
            assert await usage.flush()
            await proxy.cut()
            for _ in range(4):
                usage.count("a", "echo", DAY)
            assert not await usage.flush()
            assert usage.pending == 4
            await proxy.restore()
            assert await usage.flush()
            totals = await UsageStore(direct).totals([("a", "echo")], DAY)
            assert totals == {("a", "echo"): UsageTotals(day=7, month=7)}
        finally:
            await engine.dispose()
            await direct.dispose()
