"""Alembic environment for the hub's database, driven from :mod:`hub.db.migrate`.

:func:`hub.db.migrate.migrate` opens the connection (async engine, ``run_sync``) and passes it in
``config.attributes["connection"]``; the other branches serve the ``alembic`` command line
(``alembic -x url=... revision --autogenerate``) and offline SQL generation.
"""

from __future__ import annotations

import asyncio

from alembic import context
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
from hub.db.engine import create_engine
from hub.db.models import Base

target_metadata = Base.metadata
config = context.config


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise RuntimeError("no database URL: pass -x url=... or set sqlalchemy.url")
    return url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def _run_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
elif (shared := config.attributes.get("connection")) is not None:
    _run(shared)
else:
    asyncio.run(_run_async())
