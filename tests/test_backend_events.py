"""Event bus: one contract over the in-process and RabbitMQ back-ends; AMQP specifics and faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import aio_pika
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.backends.events.amqp import AmqpEventBus
from hub.backends.events.base import Event, EventBus, topic_matches
from hub.backends.events.database import DatabaseEventBus
from hub.backends.events.memory import MemoryEventBus
from hub.backends.factory import build_event_bus
from hub.db.migrate import migrate
from hub.errors import BackendUnavailable
from hub.settings import Settings
from tests.fixtures_services import AmqpNames, proxied_url
from tests.tcpproxy import TcpProxy

TIMEOUT = 10.0
MAX_RETRIES = 2


class Inbox:
    """A handler that records events; ``fail`` decides whether a delivery raises."""

    def __init__(self, fail: Callable[[Event, int], bool] = lambda event, calls: False) -> None:
        self.events: list[Event] = []
        self.calls: list[Event] = []
        self._fail = fail
        self._changed = asyncio.Condition()

    async def __call__(self, event: Event) -> None:
        async with self._changed:
            self.calls.append(event)
            self._changed.notify_all()
            if self._fail(event, sum(1 for call in self.calls if call.id == event.id)):
                raise RuntimeError(f"handler refuses {event.type}")
            self.events.append(event)

    async def wait_for(self, predicate: Callable[[Inbox], bool]) -> None:
        async with asyncio.timeout(TIMEOUT), self._changed:
            await self._changed.wait_for(lambda: predicate(self))

    async def wait_for_events(self, count: int) -> list[Event]:
        await self.wait_for(lambda inbox: len(inbox.events) >= count)
        return self.events


@dataclass(slots=True)
class Harness:
    """A started bus, unique queue names and a way to read what was dead-lettered."""

    bus: EventBus
    new_queue: Callable[[str], str]
    dead_letters: Callable[[str, int], Awaitable[list[Event]]]


def _event(kind: str = "config.published", **payload: object) -> Event:
    return Event(type=kind, payload=dict(payload))


async def _database_bus(url: str) -> DatabaseEventBus:
    """The embedded cross-process bus on a freshly migrated database."""
    await migrate(url)
    bus = DatabaseEventBus(url, max_retries=MAX_RETRIES, poll_interval=0.02)
    await bus.start()
    return bus


@pytest.fixture(
    params=[
        pytest.param("memory"),
        pytest.param("database-sqlite"),
        pytest.param("database-postgresql", marks=pytest.mark.backends),
        pytest.param("amqp", marks=pytest.mark.backends),
    ],
)
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param.startswith("database-"):
        fixture = "sqlite_url" if request.param == "database-sqlite" else "postgres_url"
        database = await _database_bus(request.getfixturevalue(fixture))
        counter = iter(range(1_000_000))

        async def database_dead(queue: str, count: int) -> list[Event]:
            async with asyncio.timeout(TIMEOUT):
                while len(found := await database.dead_letters(queue)) < count:
                    await asyncio.sleep(0.02)
            return [letter.event for letter in found]

        try:
            yield Harness(
                bus=database,
                new_queue=lambda label: f"{label}.{next(counter)}",
                dead_letters=database_dead,
            )
        finally:
            await database.aclose()
        return

    if request.param == "memory":
        memory = MemoryEventBus(max_retries=MAX_RETRIES)
        counter = iter(range(1_000_000))

        async def memory_dead(queue: str, count: int) -> list[Event]:
            async with asyncio.timeout(TIMEOUT):
                while len(
                    found := [d.event for d in memory.dead_letters_kept if d.queue == queue]
                ) < (count):
                    await asyncio.sleep(0.01)
            return found

        await memory.start()
        try:
            yield Harness(
                bus=memory,
                new_queue=lambda label: f"{label}.{next(counter)}",
                dead_letters=memory_dead,
            )
        finally:
            await memory.aclose()
        return

    url: str = request.getfixturevalue("amqp_url")
    names: AmqpNames = request.getfixturevalue("amqp_names")
    amqp = AmqpEventBus(
        url,
        exchange=names.exchange,
        dead_letter_exchange=names.dead_letter_exchange,
        max_retries=MAX_RETRIES,
    )
    await amqp.start()
    try:
        yield Harness(
            bus=amqp,
            new_queue=names.queue,
            dead_letters=lambda queue, count: _read_dead_letters(url, queue, count),
        )
    finally:
        await amqp.aclose()


async def _read_dead_letters(url: str, queue: str, count: int) -> list[Event]:
    found: list[Event] = []
    async with await aio_pika.connect(url, timeout=5) as connection:
        channel = await connection.channel()
        dead = await channel.get_queue(f"{queue}.dead", ensure=True)
        async with asyncio.timeout(TIMEOUT):
            while len(found) < count:
                message = await dead.get(fail=False)
                if message is None:
                    await asyncio.sleep(0.02)
                    continue
                await message.ack()
                found.append(Event.decode(message.body))
    return found


# ---- the contract -------------------------------------------------------------------------------


async def test_published_event_reaches_its_handler_unchanged(harness: Harness) -> None:
    inbox = Inbox()
    await harness.bus.subscribe(harness.new_queue("config"), "config.*", inbox)
    event = _event(version=3, by="admin")

    await harness.bus.publish(event)

    assert await inbox.wait_for_events(1) == [event]
    assert event.occurred_at.tzinfo is not None


async def test_topic_patterns_route_events_to_matching_queues(harness: Harness) -> None:
    config, everything = Inbox(), Inbox()
    await harness.bus.subscribe(harness.new_queue("config"), "config.*", config)
    await harness.bus.subscribe(harness.new_queue("all"), "#", everything)
    published, created = _event("config.published"), _event("consumer.key.created")

    await harness.bus.publish(published)
    await harness.bus.publish(created)

    assert await everything.wait_for_events(2) == [published, created]
    await harness.bus.publish(marker := _event("config.rolled_back"))
    assert await config.wait_for_events(2) == [published, marker]


async def test_every_queue_gets_a_copy_and_a_queue_delivers_each_event_once(
    harness: Harness,
) -> None:
    audit, shared_a, shared_b = Inbox(), Inbox(), Inbox()
    shared = harness.new_queue("shared")
    await harness.bus.subscribe(harness.new_queue("audit"), "config.*", audit)
    await harness.bus.subscribe(shared, "config.*", shared_a)
    await harness.bus.subscribe(shared, "config.*", shared_b)
    events = [_event(n=n) for n in range(10)]

    for event in events:
        await harness.bus.publish(event)

    assert await audit.wait_for_events(10) == events
    # Polled: the last event may reach either inbox, and each notifies only its own waiters.
    async with asyncio.timeout(TIMEOUT):
        while len(shared_a.events) + len(shared_b.events) < 10:
            await asyncio.sleep(0.01)
    # Competing consumers: together they saw every event exactly once.
    assert sorted(e.payload["n"] for e in shared_a.events + shared_b.events) == list(range(10))


async def test_one_subscription_sees_events_in_publish_order(harness: Harness) -> None:
    inbox = Inbox()
    await harness.bus.subscribe(harness.new_queue("ordered"), "config.#", inbox)
    events = [_event("config.published", version=n) for n in range(25)]

    for event in events:
        await harness.bus.publish(event)

    assert await inbox.wait_for_events(25) == events


async def test_publish_many_accepts_each_event_and_delivers_them_in_order(
    harness: Harness,
) -> None:
    inbox = Inbox()
    await harness.bus.subscribe(harness.new_queue("batch"), "config.#", inbox)
    events = [_event("config.published", version=n) for n in range(60)]

    outcomes = await harness.bus.publish_many(events)

    assert outcomes == [None] * 60
    # More than the database bus claims at once (50): its consumer takes two batches.
    assert await inbox.wait_for_events(60) == events
    assert await harness.bus.publish_many([]) == []


async def test_failing_handler_is_retried_then_the_event_is_dead_lettered(
    harness: Harness,
) -> None:
    queue = harness.new_queue("poison")
    inbox = Inbox(fail=lambda event, calls: event.payload.get("poison") is True)
    await harness.bus.subscribe(queue, "config.*", inbox)
    poison, fine = _event(poison=True), _event(poison=False)

    await harness.bus.publish(poison)
    await harness.bus.publish(fine)

    assert await harness.dead_letters(queue, 1) == [poison]
    assert await inbox.wait_for_events(1) == [fine]
    assert [call.id for call in inbox.calls].count(poison.id) == 1 + MAX_RETRIES


async def test_dead_letters_are_listed_then_replayed_onto_their_queue(harness: Harness) -> None:
    queue, other = harness.new_queue("replay"), harness.new_queue("bystander")
    healed = asyncio.Event()
    inbox = Inbox(fail=lambda event, calls: not healed.is_set())
    bystander = Inbox()
    await harness.bus.subscribe(queue, "order.*", inbox)
    await harness.bus.subscribe(other, "order.*", bystander)
    poison = _event("order.placed", n=1)

    await harness.bus.publish(poison)

    async with asyncio.timeout(TIMEOUT):
        while not (letters := await harness.bus.dead_letters(queue)):
            await asyncio.sleep(0.02)
    assert [letter.event for letter in letters] == [poison]
    assert letters[0].queue == queue
    # Listing takes nothing away.
    assert [letter.event for letter in await harness.bus.dead_letters(queue)] == [poison]
    assert await harness.bus.replay(queue, ["no-such-event"]) == 0

    healed.set()
    assert await harness.bus.replay(queue) == 1

    assert await inbox.wait_for_events(1) == [poison]
    assert await harness.bus.dead_letters(queue) == []
    # Replayed onto that queue only: the other queue got the event once, at publish.
    assert await bystander.wait_for_events(1) == [poison]
    await asyncio.sleep(0.2)
    assert len(bystander.events) == 1


async def test_a_transient_handler_failure_is_retried_and_succeeds(harness: Harness) -> None:
    inbox = Inbox(fail=lambda event, calls: calls == 1)
    await harness.bus.subscribe(harness.new_queue("flaky"), "config.*", inbox)
    event = _event(version=1)

    await harness.bus.publish(event)

    assert await inbox.wait_for_events(1) == [event]
    assert len(inbox.calls) == 2


async def test_check_passes_while_running_and_fails_once_closed(harness: Harness) -> None:
    await harness.bus.check()

    await harness.bus.aclose()

    with pytest.raises(BackendUnavailable):
        await harness.bus.check()
    with pytest.raises(BackendUnavailable):
        await harness.bus.publish(_event())


async def test_payload_must_survive_the_wire(harness: Harness) -> None:
    await harness.bus.subscribe(harness.new_queue("wire"), "#", Inbox())
    with pytest.raises(TypeError):
        await harness.bus.publish(_event(when=datetime.now(UTC)))


# ---- the event value ----------------------------------------------------------------------------


def test_event_defaults_and_wire_round_trip() -> None:
    event = _event(version=2, tags=["a", "b"])
    assert len(event.id) == 32
    assert event.occurred_at.tzinfo is UTC
    assert Event.decode(event.encode()) == event


@pytest.mark.parametrize(
    "body", [b"", b"[]", b'{"id": "x"}', b'{"id":"x","type":"a","payload":[],"occurred_at":"x"}']
)
def test_decode_refuses_what_is_not_an_event(body: bytes) -> None:
    with pytest.raises(ValueError):
        Event.decode(body)


def test_event_refuses_naive_times_and_empty_words() -> None:
    with pytest.raises(ValueError):
        Event(type="config.published", payload={}, occurred_at=datetime(2024, 1, 1))
    with pytest.raises(ValueError):
        Event(type="config..published", payload={})


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("#", "a", True),
        ("#", "a.b.c", True),
        ("a.*", "a.b", True),
        ("a.*", "a", False),
        ("a.*", "a.b.c", False),
        ("a.#", "a", True),
        ("*.b", "a.b", True),
        ("a.#.c", "a.c", True),
        ("a.#.c", "a.x.y.c", True),
        ("a.#.c", "a.x.y", False),
        ("a.b", "a.bb", False),
    ],
)
def test_topic_patterns_follow_amqp_rules(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


_words = st.lists(st.text("abcxyz", min_size=1, max_size=3), min_size=1, max_size=5)


@given(words=_words, data=st.data())
def test_topic_pattern_generalisations_still_match(words: list[str], data: st.DataObject) -> None:
    key = ".".join(words)
    assert topic_matches(key, key)
    assert topic_matches("#", key)
    # Replacing any word by "*", or any run of words by "#", keeps the match.
    i = data.draw(st.integers(0, len(words) - 1))
    j = data.draw(st.integers(i, len(words)))
    assert topic_matches(".".join([*words[:i], "*", *words[i + 1 :]]), key)
    assert topic_matches(".".join([*words[:i], "#", *words[j:]]), key)
    assert not topic_matches(".".join([*words, "*"]), key)


# ---- AMQP specifics and faults ------------------------------------------------------------------


@pytest.mark.backends
async def test_amqp_publish_is_persistent_and_labelled(
    amqp_url: str, amqp_names: AmqpNames
) -> None:
    queue = amqp_names.queue("raw")
    bus = AmqpEventBus(
        amqp_url, exchange=amqp_names.exchange, dead_letter_exchange=amqp_names.dead_letter_exchange
    )
    await bus.start()
    try:
        async with await aio_pika.connect(amqp_url, timeout=5) as connection:
            channel = await connection.channel()
            raw = await channel.declare_queue(queue, durable=True)
            await raw.bind(amqp_names.exchange, routing_key="#")
            event = _event(version=1)

            await bus.publish(event)

            async with asyncio.timeout(TIMEOUT):
                while (message := await raw.get(fail=False)) is None:
                    await asyncio.sleep(0.02)
            await message.ack()
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.message_id == event.id
        assert message.type == event.type
        assert message.routing_key == event.type
        assert message.content_type == "application/json"
        assert Event.decode(message.body) == event
    finally:
        await bus.aclose()


@pytest.mark.backends
async def test_amqp_undecodable_message_is_dead_lettered_without_retries(
    amqp_url: str, amqp_names: AmqpNames
) -> None:
    queue = amqp_names.queue("garbage")
    bus = AmqpEventBus(
        amqp_url, exchange=amqp_names.exchange, dead_letter_exchange=amqp_names.dead_letter_exchange
    )
    inbox = Inbox()
    await bus.start()
    try:
        await bus.subscribe(queue, "#", inbox)
        async with await aio_pika.connect(amqp_url, timeout=5) as connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(amqp_names.exchange)
            await exchange.publish(aio_pika.Message(b"not json"), routing_key="config.published")
            dead = await channel.get_queue(f"{queue}.dead")
            async with asyncio.timeout(TIMEOUT):
                while (message := await dead.get(fail=False)) is None:
                    await asyncio.sleep(0.02)
            await message.ack()
        assert message.body == b"not json"
        assert inbox.calls == []
    finally:
        await bus.aclose()


@pytest.mark.backends
async def test_amqp_outage_fails_publish_fast_and_recovers_with_subscriptions(
    amqp_url: str, amqp_names: AmqpNames, amqp_proxy: TcpProxy
) -> None:
    bus = AmqpEventBus(
        proxied_url(amqp_url, amqp_proxy),
        exchange=amqp_names.exchange,
        dead_letter_exchange=amqp_names.dead_letter_exchange,
        operation_timeout=2.0,
        reconnect_interval=0.2,
    )
    inbox = Inbox()
    await bus.start()
    try:
        await bus.subscribe(amqp_names.queue("outage"), "config.*", inbox)
        before = _event(n=1)
        await bus.publish(before)
        await inbox.wait_for_events(1)

        await amqp_proxy.cut()

        async with asyncio.timeout(TIMEOUT):
            with pytest.raises(BackendUnavailable):
                await bus.publish(_event(n=2))
            with pytest.raises(BackendUnavailable):
                await bus.check()

        await amqp_proxy.restore()

        await _wait_until_ready(bus)
        after = _event(n=3)
        await bus.publish(after)
        # The robust connection re-declared the queue and its consumer by itself. ``before``
        # may come twice: its ack can be lost in the cut (delivery is at-least-once).
        await inbox.wait_for(lambda _: after in inbox.events)
        assert {event.id for event in inbox.events} == {before.id, after.id}
    finally:
        await bus.aclose()


@pytest.mark.backends
async def test_amqp_start_without_broker_connects_later_and_applies_subscriptions(
    amqp_url: str, amqp_names: AmqpNames, amqp_proxy: TcpProxy
) -> None:
    await amqp_proxy.cut()
    bus = AmqpEventBus(
        proxied_url(amqp_url, amqp_proxy),
        exchange=amqp_names.exchange,
        dead_letter_exchange=amqp_names.dead_letter_exchange,
        start_timeout=0.3,
        operation_timeout=2.0,
        reconnect_interval=0.1,
    )
    inbox = Inbox()
    try:
        async with asyncio.timeout(TIMEOUT):
            await bus.start()
        await bus.subscribe(amqp_names.queue("late"), "config.*", inbox)
        with pytest.raises(BackendUnavailable):
            await bus.check()
        with pytest.raises(BackendUnavailable):
            await bus.publish(_event())

        await amqp_proxy.restore()

        await _wait_until_ready(bus)
        event = _event(n=1)
        await bus.publish(event)
        assert await inbox.wait_for_events(1) == [event]
    finally:
        await bus.aclose()


async def _wait_until_ready(bus: EventBus) -> None:
    async with asyncio.timeout(TIMEOUT):
        while True:
            try:
                await bus.check()
            except BackendUnavailable:
                await asyncio.sleep(0.05)
            else:
                return


# ---- factory ------------------------------------------------------------------------------------


def test_factory_picks_the_database_bus_without_amqp_url() -> None:
    settings = Settings(database_url="sqlite+aiosqlite:///:memory:")
    assert isinstance(build_event_bus(settings), DatabaseEventBus)


def test_factory_refuses_a_bus_with_neither_amqp_nor_database() -> None:
    with pytest.raises(ValueError, match="AMQP URL or the shared database"):
        build_event_bus(Settings())


def test_factory_picks_amqp_with_amqp_url() -> None:
    bus = build_event_bus(Settings(amqp_url="amqp://guest:guest@127.0.0.1:5672/"))
    assert isinstance(bus, AmqpEventBus)
    assert (bus.exchange_name, bus.dead_letter_exchange_name) == ("hub.events", "hub.events.dlx")
    custom = build_event_bus(
        Settings(amqp_url="amqp://127.0.0.1/"), exchange="x", dead_letter_exchange="y"
    )
    assert isinstance(custom, AmqpEventBus)
    assert (custom.exchange_name, custom.dead_letter_exchange_name) == ("x", "y")
