"""The configuration version store on SQLite and PostgreSQL: publish, history, rollback, races."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.db.config_store import ConfigStore, StoredVersion
from hub.db.engine import create_engine
from hub.errors import BackendUnavailable, Conflict, NotFound


def _document(marker: str) -> dict[str, Any]:
    return {
        "upstreams": [{"id": "echo", "targets": [{"url": "http://127.0.0.1:9101", "weight": 1}]}],
        "routes": [{"id": f"route-{marker}", "path": "/api/échos/{id}", "upstream": "echo"}],
        "products": [],
        "consumers": [],
        "marker": marker,
    }


def _checksum(document: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


async def _publish(store: ConfigStore, marker: str, **kwargs: Any) -> StoredVersion:
    document = _document(marker)
    return await store.publish(document, checksum=_checksum(document), author="alice", **kwargs)


async def test_an_empty_store_has_nothing_active(db_engine: AsyncEngine) -> None:
    store = ConfigStore(db_engine)

    assert await store.active() is None
    assert await store.active_version() is None
    assert await store.get(1) is None
    assert await store.history() == []


async def test_publish_stores_and_activates_a_new_version(db_engine: AsyncEngine) -> None:
    store = ConfigStore(db_engine)
    before = datetime.now(UTC)

    stored = await store.publish(
        _document("a"), checksum=_checksum(_document("a")), author="alice", comment="first"
    )

    assert stored.version == 1
    assert stored.document == _document("a")
    assert stored.checksum == _checksum(_document("a"))
    assert stored.created_by == "alice"
    assert stored.comment == "first"
    assert stored.based_on is None
    assert stored.active is True
    assert stored.created_at.tzinfo is not None
    assert stored.created_at.utcoffset() == UTC.utcoffset(None)
    assert before <= stored.created_at <= datetime.now(UTC)
    assert await store.active() == stored
    assert await store.active_version() == 1
    assert await store.get(1) == stored


async def test_history_is_newest_first_and_marks_the_active_version(db_engine: AsyncEngine) -> None:
    store = ConfigStore(db_engine)
    first = await _publish(store, "a")
    second = await _publish(store, "b", expected_active=first.version)
    third = await _publish(store, "c", expected_active=second.version)

    history = await store.history()

    assert [v.version for v in history] == [third.version, second.version, first.version]
    assert [v.active for v in history] == [True, False, False]
    assert [v.based_on for v in history] == [second.version, first.version, None]
    assert [v.document["marker"] for v in history] == ["c", "b", "a"]
    assert [v.version for v in await store.history(limit=2)] == [third.version, second.version]


async def test_activate_rolls_back_and_forward(db_engine: AsyncEngine) -> None:
    store = ConfigStore(db_engine)
    first = await _publish(store, "a")
    second = await _publish(store, "b")

    rolled_back = await store.activate(first.version, author="bob", expected_active=second.version)

    assert rolled_back.version == first.version
    assert rolled_back.active is True
    assert rolled_back.document == first.document
    assert await store.active_version() == first.version
    assert await store.get(second.version) == replace(second, active=False)

    rolled_forward = await store.activate(second.version, author="bob")

    assert rolled_forward.active is True
    assert await store.active_version() == second.version
    assert len(await store.history()) == 2


async def test_publish_after_a_rollback_is_based_on_the_rolled_back_version(
    db_engine: AsyncEngine,
) -> None:
    store = ConfigStore(db_engine)
    first = await _publish(store, "a")
    await _publish(store, "b")
    await store.activate(first.version, author="bob")

    third = await _publish(store, "c", expected_active=first.version)

    assert third.based_on == first.version
    assert await store.active_version() == third.version


async def test_activating_an_unknown_version_is_not_found_and_changes_nothing(
    db_engine: AsyncEngine,
) -> None:
    store = ConfigStore(db_engine)
    stored = await _publish(store, "a")

    with pytest.raises(NotFound, match="configuration version 99 does not exist"):
        await store.activate(99, author="bob")

    assert await store.active() == stored


async def test_a_stale_activate_is_a_conflict(db_engine: AsyncEngine) -> None:
    store = ConfigStore(db_engine)
    first = await _publish(store, "a")
    second = await _publish(store, "b")

    with pytest.raises(
        Conflict,
        match=f"configuration changed: active version is {second.version}, not {first.version}",
    ):
        await store.activate(first.version, author="bob", expected_active=first.version)

    assert await store.active_version() == second.version


async def test_a_stale_publish_is_a_conflict_and_writes_nothing(db_engine: AsyncEngine) -> None:
    store = ConfigStore(db_engine)
    first = await _publish(store, "a")
    second = await _publish(store, "b", expected_active=first.version)

    with pytest.raises(Conflict) as caught:
        await _publish(store, "stale", expected_active=first.version)

    assert caught.value.detail == (
        f"configuration changed: active version is {second.version}, not {first.version}"
    )
    assert caught.value.status == 409
    assert [v.version for v in await store.history()] == [second.version, first.version]
    assert await store.active() == second


async def test_publish_expecting_a_version_when_none_is_active_is_a_conflict(
    db_engine: AsyncEngine,
) -> None:
    store = ConfigStore(db_engine)

    with pytest.raises(Conflict, match="active version is none, not 1"):
        await _publish(store, "a", expected_active=1)

    assert await store.history() == []


async def test_concurrent_publishes_on_the_same_version_have_exactly_one_winner(
    db_engine: AsyncEngine,
) -> None:
    store = ConfigStore(db_engine)
    base = await _publish(store, "base")

    outcomes = await asyncio.gather(
        *(_publish(store, f"racer-{n}", expected_active=base.version) for n in range(8)),
        return_exceptions=True,
    )

    winners = [o for o in outcomes if isinstance(o, StoredVersion)]
    losers = [o for o in outcomes if not isinstance(o, StoredVersion)]
    assert len(winners) == 1
    assert all(isinstance(o, Conflict) for o in losers), losers
    (winner,) = winners
    assert winner.based_on == base.version
    assert await store.active() == winner
    assert [v.version for v in await store.history()] == [winner.version, base.version]


async def test_concurrent_unconditional_publishes_are_serialised(db_engine: AsyncEngine) -> None:
    store = ConfigStore(db_engine)

    published = await asyncio.gather(*(_publish(store, f"p{n}") for n in range(6)))

    history = await store.history()
    assert sorted(v.version for v in published) == [v.version for v in reversed(history)]
    # Serialised writers each see their predecessor as active: the versions form one chain.
    chain = list(reversed(history))
    assert chain[0].based_on is None
    assert [v.based_on for v in chain[1:]] == [v.version for v in chain[:-1]]
    assert await store.active_version() == chain[-1].version


async def test_seed_if_empty_seeds_only_once(db_engine: AsyncEngine) -> None:
    store = ConfigStore(db_engine)
    document = _document("seed")

    seeded = await store.seed_if_empty(document, checksum=_checksum(document), author="hub")
    again = await store.seed_if_empty(_document("other"), checksum="0" * 64, author="hub")

    assert seeded is not None
    assert seeded.version == 1
    assert seeded.active is True
    assert seeded.document == document
    assert again is None
    assert [v.version for v in await store.history()] == [1]


async def test_seed_if_empty_does_nothing_once_something_was_published(
    db_engine: AsyncEngine,
) -> None:
    store = ConfigStore(db_engine)
    published = await _publish(store, "a")

    assert await store.seed_if_empty(_document("seed"), checksum="0" * 64, author="hub") is None
    assert await store.active() == published


async def test_two_replicas_seeding_together_store_one_version(
    db_engine: AsyncEngine, database_url: str
) -> None:
    other_engine = create_engine(database_url)
    try:
        replicas = [ConfigStore(db_engine), ConfigStore(other_engine)]
        document = _document("seed")
        outcomes = await asyncio.gather(
            *(
                store.seed_if_empty(document, checksum=_checksum(document), author=f"replica-{n}")
                for n, store in enumerate(replicas)
                for _ in range(2)
            )
        )
    finally:
        await other_engine.dispose()

    assert len([o for o in outcomes if o is not None]) == 1
    assert [v.version for v in await ConfigStore(db_engine).history()] == [1]


async def test_an_unreachable_database_raises_backend_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/hub")
    store = ConfigStore(engine)
    try:
        with pytest.raises(BackendUnavailable):
            await store.active_version()
        with pytest.raises(BackendUnavailable):
            await _publish(store, "a")
    finally:
        await engine.dispose()
