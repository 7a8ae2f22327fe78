"""Rate-limit accuracy under concurrent load: a limit of N lets through N, within 1 %.

Two back-end sets. Embedded: one hub process with the in-process GCRA store. Real: three hub
processes sharing one Redis (and one PostgreSQL database, for the API keys), with
``HUB_REPLICAS=3``; the load is spread over the three. Route ids carry a random suffix, so
buckets left in Redis by earlier runs cannot interfere, and each test uses its own routes.

What "N in the window" means for GCRA, exactly: from an empty bucket a limit of ``rate`` per
``period`` with ``burst`` lets ``burst + 1`` through at once and then one every
``period / rate``; so after ``elapsed`` seconds of saturating load it has let through
``burst + 1 + rate * elapsed / period`` (rounded down). The window tests use a one-hour period,
so the refill over a test of a few seconds is below one request and the expected count is
``N = burst + 1`` exactly; the sustained test bounds ``elapsed`` by the clocks around the load.
Every answer is a 200 or a 429, counted exactly.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.db.migrate import migrate
from tests.fixtures_db import create_temp_postgres_database
from tests.helpers import LoopThread
from tests.hubproc import HubProcess, hub_command, run_hub, write_policies
from tests.test_config_versions import running_hubs
from tests.upstreams import UpstreamServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUN = uuid.uuid4().hex[:8]
HOUR = 3600
TOLERANCE = 0.01  # the promise: at most 1 % error
LIMITS: dict[str, dict[str, Any]] = {
    # N = 500 in a one-hour window, shared by everyone on the route.
    "window": {"rate": 500, "period": HOUR, "burst": 499, "key": "route"},
    # N = 100 per consumer in a one-hour window.
    "consumer": {"rate": 100, "period": HOUR, "burst": 99, "key": "consumer"},
    # 100 a second after a burst of 300: the window keeps moving during the test.
    "sustained": {"rate": 100, "period": 1, "burst": 299, "key": "route"},
}


@dataclass
class Limited:
    backend: str
    hubs: list[HubProcess]
    keys: list[str] = field(default_factory=list)  # two API keys, two consumers


def route_id(name: str, backend: str) -> str:
    return f"{name}-{backend}-{RUN}"


def policies(folder: Path, upstream: UpstreamServer, backend: str) -> Path:
    routes: list[dict[str, Any]] = []
    for name, spec in LIMITS.items():
        route: dict[str, Any] = {
            "id": route_id(name, backend),
            "prefix": f"/{name}/",
            "upstream": "limited",
            "strip_prefix": True,
            "rate_limit": spec,
        }
        if spec["key"] == "consumer":
            route["auth"] = {"methods": ["api_key"], "scopes": ["limited.use"]}
        routes.append(route)
    return write_policies(
        folder, upstreams=[{"id": "limited", "targets": [{"url": upstream.url}]}], routes=routes
    )


def api_keys(tmp: Path, hub: HubProcess, env: dict[str, str]) -> list[str]:
    return [
        hub_command(tmp, hub, env, "apikeys", "create", "--name", name, "--scopes", "limited.use")[
            "api_key"
        ]
        for name in ("vendor-a", "vendor-b")
    ]


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    server = UpstreamServer("limited").start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def embedded_limited(
    tmp_path_factory: pytest.TempPathFactory, upstream: UpstreamServer
) -> Iterator[Limited]:
    tmp = tmp_path_factory.mktemp("accuracy-embedded")
    folder = policies(tmp / "policies", upstream, "embedded")
    with run_hub(tmp, folder, env={"HUB_ACCESS_LOG": "false"}) as hub:
        keys = api_keys(tmp, hub, {"HUB_DATA_DIR": str(tmp / "data")})
        yield Limited(backend="embedded", hubs=[hub], keys=keys)


@pytest.fixture(scope="module")
def real_limited(
    tmp_path_factory: pytest.TempPathFactory, upstream: UpstreamServer, redis_url: str
) -> Iterator[Limited]:
    loop = LoopThread()
    database = create_temp_postgres_database()
    try:
        database_url = loop.run(database.__aenter__())
    except OSError as exc:
        loop.close()
        if os.environ.get("HUB_TEST_SKIP_SERVICES") == "1":
            pytest.skip(f"PostgreSQL unavailable: {exc}")
        pytest.fail(f"PostgreSQL is required for the real back-end set: {exc}")
    try:
        loop.run(migrate(database_url))
        tmp = tmp_path_factory.mktemp("accuracy-real")
        folder = policies(tmp / "policies", upstream, "real")
        env = {
            "HUB_DATABASE_URL": database_url,
            "HUB_REDIS_URL": redis_url,
            "HUB_REPLICAS": "3",
            "HUB_ACCESS_LOG": "false",
        }
        managers = [run_hub(tmp / name, folder, env=env, migrate=False) for name in ("a", "b", "c")]
        with running_hubs(managers) as hubs:
            keys = api_keys(tmp, hubs[0], {"HUB_DATABASE_URL": database_url})
            yield Limited(backend="real", hubs=hubs, keys=keys)
    finally:
        loop.run(database.__aexit__(None, None, None))
        loop.close()


@pytest.fixture(
    scope="module",
    params=[pytest.param("embedded"), pytest.param("real", marks=pytest.mark.backends)],
)
def limited(request: pytest.FixtureRequest) -> Limited:
    result: Limited = request.getfixturevalue(f"{request.param}_limited")
    return result


# --- load -------------------------------------------------------------------------------------


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    per_hub: Counter[tuple[int, int]] = field(default_factory=Counter)
    first_sent: float = math.inf
    first_answered: float = math.inf
    last_sent: float = 0.0
    last_answered: float = 0.0

    @property
    def allowed(self) -> int:
        return self.statuses[200]


async def load(
    hubs: list[HubProcess],
    path: str,
    *,
    clients: int,
    total: int | None = None,
    seconds: float | None = None,
    headers: dict[str, str] | None = None,
) -> Tally:
    """``clients`` concurrent callers over ``hubs``: ``total`` requests, or for ``seconds``."""
    tally = Tally()
    sent = 0
    deadline = math.inf if seconds is None else time.monotonic() + seconds

    async def caller(client: httpx.AsyncClient, n: int) -> None:
        nonlocal sent
        i = n
        while time.monotonic() < deadline and (total is None or sent < total):
            sent += 1
            replica = i % len(hubs)
            i += 1
            started = time.monotonic()
            tally.first_sent = min(tally.first_sent, started)
            tally.last_sent = max(tally.last_sent, started)
            response = await client.get(f"{hubs[replica].url}{path}", headers=headers)
            answered = time.monotonic()
            tally.first_answered = min(tally.first_answered, answered)
            tally.last_answered = max(tally.last_answered, answered)
            tally.statuses[response.status_code] += 1
            tally.per_hub[(replica, response.status_code)] += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.wait_for(
            asyncio.gather(*(caller(client, n) for n in range(clients))), timeout=60
        )
    return tally


def window_expected(spec: dict[str, Any], elapsed: float) -> int:
    """What GCRA lets through from an empty bucket in ``elapsed`` seconds of saturation."""
    return spec["burst"] + 1 + math.floor(spec["rate"] * elapsed / spec["period"])


def error(allowed: int, expected: float) -> float:
    return abs(allowed - expected) / expected


# --- tests ------------------------------------------------------------------------------------


def test_a_global_limit_lets_through_n_in_its_window_under_concurrent_load(
    limited: Limited,
) -> None:
    spec = LIMITS["window"]
    started = time.monotonic()
    tally = asyncio.run(load(limited.hubs, "/window/x", clients=24, total=1500))
    elapsed = time.monotonic() - started
    expected = window_expected(spec, elapsed)
    print(
        f"\n[{limited.backend}] window N={spec['burst'] + 1}: {tally.allowed} of 1500 allowed"
        f" over {elapsed:.2f} s on {len(limited.hubs)} hub(s), expected {expected}"
        f" (error {error(tally.allowed, expected):.2%}); per hub {dict(tally.per_hub)}"
    )
    assert set(tally.statuses) == {200, 429}
    assert sum(tally.statuses.values()) == 1500
    assert error(tally.allowed, expected) <= TOLERANCE
    if len(limited.hubs) > 1:
        # Spread over the replicas, and each let some through: one limit, shared.
        assert all(tally.per_hub[(r, 200)] > 0 for r in range(len(limited.hubs)))
    # The window is spent for everyone, on every replica.
    for hub in limited.hubs:
        assert httpx.get(f"{hub.url}/window/x", timeout=5).status_code == 429


def test_a_per_consumer_limit_holds_for_each_consumer_across_replicas(limited: Limited) -> None:
    spec = LIMITS["consumer"]

    async def both() -> list[Tally]:
        return list(
            await asyncio.gather(
                *(
                    load(limited.hubs, "/consumer/x", clients=12, total=400, headers=headers)
                    for headers in ({"X-API-Key": key} for key in limited.keys)
                )
            )
        )

    started = time.monotonic()
    tallies = asyncio.run(both())
    elapsed = time.monotonic() - started
    expected = window_expected(spec, elapsed)
    for name, tally in zip(("a", "b"), tallies, strict=True):
        print(
            f"\n[{limited.backend}] consumer {name} N={spec['burst'] + 1}: {tally.allowed} of 400"
            f" allowed over {elapsed:.2f} s, expected {expected}"
        )
        assert set(tally.statuses) == {200, 429}
        assert error(tally.allowed, expected) <= TOLERANCE
    # Each consumer has an allowance of its own (shared, both together would have had 100),
    # and it holds across the replicas: spent on all of them, still spent on the last one.
    for key in limited.keys:
        again = httpx.get(
            f"{limited.hubs[-1].url}/consumer/x", headers={"X-API-Key": key}, timeout=5
        )
        assert again.status_code == 429


def test_a_sustained_limit_keeps_its_rate_while_the_window_moves(limited: Limited) -> None:
    spec = LIMITS["sustained"]
    tally = asyncio.run(load(limited.hubs, "/sustained/x", clients=16, seconds=3.0))
    # The first decision came after the first request left and before its answer; the last
    # one after the last request left and before the last answer.
    low = window_expected(spec, tally.last_sent - tally.first_answered)
    high = window_expected(spec, tally.last_answered - tally.first_sent)
    middle = (low + high) / 2
    print(
        f"\n[{limited.backend}] sustained 100/s + burst 300: {tally.allowed} of"
        f" {sum(tally.statuses.values())} allowed over"
        f" {tally.last_answered - tally.first_sent:.2f} s, expected {low}..{high}"
        f" (error against the middle {error(tally.allowed, middle):.2%})"
    )
    assert set(tally.statuses) == {200, 429}
    assert low * (1 - TOLERANCE) <= tally.allowed <= high * (1 + TOLERANCE)
