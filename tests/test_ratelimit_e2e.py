"""Rate limits through a running hub: headers, refusals that cost nothing, and Redis cut under load.

Two hubs: one embedded (in-process limiter), one whose Redis sits behind a :class:`TcpProxy`
that the outage test cuts and restores while traffic flows (the shared Redis is never touched).
Route ids carry a random suffix, so buckets left in Redis by earlier runs cannot interfere.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures_services import proxied_url, service_address
from tests.helpers import LoopThread, metric, wait_until
from tests.hubproc import HubProcess, run_hub, write_policies
from tests.tcpproxy import TcpProxy
from tests.upstreams import UpstreamServer

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
LIMITS: dict[str, dict[str, Any]] = {
    "headers": {"rate": 2, "period": 60, "burst": 1},
    "patient": {"rate": 1, "period": 1},
    "load": {"rate": 10_000, "period": 1, "burst": 10_000},
    "share": {"rate": 4, "period": 60, "burst": 3},  # four at once; two per replica of two
    "open": {"rate": 1, "period": 60, "fallback": "open"},
    "closed": {"rate": 1000, "period": 1, "burst": 100, "fallback": "closed"},
}


@dataclass
class LimitedHub:
    backend: str
    hub: HubProcess
    client: httpx.Client
    loop: LoopThread | None = None
    redis_proxy: TcpProxy | None = None

    def get(self, name: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(f"/{name}/x", **kwargs)


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    server = UpstreamServer("limited").start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory, upstream: UpstreamServer) -> Path:
    return write_policies(
        tmp_path_factory.mktemp("ratelimit") / "policies",
        upstreams=[{"id": "limited", "targets": [{"url": upstream.url}]}],
        routes=[
            {
                "id": f"{name}-{RUN}",
                "prefix": f"/{name}/",
                "upstream": "limited",
                "strip_prefix": True,
                "rate_limit": spec,
            }
            for name, spec in LIMITS.items()
        ],
    )


@pytest.fixture(scope="module")
def embedded_hub(tmp_path_factory: pytest.TempPathFactory, policies: Path) -> Iterator[LimitedHub]:
    with (
        run_hub(tmp_path_factory.mktemp("embedded"), policies) as hub,
        httpx.Client(base_url=hub.url, timeout=10) as client,
    ):
        yield LimitedHub(backend="embedded", hub=hub, client=client)


@pytest.fixture(scope="module")
def redis_hub(
    tmp_path_factory: pytest.TempPathFactory, policies: Path, redis_url: str
) -> Iterator[LimitedHub]:
    loop = LoopThread()
    host, port = service_address(redis_url)
    proxy = TcpProxy(target_host=host, target_port=port)
    try:
        loop.run(proxy.start())
        env = {"HUB_REDIS_URL": proxied_url(redis_url, proxy), "HUB_REPLICAS": "2"}
        with (
            run_hub(tmp_path_factory.mktemp("redis"), policies, env=env) as hub,
            httpx.Client(base_url=hub.url, timeout=10) as client,
        ):
            yield LimitedHub(backend="redis", hub=hub, client=client, loop=loop, redis_proxy=proxy)
    finally:
        loop.run(proxy.aclose())
        loop.close()


@pytest.fixture(
    scope="module",
    params=[pytest.param("embedded"), pytest.param("redis", marks=pytest.mark.backends)],
)
def limited(request: pytest.FixtureRequest) -> LimitedHub:
    result: LimitedHub = request.getfixturevalue(f"{request.param}_hub")
    return result


def test_ratelimit_headers_on_allowed_and_refused_requests(limited: LimitedHub) -> None:
    first, second, refused = (limited.get("headers") for _ in range(3))
    assert (first.status_code, second.status_code) == (200, 200)
    for response in (first, second, refused):
        assert response.headers["RateLimit-Policy"] == '"route";q=2;w=60'
    assert first.headers["RateLimit"].startswith('"route";r=1;t=')
    assert second.headers["RateLimit"].startswith('"route";r=0;t=')
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "rate_limited"
    assert refused.headers["RateLimit"].startswith('"route";r=0;t=')
    assert 1 <= int(refused.headers["Retry-After"]) <= 30  # T = 30 s; the bucket holds two


def test_refused_requests_do_not_consume_the_allowance(limited: LimitedHub) -> None:
    # one a second, no burst: twenty refusals counted would lock the client out for 20 s
    started = time.monotonic()
    assert limited.get("patient").status_code == 200
    refused = [limited.get("patient") for _ in range(20)]
    assert time.monotonic() - started < 0.9, "too slow for the refusals to land in one interval"
    assert {r.status_code for r in refused} == {429}
    assert {r.headers["Retry-After"] for r in refused} == {"1"}
    time.sleep(max(0.0, started + 1.05 - time.monotonic()))
    assert limited.get("patient").status_code == 200


class Load:
    """Two client threads requesting a generously limited route until stopped."""

    def __init__(self, url: str) -> None:
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(url,)) for _ in range(2)]

    def _run(self, url: str) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            while not self._stop.is_set():
                self.statuses.append(client.get("/load/x").status_code)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)


@pytest.mark.backends
def test_redis_cut_under_load_serves_by_each_fallback_and_recovers(redis_hub: LimitedHub) -> None:
    hub, proxy, loop = redis_hub, redis_hub.redis_proxy, redis_hub.loop
    assert proxy is not None
    assert loop is not None
    client = hub.client
    pid = hub.hub.process.pid
    assert hub.get("open").status_code == 200
    assert hub.get("open").status_code == 429  # Redis enforces the open route's limit
    assert hub.get("closed").status_code == 200
    assert metric(client, "hub_limiter_fallback_active") == 0
    with Load(hub.hub.url) as load:
        wait_until(lambda: len(load.statuses) > 20)
        loop.run(proxy.cut())
        try:
            wait_until(lambda: metric(client, "hub_limiter_fallback_active") == 1, timeout=10)
            # local: each of the two replicas allows half of the four at once
            share = [hub.get("share") for _ in range(3)]
            assert [r.status_code for r in share] == [200, 200, 429]
            assert share[0].headers["RateLimit-Policy"].startswith('"route";q=2;')
            assert share[2].json()["code"] == "rate_limited"
            # open: the exhausted limit lets everything through
            assert {hub.get("open").status_code for _ in range(3)} == {200}
            # closed: 503 with its own code and Retry-After, not a 500 or an auth error
            closed = hub.get("closed")
            assert closed.status_code == 503
            assert closed.json()["code"] == "limiter_unavailable"
            assert closed.headers["content-type"].startswith("application/problem+json")
            assert int(closed.headers["Retry-After"]) >= 1
            readiness = client.get("/readyz").json()["checks"]["redis"]
            assert readiness == {
                "ok": True,
                "detail": "fallback: closed, local, open (redis unreachable)",
            }
            for mode in ("local", "open", "closed"):
                assert (metric(client, "hub_limiter_unavailable_total", mode=mode) or 0) > 0
            during = len(load.statuses)
            wait_until(lambda: len(load.statuses) > during + 20)
        finally:
            loop.run(proxy.restore())
        wait_until(lambda: metric(client, "hub_limiter_fallback_active") == 0, timeout=10)
        after = len(load.statuses)
        wait_until(lambda: len(load.statuses) > after + 20)
    assert set(load.statuses) == {200}, sorted(set(load.statuses))  # no 500s, no 503s
    assert hub.get("closed").status_code == 200
    assert hub.get("open").status_code == 429  # Redis decides again, with the bucket it kept
    assert client.get("/readyz").json()["checks"]["redis"] == {"ok": True, "detail": ""}
    assert hub.hub.process.pid == pid
    assert hub.hub.process.poll() is None
