"""The fleet's request sample: replicas push batches to one capped list and read it whole.

Over both stores (in-process, and Redis as several replicas share it), then Redis cut off by a
TCP proxy: a batch that cannot be pushed is counted as dropped, a read is a clear 503, and the
sample works again once Redis is back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hub.backends.ephemeral.base import EphemeralStore
from hub.backends.ephemeral.memory import MemoryEphemeralStore
from hub.backends.ephemeral.redis import RedisEphemeralStore
from hub.errors import BackendUnavailable
from hub.ops.pseudonym import Pseudonymiser
from hub.ops.sample import RequestSampler
from tests.fixtures_services import proxied_url
from tests.tcpproxy import TcpProxy
from tests.test_sample_privacy import _seen


class Clock:
    def __init__(self) -> None:
        self.now = 1.0e9 + 10

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.backends)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[EphemeralStore]:
    if request.param == "memory":
        yield MemoryEphemeralStore()
        return
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_key_prefix")
    redis_store = RedisEphemeralStore.from_url(url, prefix=f"{prefix}hub:eph:")
    yield redis_store
    await redis_store.aclose()


def _replica(
    store: EphemeralStore, clock: Clock, *, size: int = 5, **hooks: object
) -> RequestSampler:
    return RequestSampler(
        store,
        key="sample:cluster",
        size=size,
        max_age=60,
        rate=1.0,
        pseudonymiser=Pseudonymiser(b"k" * 32),
        clock=clock,
        **hooks,  # type: ignore[arg-type]
    )


async def test_every_replica_reads_the_whole_fleets_sample_capped_and_fresh(
    store: EphemeralStore,
) -> None:
    clock = Clock()
    recorded: list[int] = []
    one, two = _replica(store, clock, on_recorded=recorded.append), _replica(store, clock)
    for _ in range(2):
        one.offer(_seen())
    two.offer(_seen())
    assert await one.flush() == 2
    # Reading flushes the reader's own pending requests first.
    assert [r.request_id for r in await two.records()] == ["rid-1"] * 3
    assert recorded == [2]
    for _ in range(4):
        one.offer(_seen())
    assert len(await two.records()) == 3  # another replica's pending requests: not yet
    await one.flush()  # its background task does this once a second
    assert len(await two.records()) == 5  # capped at HUB_SAMPLE_SIZE, newest kept
    clock.now += 61  # older than HUB_SAMPLE_MAX_AGE_SECONDS: ignored
    assert await one.records() == []
    await one.clear()
    clock.now -= 61
    assert await two.records() == []


def test_the_draw_follows_the_rate() -> None:
    clock = Clock()
    store = MemoryEphemeralStore()
    assert _replica(store, clock).draw()
    never = RequestSampler(
        store, key="k", size=5, max_age=60, rate=0.0, pseudonymiser=Pseudonymiser()
    )
    assert not any(never.draw() for _ in range(1000))
    off = RequestSampler(
        store, key="k", size=0, max_age=60, rate=1.0, pseudonymiser=Pseudonymiser()
    )
    assert not off.draw()  # a size of 0 turns the sample off
    tenth = RequestSampler(
        store, key="k", size=5, max_age=60, rate=0.1, pseudonymiser=Pseudonymiser()
    )
    drawn = sum(tenth.draw() for _ in range(20_000))
    assert 1_500 < drawn < 2_500


def test_a_full_pending_deque_drops_the_oldest_and_counts_it() -> None:
    dropped: list[int] = []
    sampler = _replica(MemoryEphemeralStore(), Clock(), size=2, on_dropped=dropped.append)
    for _ in range(3):
        sampler.offer(_seen())
    assert dropped == [1]


@pytest.mark.backends
async def test_redis_cut_off_drops_the_batch_counts_it_and_recovers(
    redis_url: str, redis_key_prefix: str, redis_proxy: TcpProxy
) -> None:
    store = RedisEphemeralStore.from_url(
        proxied_url(redis_url, redis_proxy), prefix=f"{redis_key_prefix}hub:eph:", timeout=0.5
    )
    dropped: list[int] = []
    sampler = _replica(store, Clock(), on_dropped=dropped.append)
    try:
        await redis_proxy.cut()
        sampler.offer(_seen())
        sampler.offer(_seen())
        with pytest.raises(BackendUnavailable):
            await sampler.flush()
        assert dropped == [2]
        with pytest.raises(BackendUnavailable):
            await sampler.records()
        await redis_proxy.restore()
        sampler.offer(_seen())
        assert len(await sampler.records()) == 1
    finally:
        await redis_proxy.restore()
        await store.aclose()
