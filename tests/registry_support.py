"""The hub as the occupations, certificates and compliance services see it, for in-process tests.

Built on the visa tests' stand-in (tests/visas_support.py: the token endpoint, the JWKS and
internal tokens minted with the hub's own signer); this one answers the registrar routes these
services read, checks the purpose each must state, and can fail them on demand. A small runner
starts a service's Litestar app in-process (its lifespan in one task) with an httpx client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from litestar import Litestar
from sqlalchemy import text

from hub.backends.events.base import Event
from hub.backends.events.memory import MemoryEventBus
from hub.db.engine import create_engine
from tests.visas_support import ESTABLISHMENTS, FakeHub

__all__ = ["CERTIFICATES", "RegistryHub", "Running", "drop_schema", "running"]

CERTIFICATES: dict[str, dict[str, Any]] = {
    "QC-2010-000001": {"number": "QC-2010-000001", "holder_national_id": "1000000001",
                       "degree": "bachelor", "field": "business administration",
                       "institution": "King Saud University", "year": 2010, "status": "valid"},
    "QC-2001-000003": {"number": "QC-2001-000003", "holder_national_id": "1000000099",
                       "degree": "master", "field": "law", "institution": "Cairo University",
                       "year": 2001, "status": "revoked"},
}  # fmt: skip
_PURPOSES = {
    "certificates": "qualification-verification",
    "establishments": "compliance-monitoring",
}


@dataclass
class RegistryHub(FakeHub):
    """``fail_registry`` answers 503; ``status_of`` overrides a certificate's status."""

    purposes: dict[str, str] = field(default_factory=lambda: dict(_PURPOSES))
    establishments: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {k: dict(v) for k, v in ESTABLISHMENTS.items()}
    )

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if not path.startswith("/api/registry/v1/"):
            return super().handle(request)
        self.calls.append((request.method, path))
        if request.headers.get("authorization") != "Bearer svc-token":
            return httpx.Response(401, json={"code": "invalid_token"})
        if self.fail_registry:
            return httpx.Response(503, json={"code": "adapter_unavailable", "detail": "down"})
        kind, _, key = path.removeprefix("/api/registry/v1/").partition("/")
        if request.url.params.get("purpose") != self.purposes.get(kind):
            return httpx.Response(403, json={"code": "purpose_not_allowed"})
        records = CERTIFICATES if kind == "certificates" else self.establishments
        record = records.get(key)
        headers = {"x-hub-audit-entry": str(len(self.calls))}
        if record is None:
            return httpx.Response(404, json={"code": "record_not_found"}, headers=headers)
        return httpx.Response(200, json=record, headers=headers)


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
