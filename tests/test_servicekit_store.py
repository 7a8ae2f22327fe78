"""The service kit's store helpers on their own, over a tiny store on an SQLite file.

A made-up service with one state machine (``widgets``), its transitions, its idempotency keys
and its payment receipts: what the domain services' stores build on, tested once here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, String, Table, select

from hub.db.engine import create_engine
from hub.db.models import UTCDateTime
from hub.errors import IdempotencyConflict
from hub.events.tables import include_event_tables
from hub.servicekit.store import (
    IdempotencyKeys,
    PaymentReceipts,
    ServiceStore,
    Transitions,
    emit,
    equal_to,
    idempotency_table,
    locked,
    receipts_table,
    service_metadata,
    transitions_table,
    versioned_update,
)

METADATA = service_metadata()
widgets = Table(
    "widgets",
    METADATA,
    Column("id", String(40), primary_key=True),
    Column("state", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    Column("colour", String(20), nullable=True),
    Column("made_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
history = transitions_table("widget_transitions", METADATA, owner="widget_id", rows="widgets")
keys = idempotency_table("widget_idempotency", METADATA, result="widget_id")
receipts = receipts_table("widget_payment_receipts", METADATA)
include_event_tables(METADATA)
outbox = METADATA.tables["outbox_events"]

MOVES = Transitions(widgets, history, owner="widget_id", what="widget")
KEYS = IdempotencyKeys(keys, result="widget_id")
RECEIPTS = PaymentReceipts(receipts)
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    kind: str
    id: str


OFFICER = Actor(kind="officer", id="o-1")


class WidgetStore(ServiceStore):
    metadata = METADATA


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[WidgetStore]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'widgets.db'}")
    made = WidgetStore(engine)
    await made.create_schema()
    yield made
    await engine.dispose()


async def _made(store: WidgetStore, widget_id: str, made_at: datetime = NOW) -> None:
    async with store.writing() as conn:
        await conn.execute(
            widgets.insert().values(
                id=widget_id, state="new", version=1, made_at=made_at, updated_at=made_at
            )
        )


def test_the_transitions_table_has_every_service_s_columns() -> None:
    assert [column.name for column in history.columns] == [
        "seq",
        "widget_id",
        "number",
        "from_state",
        "to_state",
        "actor_kind",
        "actor_id",
        "at",
        "reason",
        "detail",
    ]
    plain = transitions_table(
        "plain_transitions", service_metadata(), owner="plain_id", rows="plain", detail=False
    )
    assert "detail" not in plain.c
    assert [index.name for index in history.indexes] == ["ix_widget_transitions_widget_id"]


async def test_moves_are_numbered_and_bump_the_version(store: WidgetStore) -> None:
    await _made(store, "w1")
    async with store.writing() as conn:
        current = await locked(conn, widgets, "w1")
        assert current is not None
        moved, number = await MOVES.move(
            conn, current, "painted", OFFICER, now=NOW, changes={"colour": "red"}, reason="asked"
        )
        assert number == 1
        assert (moved["state"], moved["version"], moved["colour"]) == ("painted", 2, "red")
        moved, number = await MOVES.move(conn, moved, "sold", OFFICER, now=NOW, detail={"p": 1})
        assert number == 2
        steps = await MOVES.of(conn, "w1")
    assert [(s["number"], s["from_state"], s["to_state"]) for s in steps] == [
        (1, "new", "painted"),
        (2, "painted", "sold"),
    ]
    assert [(s["reason"], s["detail"], s["actor_id"]) for s in steps] == [
        ("asked", {}, "o-1"),
        (None, {"p": 1}, "o-1"),
    ]


async def test_a_versioned_update_over_a_stale_row_is_refused(store: WidgetStore) -> None:
    await _made(store, "w1")
    async with store.writing() as conn:
        current = await locked(conn, widgets, "w1")
        assert current is not None
        written = await versioned_update(conn, widgets, current, {"colour": "blue"}, what="widget")
        assert written == {"colour": "blue", "version": 2}
        with pytest.raises(IdempotencyConflict, match="the widget changed meanwhile"):
            await versioned_update(conn, widgets, current, {"colour": "green"}, what="widget")
    assert await store._one(select(widgets.c.colour)) == {"colour": "blue"}


async def test_a_key_gives_its_result_back_and_refuses_another_body(store: WidgetStore) -> None:
    async with store.writing() as conn:
        assert await KEYS.made(conn, "caller", "k1", "sha-a") is None
        await KEYS.remember(conn, "caller", "k1", "sha-a", "w1", at=NOW)
    async with store.reading() as conn:
        assert await KEYS.made(conn, "caller", "k1", "sha-a") == "w1"
        assert await KEYS.made(conn, "another", "k1", "sha-b") is None
        with pytest.raises(IdempotencyConflict, match="different request"):
            await KEYS.made(conn, "caller", "k1", "sha-b")


async def test_the_first_payment_receipt_is_kept(store: WidgetStore) -> None:
    async with store.writing() as conn:
        assert await RECEIPTS.state(conn, "pay-1") is None
        await RECEIPTS.record(conn, "pay-1", "captured")
        await RECEIPTS.record(conn, "pay-1", "failed")
        assert await RECEIPTS.state(conn, "pay-1") == "captured"


async def test_events_get_ids_from_their_prefix_and_place(store: WidgetStore) -> None:
    events: list[tuple[str, dict[str, Any]]] = [("widget.made", {"id": "w1"}), ("x.y", {})]
    async with store.writing() as conn:
        await emit(conn, events, key="widget:w1", prefix="w1.3")
        await emit(conn, events, key="widget:w1", prefix="w1.3")  # a retried step adds nothing
    rows = await store._all(select(outbox.c.id, outbox.c.key).order_by(outbox.c.id))
    assert rows == [
        {"id": "w1.3.0.widget.made", "key": "widget:w1"},
        {"id": "w1.3.1.x.y", "key": "widget:w1"},
    ]


async def test_pages_are_newest_first_with_filters(store: WidgetStore) -> None:
    for minute in range(5):
        await _made(store, f"w{minute}", NOW.replace(minute=minute))
    first = await store._page(widgets, [], at="made_at", limit=2, cursor=None)
    assert [row["id"] for row in first.items] == ["w4", "w3"]
    second = await store._page(widgets, [], at="made_at", limit=2, cursor=first.next_cursor)
    assert [row["id"] for row in second.items] == ["w2", "w1"]
    only = await store._page(
        widgets,
        equal_to((widgets.c.id, "w0"), (widgets.c.colour, None)),
        at="made_at",
        limit=9,
        cursor=None,
    )
    assert ([row["id"] for row in only.items], only.next_cursor) == (["w0"], None)


async def test_table_counts_cover_every_table(store: WidgetStore) -> None:
    await _made(store, "w1")
    counts = await store.table_counts()
    assert counts["widgets"] == 1
    assert counts["widget_transitions"] == 0
    assert set(counts) == {table.name for table in METADATA.sorted_tables}
