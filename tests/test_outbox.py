"""The transactional outbox and its relay, on SQLite and PostgreSQL, with a real bus in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.backends.events.base import Event, EventBus
from hub.backends.events.memory import MemoryEventBus
from hub.db.engine import create_engine
from hub.errors import BackendUnavailable, HubError
from hub.events.outbox import OutboxStats, enqueue, outbox_stats
from hub.events.relay import OutboxRelay, RelayOptions
from hub.events.tables import EVENTS_METADATA, outbox_events


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A database with only the event tables, created as a service creates its own."""
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(EVENTS_METADATA.create_all)
    try:
        yield engine
    finally:
        await engine.dispose()


class Recorder:
    """A queue subscriber that records what arrives."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, event: Event) -> None:
        self.events.append(event)

    async def wait_for(self, count: int) -> list[Event]:
        async with asyncio.timeout(10):
            while len(self.events) < count:
                await asyncio.sleep(0.01)
        return self.events


@pytest.fixture
async def bus() -> AsyncIterator[MemoryEventBus]:
    bus = MemoryEventBus()
    await bus.start()
    try:
        yield bus
    finally:
        await bus.aclose()


class FlakyBus(EventBus):
    """A bus in front of a real one that refuses publishes while ``down`` is set."""

    def __init__(self, inner: EventBus) -> None:
        self.inner = inner
        self.down = False
        self.refused = 0

    async def start(self) -> None:
        await self.inner.start()

    async def publish(self, event: Event) -> None:
        if self.down:
            self.refused += 1
            raise BackendUnavailable("broker down")
        await self.inner.publish(event)

    async def subscribe(self, queue: str, pattern: str, handler: object) -> None:
        raise NotImplementedError

    async def check(self) -> None:
        await self.inner.check()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _unsent(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return (await outbox_stats(conn)).depth


async def test_an_enqueued_event_commits_with_the_change_and_is_published(
    engine: AsyncEngine, bus: MemoryEventBus
) -> None:
    inbox = Recorder()
    await bus.subscribe("q", "payment.#", inbox)
    async with engine.begin() as conn:
        event = await enqueue(conn, type="payment.captured", payload={"amount": 10}, key="p:1")

    assert await OutboxRelay(engine, bus).run_once() == 1
    assert await inbox.wait_for(1) == [event]
    assert await _unsent(engine) == 0


async def test_a_rolled_back_transaction_leaves_no_event(engine: AsyncEngine) -> None:
    async def change_that_fails() -> None:
        async with engine.begin() as conn:
            await enqueue(conn, type="payment.captured", payload={})
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await change_that_fails()

    assert await _unsent(engine) == 0


async def test_enqueue_needs_an_open_transaction_and_a_json_payload(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        with pytest.raises(RuntimeError, match="open transaction"):
            await enqueue(conn, type="a.b", payload={})
    async with engine.begin() as conn:
        with pytest.raises(TypeError):
            await enqueue(conn, type="a.b", payload={"when": datetime.now(UTC)})
        with pytest.raises(ValueError, match="dot-separated"):
            await enqueue(conn, type="a..b", payload={})


async def test_enqueue_is_idempotent_on_the_event_id(engine: AsyncEngine) -> None:
    for _ in range(2):
        async with engine.begin() as conn:
            await enqueue(conn, type="a.b", payload={"n": 1}, event_id="evt-1")

    assert await _unsent(engine) == 1


async def test_events_of_a_key_keep_their_order_while_the_bus_fails_and_recovers(
    engine: AsyncEngine, bus: MemoryEventBus
) -> None:
    inbox = Recorder()
    await bus.subscribe("ordered", "#", inbox)
    flaky = FlakyBus(bus)
    relay = OutboxRelay(
        engine, flaky, options=RelayOptions(batch_size=3, backoff_initial=0.01, backoff_max=0.05)
    )
    async with engine.begin() as conn:
        events = [await enqueue(conn, type="a.b", payload={"n": n}, key="k") for n in range(7)]

    flaky.down = True
    with pytest.raises(BackendUnavailable):
        await relay.run_once()
    assert await _unsent(engine) == 7
    async with engine.connect() as conn:
        row = (await conn.execute(select(outbox_events).order_by(outbox_events.c.seq))).first()
    assert row is not None
    assert row.attempts == 1
    assert "broker down" in row.last_error
    assert row.claimed_by is None

    flaky.down = False
    relay.start()
    try:
        assert await inbox.wait_for(7) == events
    finally:
        await relay.aclose()
    # One refusal stopped the pass: the bus was not hammered with the rest of the batch.
    assert flaky.refused == 1


async def test_a_key_waiting_for_its_backoff_does_not_hold_up_other_keys(
    engine: AsyncEngine, bus: MemoryEventBus
) -> None:
    inbox = Recorder()
    await bus.subscribe("keys", "#", inbox)
    async with engine.begin() as conn:
        first = await enqueue(conn, type="a.b", payload={"n": 1}, key="slow")
        later = await enqueue(conn, type="a.b", payload={"n": 2}, key="slow")
        other = await enqueue(conn, type="a.b", payload={"n": 3}, key="fast")
    async with engine.begin() as conn:
        # The first event of "slow" failed a moment ago and backs off for an hour.
        await conn.execute(
            outbox_events.update()
            .where(outbox_events.c.id == first.id)
            .values(next_attempt_at=datetime.now(UTC) + timedelta(hours=1), attempts=1)
        )

    assert await OutboxRelay(engine, bus).run_once() == 1
    assert await inbox.wait_for(1) == [other]
    assert later not in inbox.events


async def test_rows_of_a_relay_that_died_come_back_when_its_lease_runs_out(
    engine: AsyncEngine, bus: MemoryEventBus
) -> None:
    inbox = Recorder()
    await bus.subscribe("lease", "#", inbox)
    async with engine.begin() as conn:
        event = await enqueue(conn, type="a.b", payload={})
    crashed = OutboxRelay(engine, bus, options=RelayOptions(lease_seconds=30), name="crashed")
    assert len(await crashed._claim()) == 1  # claimed, then the process died

    assert await OutboxRelay(engine, bus).run_once() == 0  # leased: nobody else takes it

    later = datetime.now(UTC) + timedelta(seconds=31)
    assert await OutboxRelay(engine, bus, clock=lambda: later).run_once() == 1
    assert await inbox.wait_for(1) == [event]


async def test_relays_running_together_publish_every_event_once(
    engine: AsyncEngine, bus: MemoryEventBus
) -> None:
    inbox = Recorder()
    await bus.subscribe("many", "#", inbox)
    async with engine.begin() as conn:
        for n in range(120):
            await enqueue(conn, type="a.b", payload={"n": n}, key=f"k{n % 4}")
    relays = [
        OutboxRelay(engine, bus, options=RelayOptions(batch_size=7), name=f"r{i}") for i in range(3)
    ]

    async def drain(relay: OutboxRelay) -> None:
        while await relay.run_once():
            pass

    await asyncio.gather(*(drain(relay) for relay in relays))
    events = await inbox.wait_for(120)
    assert sorted(e.payload["n"] for e in events) == list(range(120))
    for k in range(4):
        ns = [e.payload["n"] for e in events if e.payload["n"] % 4 == k]
        assert ns == sorted(ns), f"key k{k} out of order"


class CountingBus(FlakyBus):
    """Records the size of each ``publish_many`` call; ``atomic`` claims atomic batches."""

    def __init__(self, inner: EventBus, *, atomic: bool) -> None:
        super().__init__(inner)
        self.atomic_batches = atomic  # type: ignore[misc]
        self.calls: list[list[str]] = []

    async def publish_many(self, events: Sequence[Event]) -> list[HubError | None]:
        self.calls.append([str(e.payload["k"]) for e in events])
        return await super().publish_many(events)


@pytest.mark.parametrize("atomic", [False, True], ids=["waves", "atomic"])
async def test_a_batch_goes_out_in_waves_of_one_event_per_key_unless_atomic(
    engine: AsyncEngine, bus: MemoryEventBus, atomic: bool
) -> None:
    inbox = Recorder()
    await bus.subscribe("waves", "#", inbox)
    async with engine.begin() as conn:
        events = [
            await enqueue(conn, type="a.b", payload={"k": f"k{n % 3}", "n": n}, key=f"k{n % 3}")
            for n in range(12)
        ]
    counting = CountingBus(bus, atomic=atomic)

    assert await OutboxRelay(engine, counting).run_once() == 12

    if atomic:
        assert len(counting.calls) == 1  # the whole batch in one call, in order
    else:
        # Four waves of three: each key's next event, its earlier one confirmed first.
        assert counting.calls == [["k0", "k1", "k2"]] * 4
    assert await inbox.wait_for(12) == events


async def test_stats_report_depth_and_the_oldest_age(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await outbox_stats(conn) == OutboxStats(depth=0, oldest_age_seconds=0.0)
    async with engine.begin() as conn:
        await enqueue(conn, type="a.b", payload={})
        await enqueue(conn, type="a.b", payload={})
    async with engine.connect() as conn:
        stats = await outbox_stats(conn, now=datetime.now(UTC) + timedelta(seconds=60))
    assert stats.depth == 2
    assert 59 < stats.oldest_age_seconds < 70


async def test_sent_rows_are_purged_after_the_retention(
    engine: AsyncEngine, bus: MemoryEventBus
) -> None:
    async with engine.begin() as conn:
        await enqueue(conn, type="a.b", payload={})
    relay = OutboxRelay(engine, bus)
    await relay.run_once()

    assert await relay.purge_sent(older_than=3600) == 0
    assert await relay.purge_sent(older_than=-1) == 1
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM outbox_events")) == 0
