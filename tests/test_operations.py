"""Operations: health, readiness through back-end outages, metrics, access logs, secrets, shutdown.

Real hub processes on both back-end sets. On the real set the hub reaches PostgreSQL and Redis
through TCP proxies that the tests cut and restore (the services themselves are never touched);
RabbitMQ is reached directly.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import make_url

from hub.db.migrate import migrate
from tests.fixtures_db import create_temp_postgres_database
from tests.fixtures_services import proxied_url, service_address
from tests.helpers import LoopThread
from tests.hubproc import ADMIN_TOKEN, HubProcess, run_hub, write_policies
from tests.tcpproxy import TcpProxy
from tests.upstreams import UpstreamServer

pytestmark = pytest.mark.integration

_T = TypeVar("_T")
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SECRET_HEADERS = {"Authorization": "Bearer s3cr3t-value", "Cookie": "session=s3cr3t"}
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class OpsHub:
    """A running hub and, on the real set, the proxies in front of its back-ends."""

    backend: str
    hub: HubProcess
    upstream_origin: str
    env: dict[str, str] = field(default_factory=dict)  # direct back-end URLs, for more hubs
    loop: LoopThread | None = None
    database_proxy: TcpProxy | None = None
    redis_proxy: TcpProxy | None = None

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.hub.url + path, timeout=10, **kwargs)

    def cut(self, proxy: TcpProxy | None) -> None:
        assert proxy is not None
        assert self.loop is not None
        self.loop.run(proxy.cut())

    def restore(self, proxy: TcpProxy | None) -> None:
        assert proxy is not None
        assert self.loop is not None
        self.loop.run(proxy.restore())


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    server = UpstreamServer("ops").start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory, upstream: UpstreamServer) -> Path:
    return write_policies(
        tmp_path_factory.mktemp("operations") / "policies",
        upstreams=[{"id": "ops", "targets": [{"url": upstream.url}]}],
        # /ops/slow reaches the upstream as /slow (its behaviours key on the first segment).
        routes=[{"id": "ops", "prefix": "/ops/", "upstream": "ops", "strip_prefix": True}],
    )


@pytest.fixture(scope="module")
def embedded_ops(
    tmp_path_factory: pytest.TempPathFactory, policies: Path, upstream: UpstreamServer
) -> Iterator[OpsHub]:
    # Debug level: whatever the hub logs at its most talkative must still hold no secret.
    env = {"HUB_LOG_LEVEL": "debug"}
    with run_hub(tmp_path_factory.mktemp("embedded"), policies, env=env, migrate=False) as hub:
        yield OpsHub(backend="embedded", hub=hub, upstream_origin=upstream.url)


@pytest.fixture(scope="module")
def real_ops(
    tmp_path_factory: pytest.TempPathFactory,
    policies: Path,
    upstream: UpstreamServer,
    redis_url: str,
    amqp_url: str,
) -> Iterator[OpsHub]:
    loop = LoopThread()
    database = create_temp_postgres_database()
    try:
        database_url = loop.run(database.__aenter__())
    except OSError as exc:
        loop.close()
        if os.environ.get("HUB_TEST_SKIP_SERVICES") == "1":
            pytest.skip(f"PostgreSQL unavailable: {exc}")
        pytest.fail(f"PostgreSQL is required for the real back-end set: {exc}")
    parsed = make_url(database_url)
    pg_host, pg_port = parsed.host or "127.0.0.1", parsed.port or 5432
    redis_host, redis_port = service_address(redis_url)
    database_proxy = TcpProxy(target_host=pg_host, target_port=pg_port)
    redis_proxy = TcpProxy(target_host=redis_host, target_port=redis_port)
    try:
        loop.run(migrate(database_url))
        loop.run(database_proxy.start())
        loop.run(redis_proxy.start())
        direct = {
            "HUB_DATABASE_URL": database_url,
            "HUB_REDIS_URL": redis_url,
            "HUB_AMQP_URL": amqp_url,
        }
        proxied = {
            **direct,
            "HUB_DATABASE_URL": parsed.set(
                host="127.0.0.1", port=database_proxy.port
            ).render_as_string(hide_password=False),
            "HUB_REDIS_URL": proxied_url(redis_url, redis_proxy),
            "HUB_LOG_LEVEL": "debug",
        }
        tmp = tmp_path_factory.mktemp("real")
        with run_hub(tmp, policies, env=proxied, migrate=False) as hub:
            yield OpsHub(
                backend="real",
                hub=hub,
                upstream_origin=upstream.url,
                env=direct,
                loop=loop,
                database_proxy=database_proxy,
                redis_proxy=redis_proxy,
            )
    finally:
        loop.run(database_proxy.aclose())
        loop.run(redis_proxy.aclose())
        loop.run(database.__aexit__(None, None, None))
        loop.close()


@pytest.fixture(
    scope="module",
    params=[pytest.param("embedded"), pytest.param("real", marks=pytest.mark.backends)],
)
def ops(request: pytest.FixtureRequest) -> OpsHub:
    result: OpsHub = request.getfixturevalue(f"{request.param}_ops")
    return result


def active_version(ops: OpsHub) -> int:
    response = ops.get("/admin/api/config/active", headers=AUTH)
    assert response.status_code == 200, response.text
    version: int = response.json()["version"]
    return version


def wait_ready(ops: OpsHub, status: int, timeout: float = 15.0) -> httpx.Response:
    """Poll /readyz until it answers ``status``."""
    deadline = time.monotonic() + timeout
    while True:
        response = ops.get("/readyz")
        if response.status_code == status:
            return response
        assert time.monotonic() < deadline, (
            f"/readyz stayed {response.status_code}: {response.text}"
        )
        time.sleep(0.1)


def log_records(hub: HubProcess) -> list[dict[str, Any]]:
    records = []
    for line in hub.log().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def access_record(hub: HubProcess, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
    """The access log line of one request (the hub writes it once the answer is sent)."""
    deadline = time.monotonic() + timeout
    while True:
        for record in log_records(hub):
            if record.get("event") == "request" and record.get("request_id") == request_id:
                return record
        assert time.monotonic() < deadline, f"no access log line for {request_id}"
        time.sleep(0.05)


# --- health and readiness -----------------------------------------------------------------------


def test_healthz_answers_while_the_process_lives(ops: OpsHub) -> None:
    response = ops.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-request-id"]


def test_readyz_checks_every_configured_backend(ops: OpsHub) -> None:
    response = ops.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    expected = {"config", "database"}
    if ops.backend == "real":
        expected |= {"redis", "config_notifier", "ephemeral", "rabbitmq"}
    assert set(body["checks"]) == expected
    assert all(check["ok"] for check in body["checks"].values()), body
    assert body["checks"]["config"]["detail"] == f"version {active_version(ops)}"


@pytest.mark.backends
def test_readyz_fails_while_the_database_is_cut_and_recovers_without_restart(
    real_ops: OpsHub,
) -> None:
    pid = real_ops.hub.process.pid
    real_ops.cut(real_ops.database_proxy)
    try:
        body = wait_ready(real_ops, 503).json()
        assert body["status"] == "not_ready"
        assert body["checks"]["database"]["ok"] is False
        assert body["checks"]["database"]["detail"].startswith("database unreachable")
        assert body["checks"]["redis"]["ok"] is True
        assert body["checks"]["config"]["ok"] is True
        # The active snapshot is in memory: proxied traffic keeps flowing.
        proxied = real_ops.get("/ops/during-outage")
        assert proxied.status_code == 200
        assert proxied.json()["server"] == "ops"
        # The admin API says what is wrong instead of failing with a 500.
        admin = real_ops.get("/admin/api/config/versions", headers=AUTH)
        assert admin.status_code == 503, admin.text
        assert admin.json()["code"] == "backend_unavailable"
        assert admin.json()["request_id"] == admin.headers["x-request-id"]
    finally:
        real_ops.restore(real_ops.database_proxy)
    body = wait_ready(real_ops, 200).json()
    assert body["checks"]["database"] == {"ok": True, "detail": ""}
    assert real_ops.hub.process.pid == pid
    assert real_ops.hub.process.poll() is None


@pytest.mark.backends
def test_readyz_while_redis_is_cut_and_recovers_without_restart(real_ops: OpsHub) -> None:
    real_ops.cut(real_ops.redis_proxy)
    try:
        # Sessions and config fan-out need Redis; the rate limiter falls back and says so.
        body = wait_ready(real_ops, 503).json()
        assert body["checks"]["redis"] == {
            "ok": True,
            "detail": "redis unreachable; no route has a rate limit",
        }
        assert body["checks"]["config_notifier"]["ok"] is False
        assert body["checks"]["ephemeral"]["ok"] is False
        assert body["checks"]["database"]["ok"] is True
        assert body["checks"]["rabbitmq"]["ok"] is True
        assert real_ops.get("/ops/during-outage").status_code == 200
    finally:
        real_ops.restore(real_ops.redis_proxy)
    body = wait_ready(real_ops, 200).json()
    assert body["checks"]["redis"] == {"ok": True, "detail": ""}
    assert body["checks"]["config_notifier"]["ok"] is True
    assert body["checks"]["ephemeral"]["ok"] is True
    assert real_ops.hub.process.poll() is None


# --- metrics --------------------------------------------------------------------------------------


def scrape(ops: OpsHub) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = ops.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == METRICS_TYPE
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_requests_latency_upstream_time_and_config_version(ops: OpsHub) -> None:
    before = scrape(ops)
    for i in range(3):
        assert ops.get(f"/ops/metrics/{i}").status_code == 200
    assert ops.get("/ops/metrics/x", headers={"X-Ignored": "1"}).status_code == 200
    missing = ops.get("/no-such-route")
    assert missing.status_code == 404
    assert missing.json()["code"] == "route_not_found"
    after = scrape(ops)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {"route": "ops", "method": "GET", "status": "200"}
    assert delta("hub_requests_total", **ok) == 4
    assert delta("hub_requests_total", route="-", method="GET", status="404") == 1
    assert delta("hub_request_duration_seconds_count", route="ops") == 4
    assert delta("hub_request_duration_seconds_bucket", route="ops", le="+Inf") == 4
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (name, labels), v in after.items()
        if name == "hub_request_duration_seconds_bucket" and dict(labels)["route"] == "ops"
    )
    assert len(buckets) >= 10
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert value(after, "hub_request_duration_seconds_sum", route="ops") > 0
    assert delta("hub_upstream_duration_seconds_count", upstream="ops") == 4
    assert value(after, "hub_upstream_duration_seconds_bucket", upstream="ops", le="+Inf") >= 4
    assert value(after, "hub_config_version") == active_version(ops)
    # One target, healthy, breaker closed.
    origin = frozenset({("upstream", "ops"), ("target", ops.upstream_origin)})
    assert after[("hub_upstream_target_healthy", origin)] == 1.0
    assert after[("hub_upstream_breaker_state", origin)] == 0.0


# --- logs -----------------------------------------------------------------------------------------


def test_access_log_lines_are_structured_json(ops: OpsHub) -> None:
    request_id = f"ops-{uuid.uuid4().hex}"
    response = ops.get("/ops/logged?q=1", headers={"X-Request-ID": request_id})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == request_id
    record = access_record(ops.hub, request_id)
    assert record["level"] == "info"
    assert record["method"] == "GET"
    assert record["path"] == "/ops/logged"
    assert record["route"] == "ops"
    assert record["status"] == 200
    assert record["upstream"] == "ops"
    assert isinstance(record["duration_ms"], float | int)
    assert 0 < record["duration_ms"] < 10_000
    assert record["config_version"] == active_version(ops)
    assert record["timestamp"].endswith("Z")

    missing_id = f"ops-{uuid.uuid4().hex}"
    ops.get("/nowhere", headers={"X-Request-ID": missing_id})
    missing = access_record(ops.hub, missing_id)
    assert (missing["route"], missing["status"]) == ("-", 404)


def test_secrets_never_reach_the_logs(ops: OpsHub) -> None:
    marker = f"ops-{uuid.uuid4().hex}"
    calls = [
        ("/ops/secret", 200),
        ("/nowhere", 404),
        ("/healthz", 200),
        ("/admin/api/config/versions", 401),
    ]
    for i, (path, status) in enumerate(calls):
        headers = {
            **SECRET_HEADERS,
            "X-Request-ID": f"{marker}-{i}",
            "Proxy-Authorization": "s3cr3t",
        }
        response = ops.get(path, headers=headers)
        assert response.status_code == status, (path, response.text)
    # The right admin token is a secret too.
    assert ops.get("/admin/api/config/active", headers=AUTH).status_code == 200
    access_record(ops.hub, f"{marker}-1")
    output = ops.hub.log()
    assert "s3cr3t" not in output
    assert ADMIN_TOKEN not in output


# --- graceful shutdown ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["embedded", pytest.param("real", marks=pytest.mark.backends)])
def test_sigterm_lets_in_flight_requests_finish_and_refuses_new_ones(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    policies: Path,
    upstream: UpstreamServer,
) -> None:
    env = {} if backend == "embedded" else request.getfixturevalue("real_ops").env
    with run_hub(tmp_path, policies, env=env, migrate=False) as hub:
        result: dict[str, Any] = {}

        def slow_call() -> None:
            try:
                result["response"] = httpx.get(f"{hub.url}/ops/slow?ms=1500", timeout=15)
            except httpx.HTTPError as exc:
                result["error"] = exc

        caller = threading.Thread(target=slow_call)
        caller.start()
        deadline = time.monotonic() + 10
        while upstream.in_flight == 0:  # the slow request has reached the upstream
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # A keep-alive connection opened before the signal, idle while it arrives.
        kept = httpx.Client(base_url=hub.url, timeout=3)
        assert kept.get("/ops/before").status_code == 200
        signalled = time.monotonic()
        hub.process.send_signal(signal.SIGTERM)
        time.sleep(0.2)

        # New requests are refused or answered 503 (never served, never left hanging).
        outcomes = []
        for attempt in (
            lambda: httpx.get(f"{hub.url}/ops/late", timeout=3),
            lambda: kept.get("/ops/late"),
        ):
            try:
                late = attempt()
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                outcomes.append(type(exc).__name__)
                continue
            assert late.status_code == 503, late.text
            assert late.json()["code"] == "shutting_down"
            outcomes.append("503")
        kept.close()
        assert time.monotonic() - signalled < 5

        caller.join(timeout=15)
        assert "error" not in result, result
        slow = result["response"]
        assert slow.status_code == 200
        assert slow.json() == {"server": "ops", "slow": True}
        assert hub.process.wait(timeout=15) == 0
        took = time.monotonic() - signalled
        print(
            f"\n[{backend}] SIGTERM to exit with a 1.5 s request in flight: {took:.2f} s;"
            f" new connection / kept-alive connection after the signal: {outcomes}"
        )
        assert took < 10
        events = [r.get("event") for r in log_records(hub)]
        assert "Application shutdown complete." in events
