"""Contract suite for the ephemeral stores (memory and Redis), and the SSO state built on them.

Login sessions and pending authorization requests run over both stores, so what the sign-in
pages rely on (single use, expiry, rotation, hashed cookies) holds in production too.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from hub.backends.ephemeral.base import EphemeralStore
from hub.backends.ephemeral.memory import MemoryEphemeralStore
from hub.backends.ephemeral.redis import RedisEphemeralStore
from hub.backends.factory import build_ephemeral_store
from hub.errors import BackendUnavailable
from hub.identity.acr import (
    ACR_LEVELS,
    ACR_MFA,
    ACR_NATIONAL_IDP,
    ACR_PASSWORD,
    acr_rank,
    satisfies,
    weakest_known,
)
from hub.identity.authz_request import (
    REQUEST_SECONDS,
    AuthorizationRequest,
    AuthorizationRequests,
    redirect_with,
)
from hub.identity.sessions import (
    COOKIE_NAME,
    INSECURE_COOKIE_NAME,
    SessionManager,
    cookie_name,
)
from hub.ops.metrics import Metrics
from hub.runtime import Runtime
from hub.settings import Settings
from tests.fixtures_services import proxied_url
from tests.tcpproxy import TcpProxy

# The shortest lifetime a session's idle timer may have (SessionManager never sets below 1 s).
IDLE = 1.0


class FakeClock:
    """Wall-clock seconds that move only when told to (absolute lifetimes, request ages)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.backends)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[EphemeralStore]:
    if request.param == "memory":
        memory = MemoryEphemeralStore()
        yield memory
        await memory.aclose()
    else:
        # sync fixtures only: an async one cannot be started from inside this one
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_key_prefix")
        redis_store = RedisEphemeralStore.from_url(url, prefix=f"{prefix}hub:eph:")
        await redis_store.start()
        yield redis_store
        await redis_store.aclose()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


# ---- the contract: every store -------------------------------------------------------------


async def test_put_then_get_returns_an_equal_copy(store: EphemeralStore) -> None:
    value = {"a": 1, "nested": {"list": [1, "two", None]}, "flag": True}
    await store.put("k", value, 60)

    got = await store.get("k")
    assert got == value
    assert got is not value
    assert await store.get("absent") is None


async def test_put_replaces_the_previous_value(store: EphemeralStore) -> None:
    await store.put("k", {"v": 1}, 60)
    await store.put("k", {"v": 2}, 60)
    assert await store.get("k") == {"v": 2}


async def test_add_stores_only_when_the_key_is_free(store: EphemeralStore) -> None:
    assert await store.add("k", {"v": 1}, 60) is True
    assert await store.add("k", {"v": 2}, 60) is False
    assert await store.get("k") == {"v": 1}


async def test_concurrent_adds_have_exactly_one_winner(store: EphemeralStore) -> None:
    results = await asyncio.gather(*(store.add("k", {"n": n}, 60) for n in range(20)))
    assert results.count(True) == 1
    winner = results.index(True)
    assert await store.get("k") == {"n": winner}


async def test_a_capped_list_keeps_the_newest_items_oldest_first(store: EphemeralStore) -> None:
    assert await store.items("list") == []
    await store.append("list", [{"n": 1}, {"n": 2}], cap=3, ttl=60)
    await store.append("list", [{"n": 3}, {"n": 4}], cap=3, ttl=60)
    assert await store.items("list") == [{"n": 2}, {"n": 3}, {"n": 4}]
    await store.append("list", [], cap=3, ttl=60)  # nothing to add: unchanged
    assert await store.items("list") == [{"n": 2}, {"n": 3}, {"n": 4}]
    await store.append("list", [{"n": n} for n in range(5, 10)], cap=3, ttl=60)
    assert await store.items("list") == [{"n": 7}, {"n": 8}, {"n": 9}]

    await store.delete("list")
    assert await store.items("list") == []


async def test_a_capped_list_expires_unless_appended_to(store: EphemeralStore) -> None:
    await store.append("list", [{"n": 1}], cap=10, ttl=0.2)
    await asyncio.sleep(0.1)
    await store.append("list", [{"n": 2}], cap=10, ttl=0.2)  # renews the whole list
    await asyncio.sleep(0.15)
    assert await store.items("list") == [{"n": 1}, {"n": 2}]
    await asyncio.sleep(0.3)
    assert await store.items("list") == []


async def test_take_returns_the_value_once(store: EphemeralStore) -> None:
    await store.put("k", {"v": 1}, 60)
    assert await store.take("k") == {"v": 1}
    assert await store.take("k") is None
    assert await store.get("k") is None


async def test_take_is_single_use_under_concurrent_takers(store: EphemeralStore) -> None:
    await store.put("code", {"v": "secret"}, 60)

    taken = await asyncio.gather(*(store.take("code") for _ in range(20)))

    assert [value for value in taken if value is not None] == [{"v": "secret"}]


async def test_records_expire_after_their_ttl(store: EphemeralStore) -> None:
    await store.put("short", {"v": 1}, 0.2)
    await store.put("long", {"v": 2}, 60)
    await asyncio.sleep(0.4)

    assert await store.get("short") is None
    assert await store.take("short") is None
    assert await store.touch("short", 60) is False
    assert await store.get("long") == {"v": 2}


async def test_an_expired_key_is_free_for_add(store: EphemeralStore) -> None:
    await store.add("k", {"v": 1}, 0.2)
    await asyncio.sleep(0.4)
    assert await store.add("k", {"v": 2}, 60) is True
    assert await store.get("k") == {"v": 2}


async def test_touch_gives_a_new_lifetime(store: EphemeralStore) -> None:
    await store.put("k", {"v": 1}, 0.3)
    assert await store.touch("k", 60) is True
    await asyncio.sleep(0.5)
    assert await store.get("k") == {"v": 1}

    assert await store.touch("k", 0.2) is True  # touch may shorten, too
    await asyncio.sleep(0.4)
    assert await store.get("k") is None
    assert await store.touch("absent", 60) is False


async def test_get_touch_reads_and_renews_in_one_step(store: EphemeralStore) -> None:
    await store.put("k", {"v": 1}, 0.3)
    assert await store.get_touch("k", 60) == {"v": 1}
    await asyncio.sleep(0.5)
    assert await store.get("k") == {"v": 1}  # renewed by the read

    assert await store.get_touch("k", 0.2) == {"v": 1}  # may shorten, too
    await asyncio.sleep(0.4)
    assert await store.get_touch("k", 60) is None
    assert await store.get("k") is None  # a miss creates nothing


async def test_delete_removes_and_is_idempotent(store: EphemeralStore) -> None:
    await store.put("k", {"v": 1}, 60)
    await store.delete("k")
    await store.delete("k")
    assert await store.get("k") is None


async def test_check_passes_on_a_working_store(store: EphemeralStore) -> None:
    await store.check()


# ---- Redis only ----------------------------------------------------------------------------


@pytest.mark.backends
async def test_redis_keys_are_prefixed_and_carry_an_expiry(
    redis_url: str, redis_key_prefix: str, redis_client: aioredis.Redis
) -> None:
    prefix = f"{redis_key_prefix}hub:eph:"
    store = RedisEphemeralStore.from_url(redis_url, prefix=prefix)
    try:
        await store.put("session:x", {"v": 1}, 30)
        assert await redis_client.exists(prefix + "session:x") == 1
        assert 0 < await redis_client.pttl(prefix + "session:x") <= 30_000
        assert await redis_client.get(prefix + "session:x") == b'{"v":1}'
    finally:
        await store.aclose()


@pytest.mark.backends
async def test_a_value_that_is_not_a_json_object_reads_as_absent(
    redis_url: str, redis_key_prefix: str, redis_client: aioredis.Redis
) -> None:
    prefix = f"{redis_key_prefix}hub:eph:"
    store = RedisEphemeralStore.from_url(redis_url, prefix=prefix)
    try:
        await redis_client.set(prefix + "junk", b"not json", px=60_000)
        await redis_client.set(prefix + "list", b"[1, 2]", px=60_000)
        assert await store.get("junk") is None
        assert await store.take("list") is None
    finally:
        await store.aclose()


@pytest.mark.backends
async def test_redis_cut_off_raises_backend_unavailable_then_recovers(
    redis_url: str, redis_key_prefix: str, redis_proxy: TcpProxy
) -> None:
    store = RedisEphemeralStore.from_url(
        proxied_url(redis_url, redis_proxy), prefix=f"{redis_key_prefix}hub:eph:", timeout=0.5
    )
    try:
        await store.put("k", {"v": 1}, 60)
        await redis_proxy.cut()
        operations = [
            store.put("k", {"v": 2}, 60),
            store.add("other", {"v": 1}, 60),
            store.get("k"),
            store.take("k"),
            store.delete("k"),
            store.touch("k", 60),
            store.check(),
        ]
        for operation in operations:
            with pytest.raises(BackendUnavailable) as caught:
                await operation
            assert caught.value.status == 503
            assert caught.value.__cause__ is not None

        await redis_proxy.restore()
        assert await store.get("k") == {"v": 1}
        await store.check()
    finally:
        await redis_proxy.restore()
        await store.aclose()


def test_factory_picks_memory_without_redis_url() -> None:
    assert isinstance(build_ephemeral_store(Settings()), MemoryEphemeralStore)


async def test_factory_picks_redis_with_redis_url() -> None:
    store = build_ephemeral_store(Settings(redis_url="redis://127.0.0.1:6379/0"))
    try:
        assert isinstance(store, RedisEphemeralStore)
    finally:
        await store.aclose()


# ---- login sessions, over both stores -------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sessions(store: EphemeralStore, clock: FakeClock) -> SessionManager:
    return SessionManager(store, idle_seconds=1800, max_seconds=3600, clock=clock)


async def test_a_session_is_created_and_read_back(
    sessions: SessionManager, clock: FakeClock
) -> None:
    raw, session = await sessions.create(
        person_id="per_1", acr=ACR_PASSWORD, amr=["pwd", "pwd"], auth_time=1_700_000_000
    )

    assert session.amr == ("pwd",)
    assert session.auth_time == 1_700_000_000
    assert session.expires_at == clock.now + 3600
    assert await sessions.get(raw) == session
    assert raw != session.sid


async def test_unknown_empty_and_oversized_cookies_read_as_no_session(
    sessions: SessionManager,
) -> None:
    await sessions.create(person_id="per_1", acr=ACR_PASSWORD, amr=["pwd"])
    for raw in (None, "", "x" * 43, "x" * 500):
        assert await sessions.get(raw) is None


async def test_signing_in_again_replaces_and_ends_the_old_session(
    sessions: SessionManager,
) -> None:
    old_raw, old = await sessions.create(person_id="per_1", acr=ACR_PASSWORD, amr=["pwd"])

    new_raw, new = await sessions.create(
        person_id="per_1", acr=ACR_MFA, amr=["pwd", "otp"], replaces=old_raw
    )

    assert new_raw != old_raw
    assert new.sid != old.sid
    assert await sessions.get(old_raw) is None
    assert await sessions.get(new_raw) == new


async def test_end_removes_the_session_once(sessions: SessionManager) -> None:
    raw, session = await sessions.create(person_id="per_1", acr=ACR_PASSWORD, amr=["pwd"])

    assert await sessions.end(raw) == session
    assert await sessions.end(raw) is None
    assert await sessions.get(raw) is None
    assert await sessions.end("") is None


async def test_a_session_ends_at_its_absolute_lifetime_even_when_used(
    sessions: SessionManager, clock: FakeClock
) -> None:
    raw, _ = await sessions.create(person_id="per_1", acr=ACR_PASSWORD, amr=["pwd"])
    for _ in range(3):
        clock.advance(1000)
        assert await sessions.get(raw) is not None  # each use renews the idle timer

    clock.advance(600)  # 3600 s after sign-in
    assert await sessions.get(raw) is None


async def test_an_idle_session_expires_and_use_keeps_it_alive(store: EphemeralStore) -> None:
    sessions = SessionManager(store, idle_seconds=IDLE, max_seconds=3600)
    raw_used, _ = await sessions.create(person_id="per_1", acr=ACR_PASSWORD, amr=["pwd"])
    raw_idle, _ = await sessions.create(person_id="per_2", acr=ACR_PASSWORD, amr=["pwd"])

    for _ in range(3):
        await asyncio.sleep(IDLE * 0.5)
        assert await sessions.get(raw_used) is not None

    assert await sessions.get(raw_idle) is None


async def test_update_keeps_extra_data_with_the_session(sessions: SessionManager) -> None:
    raw, session = await sessions.create(person_id="per_1", acr=ACR_PASSWORD, amr=["pwd"])
    session.extra["clients"] = ["cli_1"]

    await sessions.update(raw, session)

    stored = await sessions.get(raw)
    assert stored is not None
    assert stored.extra == {"clients": ["cli_1"]}


async def test_a_session_is_kept_under_the_hash_of_its_cookie(
    store: EphemeralStore, sessions: SessionManager
) -> None:
    raw, session = await sessions.create(person_id="per_1", acr=ACR_PASSWORD, amr=["pwd"])
    key = "session:" + hashlib.sha256(raw.encode()).hexdigest()

    stored = await store.get(key)
    assert stored is not None
    assert stored["sid"] == session.sid
    assert raw not in repr(stored)
    assert await store.get("session:" + raw) is None


async def test_a_corrupt_session_record_is_dropped(
    store: EphemeralStore, sessions: SessionManager
) -> None:
    raw, _ = await sessions.create(person_id="per_1", acr=ACR_PASSWORD, amr=["pwd"])
    key = "session:" + hashlib.sha256(raw.encode()).hexdigest()
    await store.put(key, {"sid": "x"}, 60)

    assert await sessions.get(raw) is None
    assert await store.get(key) is None


async def test_end_all_refuses_the_persons_earlier_sessions_and_only_theirs(
    store: EphemeralStore, sessions: SessionManager, clock: FakeClock
) -> None:
    first, _ = await sessions.create(person_id="per_1", acr=ACR_PASSWORD, amr=["pwd"])
    second, _ = await sessions.create(person_id="per_1", acr=ACR_MFA, amr=["pwd", "otp"])
    other, other_session = await sessions.create(person_id="per_2", acr=ACR_PASSWORD, amr=["pwd"])
    clock.advance(5)

    await sessions.end_all("per_1")

    assert await sessions.get(first) is None
    assert await sessions.get(second) is None
    # Refused sessions are deleted, not only hidden.
    assert await store.get("session:" + hashlib.sha256(first.encode()).hexdigest()) is None
    assert await sessions.get(other) == other_session
    # A sign-in after the cut-off works, even in the same clock tick.
    after, after_session = await sessions.create(person_id="per_1", acr=ACR_PASSWORD, amr=["pwd"])
    assert await sessions.get(after) == after_session
    clock.advance(1)
    assert await sessions.get(after) == after_session


async def test_a_later_end_all_moves_the_cut_off_forward(
    sessions: SessionManager, clock: FakeClock
) -> None:
    await sessions.end_all("per_1")
    clock.advance(10)
    between, _ = await sessions.create(person_id="per_1", acr=ACR_PASSWORD, amr=["pwd"])
    assert await sessions.get(between) is not None
    clock.advance(10)

    await sessions.end_all("per_1")

    assert await sessions.get(between) is None


async def test_the_cut_off_lives_as_long_as_a_session_can(
    store: EphemeralStore, sessions: SessionManager, clock: FakeClock
) -> None:
    await sessions.end_all("per_1")

    assert await store.get("session-cutoff:per_1") == {"at": clock.now}
    if isinstance(store, MemoryEphemeralStore):
        expires_at, _value = store._data["session-cutoff:per_1"]
        assert expires_at == pytest.approx(time.monotonic() + sessions.max_seconds, abs=5)


async def test_an_unreadable_cut_off_refuses_the_persons_sessions(
    store: EphemeralStore, sessions: SessionManager
) -> None:
    raw, _ = await sessions.create(person_id="per_1", acr=ACR_PASSWORD, amr=["pwd"])
    await store.put("session-cutoff:per_1", {"at": "soon"}, 60)

    assert await sessions.get(raw) is None


@pytest.mark.backends
async def test_end_all_reaches_a_session_made_by_another_replica(
    redis_url: str, redis_key_prefix: str, redis_client: aioredis.Redis
) -> None:
    prefix = f"{redis_key_prefix}hub:eph:"
    replica_a = RedisEphemeralStore.from_url(redis_url, prefix=prefix)
    replica_b = RedisEphemeralStore.from_url(redis_url, prefix=prefix)
    on_a = SessionManager(replica_a, idle_seconds=1800, max_seconds=3600)
    on_b = SessionManager(replica_b, idle_seconds=1800, max_seconds=3600)
    try:
        raw, _ = await on_a.create(person_id="per_1", acr=ACR_PASSWORD, amr=["pwd"])
        assert await on_b.get(raw) is not None

        await on_b.end_all("per_1")

        assert await on_a.get(raw) is None
        ttl = await redis_client.pttl(f"{prefix}session-cutoff:per_1")
        assert 3_590_000 < ttl <= 3_600_000
        again, _ = await on_a.create(person_id="per_1", acr=ACR_PASSWORD, amr=["pwd"])
        assert await on_b.get(again) is not None
    finally:
        await replica_a.aclose()
        await replica_b.aclose()


async def test_a_cached_session_is_read_once_per_cache_window(
    store: EphemeralStore, clock: FakeClock
) -> None:
    cached = SessionManager(
        store, idle_seconds=1800, max_seconds=3600, cache_seconds=1.0, clock=clock
    )
    raw, session = await cached.create(person_id="per_1", acr=ACR_PASSWORD, amr=["pwd"])
    assert await cached.get(raw) == session

    # Another replica ends it behind this one's back: trusted only for the cache window.
    other = SessionManager(store, idle_seconds=1800, max_seconds=3600, clock=clock)
    await other.end(raw)
    clock.advance(0.5)
    assert await cached.get(raw) == session
    clock.advance(0.6)
    assert await cached.get(raw) is None


async def test_ending_a_session_here_clears_it_from_the_cache_at_once(
    store: EphemeralStore, clock: FakeClock
) -> None:
    cached = SessionManager(
        store, idle_seconds=1800, max_seconds=3600, cache_seconds=30.0, clock=clock
    )
    raw, _ = await cached.create(person_id="per_1", acr=ACR_PASSWORD, amr=["pwd"])
    other_raw, other = await cached.create(person_id="per_2", acr=ACR_PASSWORD, amr=["pwd"])
    assert await cached.get(raw) is not None
    assert await cached.get(other_raw) is not None

    await cached.end(raw)
    assert await cached.get(raw) is None

    again, _ = await cached.create(person_id="per_1", acr=ACR_PASSWORD, amr=["pwd"])
    assert await cached.get(again) is not None
    clock.advance(0.001)
    await cached.end_all("per_1")
    assert await cached.get(again) is None
    assert await cached.get(other_raw) == other  # another person's session is untouched


async def test_a_cached_session_still_ends_at_its_absolute_lifetime(
    store: EphemeralStore, clock: FakeClock
) -> None:
    cached = SessionManager(
        store, idle_seconds=1800, max_seconds=60, cache_seconds=60.0, clock=clock
    )
    raw, _ = await cached.create(person_id="per_1", acr=ACR_PASSWORD, amr=["pwd"])
    assert await cached.get(raw) is not None
    clock.advance(61)
    assert await cached.get(raw) is None


def test_cookie_names_follow_the_secure_setting() -> None:
    assert cookie_name(True) == COOKIE_NAME == "__Host-hub_session"
    assert cookie_name(False) == INSECURE_COOKIE_NAME == "hub_session"


@pytest.mark.backends
async def test_the_raw_cookie_never_reaches_redis(
    redis_url: str, redis_key_prefix: str, redis_client: aioredis.Redis
) -> None:
    prefix = f"{redis_key_prefix}hub:eph:"
    store = RedisEphemeralStore.from_url(redis_url, prefix=prefix)
    sessions = SessionManager(store, idle_seconds=1800, max_seconds=3600)
    try:
        raw, session = await sessions.create(person_id="per_1", acr=ACR_PASSWORD, amr=["pwd"])
        keys = [key async for key in redis_client.scan_iter(match=f"{prefix}*")]
        assert len(keys) == 1
        assert raw.encode() not in keys[0]
        value = await redis_client.get(keys[0])
        assert value is not None
        assert raw.encode() not in value
        assert session.sid.encode() in value
    finally:
        await store.aclose()


# ---- pending authorization requests, over both stores ---------------------------------------


def _request(
    requests: AuthorizationRequests, clock: FakeClock, **changes: object
) -> AuthorizationRequest:
    values: dict[str, object] = {
        "rid": requests.new_rid(),
        "client_id": "cli_1",
        "redirect_uri": "https://app.example/cb",
        "scopes": ("openid", "profile"),
        "state": "s-1",
        "nonce": "n-1",
        "code_challenge": "c" * 43,
        "code_challenge_method": "S256",
        "acr": ACR_MFA,
        "prompt": ("login",),
        "max_age": 300,
        "created_at": clock.now,
    }
    values.update(changes)
    return AuthorizationRequest(**values)  # type: ignore[arg-type]


@pytest.fixture
def requests(store: EphemeralStore, clock: FakeClock) -> AuthorizationRequests:
    return AuthorizationRequests(store, clock=clock)


async def test_a_saved_request_loads_back_until_finished(
    requests: AuthorizationRequests, clock: FakeClock
) -> None:
    request = _request(requests, clock)
    await requests.save(request)

    assert await requests.load(request.rid) == request
    assert await requests.load(request.rid) == request  # loading does not use it up
    assert await requests.finish(request.rid) == request
    assert await requests.load(request.rid) is None
    assert await requests.finish(request.rid) is None


async def test_finish_is_single_use_under_concurrency(
    requests: AuthorizationRequests, clock: FakeClock
) -> None:
    request = _request(requests, clock)
    await requests.save(request)

    finished = await asyncio.gather(*(requests.finish(request.rid) for _ in range(20)))

    assert [value for value in finished if value is not None] == [request]


async def test_unknown_and_bad_rids_load_nothing(requests: AuthorizationRequests) -> None:
    for rid in (None, "", "nope", "x" * 65):
        assert await requests.load(rid) is None
    assert await requests.finish("") is None
    assert await requests.finish("x" * 65) is None


async def test_rids_are_fresh_and_unguessable(requests: AuthorizationRequests) -> None:
    rids = {requests.new_rid() for _ in range(100)}
    assert len(rids) == 100
    assert all(len(rid) >= 32 for rid in rids)


async def test_an_expired_request_is_not_saved(
    requests: AuthorizationRequests, clock: FakeClock
) -> None:
    request = _request(requests, clock, created_at=clock.now - REQUEST_SECONDS - 1)
    await requests.save(request)
    assert await requests.load(request.rid) is None


async def test_a_request_lives_only_what_is_left_of_its_lifetime(store: EphemeralStore) -> None:
    clock = FakeClock()
    requests = AuthorizationRequests(store, clock=clock)
    # Created long ago: 0.3 s of its lifetime remain when it is saved.
    request = _request(requests, clock, created_at=clock.now - REQUEST_SECONDS + 0.3)
    await requests.save(request)
    assert await requests.load(request.rid) == request

    await asyncio.sleep(0.5)
    assert await requests.load(request.rid) is None


def test_redirect_with_adds_state_and_issuer() -> None:
    clock = FakeClock()
    requests = AuthorizationRequests(MemoryEphemeralStore(), clock=clock)
    with_query = _request(requests, clock, redirect_uri="https://app.example/cb?x=1")
    assert redirect_with(with_query, "https://hub.example", code="abc") == (
        "https://app.example/cb?x=1&code=abc&state=s-1&iss=https%3A%2F%2Fhub.example"
    )
    stateless = _request(requests, clock, state=None)
    assert redirect_with(stateless, "https://hub.example", error="access_denied") == (
        "https://app.example/cb?error=access_denied&iss=https%3A%2F%2Fhub.example"
    )


# ---- acr ------------------------------------------------------------------------------------


def test_acr_levels_are_ordered_weakest_first() -> None:
    assert ACR_LEVELS == (ACR_PASSWORD, ACR_MFA, ACR_NATIONAL_IDP)
    assert [acr_rank(level) for level in ACR_LEVELS] == [1, 2, 3]
    assert acr_rank(None) == acr_rank("") == acr_rank("urn:other:loa:4") == 0


@pytest.mark.parametrize(
    ("acr", "required", "expected"),
    [
        (ACR_PASSWORD, None, True),
        (None, None, True),
        (ACR_PASSWORD, ACR_PASSWORD, True),
        (ACR_MFA, ACR_PASSWORD, True),
        (ACR_NATIONAL_IDP, ACR_MFA, True),
        (ACR_PASSWORD, ACR_MFA, False),
        (ACR_MFA, ACR_NATIONAL_IDP, False),
        (None, ACR_PASSWORD, False),
        ("urn:other:loa:4", ACR_PASSWORD, False),  # an unknown value proves nothing
        # An unknown requirement still needs a known level: nothing unknown satisfies it.
        (ACR_PASSWORD, "urn:other:loa:4", True),
        ("urn:other:loa:4", "urn:other:loa:4", False),
    ],
)
def test_satisfies(acr: str | None, required: str | None, expected: bool) -> None:
    assert satisfies(acr, required) is expected


def test_weakest_known_is_the_bar_of_an_acr_values_request() -> None:
    assert weakest_known([ACR_NATIONAL_IDP, ACR_MFA]) == ACR_MFA
    assert weakest_known(["urn:other", ACR_NATIONAL_IDP]) == ACR_NATIONAL_IDP
    assert weakest_known(["urn:other"]) is None
    assert weakest_known([]) is None


# ---- the runtime's wiring --------------------------------------------------------------------


async def test_the_runtime_builds_the_sso_state_from_the_settings() -> None:
    settings = Settings(session_idle_seconds=60, session_max_seconds=600)
    runtime = Runtime(settings, Metrics())
    assert isinstance(runtime.ephemeral, MemoryEphemeralStore)
    assert runtime.sessions.idle_seconds == 60
    assert runtime.sessions.max_seconds == 600
    assert isinstance(runtime.authz_requests, AuthorizationRequests)
    await runtime.aclose()

    shared = Runtime(Settings(redis_url="redis://127.0.0.1:6379/15"), Metrics())
    assert isinstance(shared.ephemeral, RedisEphemeralStore)
    await shared.aclose()
