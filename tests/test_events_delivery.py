"""The promise: no domain event is lost when RabbitMQ or a consumer is down, none applied twice.

Producers write to the outbox in their transaction; the relay publishes through a TCP proxy
that the test cuts (the shared broker is never stopped); the consumer applies each event with
the idempotent-consumer helper, its effect a row in its own table. Runs on RabbitMQ and on the
embedded database bus, with SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Column, MetaData, String, Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.backends.events.amqp import AmqpEventBus
from hub.backends.events.base import Event, EventBus
from hub.backends.events.database import DatabaseEventBus
from hub.db.engine import create_engine
from hub.db.migrate import migrate
from hub.events.consumer import IdempotentConsumer
from hub.events.outbox import enqueue, outbox_stats
from hub.events.relay import OutboxRelay, RelayOptions
from hub.events.tables import include_event_tables, outbox_events
from tests.fixtures_services import AmqpNames, proxied_url, service_address
from tests.hubproc import ROOT
from tests.tcpproxy import TcpProxy

TIMEOUT = 30.0

# The consumer's own database: its effect table and the event tables, as a service has them.
_consumer_metadata = MetaData()
effects = Table(
    "effects",
    _consumer_metadata,
    # No unique constraint on purpose: only the consumer helper stands between a duplicate
    # delivery and a second effect.
    Column("event_id", String(64), nullable=False),
    Column("kind", String(64), nullable=False),
)
include_event_tables(_consumer_metadata)


@pytest.fixture
async def consumer_engine(tmp_path: object) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/consumer.db")
    async with engine.begin() as conn:
        await conn.run_sync(_consumer_metadata.create_all)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _apply(conn: AsyncConnection, event: Event) -> None:
    await conn.execute(effects.insert().values(event_id=event.id, kind=event.type))


async def _effect_counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(effects.c.event_id, func.count()).group_by(effects.c.event_id)
            )
        ).all()
    return {row[0]: row[1] for row in rows}


async def _wait_for_effects(engine: AsyncEngine, count: int) -> dict[str, int]:
    async with asyncio.timeout(TIMEOUT):
        while len(found := await _effect_counts(engine)) < count:
            await asyncio.sleep(0.05)
    return found


async def _produce(engine: AsyncEngine, n: int) -> list[str]:
    ids = []
    for i in range(n):
        async with engine.begin() as conn:
            event = await enqueue(
                conn, type="permit.issued", payload={"n": i}, key=f"permit:{i % 3}"
            )
        ids.append(event.id)
    return ids


@pytest.mark.backends
async def test_events_survive_a_rabbitmq_outage_and_are_applied_once(
    db_engine: AsyncEngine,
    consumer_engine: AsyncEngine,
    amqp_url: str,
    amqp_names: AmqpNames,
    amqp_proxy: TcpProxy,
) -> None:
    names = {
        "exchange": amqp_names.exchange,
        "dead_letter_exchange": amqp_names.dead_letter_exchange,
    }
    # The producer's side reaches RabbitMQ through the proxy; the consumer's directly.
    producer_bus = AmqpEventBus(proxied_url(amqp_url, amqp_proxy), reconnect_interval=0.2, **names)
    consumer_bus = AmqpEventBus(amqp_url, **names)
    await producer_bus.start()
    await consumer_bus.start()
    consumer = IdempotentConsumer(consumer_engine, "permits", _apply)
    await consumer_bus.subscribe(amqp_names.queue("permits"), "permit.*", consumer)
    relay = OutboxRelay(
        db_engine,
        producer_bus,
        options=RelayOptions(poll_interval=0.05, backoff_initial=0.05, backoff_max=0.5),
    )
    relay.start()
    try:
        before = await _produce(db_engine, 5)
        await _wait_for_effects(consumer_engine, 5)

        await amqp_proxy.cut()
        during = await _produce(db_engine, 25)
        await asyncio.sleep(1.0)
        async with db_engine.connect() as conn:
            stalled = await outbox_stats(conn)
        assert stalled.depth == 25  # nothing claimed as sent while the broker was away

        await amqp_proxy.restore()
        counts = await _wait_for_effects(consumer_engine, 30)

        assert set(counts) == set(before + during)
        assert set(counts.values()) == {1}
        async with db_engine.connect() as conn:
            assert (await outbox_stats(conn)).depth == 0

        # A relay that died after publishing republishes: the consumer applies nothing twice.
        async with db_engine.connect() as conn:
            rows = (await conn.execute(select(outbox_events))).all()
        for row in rows[:10]:
            await consumer_bus.publish(
                Event(id=row.id, type=row.type, payload=row.payload, occurred_at=row.occurred_at)
            )
        async with asyncio.timeout(TIMEOUT):
            while consumer.duplicates < 10:
                await asyncio.sleep(0.05)
        assert set((await _effect_counts(consumer_engine)).values()) == {1}
    finally:
        await relay.aclose()
        await producer_bus.aclose()
        await consumer_bus.aclose()


async def test_events_wait_for_a_consumer_that_was_down_on_the_database_bus(
    database_url: str, consumer_engine: AsyncEngine
) -> None:
    await migrate(database_url)
    producer = create_engine(database_url)
    bus = DatabaseEventBus(database_url, poll_interval=0.02)
    await bus.start()
    relay = OutboxRelay(producer, bus, options=RelayOptions(poll_interval=0.05))
    try:
        # The consumer subscribed once (its queue exists), then its process went away.
        first = DatabaseEventBus(database_url, poll_interval=0.02)
        await first.start()
        await first.subscribe(
            "permits", "permit.*", IdempotentConsumer(consumer_engine, "p", _apply)
        )
        await first.aclose()

        ids = await _produce(producer, 20)
        relay.start()
        async with asyncio.timeout(TIMEOUT):
            while await bus.depth("permits") < 20:
                await asyncio.sleep(0.05)
        assert await _effect_counts(consumer_engine) == {}

        # It comes back (a new process): everything is there, applied once.
        again = DatabaseEventBus(database_url, poll_interval=0.02)
        await again.start()
        try:
            await again.subscribe(
                "permits", "permit.*", IdempotentConsumer(consumer_engine, "p", _apply)
            )
            counts = await _wait_for_effects(consumer_engine, 20)
        finally:
            await again.aclose()
        assert set(counts) == set(ids)
        assert set(counts.values()) == {1}
    finally:
        await relay.aclose()
        await bus.aclose()
        await producer.dispose()


async def test_a_consumer_that_fails_twice_then_succeeds_applies_the_event_once(
    database_url: str, consumer_engine: AsyncEngine
) -> None:
    await migrate(database_url)
    bus = DatabaseEventBus(database_url, poll_interval=0.02, max_retries=3, retry_delay=0.01)
    await bus.start()
    calls: list[str] = []

    async def flaky(conn: AsyncConnection, event: Event) -> None:
        calls.append(event.id)
        await _apply(conn, event)  # written, then rolled back with the failure
        if len(calls) <= 2:
            raise RuntimeError("the mail server is down")

    try:
        await bus.subscribe("flaky", "#", IdempotentConsumer(consumer_engine, "flaky", flaky))
        event = Event(type="permit.issued", payload={})
        await bus.publish(event)
        counts = await _wait_for_effects(consumer_engine, 1)
    finally:
        await bus.aclose()
    assert counts == {event.id: 1}
    assert calls == [event.id] * 3


async def test_a_poison_event_is_dead_lettered_then_replayed_once_fixed(
    database_url: str, consumer_engine: AsyncEngine
) -> None:
    await migrate(database_url)
    bus = DatabaseEventBus(database_url, poll_interval=0.02, max_retries=2)
    await bus.start()
    fixed = asyncio.Event()

    async def strict(conn: AsyncConnection, event: Event) -> None:
        if not fixed.is_set():
            raise ValueError("template missing")
        await _apply(conn, event)

    try:
        await bus.subscribe("strict", "#", IdempotentConsumer(consumer_engine, "strict", strict))
        poison = Event(type="notification.requested", payload={"template": "nope"})
        await bus.publish(poison)
        async with asyncio.timeout(TIMEOUT):
            while not (letters := await bus.dead_letters("strict")):
                await asyncio.sleep(0.02)
        assert letters[0].attempts == 3
        assert "template missing" in letters[0].error
        assert await _effect_counts(consumer_engine) == {}

        fixed.set()
        assert await bus.replay("strict") == 1
        assert await _wait_for_effects(consumer_engine, 1) == {poison.id: 1}
        assert await bus.dead_letters("strict") == []
    finally:
        await bus.aclose()


# ---- a relay process killed in the middle of a batch ------------------------------------------


def _start_relay(database_url: str, name: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.relay_process", database_url, "--name", name, *extra],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _leased_unsent(engine: AsyncEngine, name: str) -> int:
    async with engine.connect() as conn:
        found = await conn.execute(
            select(func.count())
            .select_from(outbox_events)
            .where(outbox_events.c.claimed_by == name, outbox_events.c.sent_at.is_(None))
        )
    return int(found.scalar_one())


async def _kill_when_leasing(
    engine: AsyncEngine, relay: subprocess.Popen[bytes], name: str
) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not await _leased_unsent(engine, name):
            assert relay.poll() is None, "the relay process died by itself"
            await asyncio.sleep(0.005)


@pytest.mark.parametrize("bus_kind", ["database", pytest.param("amqp", marks=pytest.mark.backends)])
async def test_a_relay_killed_mid_batch_loses_nothing_and_applies_nothing_twice(
    request: pytest.FixtureRequest,
    database_url: str,
    consumer_engine: AsyncEngine,
    bus_kind: str,
) -> None:
    """SIGKILL between claim and settle: the lease runs out, another relay finishes the job."""
    await migrate(database_url)
    producer = create_engine(database_url)
    dead = f"relay-dead-{uuid.uuid4().hex[:6]}"
    extra: list[str] = ["--lease", "1.5"]
    proxy: TcpProxy | None = None
    bus: EventBus
    if bus_kind == "amqp":
        url = request.getfixturevalue("amqp_url")
        names: AmqpNames = request.getfixturevalue("amqp_names")
        host, port = service_address(url)
        proxy = TcpProxy(target_host=host, target_port=port)
        await proxy.start()
        extra += ["--amqp", proxied_url(url, proxy), "--exchange", names.exchange,
                  "--dlx", names.dead_letter_exchange]  # fmt: skip
        bus = AmqpEventBus(
            url, exchange=names.exchange, dead_letter_exchange=names.dead_letter_exchange
        )
        queue = names.queue("permits")
    else:
        # The database bus publishes a batch in one transaction, quicker than the test can
        # look: the relay pauses before each batch so that it is killed in the middle.
        extra += ["--hold", "5"]
        bus = DatabaseEventBus(database_url, poll_interval=0.02)
        queue = "permits"
    await bus.start()
    consumer = IdempotentConsumer(consumer_engine, "permits", _apply)
    relay = _start_relay(database_url, dead, *extra)
    survivor: OutboxRelay | None = None
    try:
        await bus.subscribe(queue, "permit.*", consumer)
        ids = await _produce(producer, 150)
        await _kill_when_leasing(producer, relay, dead)
        if proxy is not None:
            proxy.freeze()  # its publishes hang unconfirmed: the batch is mid-way for sure
            await asyncio.sleep(0.2)
        relay.kill()  # SIGKILL: no cleanup, no settle, the lease stays
        relay.wait(10)
        stranded = await _leased_unsent(producer, dead)
        assert stranded > 0, "the relay was killed with rows it had claimed and not settled"

        survivor = OutboxRelay(
            producer, bus, options=RelayOptions(poll_interval=0.05, lease_seconds=5.0)
        )
        survivor.start()
        counts = await _wait_for_effects(consumer_engine, len(ids))
        assert set(counts) == set(ids)  # nothing lost
        assert set(counts.values()) == {1}  # nothing applied twice
        async with producer.connect() as conn:
            assert (await outbox_stats(conn)).depth == 0
        assert await _leased_unsent(producer, dead) == 0
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait(10)
        if survivor is not None:
            await survivor.aclose()
        await bus.aclose()
        if proxy is not None:
            await proxy.aclose()
        await producer.dispose()
