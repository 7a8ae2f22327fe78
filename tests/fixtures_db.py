"""Database fixtures: an SQLite file and a throwaway PostgreSQL database per session.

``database_url`` runs a test once on each back-end. PostgreSQL is a real server (127.0.0.1:5432
unless ``HUB_TEST_POSTGRES_URL`` names another); when it cannot be reached the PostgreSQL case
fails, or is skipped if ``HUB_TEST_SKIP_SERVICES=1``. One database is created per session and its
schema is dropped and recreated before each test, which is much faster than a database per test.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import NoReturn, TypeVar

import asyncpg
import pytest
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.db.engine import create_engine
from hub.db.migrate import migrate

__all__ = ["create_temp_postgres_database", "postgres_server_url"]

_T = TypeVar("_T")
_DEFAULT_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432/"


def postgres_server_url() -> str:
    """The PostgreSQL server tests use, as a SQLAlchemy URL without a database name."""
    return os.environ.get("HUB_TEST_POSTGRES_URL") or _DEFAULT_SERVER


def _asyncpg_dsn(database: str) -> str:
    url = make_url(postgres_server_url()).set(drivername="postgresql", database=database)
    return url.render_as_string(hide_password=False)


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn("postgres"), timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _create_database() -> str:
    name = f"hub_test_{secrets.token_hex(6)}"
    await _admin(f'CREATE DATABASE "{name}"')
    return name


async def _drop_database(name: str) -> None:
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _database_url(name: str) -> str:
    return make_url(postgres_server_url()).set(database=name).render_as_string(hide_password=False)


@asynccontextmanager
async def create_temp_postgres_database() -> AsyncIterator[str]:
    """A new empty PostgreSQL database for the duration of the block; yields its URL."""
    name = await _create_database()
    try:
        yield _database_url(name)
    finally:
        await _drop_database(name)


def _run(factory: Callable[[], Awaitable[_T]]) -> _T:
    # A private loop in another thread: session fixtures must not touch the event loop that
    # pytest-asyncio manages for the tests themselves.
    async def main() -> _T:
        return await factory()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("HUB_TEST_SKIP_SERVICES") == "1":
        pytest.skip(f"PostgreSQL unavailable and HUB_TEST_SKIP_SERVICES=1: {reason}")
    pytest.fail(f"PostgreSQL is required for this test ({postgres_server_url()}): {reason}")


@pytest.fixture(scope="session")
def _postgres_session_database() -> Iterator[str]:
    try:
        name = _run(_create_database)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        _unavailable(f"{type(error).__name__}: {error}")
    try:
        yield name
    finally:
        _run(lambda: _drop_database(name))


@pytest.fixture
def postgres_url(_postgres_session_database: str) -> str:
    """URL of the session's PostgreSQL database, with an empty ``public`` schema."""
    name = _postgres_session_database

    async def reset() -> None:
        conn = await asyncpg.connect(_asyncpg_dsn(name), timeout=5)
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        finally:
            await conn.close()

    _run(reset)
    return _database_url(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a fresh SQLite file whose directory does not exist yet."""
    return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'hub.db'}"


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("postgresql", marks=pytest.mark.backends),
    ]
)
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each back-end in turn."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
async def db_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a freshly migrated ``database_url``, disposed after the test."""
    await migrate(database_url)
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()
