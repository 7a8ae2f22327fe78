"""Fixtures for Redis and RabbitMQ, and a TCP proxy that tests can cut.

The services are the machine's real ones (never stopped or reconfigured by tests). A test that
needs one fails when it is unreachable, because CI must provide it; ``HUB_TEST_SKIP_SERVICES=1``
turns that into a skip for a laptop without them. ``HUB_TEST_REDIS_URL`` / ``HUB_TEST_AMQP_URL``
point elsewhere. Isolation: Redis tests use database 15 and a random key/channel prefix (deleted
afterwards, never FLUSHDB, so parallel runs do not disturb each other); AMQP tests use unique
exchange and queue names, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest
import redis

from tests.amqp_sweep import sweep_sync
from tests.fixtures_db import create_temp_postgres_database
from tests.helpers import LoopThread
from tests.tcpproxy import TcpProxy

__all__ = [
    "AmqpNames",
    "events_namespace",
    "free_port",
    "proxied_url",
    "service_address",
    "unique_name",
]

SKIP_SERVICES_ENV = "HUB_TEST_SKIP_SERVICES"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (bind to 0 and release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def unique_name(prefix: str) -> str:
    """``prefix`` plus a random suffix, for queues, exchanges, channels and key prefixes."""
    return f"{prefix}.{uuid.uuid4().hex[:12]}"


_NAMESPACES: list[str] = []  # every events namespace this session handed out


def events_namespace() -> str:
    """A new events namespace for a test's processes; its queues are swept at the session's end.

    The processes' buses declare their queues under it (``<namespace>.<queue>``) and never
    delete them, as a real deployment must not; the sweep does, so runs leave nothing behind.
    """
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    _NAMESPACES.append(namespace)
    return namespace


@pytest.fixture(scope="session", autouse=True)
def _sweep_events_namespaces() -> Iterator[None]:
    yield
    if _NAMESPACES:
        amqp_url = os.environ.get("HUB_TEST_AMQP_URL", DEFAULT_AMQP_URL)
        sweep_sync(amqp_url, tuple(f"{n}." for n in _NAMESPACES))


def service_address(url: str) -> tuple[str, int]:
    """The host and port a service URL points at."""
    parts = urlsplit(url)
    default = {"redis": 6379, "rediss": 6379, "amqp": 5672, "amqps": 5671}[parts.scheme]
    return parts.hostname or "127.0.0.1", parts.port or default


def proxied_url(url: str, proxy: TcpProxy) -> str:
    """``url`` rewritten to go through ``proxy`` (same credentials, path and query)."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{proxy.port}" if userinfo else f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _require_service(name: str, url: str) -> None:
    host, port = service_address(url)
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        message = f"{name} is not reachable at {host}:{port} ({exc})"
    if os.environ.get(SKIP_SERVICES_ENV) == "1":
        pytest.skip(message)
    pytest.fail(f"{message}; start it, or set {SKIP_SERVICES_ENV}=1 to skip", pytrace=False)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the test Redis database (15 by default); the test fails if Redis is down."""
    url = os.environ.get("HUB_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    _require_service("Redis", url)
    return url


@pytest.fixture
def redis_key_prefix(redis_url: str) -> Iterator[str]:
    """A random prefix for this test's keys and channels; its keys are deleted afterwards."""
    prefix = unique_name("test") + ":"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """URL of the test RabbitMQ; the test fails if RabbitMQ is down."""
    url = os.environ.get("HUB_TEST_AMQP_URL", DEFAULT_AMQP_URL)
    _require_service("RabbitMQ", url)
    return url


@dataclass(slots=True)
class AmqpNames:
    """Unique exchange and queue names for one test; everything named here is deleted after."""

    exchange: str = field(default_factory=lambda: unique_name("test.events"))
    dead_letter_exchange: str = field(default_factory=lambda: unique_name("test.events.dlx"))
    queues: list[str] = field(default_factory=list)

    def queue(self, label: str = "q") -> str:
        """A new unique queue name (its ``.dead`` companion is cleaned up too)."""
        name = unique_name(f"test.{label}")
        self.queues.append(name)
        return name


@pytest.fixture
def amqp_names(amqp_url: str) -> Iterator[AmqpNames]:
    """Unique AMQP names; close the bus using them before this fixture tears down.

    Synchronous so that async fixtures may ask for it through ``request.getfixturevalue``.
    """
    names = AmqpNames()
    yield names
    # A private loop in a thread: the test's loop is not running during a sync teardown, and
    # asyncio.run() on this thread would unset it.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _delete_amqp_names(amqp_url, names)).result(timeout=30)


async def _delete_amqp_names(url: str, names: AmqpNames) -> None:
    connection = await aio_pika.connect(url, timeout=5)
    async with connection:
        channel = await connection.channel()
        for queue in names.queues:
            for name in (queue, f"{queue}.dead"):
                await channel.queue_delete(name, if_unused=False, if_empty=False)
        for exchange in (names.exchange, names.dead_letter_exchange):
            await channel.exchange_delete(exchange, if_unused=False)


@pytest.fixture
async def redis_proxy(redis_url: str) -> AsyncIterator[TcpProxy]:
    """A started :class:`TcpProxy` in front of the test Redis."""
    host, port = service_address(redis_url)
    async with TcpProxy(target_host=host, target_port=port) as proxy:
        yield proxy


@pytest.fixture
async def amqp_proxy(amqp_url: str) -> AsyncIterator[TcpProxy]:
    """A started :class:`TcpProxy` in front of the test RabbitMQ."""
    host, port = service_address(amqp_url)
    async with TcpProxy(target_host=host, target_port=port) as proxy:
        yield proxy


@pytest.fixture(
    scope="module",
    params=[pytest.param("embedded"), pytest.param("real", marks=pytest.mark.backends)],
)
def backends(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """``HUB_*`` variables of one back-end set for a module's hub processes.

    Embedded: none. Real: a fresh PostgreSQL database, Redis and RabbitMQ.
    """
    if request.param == "embedded":
        yield {}
        return
    loop = LoopThread()
    database = create_temp_postgres_database()
    url = loop.run(database.__aenter__())
    try:
        yield {
            "HUB_DATABASE_URL": url,
            "HUB_REDIS_URL": DEFAULT_REDIS_URL,
            "HUB_AMQP_URL": DEFAULT_AMQP_URL,
        }
    finally:
        loop.run(database.__aexit__(None, None, None))
        loop.close()


@pytest.fixture(params=[pytest.param("embedded"), pytest.param("real", marks=pytest.mark.backends)])
def backend_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """``HUB_*`` overrides of one back-end set: SQLite + in-process, or PostgreSQL/Redis/AMQP."""
    if request.param == "embedded":
        return {"HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'data' / 'hub.db'}"}
    return {
        "HUB_DATABASE_URL": request.getfixturevalue("postgres_url"),
        "HUB_REDIS_URL": request.getfixturevalue("redis_url"),
        "HUB_AMQP_URL": request.getfixturevalue("amqp_url"),
    }
