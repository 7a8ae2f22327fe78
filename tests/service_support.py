"""What the in-process service tests (``tests/test_*_service.py``) share.

Each of those modules runs one service's Litestar app in-process, on SQLite or the session's
PostgreSQL, with the hub stood in for by an ``httpx.MockTransport`` and the in-process event bus;
these helpers give it its storage settings, start it (through tests/registry_support.py's
runner), mint the header the hub forwards to it, check the problem a refusal answers and read
the product's contract schemas.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import httpx
from litestar import Litestar

from hub.backends.events.memory import MemoryEventBus
from tests.registry_support import Running, drop_schema, running

__all__ = ["CONTRACTS", "StandIn", "principal", "problem", "product_schema", "serve", "storage"]

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
