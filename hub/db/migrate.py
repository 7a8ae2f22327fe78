"""Schema migrations, run programmatically: no ``alembic.ini``, the scripts ship in the package.

``migrate`` is safe to run from several replicas at once: the upgrade runs in one transaction
that first takes the database's migration lock (an advisory lock on PostgreSQL, the write lock
on SQLite), so the second replica finds the schema already at head and does nothing.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from hub.db.engine import WRITE_LOCK, create_engine, database_errors

__all__ = ["current_revision", "head_revision", "migrate"]

_SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"
# Arbitrary but fixed: every hub process must contend for the same advisory lock.
_PG_MIGRATION_LOCK_KEY = 0x6875625F6D6967  # "hub_mig"


def _alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPT_LOCATION))
    # ConfigParser interpolation would trip over "%" in URL-encoded passwords.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _upgrade(connection: Connection, config: Config) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK_KEY}
        )
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def migrate(url: str) -> None:
    """Upgrade the database at ``url`` to the newest schema; a no-op when already there."""
    config = _alembic_config(url)
    engine = create_engine(url)
    try:
        with database_errors():
            async with engine.connect() as connection:
                await connection.execution_options(**WRITE_LOCK)
                async with connection.begin():
                    await connection.run_sync(_upgrade, config)
    finally:
        await engine.dispose()


async def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at, or ``None`` if it was never migrated."""
    engine = create_engine(url)
    try:
        with database_errors():
            async with engine.connect() as connection:
                return await connection.run_sync(_current)
    finally:
        await engine.dispose()


def head_revision() -> str | None:
    """The newest revision shipped with this version of the hub."""
    return ScriptDirectory.from_config(_alembic_config("")).get_current_head()
