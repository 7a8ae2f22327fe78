"""Active health checks against real loopback HTTP servers that fail, hang and stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web

from hub.config.model import HealthCheckSpec, TargetSpec, UpstreamSpec
from hub.errors import UpstreamUnavailable
from hub.upstream.health import HealthChecker
from hub.upstream.pool import Target, UpstreamPool


class FlakyServer:
    """A loopback server whose health endpoint answers with ``status`` or hangs."""

    def __init__(self) -> None:
        self.status = 200
        self.hang = False
        self.paths: list[str] = []
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.paths.append(request.path)
        if self.hang:
            await self._release.wait()
        if 300 <= self.status < 400:
            raise web.HTTPFound("/elsewhere")
        return web.Response(status=self.status, text="ok" if self.status < 400 else "broken")

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._release = asyncio.Event()


@pytest.fixture
async def servers() -> AsyncIterator[list[FlakyServer]]:
    started = [FlakyServer(), FlakyServer()]
    for server in started:
        await server.start()
    yield started
    for server in started:
        await server.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def make_pool(
    servers: list[FlakyServer],
    *,
    healthy_threshold: int = 2,
    unhealthy_threshold: int = 2,
    base: str = "",
) -> UpstreamPool:
    spec = UpstreamSpec(
        id="flaky",
        targets=tuple(TargetSpec(url=f"http://127.0.0.1:{s.port}{base}") for s in servers),
        health_check=HealthCheckSpec(
            path="/healthz",
            interval=0.05,
            timeout=0.2,
            healthy_threshold=healthy_threshold,
            unhealthy_threshold=unhealthy_threshold,
        ),
    )
    return UpstreamPool(spec)


async def eventually(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_thresholds_flip_health_both_ways(
    servers: list[FlakyServer], session: aiohttp.ClientSession
) -> None:
    pool = make_pool(servers, healthy_threshold=2, unhealthy_threshold=3)
    changes: list[tuple[int, bool]] = []
    checker = HealthChecker(pool, session, on_change=lambda t, ok: changes.append((t.port, ok)))
    bad, good = pool.targets
    servers[0].status = 500
    for _ in range(2):
        await checker.check_once()
    assert bad.healthy  # below the threshold
    await checker.check_once()
    assert not bad.healthy
    assert good.healthy
    servers[0].status = 204
    await checker.check_once()
    assert not bad.healthy
    await checker.check_once()
    assert bad.healthy
    assert changes == [(bad.port, False), (bad.port, True)]
    assert servers[0].paths == ["/healthz"] * 5


async def test_a_success_between_failures_resets_the_count(
    servers: list[FlakyServer], session: aiohttp.ClientSession
) -> None:
    pool = make_pool(servers[:1], unhealthy_threshold=2)
    checker = HealthChecker(pool, session)
    for status in (500, 200, 500, 200, 500):
        servers[0].status = status
        await checker.check_once()
    assert pool.targets[0].healthy


async def test_redirect_counts_as_success_and_is_not_followed(
    servers: list[FlakyServer], session: aiohttp.ClientSession
) -> None:
    pool = make_pool(servers[:1], unhealthy_threshold=1)
    servers[0].status = 302
    await HealthChecker(pool, session).check_once()
    assert pool.targets[0].healthy
    assert servers[0].paths == ["/healthz"]


async def test_base_path_is_part_of_the_health_url(
    servers: list[FlakyServer], session: aiohttp.ClientSession
) -> None:
    pool = make_pool(servers[:1], base="/svc/")
    await HealthChecker(pool, session).check_once()
    assert servers[0].paths == ["/svc/healthz"]


async def test_hanging_target_times_out(
    servers: list[FlakyServer], session: aiohttp.ClientSession
) -> None:
    pool = make_pool(servers, unhealthy_threshold=1)
    servers[1].hang = True
    async with asyncio.timeout(1.5):
        await HealthChecker(pool, session).check_once()
    assert [t.healthy for t in pool.targets] == [True, False]


async def test_stopped_target_is_unhealthy_and_all_down_is_unavailable(
    servers: list[FlakyServer], session: aiohttp.ClientSession
) -> None:
    pool = make_pool(servers, unhealthy_threshold=1)
    checker = HealthChecker(pool, session)
    await servers[0].stop()
    await checker.check_once()
    assert [t.healthy for t in pool.targets] == [False, True]
    assert all(pool.acquire().target is pool.targets[1] for _ in range(5))
    servers[1].status = 503
    await checker.check_once()
    with pytest.raises(UpstreamUnavailable) as caught:
        pool.acquire()
    assert caught.value.code == "upstream_unavailable"


async def test_background_checks_eject_and_restore(
    servers: list[FlakyServer], session: aiohttp.ClientSession
) -> None:
    pool = make_pool(servers, healthy_threshold=2, unhealthy_threshold=2)
    checker = HealthChecker(pool, session)
    flaky: Target = pool.targets[0]
    checker.start()
    checker.start()  # idempotent
    try:
        assert checker.running
        servers[0].status = 500
        await eventually(lambda: not flaky.healthy)
        port = servers[0].port
        await servers[0].stop()  # stops answering altogether
        await asyncio.sleep(0.15)
        assert not flaky.healthy
        await servers[0].start(port)
        servers[0].status = 200
        await eventually(lambda: flaky.healthy)
        assert pool.targets[1].healthy
    finally:
        await checker.stop()
    assert not checker.running
    await checker.stop()  # a second stop is harmless


async def test_failing_listener_does_not_stop_the_checks(
    servers: list[FlakyServer], session: aiohttp.ClientSession
) -> None:
    pool = make_pool(servers[:1], healthy_threshold=1, unhealthy_threshold=1)
    calls: list[bool] = []

    def explode(target: Target, healthy: bool) -> None:
        calls.append(healthy)
        raise RuntimeError("listener bug")

    checker = HealthChecker(pool, session, on_change=explode)
    checker.start()
    try:
        servers[0].status = 500
        await eventually(lambda: calls == [False])
        servers[0].status = 200
        await eventually(lambda: calls == [False, True])
    finally:
        await checker.stop()


def test_pool_without_health_check_is_refused() -> None:
    pool = UpstreamPool(UpstreamSpec(id="x", targets=(TargetSpec(url="http://127.0.0.1:1"),)))
    with pytest.raises(ValueError):
        HealthChecker(pool, None)  # type: ignore[arg-type]
