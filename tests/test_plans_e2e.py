"""Plans, subscriptions and quotas through real hub processes, on both back-end sets.

Product ``shop`` requires a subscription. Plans: ``tight`` (two requests at once, then one
every 30 s), ``metered`` (three requests a day), ``bulk`` (no caps). Route ``/shop/`` has no
limit of its own; ``/shared/`` (also ``shop``) has a route-wide limit of three at once, applied
together with the plan's rate. Usage must survive a restart of the hub and a Redis outage.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml

from tests.fixtures_services import proxied_url, service_address
from tests.helpers import LoopThread, metric, wait_until
from tests.hubproc import (
    ADMIN_TOKEN,
    ROOT,
    HubProcess,
    hub_command,
    hub_env,
    run_hub,
    write_policies,
)
from tests.tcpproxy import TcpProxy
from tests.upstreams import UpstreamServer

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
RUN = uuid.uuid4().hex[:8]  # route ids, so Redis buckets of earlier runs cannot interfere
AUTH_BLOCK = {"methods": ["api_key"], "scopes": ["shop.read"]}
PLANS = [
    {"id": "tight", "title": "Tight", "rate": {"rate": 2, "period": 60, "burst": 1}},
    {"id": "metered", "title": "Metered", "quota": {"daily": 3}},
    {"id": "bulk", "title": "Bulk"},
    {"id": "roomy", "title": "Roomy", "rate": {"rate": 10_000, "period": 1, "burst": 10_000}},
    {"id": "paced", "title": "Paced", "rate": {"rate": 2, "period": 1}, "quota": {"daily": 10}},
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    server = UpstreamServer("shop").start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory, upstream: UpstreamServer) -> Path:
    common = {"upstream": "shop", "product": "shop", "version": 1, "auth": AUTH_BLOCK}
    folder = write_policies(
        tmp_path_factory.mktemp("plans") / "policies",
        upstreams=[{"id": "shop", "targets": [{"url": upstream.url}]}],
        routes=[
            {"id": f"shop-{RUN}", "prefix": "/shop/", **common},
            {
                "id": f"shared-{RUN}",
                "prefix": "/shared/",
                "rate_limit": {"rate": 3, "period": 60, "burst": 2, "key": "route"},
                **common,
            },
        ],
        products=[
            {
                "id": "shop",
                "version": 1,
                "title": "Shop",
                "subscription": {
                    "required": True,
                    "plans": ["tight", "metered", "bulk", "roomy", "paced"],
                },
            }
        ],
    )
    (folder / "plans.yaml").write_text(yaml.safe_dump({"plans": PLANS}))
    return folder


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory, policies: Path, backends: dict[str, str]
) -> Iterator[HubProcess]:
    env = {"HUB_ACCESS_LOG": "false", **backends}
    with run_hub(tmp_path_factory.mktemp("hub"), policies, env=env) as process:
        yield process


def application(url: str, plan: str | None = None) -> tuple[str, str]:
    """A new vendor client with an API key, subscribed under ``plan`` if given."""
    with httpx.Client(base_url=url, headers=AUTH, timeout=10) as admin:
        created = admin.post(
            "/admin/api/clients",
            json={
                "name": "shop app",
                "owner": "acme",
                "scopes": ["shop.read"],
                "auth_method": "client_secret_basic",
            },
        )
        assert created.status_code == 201, created.text
        client_id = created.json()["client_id"]
        key = admin.post(
            "/admin/api/apikeys",
            json={"name": "k", "scopes": ["shop.read"], "client_id": client_id},
        )
        assert key.status_code == 201, key.text
        if plan is not None:
            subscribed = admin.post(
                "/admin/api/subscriptions",
                json={"client_id": client_id, "product": "shop", "plan": plan},
            )
            assert subscribed.status_code == 201, subscribed.text
    return client_id, key.json()["api_key"]


def usage_of(url: str, client_id: str) -> int:
    with httpx.Client(base_url=url, headers=AUTH, timeout=10) as admin:
        report = admin.get("/admin/api/usage", params={"client_id": client_id})
        assert report.status_code == 200, report.text
        return sum(row["requests"] for row in report.json()["rows"])


def test_subscription_required_until_an_admin_subscribes_the_application(hub: HubProcess) -> None:
    client_id, key = application(hub.url)
    with httpx.Client(base_url=hub.url, headers={"X-API-Key": key}, timeout=10) as vendor:
        refused = vendor.get("/shop/x")
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "subscription_required"
        assert refused.json()["subscription_status"] == "none"
        with httpx.Client(base_url=hub.url, headers=AUTH, timeout=10) as admin:
            created = admin.post(
                "/admin/api/subscriptions",
                json={"client_id": client_id, "product": "shop", "plan": "bulk"},
            )
        assert created.status_code == 201
        assert vendor.get("/shop/x").status_code == 200  # this replica forgot its cached "none"
    with httpx.Client(base_url=hub.url) as client:
        assert metric(client, "hub_subscription_required_total", product="shop")


def test_the_plan_rate_and_the_route_limit_apply_together_and_a_refusal_charges_neither(
    hub: HubProcess,
) -> None:
    _, tight_key = application(hub.url, "tight")
    _, bulk_key = application(hub.url, "bulk")
    with httpx.Client(base_url=hub.url, timeout=10) as client:
        tight = [client.get("/shared/x", headers={"X-API-Key": tight_key}) for _ in range(3)]
        assert [r.status_code for r in tight] == [200, 200, 429]
        assert tight[0].headers["RateLimit-Policy"] == '"route";q=3;w=60, "plan";q=2;w=60'
        assert tight[1].headers["RateLimit"].startswith('"plan";r=0;t=')
        refused = tight[2]
        assert refused.json()["code"] == "rate_limited"
        assert refused.headers["RateLimit"].startswith('"plan";r=0;t=')
        assert 1 <= int(refused.headers["Retry-After"]) <= 30
        # the plan refused the third request, so the route kept its third place for another
        bulk = [client.get("/shared/x", headers={"X-API-Key": bulk_key}) for _ in range(2)]
        assert [r.status_code for r in bulk] == [200, 429]
        assert bulk[0].headers["RateLimit-Policy"] == '"route";q=3;w=60'  # bulk has no rate
        assert bulk[1].headers["RateLimit"].startswith('"route";r=0;t=')


def test_quota_exceeded_survives_a_restart_and_usage_is_exported(
    hub: HubProcess,
    policies: Path,
    backends: dict[str, str],
    tmp_path: Path,
) -> None:
    client_id, key = application(hub.url, "metered")
    caller = {"X-API-Key": key}
    with httpx.Client(base_url=hub.url, timeout=10) as client:
        assert [client.get("/shop/x", headers=caller).status_code for _ in range(3)] == [200] * 3
        over = client.get("/shop/x", headers=caller)
        assert over.status_code == 429
        assert over.json()["code"] == "quota_exceeded"
        assert over.json()["quota"] == "daily"
        assert int(over.headers["Retry-After"]) >= 1
        assert metric(client, "hub_quota_exceeded_total", product="shop", period="daily") == 1
    assert usage_of(hub.url, client_id) == 3
    # another hub process on the same database (a restart, or another replica) knows the usage
    env = {"HUB_ACCESS_LOG": "false", **backends}
    if "HUB_DATABASE_URL" not in backends:  # embedded: the same SQLite file
        env["HUB_DATABASE_URL"] = f"sqlite+aiosqlite:///{hub.log_path.parent / 'data' / 'hub.db'}"
    with run_hub(tmp_path, policies, env=env) as second:
        with httpx.Client(base_url=second.url, timeout=10) as client:
            again = client.get("/shop/x", headers=caller)
            assert again.status_code == 429
            assert again.json()["code"] == "quota_exceeded"
        today = datetime.now(UTC).date().isoformat()
        with httpx.Client(base_url=second.url, headers=AUTH, timeout=10) as admin:
            exported = admin.get("/admin/api/usage.csv", params={"client_id": client_id})
        assert exported.status_code == 200
        rows = list(csv.reader(io.StringIO(exported.text)))
        assert rows == [
            ["day", "client_id", "client_name", "vendor", "product", "requests"],
            [today, client_id, "shop app", "acme", "shop", "3"],
        ]


@pytest.mark.backends
def test_a_redis_cut_during_traffic_loses_no_usage(
    tmp_path: Path, policies: Path, postgres_url: str, redis_url: str
) -> None:
    loop = LoopThread()
    host, port = service_address(redis_url)
    proxy = TcpProxy(target_host=host, target_port=port)
    loop.run(proxy.start())
    env = {
        "HUB_ACCESS_LOG": "false",
        "HUB_DATABASE_URL": postgres_url,
        "HUB_REDIS_URL": proxied_url(redis_url, proxy),
    }
    statuses: list[int] = []
    stop = threading.Event()
    try:
        with run_hub(tmp_path, policies, env=env) as hub:
            client_id, key = application(hub.url, "roomy")  # its rate's bucket lives in Redis

            def traffic() -> None:
                with httpx.Client(base_url=hub.url, headers={"X-API-Key": key}, timeout=10) as c:
                    while not stop.is_set():
                        statuses.append(c.get("/shop/x").status_code)

            threads = [threading.Thread(target=traffic) for _ in range(2)]
            for thread in threads:
                thread.start()
            try:
                wait_until(lambda: len(statuses) > 30, timeout=15)
                loop.run(proxy.cut())
                with httpx.Client(base_url=hub.url) as probe:
                    wait_until(lambda: metric(probe, "hub_limiter_fallback_active") == 1, 10)
                during = len(statuses)
                wait_until(lambda: len(statuses) > during + 30, timeout=15)
                loop.run(proxy.restore())
                with httpx.Client(base_url=hub.url) as probe:
                    wait_until(lambda: metric(probe, "hub_limiter_fallback_active") == 0, 10)
                after = len(statuses)
                wait_until(lambda: len(statuses) > after + 30, timeout=15)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(timeout=15)
            assert set(statuses) == {200}, sorted(set(statuses))
            # every admitted request is in the database: none was kept only in Redis
            assert usage_of(hub.url, client_id) == len(statuses)
            with httpx.Client(base_url=hub.url) as probe:
                assert (metric(probe, "hub_usage_flushes_total", outcome="ok") or 0) > 0
                assert (metric(probe, "hub_usage_flushes_total", outcome="failed") or 0) == 0
    finally:
        loop.run(proxy.aclose())
        loop.close()


def test_the_subscriptions_cli_works_on_the_hubs_database(
    hub: HubProcess, backends: dict[str, str]
) -> None:
    client_id, key = application(hub.url)
    tmp = hub.log_path.parent
    env = dict(backends)
    created = hub_command(
        tmp, hub, env, "subscriptions", "create", "--client", client_id, "--product", "shop",
        "--plan", "bulk", "--reason", "signed contract",
    )  # fmt: skip
    assert (created["client_id"], created["plan"], created["status"]) == (
        client_id,
        "bulk",
        "active",
    )
    with httpx.Client(base_url=hub.url, headers=AUTH, timeout=10) as admin:
        (event,) = admin.get(f"/admin/api/subscriptions/{created['id']}/events").json()
        assert (event["actor"], event["reason"]) == ("cli", "signed contract")
    moved = hub_command(tmp, hub, env, "subscriptions", "change-plan", created["id"], "tight")
    assert moved["plan"] == "tight"
    cancelled = hub_command(tmp, hub, env, "subscriptions", "cancel", created["id"])
    assert cancelled["status"] == "cancelled"
    refused = subprocess.run(
        [sys.executable, "-m", "hub", "subscriptions", "approve", created["id"]],
        env=hub_env(tmp, tmp / "policies", hub.port, extra=env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1
    assert "only a pending subscription can be approved" in refused.stderr
    # within the cache time (5 s here) the gateway refuses the cancelled subscription
    with httpx.Client(base_url=hub.url, headers={"X-API-Key": key}, timeout=10) as vendor:
        wait_until(lambda: vendor.get("/shop/x").status_code == 403, timeout=10, interval=0.5)


@pytest.mark.backends
def test_two_replicas_overshoot_a_quota_by_at_most_the_documented_bound(
    tmp_path: Path, policies: Path, postgres_url: str, redis_url: str
) -> None:
    # plan "paced": 2 requests a second (burst 0, shared in Redis), 10 a day. Each replica sees
    # the other's usage one to two flush intervals late: at most b + 1 + 2r = 5 over the quota.
    env = {"HUB_ACCESS_LOG": "false", "HUB_DATABASE_URL": postgres_url, "HUB_REDIS_URL": redis_url}
    with (
        run_hub(tmp_path / "one", policies, env=env) as one,
        run_hub(tmp_path / "two", policies, env=env, migrate=False) as two,
    ):
        client_id, key = application(one.url, "paced")
        admitted = 0
        codes: set[str] = set()
        with httpx.Client(headers={"X-API-Key": key}, timeout=10) as vendor:
            deadline = time.monotonic() + 9
            turn = 0
            while time.monotonic() < deadline:
                response = vendor.get(f"{(one, two)[turn % 2].url}/shop/x")
                turn += 1
                if response.status_code == 200:
                    admitted += 1
                else:
                    assert response.status_code == 429, response.text
                    codes.add(response.json()["code"])
                time.sleep(0.05)
        assert 10 <= admitted <= 10 + 5, admitted
        assert codes == {"rate_limited", "quota_exceeded"}
        # every admitted request is in the database once, whichever replica admitted it
        wait_until(lambda: usage_of(one.url, client_id) == admitted, timeout=5, interval=0.2)
