"""The upstream registry: pools reused, replaced and drained across configuration versions."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web

from hub.config.model import BreakerSpec, HealthCheckSpec, TargetSpec, UpstreamSpec
from hub.errors import ConfigError
from hub.upstream.breaker import BreakerState
from hub.upstream.registry import UpstreamRegistry, default_connector


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spec(upstream_id: str = "echo", port: int = 9101, **changes: object) -> UpstreamSpec:
    return UpstreamSpec(
        id=upstream_id,
        targets=(TargetSpec(url=f"http://127.0.0.1:{port}"),),
        **changes,  # type: ignore[arg-type]
    )


async def eventually(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@pytest.fixture
async def registry() -> AsyncIterator[UpstreamRegistry]:
    reg = UpstreamRegistry(grace_seconds=5)
    yield reg
    await reg.aclose()


async def test_apply_builds_one_configured_session_per_pool(registry: UpstreamRegistry) -> None:
    pools = await registry.apply([spec("a", max_connections=7, keepalive_seconds=12), spec("b")])
    assert set(pools) == {"a", "b"}
    assert registry.pools == pools
    a = registry.get("a")
    assert a is not None
    assert registry.get("missing") is None
    session = a.session
    assert session is not None
    assert session is not pools["b"].session
    connector = session.connector
    assert isinstance(connector, aiohttp.TCPConnector)
    assert connector.limit == 7
    assert session.auto_decompress is False
    assert isinstance(session.cookie_jar, aiohttp.DummyCookieJar)
    assert {"User-Agent", "Accept-Encoding"} <= set(session.skip_auto_headers)
    assert session.timeout.total is None


async def test_session_adds_no_headers_of_its_own(registry: UpstreamRegistry) -> None:
    seen: dict[str, str] = {}

    async def handler(request: web.Request) -> web.Response:
        seen.update(request.headers)
        return web.Response(body=b"x")

    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        port = runner.addresses[0][1]
        pool = (await registry.apply([spec(port=port)]))["echo"]
        assert pool.session is not None
        lease = pool.acquire()
        async with pool.session.post(lease.target.url("/"), data=b"body") as response:
            assert await response.read() == b"x"
        lease.release(True)
    finally:
        await runner.cleanup()
    lowered = {k.lower() for k in seen}
    assert not lowered & {"user-agent", "accept-encoding", "accept", "content-type"}


async def test_unchanged_specs_keep_their_pool_and_state(registry: UpstreamRegistry) -> None:
    first = await registry.apply([spec("a", breaker=BreakerSpec(failure_threshold=1)), spec("b")])
    pool_a = first["a"]
    pool_a.acquire().release(False)
    assert pool_a.targets[0].breaker.state is BreakerState.OPEN
    second = await registry.apply(
        [spec("a", breaker=BreakerSpec(failure_threshold=1)), spec("b", port=9102)]
    )
    assert second["a"] is pool_a
    assert pool_a.targets[0].breaker.state is BreakerState.OPEN
    assert second["b"] is not first["b"]
    assert second["b"].targets[0].port == 9102
    assert first["b"].session is not None
    await eventually(lambda: first["b"].session is not None and first["b"].session.closed)
    assert pool_a.session is not None
    assert not pool_a.session.closed


async def test_replaced_pool_is_closed_only_after_its_lease_is_released(
    registry: UpstreamRegistry,
) -> None:
    old = (await registry.apply([spec(max_concurrent=10)]))["echo"]
    lease = old.acquire()
    new = (await registry.apply([spec(max_concurrent=20)]))["echo"]
    assert new is not old
    assert registry.get("echo") is new
    await asyncio.sleep(0.05)
    assert old.session is not None
    assert not old.session.closed
    assert registry.retiring == 1
    # The request served by the old version can still retry on its pool.
    retry = old.acquire(exclude=(lease.target,))
    lease.release(True)
    await asyncio.sleep(0.05)
    assert not old.session.closed
    retry.release(None)
    await eventually(lambda: old.session is not None and old.session.closed)
    await eventually(lambda: registry.retiring == 0)


async def test_removed_pool_is_drained_then_closed(registry: UpstreamRegistry) -> None:
    pools = await registry.apply([spec("a"), spec("b")])
    lease = pools["b"].acquire()
    remaining = await registry.apply([spec("a")])
    assert set(remaining) == {"a"}
    assert registry.get("b") is None
    session = pools["b"].session
    assert session is not None
    assert not session.closed
    lease.release(None)
    await eventually(lambda: session.closed)


async def test_grace_period_bounds_the_drain() -> None:
    registry = UpstreamRegistry(grace_seconds=0.05)
    try:
        old = (await registry.apply([spec()]))["echo"]
        old.acquire()  # never released
        await registry.apply([])
        await eventually(lambda: old.session is not None and old.session.closed, timeout=1)
    finally:
        await registry.aclose()


async def test_health_checker_runs_and_stops_with_its_pool(registry: UpstreamRegistry) -> None:
    dead = free_port()
    checked = spec(
        port=dead,
        health_check=HealthCheckSpec(interval=0.02, timeout=0.2, unhealthy_threshold=1),
    )
    pool = (await registry.apply([checked]))["echo"]
    await eventually(lambda: not pool.targets[0].healthy)
    # Replacing the pool stops its checker: the old target's health is no longer updated.
    await registry.apply([spec(port=dead)])
    await eventually(lambda: pool.session is not None and pool.session.closed)
    pool.targets[0].healthy = True
    await asyncio.sleep(0.1)
    assert pool.targets[0].healthy
    assert registry.get("echo") is not pool
    replacement = registry.get("echo")
    assert replacement is not None
    assert replacement.targets[0].healthy  # no checks configured any more


async def test_health_change_listener_is_wired() -> None:
    changes: list[bool] = []
    registry = UpstreamRegistry(on_health_change=lambda target, ok: changes.append(ok))
    try:
        await registry.apply(
            [
                spec(
                    port=free_port(),
                    health_check=HealthCheckSpec(interval=0.02, timeout=0.2, unhealthy_threshold=1),
                )
            ]
        )
        await eventually(lambda: changes == [False])
    finally:
        await registry.aclose()


async def test_breaker_listener_is_wired() -> None:
    seen: list[tuple[str, str, BreakerState]] = []
    registry = UpstreamRegistry(
        on_breaker_change=lambda uid, target, old, new: seen.append((uid, target.origin, new))
    )
    try:
        pool = (await registry.apply([spec(breaker=BreakerSpec(failure_threshold=1))]))["echo"]
        pool.acquire().release(False)
        assert seen == [("echo", "http://127.0.0.1:9101", BreakerState.OPEN)]
    finally:
        await registry.aclose()


async def test_bad_apply_changes_nothing_and_leaks_nothing() -> None:
    connectors: list[aiohttp.BaseConnector] = []

    def factory(upstream: UpstreamSpec) -> aiohttp.BaseConnector:
        connector = default_connector(upstream)
        connectors.append(connector)
        return connector

    registry = UpstreamRegistry(connector_factory=factory)
    try:
        before = await registry.apply([spec("a")])
        bad = UpstreamSpec(id="c", targets=(TargetSpec(url="ftp://nope"),))
        with pytest.raises(ConfigError):
            await registry.apply([spec("a"), spec("b"), bad])
        with pytest.raises(ValueError):
            await registry.apply([spec("a"), spec("a")])
        assert registry.pools == before
        assert len(connectors) == 2  # none for "c": its bad URL fails before a session exists
        assert not connectors[0].closed
        assert connectors[1].closed  # "b" was built for the failed apply, then closed
    finally:
        await registry.aclose()
    assert all(c.closed for c in connectors)


async def test_aclose_closes_live_and_retiring_pools() -> None:
    registry = UpstreamRegistry(grace_seconds=30)
    old = (await registry.apply([spec(max_concurrent=1)]))["echo"]
    old.acquire()
    live = (await registry.apply([spec(max_concurrent=2)]))["echo"]
    await registry.aclose()
    assert old.session is not None
    assert live.session is not None
    assert old.session.closed
    assert live.session.closed
    assert registry.pools == {}
    assert registry.retiring == 0
    with pytest.raises(RuntimeError):
        await registry.apply([spec()])
