"""Config notifier: one contract over the in-process and Redis back-ends, plus Redis faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from hub.backends.factory import build_notifier
from hub.backends.notifier.base import RESYNC, RESYNC_SIGNAL, ConfigNotifier
from hub.backends.notifier.memory import MemoryChannel, MemoryConfigNotifier
from hub.backends.notifier.redis import DEFAULT_CHANNEL, RedisConfigNotifier
from hub.errors import BackendUnavailable
from hub.settings import Settings
from tests.fixtures_services import proxied_url
from tests.tcpproxy import TcpProxy

TIMEOUT = 5.0


class Recorder:
    """A callback that remembers every version it was called with."""

    def __init__(self) -> None:
        self.versions: list[int] = []
        self._changed = asyncio.Condition()

    async def __call__(self, version: int) -> None:
        async with self._changed:
            self.versions.append(version)
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[list[int]], bool]) -> list[int]:
        async with asyncio.timeout(TIMEOUT), self._changed:
            await self._changed.wait_for(lambda: predicate(self.versions))
        return self.versions

    async def wait_for_version(self, version: int) -> list[int]:
        return await self.wait_for(lambda seen: version in seen)


@dataclass(slots=True)
class Replicas:
    """Two notifiers on one channel, as two hub replicas would be."""

    first: ConfigNotifier
    second: ConfigNotifier


def _redis_notifier(url: str, channel: str) -> RedisConfigNotifier:
    return RedisConfigNotifier(url, channel=channel, reconnect_initial=0.05, reconnect_max=0.3)


@pytest.fixture(
    params=[pytest.param("memory"), pytest.param("redis", marks=pytest.mark.backends)],
)
async def replicas(request: pytest.FixtureRequest) -> AsyncIterator[Replicas]:
    if request.param == "memory":
        channel = MemoryChannel()
        pair = Replicas(
            first=MemoryConfigNotifier(channel=channel),
            second=MemoryConfigNotifier(channel=channel),
        )
    else:
        url = request.getfixturevalue("redis_url")
        channel_name = request.getfixturevalue("redis_key_prefix") + "config"
        pair = Replicas(
            first=_redis_notifier(url, channel_name), second=_redis_notifier(url, channel_name)
        )
    try:
        yield pair
    finally:
        await pair.first.aclose()
        await pair.second.aclose()


# ---- the contract -------------------------------------------------------------------------------


async def test_publish_reaches_every_replica_including_itself(replicas: Replicas) -> None:
    mine, theirs = Recorder(), Recorder()
    replicas.first.subscribe(mine)
    replicas.second.subscribe(theirs)
    await replicas.first.start()
    await replicas.second.start()

    await replicas.first.publish(7)

    assert await mine.wait_for_version(7) == [7]
    assert await theirs.wait_for_version(7) == [7]


async def test_announcements_arrive_in_publish_order(replicas: Replicas) -> None:
    seen = Recorder()
    replicas.second.subscribe(seen)
    await replicas.first.start()
    await replicas.second.start()

    for version in range(1, 31):
        await replicas.first.publish(version)

    assert await seen.wait_for(lambda got: len(got) >= 30) == list(range(1, 31))


async def test_every_subscriber_is_called(replicas: Replicas) -> None:
    one, two = Recorder(), Recorder()
    replicas.second.subscribe(one)
    replicas.second.subscribe(two)
    await replicas.first.start()
    await replicas.second.start()

    await replicas.first.publish(3)

    assert await one.wait_for_version(3) == [3]
    assert await two.wait_for_version(3) == [3]


async def test_a_failing_subscriber_does_not_silence_the_others(replicas: Replicas) -> None:
    async def broken(version: int) -> None:
        raise RuntimeError("boom")

    seen = Recorder()
    replicas.second.subscribe(broken)
    replicas.second.subscribe(seen)
    await replicas.first.start()
    await replicas.second.start()

    await replicas.first.publish(1)
    await replicas.first.publish(2)

    assert await seen.wait_for(lambda got: len(got) >= 2) == [1, 2]


async def test_check_passes_while_running_and_fails_once_closed(replicas: Replicas) -> None:
    await replicas.first.start()
    await replicas.first.check()

    await replicas.first.aclose()

    with pytest.raises(BackendUnavailable):
        await replicas.first.check()
    with pytest.raises(BackendUnavailable):
        await replicas.first.publish(1)


async def test_a_closed_replica_no_longer_hears_announcements(replicas: Replicas) -> None:
    gone, staying = Recorder(), Recorder()
    replicas.first.subscribe(gone)
    replicas.second.subscribe(staying)
    await replicas.first.start()
    await replicas.second.start()
    await replicas.first.aclose()

    await replicas.second.publish(5)

    assert await staying.wait_for_version(5) == [5]
    assert gone.versions == []


class SignalRecorder:
    """A signal callback that remembers every signal name it was called with."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._changed = asyncio.Condition()

    async def __call__(self, name: str) -> None:
        async with self._changed:
            self.names.append(name)
            self._changed.notify_all()

    async def wait_for(self, count: int) -> list[str]:
        async with asyncio.timeout(TIMEOUT), self._changed:
            await self._changed.wait_for(lambda: len(self.names) >= count)
        return self.names


async def test_signals_reach_every_replica_in_order_with_versions_and_apart_from_them(
    replicas: Replicas,
) -> None:
    versions, signals = Recorder(), SignalRecorder()
    mine = SignalRecorder()
    replicas.second.subscribe(versions)
    replicas.second.subscribe_signals(signals)
    replicas.first.subscribe_signals(mine)
    await replicas.first.start()
    await replicas.second.start()

    await replicas.first.publish(1)
    await replicas.first.publish_signal("shadow")
    await replicas.first.publish(2)
    await replicas.first.publish_signal("other")

    assert await versions.wait_for(lambda got: len(got) >= 2) == [1, 2]
    assert await signals.wait_for(2) == ["shadow", "other"]
    assert await mine.wait_for(2) == ["shadow", "other"]  # the publisher hears itself too


async def test_a_failing_signal_subscriber_does_not_silence_versions(replicas: Replicas) -> None:
    async def broken(name: str) -> None:
        raise RuntimeError("boom")

    seen = Recorder()
    replicas.second.subscribe_signals(broken)
    replicas.second.subscribe(seen)
    await replicas.first.start()
    await replicas.second.start()

    await replicas.first.publish_signal("shadow")
    await replicas.first.publish(9)

    assert await seen.wait_for_version(9) == [9]


async def test_publish_signal_fails_once_closed(replicas: Replicas) -> None:
    await replicas.first.start()
    await replicas.first.aclose()
    with pytest.raises(BackendUnavailable):
        await replicas.first.publish_signal("shadow")


# ---- Redis specifics and faults -----------------------------------------------------------------


@pytest.mark.backends
async def test_messages_that_are_not_versions_are_ignored(
    redis_url: str, redis_key_prefix: str
) -> None:
    channel = redis_key_prefix + "config"
    notifier = _redis_notifier(redis_url, channel)
    seen = Recorder()
    notifier.subscribe(seen)
    raw = aioredis.Redis.from_url(redis_url)
    try:
        await notifier.start()
        await raw.publish(channel, "not-a-number")
        await raw.publish(channel, "signal:")  # a signal without a name
        await notifier.publish(4)
        assert await seen.wait_for_version(4) == [4]
    finally:
        await raw.aclose()
        await notifier.aclose()


@pytest.mark.backends
async def test_redis_outage_fails_fast_then_listener_resyncs_and_delivers_again(
    redis_url: str, redis_key_prefix: str, redis_proxy: TcpProxy
) -> None:
    channel = redis_key_prefix + "config"
    cut_off = _redis_notifier(proxied_url(redis_url, redis_proxy), channel)
    direct = _redis_notifier(redis_url, channel)
    seen = Recorder()
    signals = SignalRecorder()
    cut_off.subscribe(seen)
    cut_off.subscribe_signals(signals)
    try:
        await cut_off.start()
        await direct.start()
        await direct.publish(1)
        await seen.wait_for_version(1)
        listener = cut_off._listener
        assert listener is not None

        await redis_proxy.cut()

        with pytest.raises(BackendUnavailable):
            await cut_off.check()
        with pytest.raises(BackendUnavailable):
            await cut_off.publish(2)
        await direct.publish(3)  # missed by the cut-off replica: pub/sub does not queue
        await asyncio.sleep(0.5)  # several reconnection attempts fail meanwhile
        assert not listener.done()

        await redis_proxy.restore()

        # The listener came back by itself and told its subscribers to re-read the database.
        assert await seen.wait_for_version(RESYNC) == [1, RESYNC]
        # Signals may have been missed as well: their subscribers are told to re-read too.
        assert await signals.wait_for(1) == [RESYNC_SIGNAL]
        await cut_off.check()
        await direct.publish(4)
        assert await seen.wait_for_version(4) == [1, RESYNC, 4]
        await cut_off.publish(5)
        assert await seen.wait_for_version(5) == [1, RESYNC, 4, 5]
        assert cut_off._listener is listener
    finally:
        await cut_off.aclose()
        await direct.aclose()


@pytest.mark.backends
async def test_start_without_redis_returns_and_catches_up_when_redis_appears(
    redis_url: str, redis_key_prefix: str, redis_proxy: TcpProxy
) -> None:
    channel = redis_key_prefix + "config"
    await redis_proxy.cut()
    notifier = RedisConfigNotifier(
        proxied_url(redis_url, redis_proxy),
        channel=channel,
        start_timeout=0.3,
        reconnect_initial=0.05,
        reconnect_max=0.3,
    )
    seen = Recorder()
    notifier.subscribe(seen)
    try:
        async with asyncio.timeout(TIMEOUT):
            await notifier.start()
        with pytest.raises(BackendUnavailable):
            await notifier.check()

        await redis_proxy.restore()

        assert await seen.wait_for_version(RESYNC) == [RESYNC]
        await notifier.publish(9)
        assert await seen.wait_for_version(9) == [RESYNC, 9]
    finally:
        await notifier.aclose()


# ---- factory ------------------------------------------------------------------------------------


def test_factory_picks_memory_without_redis_url() -> None:
    assert isinstance(build_notifier(Settings()), MemoryConfigNotifier)


async def test_factory_picks_redis_with_redis_url() -> None:
    notifier = build_notifier(Settings(redis_url="redis://127.0.0.1:6379/0"))
    assert isinstance(notifier, RedisConfigNotifier)
    assert notifier.channel == DEFAULT_CHANNEL == "hub:config"
    custom = build_notifier(Settings(redis_url="redis://127.0.0.1:6379/0"), channel="x")
    assert isinstance(custom, RedisConfigNotifier)
    assert custom.channel == "x"
