"""The subscription and usage stores on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.db.client_store import ClientStore
from hub.db.subscription_store import SubscriptionStore
from hub.db.usage_store import UsageStore, UsageTotals
from hub.errors import Conflict, InvalidRequest, NotFound


async def client(engine: AsyncEngine, owner: str = "acme") -> str:
    created, _ = await ClientStore(engine).create(
        name=f"{owner} app", owner=owner, auth_method="client_secret_basic", scopes=["echo.read"]
    )
    return created.client_id


# --- subscriptions ---------------------------------------------------------------------------


async def test_a_subscription_is_created_read_and_listed(db_engine: AsyncEngine) -> None:
    store = SubscriptionStore(db_engine)
    app = await client(db_engine)
    created = await store.create(
        client_id=app, product="echo", plan="free", status="active", actor="admin-token"
    )
    assert created.id.startswith("sub_")
    assert (created.client_id, created.product, created.plan, created.status) == (
        app,
        "echo",
        "free",
        "active",
    )
    assert created.created_by == created.updated_by == "admin-token"
    assert created.live
    assert await store.get(created.id) == created
    assert await store.live(app, "echo") == created
    assert await store.live(app, "visas") is None
    assert await store.list(client_id=app) == [created]
    assert await store.list(owner="acme") == [created]
    assert await store.list(owner="other") == []
    assert await store.list(status="pending") == []
    assert await store.products() == {"echo"}
    (event,) = await store.events(created.id)
    assert (event.action, event.actor, event.details) == (
        "created",
        "admin-token",
        {"plan": "free", "status": "active"},
    )


async def test_unknown_client_and_second_live_subscription_are_refused(
    db_engine: AsyncEngine,
) -> None:
    store = SubscriptionStore(db_engine)
    with pytest.raises(NotFound, match="client 'cli_nobody' does not exist"):
        await store.create(
            client_id="cli_nobody", product="echo", plan="free", status="active", actor="a"
        )
    app = await client(db_engine)
    first = await store.create(
        client_id=app, product="echo", plan="free", status="pending", actor="a"
    )
    with pytest.raises(Conflict, match="already has a pending subscription") as caught:
        await store.create(client_id=app, product="echo", plan="gold", status="active", actor="a")
    assert caught.value.extra == {"subscription": first.id}
    # another product is another subscription; a cancelled one frees the place
    await store.create(client_id=app, product="visas", plan="free", status="active", actor="a")
    await store.change(
        first.id, action="cancelled", allowed_from=("pending",), status="cancelled", actor="a"
    )
    again = await store.create(
        client_id=app, product="echo", plan="gold", status="active", actor="a"
    )
    assert again.id != first.id


async def test_concurrent_creates_leave_exactly_one_live_subscription(
    db_engine: AsyncEngine,
) -> None:
    app = await client(db_engine)
    stores = [SubscriptionStore(db_engine) for _ in range(6)]
    results = await asyncio.gather(
        *(
            store.create(client_id=app, product="echo", plan="free", status="active", actor="a")
            for store in stores
        ),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))


async def test_changes_record_who_and_when_and_refuse_other_states(
    db_engine: AsyncEngine,
) -> None:
    store = SubscriptionStore(db_engine)
    app = await client(db_engine)
    sub = await store.create(
        client_id=app, product="echo", plan="free", status="pending", actor="person:p1"
    )
    approved = await store.change(
        sub.id,
        action="approved",
        allowed_from=("pending",),
        status="active",
        actor="person:p2",
        reason="vendor verified",
    )
    assert (approved.status, approved.decided_by, approved.reason) == (
        "active",
        "person:p2",
        "vendor verified",
    )
    assert approved.decided_at is not None
    with pytest.raises(Conflict, match="is active: only a pending subscription can be approved"):
        await store.change(
            sub.id, action="approved", allowed_from=("pending",), status="active", actor="x"
        )
    moved = await store.change(
        sub.id, action="plan_changed", allowed_from=("pending", "active"), plan="gold", actor="x"
    )
    assert (moved.plan, moved.status) == ("gold", "active")
    cancelled = await store.change(
        sub.id,
        action="cancelled",
        allowed_from=("pending", "active"),
        status="cancelled",
        actor="x",
    )
    assert (cancelled.cancelled_by, cancelled.live) == ("x", False)
    actions = [(e.action, e.details) for e in await store.events(sub.id)]
    assert actions == [
        ("created", {"plan": "free", "status": "pending"}),
        ("approved", {"status": {"from": "pending", "to": "active"}}),
        ("plan_changed", {"plan": {"from": "free", "to": "gold"}}),
        ("cancelled", {"status": {"from": "active", "to": "cancelled"}}),
    ]
    with pytest.raises(NotFound):
        await store.change("sub_missing", action="cancelled", allowed_from=("active",), actor="x")
    with pytest.raises(NotFound):
        await store.events("sub_missing")
    with pytest.raises(InvalidRequest, match="reason"):
        await store.change(
            sub.id, action="cancelled", allowed_from=("active",), actor="x", reason="x" * 1001
        )


async def test_list_pages_and_filters(db_engine: AsyncEngine) -> None:
    store = SubscriptionStore(db_engine)
    apps = [await client(db_engine, owner=f"v{i % 2}") for i in range(4)]
    for app in apps:
        await store.create(client_id=app, product="echo", plan="free", status="active", actor="a")
    assert len(await store.list()) == 4
    assert len(await store.list(owner="v0")) == 2
    page = await store.list(limit=3)
    rest = await store.list(limit=3, offset=3)
    assert [s.client_id for s in page + rest] == apps
    assert await store.list(plan="gold") == []
    with pytest.raises(InvalidRequest):
        await store.list(limit=0)


# --- usage -----------------------------------------------------------------------------------


async def test_usage_increments_add_up_across_flushes(db_engine: AsyncEngine) -> None:
    usage = UsageStore(db_engine)
    may_30, may_31, june_1 = date(2025, 5, 30), date(2025, 5, 31), date(2025, 6, 1)
    await usage.add({("a", "echo", may_30): 3, ("a", "echo", may_31): 4, ("b", "echo", may_31): 1})
    await usage.add({("a", "echo", may_31): 5, ("a", "echo", june_1): 2, ("a", "visas", may_31): 0})
    totals = await usage.totals([("a", "echo"), ("b", "echo"), ("c", "echo")], may_31)
    assert totals == {
        ("a", "echo"): UsageTotals(day=9, month=12),
        ("b", "echo"): UsageTotals(day=1, month=1),
    }
    # a new month starts from zero
    assert await usage.totals([("a", "echo")], june_1) == {
        ("a", "echo"): UsageTotals(day=2, month=2)
    }
    assert await usage.products() == {"echo"}  # a zero increment writes nothing


async def test_concurrent_flushes_lose_no_increment(db_engine: AsyncEngine) -> None:
    day = date(2025, 5, 31)
    stores = [UsageStore(db_engine) for _ in range(5)]
    await asyncio.gather(*(s.add({("a", "echo", day): 7}) for s in stores for _ in range(4)))
    assert await stores[0].totals([("a", "echo")], day) == {
        ("a", "echo"): UsageTotals(day=140, month=140)
    }


async def test_usage_list_joins_the_client_and_filters(db_engine: AsyncEngine) -> None:
    usage = UsageStore(db_engine)
    one, two = await client(db_engine, "acme"), await client(db_engine, "globex")
    await usage.add(
        {
            (one, "echo", date(2025, 5, 1)): 10,
            (two, "echo", date(2025, 5, 2)): 20,
            (one, "visas", date(2025, 5, 3)): 30,
            ("cli_gone", "echo", date(2025, 5, 3)): 1,
        }
    )
    rows = await usage.list(start=date(2025, 5, 1), end=date(2025, 5, 31))
    found = [(r.day.day, r.client_id, r.owner, r.product, r.requests) for r in rows]
    assert found == sorted(found)  # by day, then client, then product
    assert set(found) == {
        (1, one, "acme", "echo", 10),
        (2, two, "globex", "echo", 20),
        (3, "cli_gone", None, "echo", 1),  # usage outlives its client's row
        (3, one, "acme", "visas", 30),
    }
    assert rows[0].client_name == "acme app"
    assert [r.requests for r in await usage.list(start=date(2025, 5, 2), end=date(2025, 5, 2))] == [
        20
    ]
    assert [
        r.requests
        for r in await usage.list(start=date(2025, 5, 1), end=date(2025, 5, 31), owner="acme")
    ] == [10, 30]
    assert [
        r.requests
        for r in await usage.list(
            start=date(2025, 5, 1), end=date(2025, 5, 31), client_id=one, product="visas"
        )
    ] == [30]
