"""What the in-process service tests (``tests/test_*_service.py``) share.

Each of those modules runs one service's Litestar app in-process, on SQLite or the session's
PostgreSQL, with the hub stood in for by an ``httpx.MockTransport`` and the in-process event bus;
these helpers give it its storage settings, start it (its lifespan in one task, with an httpx
client), mint the header the hub forwards to it, check the problem a refusal answers and read
the product's contract schemas.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
from litestar import Litestar
from sqlalchemy import text

from hub.backends.events.base import Event
from hub.backends.events.memory import MemoryEventBus
from hub.db.engine import create_engine

__all__ = [
    "CONTRACTS",
    "Running",
    "StandIn",
    "drop_schema",
    "principal",
    "problem",
    "product_schema",
    "running",
    "serve",
    "storage",
]

#: The machine-readable contracts (JSON Schemas) the services answer by.
CONTRACTS = Path(__file__).resolve().parent.parent / "contracts"


class StandIn(Protocol):
    """A stand-in hub: the transport at the service's door and the internal tokens it mints."""

    def transport(self) -> httpx.MockTransport: ...

    @property
    def token(self) -> Callable[..., str]: ...


async def storage(database_url: str, tmp_path: Path, schema: str) -> dict[str, Any]:
    """The settings' storage fields: an emptied ``schema`` on PostgreSQL, else a SQLite file."""
    if database_url.startswith("postgresql"):  # the session's database is reused
        await drop_schema(database_url, schema)
        return {"data_dir": tmp_path, "database_url": database_url, "database_schema": schema}
    sqlite = f"sqlite+aiosqlite:///{tmp_path}/{schema}.db"
    return {"data_dir": tmp_path, "database_url": sqlite, "database_schema": None}


def product_schema(product: str, name: str) -> dict[str, Any]:
    """The JSON Schema ``name`` of ``product``'s v1 API contract."""
    loaded: dict[str, Any] = json.loads(
        (CONTRACTS / "products" / product / "v1" / name).read_text()
    )
    return loaded


def principal(hub: StandIn, subject: str, **claims: Any) -> dict[str, str]:
    """The header the hub forwards to a service: its internal token for ``subject``."""
    return {"x-hub-principal-token": hub.token(subject, **claims)}


def problem(answer: httpx.Response, status: int, code: str) -> None:
    """Assert that ``answer`` is a refusal with ``status`` and the problem ``code``."""
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code, answer.text


@dataclass
class Running:
    """A service's app in-process: its client, the bus and every event it published."""

    app: Litestar
    client: httpx.AsyncClient
    bus: MemoryEventBus
    events: list[Event]

    async def wait_events(self, predicate: Callable[[Event], bool], count: int = 1) -> list[Event]:
        for _ in range(250):
            found = [event for event in self.events if predicate(event)]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.02)
        raise AssertionError(f"events so far: {[e.type for e in self.events]}")

    def of_type(self, event_type: str) -> list[Event]:
        return [event for event in self.events if event.type == event_type]


async def drop_schema(database_url: str, schema: str) -> None:
    """Start a PostgreSQL run from an empty service schema (the session database is reused)."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await engine.dispose()


@asynccontextmanager
async def running(
    app: Litestar, bus: MemoryEventBus, *, probe: str, headers: dict[str, str]
) -> AsyncIterator[Running]:
    """Run ``app``'s lifespan in one task; yields once the service has the hub's keys."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def run() -> None:  # the lifespan enters and exits in one task (anyio's rule)
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(run())
    await asyncio.wait_for(started.wait(), 30)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as client:
            world = Running(app=app, client=client, bus=bus, events=[])

            async def record(event: Event) -> None:
                world.events.append(event)

            await bus.subscribe("test.recorder", "#", record)
            for _ in range(100):  # the service fetches the hub's keys in the background
                if (await client.get(probe, headers=headers)).status_code != 401:
                    break
                await asyncio.sleep(0.02)
            yield world
    finally:
        stop.set()
        await task


@asynccontextmanager
async def serve(
    create_app: Callable[..., Litestar],
    settings: Any,
    hub: StandIn,
    *,
    probe: str,
    headers: dict[str, str],
) -> AsyncIterator[Running]:
    """Run the app for ``settings`` behind ``hub`` on a fresh bus; ``probe`` as in ``running``."""
    bus = MemoryEventBus()
    app = create_app(settings, transport=hub.transport(), bus=bus)
    async with running(app, bus, probe=probe, headers=headers) as service:
        yield service
