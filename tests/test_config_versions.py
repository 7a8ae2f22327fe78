"""Configuration versions in running hubs: swap at once, reach every replica, never tear a request.

Two back-end sets. Embedded: one hub on SQLite with the in-process notifier (replicas share
nothing there, so the single-process path is what is tested). Real: three hub processes sharing
one PostgreSQL database and Redis (and RabbitMQ): replicas A and B poll the database only every
30 s, so anything faster than that came through Redis pub/sub; replica C reaches Redis through a
TCP proxy the tests cut, and polls every second.

Two versions alternate: "blue" sends ``/swap/`` to the blue upstream under ``/blue``, "green" to
the green upstream under ``/green``. Route and pool come from the same snapshot iff the upstream's
name and the forwarded path agree, which every response is checked for; and the version number
the hub told the upstream (``X-Hub-Config-Version``, echoed back) must be the one of that colour.
The two versions share no upstream, so every swap retires a pool while requests of the old
version may still be using it; some load clients send their bodies slowly to span a swap.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from typer.testing import CliRunner

from hub.cli.main import app
from hub.db.migrate import migrate
from tests.fixtures_db import create_temp_postgres_database
from tests.fixtures_services import proxied_url, service_address
from tests.helpers import LoopThread
from tests.hubproc import (
    ADMIN_TOKEN,
    CONFIG_CHANNEL,
    HubProcess,
    hub_command,
    run_hub,
    write_policies,
)
from tests.tcpproxy import TcpProxy
from tests.upstreams import UpstreamServer

pytestmark = pytest.mark.integration

_T = TypeVar("_T")
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ADMIN = "/admin/api/config"
PROPAGATION_LIMIT = 1.0  # seconds: the promise for replicas told through Redis
C_POLL_SECONDS = 1.0
MIN_SWAPS = 8


def document(colour: str, upstream: UpstreamServer) -> dict[str, Any]:
    """A whole configuration sending /swap/ to the ``colour`` upstream under /``colour``."""
    return {
        "upstreams": [{"id": colour, "targets": [{"url": upstream.url}]}],
        "routes": [
            {"id": "swap", "prefix": "/swap/", "upstream": colour, "upstream_path": f"/{colour}"}
        ],
        "products": [],
    }


@dataclass
class Cluster:
    """Hub processes sharing one configuration store (one process on the embedded set)."""

    backend: str
    hubs: list[HubProcess]
    blue: dict[str, Any]
    green: dict[str, Any]
    redis_proxy: TcpProxy | None = None  # in front of Redis for the last replica (real set)
    loop: LoopThread | None = None
    env: dict[str, str] = field(default_factory=dict)  # back-end URLs shared by the replicas


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, UpstreamServer]]:
    servers = {"blue": UpstreamServer("blue").start(), "green": UpstreamServer("green").start()}
    try:
        yield servers
    finally:
        for server in servers.values():
            server.close()


@pytest.fixture(scope="module")
def policies(
    tmp_path_factory: pytest.TempPathFactory, upstreams: dict[str, UpstreamServer]
) -> Path:
    blue = document("blue", upstreams["blue"])
    folder = tmp_path_factory.mktemp("config-versions") / "policies"
    return write_policies(folder, upstreams=blue["upstreams"], routes=blue["routes"])


@contextmanager
def running_hubs(
    managers: list[AbstractContextManager[HubProcess]],
) -> Iterator[list[HubProcess]]:
    """Start several hubs at once (each start is mostly interpreter import time)."""
    with ThreadPoolExecutor(max_workers=len(managers)) as pool:
        futures = [pool.submit(manager.__enter__) for manager in managers]
    started: list[tuple[AbstractContextManager[HubProcess], HubProcess]] = []
    failures: list[BaseException] = []
    for manager, future in zip(managers, futures, strict=True):
        try:
            started.append((manager, future.result()))
        except Exception as exc:
            failures.append(exc)
    try:
        if failures:
            raise failures[0]
        yield [hub for _, hub in started]
    finally:
        for manager, _ in reversed(started):
            manager.__exit__(None, None, None)


@pytest.fixture(scope="module")
def embedded_cluster(
    tmp_path_factory: pytest.TempPathFactory, policies: Path, upstreams: dict[str, UpstreamServer]
) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("embedded")
    env = {"HUB_ACCESS_LOG": "false"}
    with run_hub(tmp, policies, env=env, migrate=False) as hub:
        yield Cluster(
            backend="embedded",
            hubs=[hub],
            blue=document("blue", upstreams["blue"]),
            green=document("green", upstreams["green"]),
            env={"HUB_DATA_DIR": str(tmp / "data")},  # its SQLite file, for hub commands
        )


@pytest.fixture(scope="module")
def real_cluster(
    tmp_path_factory: pytest.TempPathFactory,
    policies: Path,
    upstreams: dict[str, UpstreamServer],
    redis_url: str,
    amqp_url: str,
) -> Iterator[Cluster]:
    loop = LoopThread()
    database = create_temp_postgres_database()
    try:
        database_url = loop.run(database.__aenter__())
    except OSError as exc:  # the server is down: the real set cannot run here
        loop.close()
        if os.environ.get("HUB_TEST_SKIP_SERVICES") == "1":
            pytest.skip(f"PostgreSQL unavailable: {exc}")
        pytest.fail(f"PostgreSQL is required for the real back-end set: {exc}")
    host, port = service_address(redis_url)
    proxy = TcpProxy(target_host=host, target_port=port)
    try:
        loop.run(migrate(database_url))
        loop.run(proxy.start())
        base = {
            "HUB_DATABASE_URL": database_url,
            "HUB_REDIS_URL": redis_url,
            "HUB_AMQP_URL": amqp_url,
            "HUB_ACCESS_LOG": "false",
            "HUB_CONFIG_POLL_SECONDS": "30",
        }
        c_env = {
            **base,
            "HUB_REDIS_URL": proxied_url(redis_url, proxy),
            "HUB_CONFIG_POLL_SECONDS": str(C_POLL_SECONDS),
        }
        managers = [
            run_hub(tmp_path_factory.mktemp(name), policies, env=env, migrate=False)
            for name, env in (("replica-a", base), ("replica-b", base), ("replica-c", c_env))
        ]
        with running_hubs(managers) as hubs:
            yield Cluster(
                backend="real",
                hubs=hubs,
                blue=document("blue", upstreams["blue"]),
                green=document("green", upstreams["green"]),
                redis_proxy=proxy,
                loop=loop,
                env={
                    "HUB_DATABASE_URL": database_url,
                    "HUB_REDIS_URL": redis_url,
                    "HUB_CONFIG_CHANNEL": CONFIG_CHANNEL,
                },
            )
    finally:
        loop.run(proxy.aclose())
        loop.run(database.__aexit__(None, None, None))
        loop.close()


@pytest.fixture(
    scope="module",
    params=[pytest.param("embedded"), pytest.param("real", marks=pytest.mark.backends)],
)
def cluster(request: pytest.FixtureRequest) -> Cluster:
    result: Cluster = request.getfixturevalue(f"{request.param}_cluster")
    return result


# --- helpers ----------------------------------------------------------------------------------


def active_version(hub: HubProcess) -> int:
    response = httpx.get(f"{hub.url}{ADMIN}/active", headers=AUTH, timeout=5)
    assert response.status_code == 200, response.text
    version: int = response.json()["version"]
    return version


def publish(hub: HubProcess, doc: dict[str, Any], *, based_on: int | None) -> int:
    response = httpx.post(
        f"{hub.url}{ADMIN}/versions",
        json={"document": doc, "based_on": based_on, "comment": "test"},
        headers=AUTH,
        timeout=10,
    )
    assert response.status_code == 201, response.text
    version: int = response.json()["version"]
    return version


def activate(hub: HubProcess, version: int, *, based_on: int | None) -> None:
    response = httpx.post(
        f"{hub.url}{ADMIN}/versions/{version}/activate",
        json={"based_on": based_on},
        headers=AUTH,
        timeout=10,
    )
    assert response.status_code == 200, response.text


def colour_of(response: httpx.Response) -> str:
    """Which version served a /swap/ response; fails on a response torn between two versions."""
    assert response.status_code == 200, response.text
    body = response.json()
    server, path = body["server"], body["path"]
    assert path.startswith(f"/{server}/swap/"), f"torn response: {server} got {path}"
    colour: str = server
    return colour


def served_version(response: httpx.Response) -> int:
    """The configuration version the hub told the upstream it served this request with."""
    sent = [v for k, v in response.json()["headers"] if k.lower() == "x-hub-config-version"]
    assert len(sent) == 1, f"the upstream got {sent!r} as X-Hub-Config-Version"
    return int(sent[0])


def serving(hub: HubProcess) -> str:
    return colour_of(httpx.get(f"{hub.url}/swap/probe", timeout=5))


def ensure_serving(cluster: Cluster, colour: str) -> int:
    """Make ``colour`` the active version (publishing it if needed); returns that version."""
    hub = cluster.hubs[0]
    current = active_version(hub)
    if serving(hub) != colour:
        current = publish(hub, getattr(cluster, colour), based_on=current)
    assert serving(hub) == colour
    return current


async def wait_for_colour(client: httpx.AsyncClient, url: str, colour: str, limit: float) -> float:
    """Poll ``url`` back to back until ``colour`` answers; the seconds it took from now."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if colour_of(await client.get(url)) == colour:
            return time.monotonic() - started
    raise AssertionError(f"{url} did not serve {colour} within {limit} s")


async def propagation(hubs: list[HubProcess], colour: str, limit: float) -> list[float]:
    async with httpx.AsyncClient(timeout=5) as client:
        return list(
            await asyncio.gather(
                *(wait_for_colour(client, f"{h.url}/swap/probe", colour, limit) for h in hubs)
            )
        )


# --- the publishing replica ---------------------------------------------------------------------


def test_publish_and_rollback_are_served_at_once_by_the_replica_that_made_them(
    cluster: Cluster,
) -> None:
    hub = cluster.hubs[0]
    base = ensure_serving(cluster, "blue")
    started = time.monotonic()
    green = publish(hub, cluster.green, based_on=base)
    # The 201 is sent after the swap: the very next request is already the new version.
    assert serving(hub) == "green"
    switched = time.monotonic() - started
    activate(hub, base, based_on=green)
    assert serving(hub) == "blue"
    assert active_version(hub) == base
    print(f"\n[{cluster.backend}] publish + first request on the new version: {switched:.3f} s")


# --- rollback restores behaviour exactly -------------------------------------------------------


def rich_document(cluster: Cluster, *, after: bool) -> dict[str, Any]:
    """Routes, auth and permissions; ``after`` changes each of them.

    Before: /swap/ to blue; /keyed/ needs an API key with ``k.read``; /guarded/ lets anyone GET
    and nobody POST; /new/ does not exist. After: /swap/ to green; /keyed/ needs ``k.write``;
    /guarded/ lets anyone POST and nobody GET; /new/ exists.
    """
    colour = "green" if after else "blue"
    base = getattr(cluster, colour)
    routes = [
        *base["routes"],
        {
            "id": "keyed",
            "prefix": "/keyed/",
            "upstream": colour,
            "auth": {"methods": ["api_key"], "scopes": ["k.write" if after else "k.read"]},
        },
        {"id": "guarded", "prefix": "/guarded/", "upstream": colour},
    ]
    if after:
        routes.append({"id": "new", "prefix": "/new/", "upstream": colour})
    method = "POST" if after else "GET"
    return {
        **base,
        "routes": routes,
        "permissions": [
            {
                "id": "guarded.use",
                "routes": ["guarded"],
                "rules": [
                    {"id": "one-method", "effect": "allow", "resources": {"methods": [method]}}
                ],
            }
        ],
    }


PROBES: list[tuple[str, str, bool]] = [
    ("GET", "/swap/p", False),
    ("GET", "/keyed/p", False),
    ("GET", "/keyed/p", True),
    ("GET", "/guarded/p", False),
    ("POST", "/guarded/p", False),
    ("GET", "/new/p", False),
]


def answers(hub: HubProcess, key: str) -> list[tuple[Any, ...]]:
    """What each probe gets: status, problem code or upstream and path, and the version."""
    out: list[tuple[Any, ...]] = []
    for method, path, with_key in PROBES:
        headers = {"X-API-Key": key} if with_key else {}
        response = httpx.request(method, f"{hub.url}{path}", headers=headers, timeout=5)
        if response.headers["content-type"].startswith("application/problem+json"):
            out.append((method, path, with_key, response.status_code, response.json()["code"]))
        else:
            body = response.json()
            out.append((method, path, with_key, response.status_code, body["server"], body["path"]))
    return out


def wait_version(hubs: list[HubProcess], version: int, limit: float = 5.0) -> None:
    """Until every replica serves ``version`` (its upstream is told so)."""
    deadline = time.monotonic() + limit
    for hub in hubs:
        while served_version(httpx.get(f"{hub.url}/swap/probe", timeout=5)) != version:
            assert time.monotonic() < deadline, f"{hub.url} does not serve version {version}"
            time.sleep(0.02)


def test_a_rollback_restores_routes_auth_and_permissions_exactly(
    cluster: Cluster, tmp_path: Path
) -> None:
    hub = cluster.hubs[0]
    current = active_version(hub)
    key = hub_command(
        tmp_path, hub, cluster.env, "apikeys", "create", "--name", "probe", "--scopes", "k.read"
    )["api_key"]
    before = publish(hub, rich_document(cluster, after=False), based_on=current)
    wait_version(cluster.hubs, before)
    expected = [
        ("GET", "/swap/p", False, 200, "blue", "/blue/swap/p"),
        ("GET", "/keyed/p", False, 401, "unauthorized"),
        ("GET", "/keyed/p", True, 200, "blue", "/keyed/p"),
        ("GET", "/guarded/p", False, 200, "blue", "/guarded/p"),
        ("POST", "/guarded/p", False, 403, "permission_denied"),
        ("GET", "/new/p", False, 404, "route_not_found"),
    ]
    for replica in cluster.hubs:
        assert answers(replica, key) == expected

    after = publish(hub, rich_document(cluster, after=True), based_on=before)
    wait_version(cluster.hubs, after)
    for replica in cluster.hubs:
        assert answers(replica, key) == [
            ("GET", "/swap/p", False, 200, "green", "/green/swap/p"),
            ("GET", "/keyed/p", False, 401, "unauthorized"),
            ("GET", "/keyed/p", True, 403, "insufficient_scope"),
            ("GET", "/guarded/p", False, 403, "permission_denied"),
            ("POST", "/guarded/p", False, 200, "green", "/guarded/p"),
            ("GET", "/new/p", False, 200, "green", "/new/p"),
        ]

    # One step back, on the last replica: every replica answers exactly as before the publish.
    activate(cluster.hubs[-1], before, based_on=after)
    wait_version(cluster.hubs, before)
    for replica in cluster.hubs:
        assert answers(replica, key) == expected


# --- other replicas -------------------------------------------------------------------------------


@pytest.mark.backends
def test_a_publish_reaches_every_replica_within_a_second(real_cluster: Cluster) -> None:
    a, b, c = real_cluster.hubs
    base = ensure_serving(real_cluster, "blue")
    asyncio.run(propagation([b, c], "blue", 35))  # from any earlier test: settle first

    started = time.monotonic()
    green = publish(a, real_cluster.green, based_on=base)
    published = time.monotonic() - started
    # A answered the publish after its own swap; B and C follow through Redis pub/sub (C
    # through a TCP proxy), each measured from the publish's answer to its first green reply.
    a_took, b_took, c_took = asyncio.run(propagation([a, b, c], "green", 5))
    print(
        f"\n[real] publish on A took {published * 1000:.0f} ms; then A served it after"
        f" {a_took * 1000:.0f} ms, B after {b_took * 1000:.0f} ms, C after {c_took * 1000:.0f} ms"
    )
    assert max(a_took, b_took, c_took) < PROPAGATION_LIMIT
    for hub in (a, b, c):
        assert served_version(httpx.get(f"{hub.url}/swap/probe", timeout=5)) == green

    # A rollback made on another replica travels the same way.
    started = time.monotonic()
    activate(b, base, based_on=green)
    a_took, b_took, c_took = asyncio.run(propagation([a, b, c], "blue", 5))
    print(
        f"[real] rollback on B: A served it after {a_took * 1000:.0f} ms, B {b_took * 1000:.0f}"
        f" ms, C {c_took * 1000:.0f} ms"
    )
    assert max(a_took, b_took, c_took) < PROPAGATION_LIMIT
    assert active_version(c) == base


@pytest.mark.backends
def test_a_replica_that_missed_the_announcement_catches_up_by_polling(
    real_cluster: Cluster,
) -> None:
    a, b, c = real_cluster.hubs
    proxy, loop = real_cluster.redis_proxy, real_cluster.loop
    assert proxy is not None
    assert loop is not None
    base = ensure_serving(real_cluster, "blue")
    asyncio.run(propagation([b, c], "blue", 35))
    loop.run(proxy.cut())
    try:
        # C's subscription is down: wait until its readiness says so.
        deadline = time.monotonic() + 10
        while True:
            ready = httpx.get(f"{c.url}/readyz", timeout=5)
            if ready.status_code == 503:
                break
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.1)
        checks = ready.json()["checks"]
        assert checks["config_notifier"]["ok"] is False
        assert checks["database"]["ok"] is True

        started = time.monotonic()
        green = publish(a, real_cluster.green, based_on=base)
        b_took, c_took = asyncio.run(propagation([b, c], "green", C_POLL_SECONDS + 5))
        print(
            f"\n[real] Redis cut for C: B served the publish after {b_took * 1000:.0f} ms,"
            f" C caught up by polling after {c_took * 1000:.0f} ms"
            f" (poll every {C_POLL_SECONDS} s); total {time.monotonic() - started:.2f} s"
        )
        assert b_took < PROPAGATION_LIMIT
        assert c_took < C_POLL_SECONDS + 2
    finally:
        loop.run(proxy.restore())
    # Back on Redis, C is ready again without a restart, and follows announcements again.
    deadline = time.monotonic() + 15
    while httpx.get(f"{c.url}/readyz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "C did not become ready after Redis came back"
        time.sleep(0.1)
    activate(a, base, based_on=green)
    (c_took,) = asyncio.run(propagation([c], "blue", 5))
    print(f"[real] after restore, C served the rollback after {c_took * 1000:.0f} ms")


@pytest.mark.backends
def test_a_cli_publish_and_rollback_reach_running_replicas_through_redis(
    real_cluster: Cluster, tmp_path: Path
) -> None:
    a, b, c = real_cluster.hubs
    base = ensure_serving(real_cluster, "blue")
    asyncio.run(propagation([b, c], "blue", 35))
    green = real_cluster.green
    folder = write_policies(
        tmp_path / "policies", upstreams=green["upstreams"], routes=green["routes"]
    )
    result = CliRunner().invoke(
        app,
        ["config", "publish", str(folder), "--based-on", str(base)],
        env=real_cluster.env,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    a_took, b_took = asyncio.run(propagation([a, b], "green", 5))
    print(
        f"\n[real] CLI publish: A served it after {a_took * 1000:.0f} ms, B {b_took * 1000:.0f} ms"
    )
    # A and B poll every 30 s: only the announcement can bring the change this fast.
    assert max(a_took, b_took) < PROPAGATION_LIMIT

    result = CliRunner().invoke(
        app, ["config", "rollback", str(base)], env=real_cluster.env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == f"version {base} is active\n"
    a_took, b_took = asyncio.run(propagation([a, b], "blue", 5))
    print(
        f"[real] CLI rollback: A served it after {a_took * 1000:.0f} ms, B {b_took * 1000:.0f} ms"
    )
    assert max(a_took, b_took) < PROPAGATION_LIMIT


# --- swap under load --------------------------------------------------------------------------


@dataclass
class LoadResult:
    colours: Counter[str] = field(default_factory=Counter)
    # (replica, version the hub told the upstream, colour that answered) -> responses
    served: Counter[tuple[int, int, str]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    swaps: int = 0
    green_version: int | None = None


async def _slow_body(body: bytes) -> AsyncIterator[bytes]:
    """A client that sends its headers, then the body a moment later (a phone uploading)."""
    yield body[:512]
    await asyncio.sleep(0.1)
    yield body[512:]


async def _hammer(
    client: httpx.AsyncClient, urls: list[str], stop: asyncio.Event, result: LoadResult, n: int
) -> None:
    """GETs and POSTs; every fourth client sends its bodies slowly, spanning swaps."""
    body = b'{"payload": "' + b"x" * 8_000 + b'"}'
    slow = n % 4 == 0
    i = n
    while not stop.is_set():
        replica = i % len(urls)
        url = urls[replica] + f"/swap/load/{i}"
        i += 1
        try:
            if slow:
                response = await client.post(
                    url,
                    content=_slow_body(body),
                    headers={"Content-Type": "application/json", "Content-Length": str(len(body))},
                )
            elif i % 2:
                response = await client.get(url)
            else:
                response = await client.post(
                    url, content=body, headers={"Content-Type": "application/json"}
                )
            colour = colour_of(response)
            result.colours[colour] += 1
            result.served[(replica, served_version(response), colour)] += 1
        except (AssertionError, httpx.HTTPError, ValueError) as exc:
            result.failures.append(f"{type(exc).__name__}: {exc}")


async def _swapper(cluster: Cluster, result: LoadResult, base: int, until: float) -> None:
    """Publish green, then roll back and forth every 0.25 s until ``until`` and 8 swaps."""
    admin = cluster.hubs[0]
    async with httpx.AsyncClient(base_url=admin.url, headers=AUTH, timeout=10) as client:
        await asyncio.sleep(0.3)
        response = await client.post(
            f"{ADMIN}/versions", json={"document": cluster.green, "based_on": base}
        )
        assert response.status_code == 201, response.text
        green = response.json()["version"]
        result.green_version = green
        result.swaps += 1
        active = green
        while time.monotonic() < until or result.swaps < MIN_SWAPS:
            await asyncio.sleep(0.25)
            target = base if active == green else green
            response = await client.post(
                f"{ADMIN}/versions/{target}/activate", json={"based_on": active}
            )
            assert response.status_code == 200, response.text
            active = target
            result.swaps += 1
        if active != base:
            response = await client.post(
                f"{ADMIN}/versions/{base}/activate", json={"based_on": active}
            )
            assert response.status_code == 200, response.text


@pytest.mark.slow
def test_configuration_swaps_under_load_drop_no_request(cluster: Cluster) -> None:
    base = ensure_serving(cluster, "blue")
    # On the real set the load goes to every replica, the swaps are made on the first one.
    urls = [hub.url for hub in cluster.hubs]
    result = LoadResult()
    duration = 3.0
    clients = 16

    async def run() -> None:
        stop = asyncio.Event()
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(timeout=10, limits=limits) as client:
            workers = [
                asyncio.create_task(_hammer(client, urls, stop, result, n)) for n in range(clients)
            ]
            try:
                await asyncio.wait_for(
                    _swapper(cluster, result, base, time.monotonic() + duration), timeout=20
                )
            finally:
                stop.set()
                await asyncio.gather(*workers)

    asyncio.run(run())
    total = sum(result.colours.values()) + len(result.failures)
    print(
        f"\n[{cluster.backend}] {total} requests over {duration} s with {clients} clients and"
        f" {result.swaps} swaps: {dict(result.colours)}; failures: {len(result.failures)}"
    )
    assert result.failures == []
    assert result.swaps >= MIN_SWAPS
    assert result.colours["blue"] > 0
    assert result.colours["green"] > 0
    assert set(result.colours) == {"blue", "green"}
    # Every response came from exactly one version: the colour that answered is the colour of
    # the version number the hub told the upstream, on every replica.
    colour_of_version = {base: "blue", result.green_version: "green"}
    mismatched = {key: n for key, n in result.served.items() if colour_of_version[key[1]] != key[2]}
    assert mismatched == {}
    for replica in range(len(urls)):
        versions = {version for r, version, _ in result.served if r == replica}
        assert versions == {base, result.green_version}, f"replica {replica} served {versions}"
    assert sum(result.served.values()) == sum(result.colours.values())
    assert serving(cluster.hubs[0]) == "blue"
