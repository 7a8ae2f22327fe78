"""The admin API for subscriptions and usage, and what the gateway makes of subscriptions.

The hub runs in process (``HubApp`` through Litestar's ``AsyncTestClient``, lifespan included)
on both back-end sets with a real loopback upstream. Products: ``shop`` (a subscription is
required, active at once), ``vip`` (required, needs an admin's approval), ``open`` (takes no
subscriptions). Plans: ``free`` (two requests at once, then one every 30 s), ``metered``
(three requests a day), ``gold`` (no caps), ``bronze`` (defined, offered by nobody).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from litestar.testing import AsyncTestClient

from hub.asgi import HubApp
from hub.db.migrate import migrate
from hub.settings import Settings
from tests.hubproc import ADMIN_TOKEN, hub_env, write_policies
from tests.test_admin_credentials import assert_problem
from tests.upstreams import UpstreamServer

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BASE = "/admin/api"
PLANS = [
    {"id": "free", "title": "Free", "rate": {"rate": 2, "period": 60, "burst": 1}},
    {"id": "metered", "title": "Metered", "quota": {"daily": 3, "monthly": 50}},
    {"id": "gold", "title": "Gold"},
    {"id": "bronze", "title": "Bronze"},
]
MISSING = "sub_0000000000000000"


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    server = UpstreamServer("svc").start()
    try:
        yield server
    finally:
        server.close()


def route(name: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": name,
        "prefix": f"/{name}/",
        "upstream": "svc",
        "product": name,
        "version": 1,
        "auth": {"methods": ["jwt", "api_key"], "scopes": ["svc.read"]},
        **fields,
    }


@pytest.fixture
def policies(tmp_path: Path, upstream: UpstreamServer) -> Path:
    folder = write_policies(
        tmp_path / "policies",
        upstreams=[{"id": "svc", "targets": [{"url": upstream.url}]}],
        routes=[route("shop"), route("vip"), route("open")],
        products=[
            {
                "id": "shop",
                "version": 1,
                "title": "Shop",
                "subscription": {"required": True, "plans": ["free", "metered", "gold"]},
            },
            {
                "id": "vip",
                "version": 1,
                "title": "VIP",
                "subscription": {"required": True, "plans": ["gold", "free"], "approval": True},
            },
            {"id": "open", "version": 1, "title": "Open"},
        ],
    )
    (folder / "plans.yaml").write_text(yaml.safe_dump({"plans": PLANS}))
    return folder


@pytest.fixture
async def client(
    tmp_path: Path, policies: Path, backend_env: dict[str, str]
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings.from_env(hub_env(tmp_path, policies, 8080, extra=backend_env))
    if not settings.embedded_database:
        await migrate(settings.database_url)
    async with AsyncTestClient(app=HubApp(settings)) as test_client:  # type: ignore[arg-type]
        yield test_client


async def vendor_app(client: httpx.AsyncClient, owner: str = "acme") -> tuple[str, str]:
    """A client of ``owner`` and an API key of it: (client id, key)."""
    created = await client.post(
        f"{BASE}/clients",
        json={
            "name": f"{owner} app",
            "owner": owner,
            "scopes": ["svc.read"],
            "auth_method": "client_secret_basic",
        },
        headers=AUTH,
    )
    assert created.status_code == 201, created.text
    client_id = created.json()["client_id"]
    key = await client.post(
        f"{BASE}/apikeys",
        json={"name": "k", "scopes": ["svc.read"], "client_id": client_id},
        headers=AUTH,
    )
    assert key.status_code == 201, key.text
    return client_id, key.json()["api_key"]


async def subscribe(
    client: httpx.AsyncClient, client_id: str, product: str = "shop", plan: str = "gold"
) -> dict[str, Any]:
    response = await client.post(
        f"{BASE}/subscriptions",
        json={"client_id": client_id, "product": product, "plan": plan, "reason": "contract 7"},
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def post(client: httpx.AsyncClient, path: str, body: Any = None) -> httpx.Response:
    return await client.post(BASE + path, json=body, headers=AUTH)


# --- authentication ---------------------------------------------------------------------------

CALLS = [
    ("POST", "/subscriptions", {"client_id": "c", "product": "shop", "plan": "gold"}),
    ("GET", "/subscriptions", None),
    ("GET", f"/subscriptions/{MISSING}", None),
    ("GET", f"/subscriptions/{MISSING}/events", None),
    ("POST", f"/subscriptions/{MISSING}/approve", None),
    ("POST", f"/subscriptions/{MISSING}/reject", {"reason": "no"}),
    ("POST", f"/subscriptions/{MISSING}/cancel", None),
    ("POST", f"/subscriptions/{MISSING}/plan", {"plan": "gold"}),
    ("GET", "/usage", None),
    ("GET", "/usage.csv", None),
]


@pytest.mark.parametrize(("method", "path", "body"), CALLS)
async def test_every_endpoint_refuses_callers_without_the_admin_credential(
    client: httpx.AsyncClient, method: str, path: str, body: Any
) -> None:
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        response = await client.request(method, BASE + path, json=body, headers=headers)
        assert_problem(response, 401, "unauthorized")
    # and the vendor's own API key is no admin credential either
    _, key = await vendor_app(client)
    response = await client.request(method, BASE + path, json=body, headers={"X-API-Key": key})
    assert_problem(response, 401, "unauthorized")


# --- create, read, list -----------------------------------------------------------------------


async def test_a_subscription_is_created_active_read_listed_and_audited(
    client: httpx.AsyncClient,
) -> None:
    client_id, _ = await vendor_app(client)
    created = await subscribe(client, client_id, plan="metered")
    assert created["id"].startswith("sub_")
    assert {k: created[k] for k in ("client_id", "product", "plan", "status", "created_by")} == {
        "client_id": client_id,
        "product": "shop",
        "plan": "metered",
        "status": "active",  # shop needs no approval
        "created_by": "admin-token",
    }
    read = await client.get(f"{BASE}/subscriptions/{created['id']}", headers=AUTH)
    assert read.json() == created
    other, _ = await vendor_app(client, owner="globex")
    await subscribe(client, other)
    listed = await client.get(f"{BASE}/subscriptions", headers=AUTH)
    assert [s["client_id"] for s in listed.json()] == [client_id, other]
    for query, expected in (
        ({"client_id": client_id}, [client_id]),
        ({"vendor": "globex"}, [other]),
        ({"plan": "metered"}, [client_id]),
        ({"status": "pending"}, []),
        ({"product": "vip"}, []),
        ({"limit": "1", "offset": "1"}, [other]),
    ):
        found = await client.get(f"{BASE}/subscriptions", params=query, headers=AUTH)
        assert [s["client_id"] for s in found.json()] == expected, query
    events = await client.get(f"{BASE}/subscriptions/{created['id']}/events", headers=AUTH)
    (event,) = events.json()
    assert {k: event[k] for k in ("action", "actor", "reason", "details")} == {
        "action": "created",
        "actor": "admin-token",
        "reason": "contract 7",
        "details": {"plan": "metered", "status": "active"},
    }


async def test_create_refuses_unknown_references_unoffered_plans_and_duplicates(
    client: httpx.AsyncClient,
) -> None:
    client_id, _ = await vendor_app(client)

    async def create(**body: Any) -> httpx.Response:
        fields = {"client_id": client_id, "product": "shop", "plan": "gold", **body}
        return await post(client, "/subscriptions", fields)

    assert_problem(
        await create(client_id="cli_nobody"), 404, "not_found", "client 'cli_nobody' does not exist"
    )
    body = assert_problem(await create(product="visas"), 404, "not_found")
    assert "product 'visas' takes no subscriptions" in body["detail"]
    assert_problem(await create(product="open"), 404, "not_found")  # no subscription block
    assert_problem(
        await create(plan="platinum"),
        404,
        "not_found",
        "plan 'platinum' is not defined in the active configuration",
    )
    assert_problem(
        await create(plan="bronze"),
        400,
        "invalid_request",
        "product 'shop' does not offer plan 'bronze' (it offers: free, metered, gold)",
    )
    assert_problem(
        await post(client, "/subscriptions", {"client_id": client_id}), 400, "invalid_request"
    )
    assert_problem(
        await post(client, "/subscriptions", ["not", "an", "object"]), 400, "invalid_request"
    )
    first = await subscribe(client, client_id)
    duplicate = assert_problem(await create(plan="free"), 409, "conflict")
    assert first["id"] in duplicate["detail"]
    # a disabled client cannot subscribe
    disabled, _ = await vendor_app(client, owner="gone")
    assert (await post(client, f"/clients/{disabled}/disable")).status_code == 200
    assert_problem(
        await create(client_id=disabled), 409, "conflict", f"client {disabled!r} is disabled"
    )


async def test_list_refuses_bad_filters(client: httpx.AsyncClient) -> None:
    for query, code, detail in (
        ({"status": "paused"}, "invalid_request", "status must be one of pending, active,"),
        ({"colour": "red"}, "bad_request", "unknown query parameter 'colour'"),
        ({"limit": "many"}, "invalid_request", "limit must be a whole number"),
        ({"limit": "0"}, "invalid_request", "limit must be between 1 and 500"),
        ({"offset": "-1"}, "invalid_request", "offset must be a whole number"),
    ):
        response = await client.get(f"{BASE}/subscriptions", params=query, headers=AUTH)
        body = assert_problem(response, 400, code)
        assert body["detail"].startswith(detail), body["detail"]


# --- the state machine ------------------------------------------------------------------------


async def test_approval_rejection_cancellation_and_plan_changes_follow_the_state_machine(
    client: httpx.AsyncClient,
) -> None:
    client_id, _ = await vendor_app(client)
    pending = await subscribe(client, client_id, product="vip")
    assert pending["status"] == "pending"
    sub = pending["id"]
    assert_problem(await post(client, f"/subscriptions/{sub}/cancel-not"), 404, "not_found")
    changed = await post(client, f"/subscriptions/{sub}/plan", {"plan": "free", "reason": "ask"})
    assert (changed.status_code, changed.json()["plan"]) == (200, "free")
    approved = await post(client, f"/subscriptions/{sub}/approve", {"reason": "checked"})
    assert approved.status_code == 200
    assert {k: approved.json()[k] for k in ("status", "decided_by", "reason")} == {
        "status": "active",
        "decided_by": "admin-token",
        "reason": "checked",
    }
    assert_problem(
        await post(client, f"/subscriptions/{sub}/approve"),
        409,
        "conflict",
        f"subscription {sub!r} is active: only a pending subscription can be approved",
    )
    assert_problem(
        await post(client, f"/subscriptions/{sub}/reject", {"reason": "late"}), 409, "conflict"
    )
    assert_problem(
        await post(client, f"/subscriptions/{sub}/plan", {"plan": "free"}),
        409,
        "conflict",
        f"subscription {sub!r} is already on plan 'free'",
    )
    assert_problem(
        await post(client, f"/subscriptions/{sub}/plan", {"plan": "metered"}),
        400,
        "invalid_request",
    )
    assert_problem(
        await post(client, f"/subscriptions/{sub}/plan", {"plan": "nope"}), 404, "not_found"
    )
    assert_problem(await post(client, f"/subscriptions/{sub}/plan", {}), 400, "invalid_request")
    cancelled = await post(client, f"/subscriptions/{sub}/cancel", {"reason": "contract ended"})
    assert (cancelled.json()["status"], cancelled.json()["cancelled_by"]) == (
        "cancelled",
        "admin-token",
    )
    for action, body in (("cancel", None), ("approve", None), ("plan", {"plan": "gold"})):
        assert_problem(await post(client, f"/subscriptions/{sub}/{action}", body), 409, "conflict")
    events = await client.get(f"{BASE}/subscriptions/{sub}/events", headers=AUTH)
    assert [e["action"] for e in events.json()] == [
        "created",
        "plan_changed",
        "approved",
        "cancelled",
    ]
    # once cancelled, the application may subscribe again; a rejection needs a reason
    again = await subscribe(client, client_id, product="vip")
    assert_problem(
        await post(client, f"/subscriptions/{again['id']}/reject", {"reason": " "}),
        400,
        "invalid_request",
    )
    assert_problem(
        await post(client, f"/subscriptions/{again['id']}/reject"), 400, "invalid_request"
    )
    rejected = await post(client, f"/subscriptions/{again['id']}/reject", {"reason": "no contract"})
    assert (rejected.json()["status"], rejected.json()["decided_by"]) == ("rejected", "admin-token")
    assert_problem(await post(client, f"/subscriptions/{again['id']}/cancel"), 409, "conflict")


@pytest.mark.parametrize(("method", "path", "body"), CALLS[2:8])
async def test_unknown_subscriptions_are_404(
    client: httpx.AsyncClient, method: str, path: str, body: Any
) -> None:
    response = await client.request(method, BASE + path, json=body, headers=AUTH)
    assert_problem(response, 404, "not_found", f"subscription {MISSING!r} does not exist")


# --- at the gateway ---------------------------------------------------------------------------


async def test_the_gateway_wants_an_active_subscription_and_applies_its_plan(
    client: httpx.AsyncClient,
) -> None:
    client_id, key = await vendor_app(client)
    caller = {"X-API-Key": key}
    refused = await client.get("/shop/x", headers=caller)
    body = assert_problem(refused, 403, "subscription_required")
    assert (
        body["detail"] == f"application {client_id!r} has no active subscription to product 'shop'"
    )
    assert (body["product"], body["subscription_status"]) == ("shop", "none")
    assert (await client.get("/open/x", headers=caller)).status_code == 200  # no block, no plan
    # a pending subscription says so, and its approval applies at once on this replica
    pending = await subscribe(client, client_id, product="vip", plan="free")
    body = assert_problem(await client.get("/vip/x", headers=caller), 403, "subscription_required")
    assert (body["subscription_status"], body["subscription"]) == ("pending", pending["id"])
    assert "pending an admin's approval" in body["detail"]
    await post(client, f"/subscriptions/{pending['id']}/approve")
    first, second, third = [await client.get("/vip/x", headers=caller) for _ in range(3)]
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["RateLimit-Policy"] == '"plan";q=2;w=60'
    assert first.headers["RateLimit"].startswith('"plan";r=1;t=')
    body = assert_problem(third, 429, "rate_limited")
    assert 1 <= int(third.headers["Retry-After"]) <= 30
    # the plan's rate is per application: another application has its own
    other, other_key = await vendor_app(client, owner="globex")
    theirs = await subscribe(client, other, product="vip", plan="free")
    await post(client, f"/subscriptions/{theirs['id']}/approve")
    assert (await client.get("/vip/x", headers={"X-API-Key": other_key})).status_code == 200
    # cancelled: refused again at once
    await post(client, f"/subscriptions/{pending['id']}/cancel")
    assert_problem(await client.get("/vip/x", headers=caller), 403, "subscription_required")


async def test_a_quota_refuses_with_retry_after_and_refusals_do_not_count(
    client: httpx.AsyncClient,
) -> None:
    client_id, key = await vendor_app(client)
    await subscribe(client, client_id, plan="metered")
    caller = {"X-API-Key": key}
    allowed = [await client.get("/shop/x", headers=caller) for _ in range(3)]
    assert [r.status_code for r in allowed] == [200, 200, 200]
    assert (
        allowed[0].headers["RateLimit-Policy"].startswith('"daily";q=3;w=86400, "monthly";q=50;w=')
    )
    assert [r.headers["RateLimit"].partition(";t=")[0] for r in allowed] == [
        '"daily";r=2',
        '"daily";r=1',
        '"daily";r=0',
    ]
    refused = [await client.get("/shop/x", headers=caller) for _ in range(3)]
    for response in refused:
        body = assert_problem(response, 429, "quota_exceeded")
        assert (body["quota"], body["limit"], body["plan"]) == ("daily", 3, "metered")
    now = datetime.now(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    wait = int(refused[0].headers["Retry-After"])
    assert abs(wait - (midnight - now).total_seconds()) <= 5
    assert refused[0].headers["RateLimit"] == f'"daily";r=0;t={wait}'
    assert body["resets_at"] == midnight.isoformat(timespec="seconds")
    # the refusals were not counted: usage shows the three admitted requests only
    usage = await client.get(f"{BASE}/usage", params={"client_id": client_id}, headers=AUTH)
    assert [(r["product"], r["requests"]) for r in usage.json()["rows"]] == [("shop", 3)]


# --- usage ------------------------------------------------------------------------------------


async def test_usage_is_reported_as_json_and_csv_with_filters(client: httpx.AsyncClient) -> None:
    one, one_key = await vendor_app(client, owner="acme")
    two, two_key = await vendor_app(client, owner="=cmd|' /C calc'!A0")
    await subscribe(client, one)
    await subscribe(client, two)
    for _ in range(4):
        assert (await client.get("/shop/x", headers={"X-API-Key": one_key})).status_code == 200
    assert (await client.get("/shop/x", headers={"X-API-Key": two_key})).status_code == 200
    assert (await client.get("/open/x", headers={"X-API-Key": two_key})).status_code == 200
    today = datetime.now(UTC).date().isoformat()
    report = (await client.get(f"{BASE}/usage", headers=AUTH)).json()
    assert report["start"] == today[:8] + "01"
    assert report["end"] == today
    rows = {(r["client_id"], r["product"]): r for r in report["rows"]}
    assert {k: r["requests"] for k, r in rows.items()} == {
        (one, "shop"): 4,
        (two, "shop"): 1,
        (two, "open"): 1,
    }
    assert rows[(one, "shop")]["vendor"] == "acme"
    assert rows[(one, "shop")]["day"] == today
    assert report["total_requests"] == 6
    by_vendor = await client.get(f"{BASE}/usage", params={"vendor": "acme"}, headers=AUTH)
    assert [r["client_id"] for r in by_vendor.json()["rows"]] == [one]
    by_product = await client.get(f"{BASE}/usage", params={"product": "open"}, headers=AUTH)
    assert [r["client_id"] for r in by_product.json()["rows"]] == [two]
    yesterday = await client.get(
        f"{BASE}/usage", params={"from": "2020-01-01", "to": "2020-01-31"}, headers=AUTH
    )
    assert yesterday.json()["rows"] == []
    for exported in (
        await client.get(f"{BASE}/usage.csv", params={"from": today, "to": today}, headers=AUTH),
        await client.get(f"{BASE}/usage", params={"format": "csv", "from": today}, headers=AUTH),
    ):
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("text/csv")
        assert exported.headers["content-disposition"] == (
            f'attachment; filename="usage-{today}-{today}.csv"'
        )
        table = list(csv.reader(io.StringIO(exported.text)))
        assert table[0] == ["day", "client_id", "client_name", "vendor", "product", "requests"]
        assert sorted(table[1:]) == sorted(
            [
                [today, one, "acme app", "acme", "shop", "4"],
                [
                    today,
                    two,
                    "=cmd|' /C calc'!A0 app".replace("=", "'=", 1),
                    "'=cmd|' /C calc'!A0",
                    "open",
                    "1",
                ],
                [
                    today,
                    two,
                    "=cmd|' /C calc'!A0 app".replace("=", "'=", 1),
                    "'=cmd|' /C calc'!A0",
                    "shop",
                    "1",
                ],
            ]
        )


@pytest.mark.parametrize("path", ["/usage", "/usage.csv"])
async def test_usage_refuses_bad_dates_and_unknown_filters(
    client: httpx.AsyncClient, path: str
) -> None:
    for query, status, code, detail in (
        ({"from": "2025-13-01"}, 400, "invalid_request", "from must be a date as YYYY-MM-DD"),
        ({"to": "yesterday"}, 400, "invalid_request", "to must be a date as YYYY-MM-DD"),
        ({"from": "2025-5-1"}, 400, "invalid_request", "from must be a date as YYYY-MM-DD"),
        (
            {"from": "2025-05-02", "to": "2025-05-01"},
            400,
            "invalid_request",
            "from (2025-05-02) is after to (2025-05-01)",
        ),
        (
            {"from": "2023-01-01", "to": "2025-01-01"},
            400,
            "invalid_request",
            "a usage query covers at most 366 days",
        ),
        ({"customer": "acme"}, 400, "bad_request", "unknown query parameter 'customer'"),
        ({"client_id": "cli_nobody"}, 404, "not_found", "client 'cli_nobody' does not exist"),
        ({"vendor": "nobody"}, 404, "not_found", "no client is owned by vendor 'nobody'"),
        ({"product": "visas"}, 404, "not_found", "product 'visas' is neither configured"),
    ):
        response = await client.get(BASE + path, params=query, headers=AUTH)
        body = assert_problem(response, status, code)
        assert body["detail"].startswith(detail), (query, body["detail"])
    if path == "/usage":
        response = await client.get(BASE + path, params={"format": "xml"}, headers=AUTH)
        assert_problem(response, 400, "invalid_request", "format must be json or csv, not 'xml'")


async def test_a_publish_that_would_strand_live_subscriptions_is_refused(
    client: httpx.AsyncClient,
) -> None:
    client_id, _ = await vendor_app(client)
    live = await subscribe(client, client_id, plan="metered")
    active = (await client.get(f"{BASE}/config/active", headers=AUTH)).json()
    document = active["document"]
    without_plan = {**document, "plans": [p for p in document["plans"] if p["id"] != "metered"]}
    without_plan["products"] = [
        {**p, "subscription": {**p["subscription"], "plans": ["free", "gold"]}}
        if p["id"] == "shop"
        else p
        for p in document["products"]
    ]
    expected = [
        "$.plans: plan 'metered' is used by 1 pending or active subscription(s) to product"
        " 'shop'; move them to another plan first"
    ]
    for path, body in (
        ("/config/validate", without_plan),
        ("/config/versions", {"document": without_plan, "based_on": active["version"]}),
    ):
        refused = await client.post(BASE + path, json=body, headers=AUTH)
        assert assert_problem(refused, 422, "invalid_configuration")["errors"] == expected
    no_block = {
        **document,
        "products": [
            {k: v for k, v in p.items() if k != "subscription"} if p["id"] == "shop" else p
            for p in document["products"]
        ],
    }
    refused = await client.post(f"{BASE}/config/validate", json=no_block, headers=AUTH)
    assert assert_problem(refused, 422, "invalid_configuration")["errors"] == [
        "$.products: product 'shop' has 1 pending or active subscription(s) but would take"
        " no subscriptions; cancel them first"
    ]
    # once the subscription is moved, the plan may go
    await post(client, f"/subscriptions/{live['id']}/plan", {"plan": "gold"})
    published = await client.post(
        f"{BASE}/config/versions",
        json={"document": without_plan, "based_on": active["version"], "comment": "drop metered"},
        headers=AUTH,
    )
    assert published.status_code == 201, published.text
