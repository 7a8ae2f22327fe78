"""Upstream faults seen through a real hub process: refusals, hangs, slowness, broken bodies.

One hub serves the module, with an upstream per fault so that one test's breaker or bulkhead
never leaks into another's: ``alive`` always answers, ``refusing`` never listens, ``recovering``
is stopped and restarted by the breaker test, ``flaky`` answers 503 on demand, ``slowpoke``
hangs or dawdles (behind two pools: one with short timeouts, one with a bulkhead of 2), and
``check-a``/``check-b`` are health-checked every 0.1 s.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import metric, wait_until
from tests.hubproc import HubProcess, run_hub, write_policies
from tests.upstreams import UpstreamServer

pytestmark = pytest.mark.integration

TIMEOUT = 10.0
PROBLEM_TYPE = "application/problem+json"
PATIENT_BREAKER = {"failure_threshold": 1000}
NO_RETRIES = {"max_retries": 0}
SHORT_TIMEOUTS = {"connect": 1, "read": 0.5, "total": 5}
BREAKER = {"failure_threshold": 3, "open_seconds": 0.5}
BREAKER_CLOSED, BREAKER_OPEN = 0.0, 2.0
SERVER_NAMES = ("alive", "refusing", "recovering", "flaky", "slowpoke", "check-a", "check-b")


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, UpstreamServer]]:
    started = {name: UpstreamServer(name).start() for name in SERVER_NAMES}
    started["refusing"].stop()  # its port now refuses connections
    yield started
    for server in started.values():
        server.release_hanging()
        server.close()


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory, servers: dict[str, UpstreamServer]
) -> Iterator[HubProcess]:
    def target(name: str) -> dict[str, str]:
        return {"url": servers[name].url}

    upstreams = [
        {"id": "alive", "targets": [target("alive")], "breaker": PATIENT_BREAKER},
        {
            "id": "pair",
            "targets": [target("refusing"), target("alive")],
            "breaker": {"failure_threshold": 3, "open_seconds": 60},
        },
        {
            "id": "pair-patient",
            "targets": [target("refusing"), target("alive")],
            "breaker": PATIENT_BREAKER,
        },
        {"id": "recovering", "targets": [target("recovering")], "breaker": BREAKER},
        {"id": "flaky", "targets": [target("flaky")], "breaker": PATIENT_BREAKER},
        {"id": "slowpoke", "targets": [target("slowpoke")], "breaker": PATIENT_BREAKER},
        {
            "id": "narrow",
            "targets": [target("slowpoke")],
            "breaker": PATIENT_BREAKER,
            "max_concurrent": 2,
        },
        {
            "id": "checked",
            "targets": [target("check-a"), target("check-b")],
            "health_check": {
                "path": "/healthz",
                "interval": 0.1,
                "timeout": 0.1,
                "healthy_threshold": 2,
                "unhealthy_threshold": 2,
            },
        },
    ]

    def route(name: str, **extra: Any) -> dict[str, Any]:
        spec = {"id": name, "prefix": f"/api/{name}/", "upstream": name, "strip_prefix": True}
        return {**spec, **extra}

    routes = [
        route("alive"),
        route("pair"),
        route("pair-patient", max_body_bytes=8 * 1024 * 1024),
        route("recovering", retries=NO_RETRIES),
        route("flaky"),
        route("slowpoke", timeouts=SHORT_TIMEOUTS, retries=NO_RETRIES),
        route("narrow", timeouts={"read": 10, "total": 20}, retries=NO_RETRIES),
        route("checked"),
    ]
    tmp = tmp_path_factory.mktemp("proxy-faults")
    policies = write_policies(tmp / "policies", upstreams=upstreams, routes=routes)
    with run_hub(tmp, policies, env={"HUB_ACCESS_LOG": "false"}, migrate=False) as process:
        yield process


@pytest.fixture(scope="module")
def client(hub: HubProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.url, timeout=TIMEOUT) as http:
        yield http


# -- helpers ---------------------------------------------------------------------------------


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The answer is the hub's own RFC 9457 problem with this status and code."""
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_TYPE
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["code"] == code
    assert problem["request_id"] == response.headers["x-request-id"]
    return problem


def served_by(client: httpx.Client, path: str, count: int) -> list[str]:
    """Which upstream server answered each of ``count`` requests (all must be 200)."""
    names = []
    for _ in range(count):
        response = client.get(path)
        assert response.status_code == 200
        names.append(response.json()["server"])
    return names


# -- refused connections and the breaker -----------------------------------------------------


def test_refused_connection_is_retried_on_the_other_target(
    client: httpx.Client, hub: HubProcess, servers: dict[str, UpstreamServer]
) -> None:
    # POST without Idempotency-Key: a refused connection never carried it, so it is safe.
    for i in range(10):
        response = client.post("/api/pair/echo", content=f"body {i}".encode())
        assert response.status_code == 200
        assert response.json()["server"] == "alive"

    # Round robin sent every other first attempt to the refusing target: its breaker opened.
    refusing = servers["refusing"].url
    assert metric(client, "hub_upstream_breaker_state", upstream="pair", target=refusing) == (
        BREAKER_OPEN
    )
    alive = servers["alive"].url
    assert metric(client, "hub_upstream_breaker_state", upstream="pair", target=alive) == (
        BREAKER_CLOSED
    )


def test_a_streamed_body_is_sent_again_after_a_refused_connection(
    client: httpx.Client, servers: dict[str, UpstreamServer]
) -> None:
    # Over the 64 KiB the hub holds, so the body streams; the refusal came before any byte of
    # it was read, so the retry on the other target carries it whole.
    body = bytes(range(256)) * 1024
    digest = hashlib.sha256(body).hexdigest()
    for _ in range(4):  # round robin puts every other first attempt on the refusing target
        response = client.post("/api/pair-patient/echo", content=iter([body]))
        assert response.status_code == 200
        echoed = response.json()
        assert echoed["server"] == "alive"
        assert (echoed["body_bytes"], echoed["body_sha256"]) == (len(body), digest)


def test_breaker_opens_after_refusals_and_recovers(
    client: httpx.Client, servers: dict[str, UpstreamServer]
) -> None:
    server = servers["recovering"]
    labels = {"upstream": "recovering", "target": server.url}
    assert client.get("/api/recovering/echo").status_code == 200
    server.stop()

    for _ in range(BREAKER["failure_threshold"]):
        assert_problem(client.get("/api/recovering/echo"), 502, "upstream_connect_failed")
    assert metric(client, "hub_upstream_breaker_state", **labels) == BREAKER_OPEN

    hits = server.hits["echo"]
    started = time.monotonic()
    problem = assert_problem(client.get("/api/recovering/echo"), 503, "circuit_open")
    assert time.monotonic() - started < 1.0  # refused at once, no connection attempt
    assert problem["upstream"] == "recovering"
    errors = metric(
        client, "hub_upstream_errors_total", upstream="recovering", code="upstream_connect_failed"
    )
    assert errors == BREAKER["failure_threshold"]

    server.restart()
    time.sleep(BREAKER["open_seconds"] + 0.1)
    response = client.get("/api/recovering/echo")
    assert response.status_code == 200
    assert response.json()["server"] == "recovering"
    assert server.hits["echo"] == hits + 1
    assert metric(client, "hub_upstream_breaker_state", **labels) == BREAKER_CLOSED


# -- hangs, slowness, broken bodies ----------------------------------------------------------


def test_hanging_upstream_times_out_with_504(
    client: httpx.Client, servers: dict[str, UpstreamServer]
) -> None:
    server = servers["slowpoke"]
    server.reset_hanging()
    try:
        started = time.monotonic()
        response = client.get("/api/slowpoke/hang")
        elapsed = time.monotonic() - started
    finally:
        server.release_hanging()

    assert_problem(response, 504, "upstream_timeout")
    assert SHORT_TIMEOUTS["read"] <= elapsed < SHORT_TIMEOUTS["read"] + 1.5


def test_slow_upstream_within_the_timeout_answers(client: httpx.Client) -> None:
    started = time.monotonic()
    response = client.get("/api/slowpoke/slow", params={"ms": "300"})

    assert response.status_code == 200
    assert response.json() == {"server": "slowpoke", "slow": True}
    assert time.monotonic() - started >= 0.3


def test_slow_upstream_past_the_timeout_is_a_504(client: httpx.Client) -> None:
    response = client.get("/api/slowpoke/slow", params={"ms": "1500"})
    assert_problem(response, 504, "upstream_timeout")


def test_upstream_dying_mid_body_breaks_the_response(client: httpx.Client) -> None:
    # The hub already sent the status line: the client must see a truncated body, never a
    # complete-looking answer.
    with pytest.raises(httpx.RemoteProtocolError, match=r"incomplete|without sending complete"):
        client.get("/api/slowpoke/die-mid-body")

    response = client.get("/api/slowpoke/slow", params={"ms": "1"})
    assert response.status_code == 200


# -- retries ---------------------------------------------------------------------------------


def _flaky(
    client: httpx.Client, server: UpstreamServer, method: str, **kwargs: Any
) -> tuple[httpx.Response, int]:
    server.fail_remaining = 1
    hits = server.hits["flaky"]
    response = client.request(method, "/api/flaky/flaky", **kwargs)
    attempts = server.hits["flaky"] - hits
    server.fail_remaining = 0
    return response, attempts


def test_get_is_retried_after_a_503(
    client: httpx.Client, servers: dict[str, UpstreamServer]
) -> None:
    response, attempts = _flaky(client, servers["flaky"], "GET")

    assert response.status_code == 200
    assert response.json() == {"server": "flaky", "ok": True}
    assert attempts == 2


def test_retries_stop_after_max_retries(
    client: httpx.Client, servers: dict[str, UpstreamServer]
) -> None:
    server = servers["flaky"]
    server.fail_remaining = 10
    hits = server.hits["flaky"]
    try:
        response = client.get("/api/flaky/flaky")
    finally:
        server.fail_remaining = 0

    assert response.status_code == 503
    assert response.json() == {"flaky": True}  # the last attempt's answer, passed on
    assert server.hits["flaky"] - hits == 1 + 2  # the first attempt and max_retries (default)


def test_post_without_idempotency_key_is_not_retried(
    client: httpx.Client, servers: dict[str, UpstreamServer]
) -> None:
    response, attempts = _flaky(client, servers["flaky"], "POST", content=b"pay once")

    assert response.status_code == 503
    assert response.json() == {"flaky": True}  # the upstream's own answer, passed on
    assert attempts == 1


def test_post_with_idempotency_key_is_retried(
    client: httpx.Client, servers: dict[str, UpstreamServer]
) -> None:
    response, attempts = _flaky(
        client,
        servers["flaky"],
        "POST",
        content=b"pay once",
        headers={"Idempotency-Key": "c0ffee-1"},
    )

    assert response.status_code == 200
    assert attempts == 2


def test_streamed_body_is_not_retried_even_with_idempotency_key(
    client: httpx.Client, servers: dict[str, UpstreamServer]
) -> None:
    # The hub did not keep a streamed body, so it has nothing to send a second time.
    response, attempts = _flaky(
        client,
        servers["flaky"],
        "PUT",
        content=iter([os.urandom(100_000), os.urandom(100_000)]),
        headers={"Idempotency-Key": "c0ffee-2"},
    )

    assert response.status_code == 503
    assert attempts == 1


# -- bulkhead --------------------------------------------------------------------------------


async def _timed(coro: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await coro
    return response, time.monotonic() - started


async def test_bulkhead_sheds_load_while_other_upstreams_answer(
    hub: HubProcess, servers: dict[str, UpstreamServer]
) -> None:
    server = servers["slowpoke"]
    server.reset_hanging()
    try:
        async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client:
            hanging = [asyncio.ensure_future(client.get("/api/narrow/hang")) for _ in range(2)]
            deadline = time.monotonic() + 30
            while server.in_flight < 2:
                assert time.monotonic() < deadline, "the two requests never reached the upstream"
                await asyncio.sleep(0.02)

            (shed, shed_time), (other, other_time) = await asyncio.gather(
                _timed(client.get("/api/narrow/hang")), _timed(client.get("/api/alive/echo"))
            )
            problem = assert_problem(shed, 503, "upstream_overloaded")
            assert problem["upstream"] == "narrow"
            assert shed_time < 1.0  # at once: the hanging ones wait 10 s
            assert other.status_code == 200
            assert other.json()["server"] == "alive"
            assert other_time < 1.0
            assert server.in_flight == 2  # the shed request never reached the upstream

            server.release_hanging()
            released = await asyncio.gather(*hanging)
    finally:
        server.release_hanging()
    assert [r.json() for r in released] == [{"released": True}] * 2


# -- active health checks and metrics --------------------------------------------------------


def test_unhealthy_target_gets_no_traffic_until_it_recovers(
    client: httpx.Client, servers: dict[str, UpstreamServer]
) -> None:
    a, b = servers["check-a"], servers["check-b"]

    def healthy(server: UpstreamServer) -> float | None:
        return metric(client, "hub_upstream_target_healthy", upstream="checked", target=server.url)

    assert set(served_by(client, "/api/checked/echo", 6)) == {"check-a", "check-b"}

    b.healthy = False
    try:
        wait_until(lambda: healthy(b) == 0.0)
        assert healthy(a) == 1.0
        hits = b.hits["echo"]
        assert served_by(client, "/api/checked/echo", 10) == ["check-a"] * 10
        assert b.hits["echo"] == hits
    finally:
        b.healthy = True

    wait_until(lambda: healthy(b) == 1.0)
    assert set(served_by(client, "/api/checked/echo", 6)) == {"check-a", "check-b"}


def test_metrics_show_health_and_breaker_of_every_target(
    client: httpx.Client, servers: dict[str, UpstreamServer]
) -> None:
    pools = {
        "alive": ["alive"],
        "pair": ["refusing", "alive"],
        "recovering": ["recovering"],
        "flaky": ["flaky"],
        "slowpoke": ["slowpoke"],
        "narrow": ["slowpoke"],
        "checked": ["check-a", "check-b"],
    }
    for upstream, names in pools.items():
        for name in names:
            labels = {"upstream": upstream, "target": servers[name].url}
            assert metric(client, "hub_upstream_target_healthy", **labels) in (0.0, 1.0)
            state = metric(client, "hub_upstream_breaker_state", **labels)
            assert state in (BREAKER_CLOSED, 1.0, BREAKER_OPEN)
    assert metric(client, "hub_upstream_target_healthy", upstream="alive") == 1.0
    assert metric(client, "hub_upstream_breaker_state", upstream="alive") == BREAKER_CLOSED
