"""Schema migrations on SQLite and PostgreSQL, and the engine they run on."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

import hub.db.audit_tables
import hub.db.callback_tables
import hub.db.payment_tables
import hub.db.people_tables  # noqa: F401 - registers the people tables on Base
from hub.db import (  # noqa: F401 - register their tables on Base
    event_tables,
    identity_tables,
    plans_tables,
    webhook_tables,
)
from hub.db.engine import create_engine, ping
from hub.db.migrate import _alembic_config, current_revision, head_revision, migrate
from hub.db.models import Base
from hub.errors import BackendUnavailable
from tests.fixtures_db import create_temp_postgres_database

TABLES = {"alembic_version", "config_versions", "active_config"}


async def _table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def _pointer_rows(url: str) -> list[tuple[int, int | None]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text("SELECT id, version FROM active_config"))
            return [(row.id, row.version) for row in result]
    finally:
        await engine.dispose()


async def test_migrate_upgrades_an_empty_database_to_head(database_url: str) -> None:
    assert await current_revision(database_url) is None
    assert TABLES.isdisjoint(await _table_names(database_url))

    await migrate(database_url)

    assert await current_revision(database_url) == head_revision() == "0014"
    assert await _table_names(database_url) >= TABLES
    assert await _pointer_rows(database_url) == [(1, None)]


async def test_migrate_is_idempotent(database_url: str) -> None:
    await migrate(database_url)
    await migrate(database_url)

    assert await current_revision(database_url) == head_revision()
    assert await _pointer_rows(database_url) == [(1, None)]


async def test_replicas_migrating_together_both_succeed(database_url: str) -> None:
    await asyncio.gather(migrate(database_url), migrate(database_url), migrate(database_url))

    assert await current_revision(database_url) == head_revision()
    assert await _pointer_rows(database_url) == [(1, None)]


@pytest.mark.backends
@pytest.mark.usefixtures("postgres_url")  # fails or skips, as agreed, when PostgreSQL is down
async def test_a_temporary_postgres_database_is_usable_then_dropped() -> None:
    async with create_temp_postgres_database() as url:
        await migrate(url)
        assert await current_revision(url) == head_revision()

    engine = create_engine(url)
    try:
        with pytest.raises(BackendUnavailable, match="does not exist"):
            await ping(engine)
    finally:
        await engine.dispose()


async def test_models_match_the_migrated_schema(database_url: str) -> None:
    await migrate(database_url)

    def diff(conn: Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await engine.dispose()


async def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("PRAGMA journal_mode")) == "wal"
            assert await conn.scalar(text("PRAGMA foreign_keys")) == 1
            assert await conn.scalar(text("PRAGMA busy_timeout")) > 0
    finally:
        await engine.dispose()
    assert Path(sqlite_url.removeprefix("sqlite+aiosqlite:///")).parent.is_dir()


async def test_ping_succeeds_on_a_reachable_database(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await ping(engine)
    finally:
        await engine.dispose()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_ping_on_an_unreachable_postgres_raises_backend_unavailable() -> None:
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/hub")
    try:
        with pytest.raises(BackendUnavailable, match=r"^database unreachable: ") as caught:
            await ping(engine)
    finally:
        await engine.dispose()
    assert caught.value.status == 503
    assert caught.value.__cause__ is not None


async def test_migrate_on_an_unreachable_postgres_raises_backend_unavailable() -> None:
    with pytest.raises(BackendUnavailable):
        await migrate(f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/hub")


def test_sqlite_file_that_cannot_be_created_raises_backend_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(BackendUnavailable, match="database unreachable"):
        create_engine(f"sqlite+aiosqlite:///{blocker / 'hub.db'}")


async def _migrate_to(url: str, target: str, *, down: bool = False) -> None:
    config = _alembic_config(url)
    engine = create_engine(url)

    def run(conn: Connection) -> None:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, target)

    try:
        async with engine.connect() as conn, conn.begin():
            await conn.run_sync(run)
    finally:
        await engine.dispose()


async def test_0004_keeps_existing_clients_and_their_references_then_downgrades(
    database_url: str,
) -> None:
    await _migrate_to(database_url, "0003")
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO oauth_clients (client_id, name, owner, auth_method, scopes,"
                    " grant_types, created_at) VALUES ('cli_1', 'Payroll', 'vendor:p',"
                    " 'client_secret_basic', '[\"a\"]', '[\"client_credentials\"]',"
                    " CURRENT_TIMESTAMP)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO api_keys (id, prefix, secret_hash, client_id, name, scopes,"
                    " created_at) VALUES ('k1', 'hub_abcdef', 'h', 'cli_1', 'key', '[]',"
                    " CURRENT_TIMESTAMP)"
                )
            )
    finally:
        await engine.dispose()

    await migrate(database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT client_type, redirect_uris, post_logout_redirect_uris,"
                        " first_party FROM oauth_clients WHERE client_id = 'cli_1'"
                    )
                )
            ).one()
            assert row.client_type == "confidential"
            assert row.first_party in (False, 0)
            assert await conn.scalar(text("SELECT client_id FROM api_keys")) == "cli_1"
    finally:
        await engine.dispose()
    assert await _table_names(database_url) >= {"refresh_tokens", "consents"}

    await _migrate_to(database_url, "0003", down=True)
    assert await current_revision(database_url) == "0003"
    assert {"refresh_tokens", "consents"}.isdisjoint(await _table_names(database_url))
    await migrate(database_url)
    assert await current_revision(database_url) == head_revision()


async def test_0005_adds_drafts_and_the_change_audit_then_downgrades(database_url: str) -> None:
    await _migrate_to(database_url, "0004")
    assert {"config_drafts", "config_changes"}.isdisjoint(await _table_names(database_url))
    await migrate(database_url)
    assert await _table_names(database_url) >= {"config_drafts", "config_changes"}

    await _migrate_to(database_url, "0004", down=True)
    assert await current_revision(database_url) == "0004"
    assert {"config_drafts", "config_changes"}.isdisjoint(await _table_names(database_url))
    assert await _pointer_rows(database_url) == [(1, None)]
    await migrate(database_url)
    assert await current_revision(database_url) == head_revision()


async def test_0008_backfills_draft_editors_then_downgrades(database_url: str) -> None:
    await _migrate_to(database_url, "0005")
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            for draft_id, created_by, updated_by, revision in (
                (1, "admin-token", "admin-token", 1),
                (2, "person:a", "person:b", 3),
            ):
                await conn.execute(
                    text(
                        "INSERT INTO config_drafts (id, based_on, document, revision, comment,"
                        " created_by, created_at, updated_by, updated_at) VALUES (:id, NULL,"
                        " '{}', :revision, '', :created_by, CURRENT_TIMESTAMP, :updated_by,"
                        " CURRENT_TIMESTAMP)"
                    ),
                    {
                        "id": draft_id,
                        "revision": revision,
                        "created_by": created_by,
                        "updated_by": updated_by,
                    },
                )
    finally:
        await engine.dispose()

    await migrate(database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT draft_id, actor, first_revision FROM config_draft_editors"
                    " ORDER BY draft_id, first_revision"
                )
            )
            assert [tuple(row) for row in rows] == [
                (1, "admin-token", 1),
                (2, "person:a", 1),
                (2, "person:b", 3),
            ]
    finally:
        await engine.dispose()

    await _migrate_to(database_url, "0005", down=True)
    assert "config_approvals" not in await _table_names(database_url)
    assert "config_draft_editors" not in await _table_names(database_url)
    assert await current_revision(database_url) == "0005"


async def test_0006_adds_subscriptions_and_usage_then_downgrades(database_url: str) -> None:
    tables = {"subscriptions", "subscription_events", "usage_daily"}
    await _migrate_to(database_url, "0005")
    assert tables.isdisjoint(await _table_names(database_url))
    await migrate(database_url)
    assert await _table_names(database_url) >= tables
    engine = create_engine(database_url)
    now = datetime(2025, 5, 8, 10, tzinfo=UTC)
    row = (
        "INSERT INTO subscriptions (id, client_id, product, plan, status, created_at,"
        " created_by, updated_at, updated_by) VALUES"
        " (:id, 'cli_x', 'echo', 'free', :status, :now, 'test', :now, 'test')"
    )
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO oauth_clients (client_id, name, owner, auth_method, scopes,"
                    " grant_types, created_at) VALUES ('cli_x', 'x', 'o', 'client_secret_basic',"
                    " '[]', '[]', :now)"
                ),
                {"now": now},
            )
            for ident, status in (
                ("sub_1", "cancelled"),
                ("sub_2", "rejected"),
                ("sub_3", "active"),
            ):
                await conn.execute(text(row), {"id": ident, "status": status, "now": now})
        # a second live subscription of the same client and product: the database refuses it
        with pytest.raises(Exception, match=r"(?i)unique"):
            async with engine.begin() as conn:
                await conn.execute(text(row), {"id": "sub_4", "status": "pending", "now": now})
    finally:
        await engine.dispose()

    await _migrate_to(database_url, "0005", down=True)
    assert await current_revision(database_url) == "0005"
    assert tables.isdisjoint(await _table_names(database_url))
    await migrate(database_url)
    assert await current_revision(database_url) == head_revision()
