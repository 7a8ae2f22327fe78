"""Redis ephemeral store: one Redis key per record, its lifetime a Redis expiry.

Every operation is a single Redis command (``SET PX``, ``SET NX PX``, ``GETDEL``, ``PEXPIRE``),
so each is atomic on its key without scripts: of many concurrent ``take`` calls exactly one
gets the value. Keys are ``hub:eph:<key>``; values are JSON text. A capped list is one
``RPUSH`` + ``LTRIM`` + ``PEXPIRE`` transaction (one round trip) per batch, read with ``LRANGE``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from hub.backends.ephemeral.base import EphemeralStore
from hub.errors import BackendUnavailable

__all__ = ["DEFAULT_PREFIX", "RedisEphemeralStore"]

DEFAULT_PREFIX = "hub:eph:"

# Everything the redis client can raise when the server is unreachable or misbehaves.
_FAILURES = (RedisError, OSError, TimeoutError)


def _ms(ttl: float) -> int:
    # Redis refuses a zero or negative expiry; a record always lives at least a millisecond.
    return max(1, math.ceil(ttl * 1000))


def _decode(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class RedisEphemeralStore(EphemeralStore):
    """Expiring JSON records in Redis, shared by every replica of the hub.

    The client is passed in and stays the caller's unless ``owns_client`` (as with
    :meth:`from_url`).
    """

    def __init__(
        self, client: Redis, *, prefix: str = DEFAULT_PREFIX, owns_client: bool = False
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._owns_client = owns_client

    @classmethod
    def from_url(
        cls, url: str, *, timeout: float = 2.0, prefix: str = DEFAULT_PREFIX
    ) -> RedisEphemeralStore:
        """A store with its own client for ``url`` (``redis://host:port/db``)."""
        client = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # one retry reconnects a pooled socket the server dropped; more only adds latency
            retry=Retry(NoBackoff(), 1),
        )
        return cls(client, prefix=prefix, owns_client=True)

    async def put(self, key: str, value: dict[str, Any], ttl: float) -> None:
        data = json.dumps(value, separators=(",", ":"))
        try:
            await self._client.set(self._prefix + key, data, px=_ms(ttl))
        except _FAILURES as exc:
            raise BackendUnavailable(f"redis: cannot store an ephemeral record: {exc}") from exc

    async def add(self, key: str, value: dict[str, Any], ttl: float) -> bool:
        data = json.dumps(value, separators=(",", ":"))
        try:
            stored = await self._client.set(self._prefix + key, data, px=_ms(ttl), nx=True)
        except _FAILURES as exc:
            raise BackendUnavailable(f"redis: cannot store an ephemeral record: {exc}") from exc
        return bool(stored)

    async def get(self, key: str) -> dict[str, Any] | None:
        try:
            raw = await self._client.get(self._prefix + key)
        except _FAILURES as exc:
            raise BackendUnavailable(f"redis: cannot read an ephemeral record: {exc}") from exc
        return _decode(raw)

    async def get_touch(self, key: str, ttl: float) -> dict[str, Any] | None:
        # GETEX (Redis 6.2+): read and renew in one command, one round trip.
        try:
            raw = await self._client.getex(self._prefix + key, px=_ms(ttl))
        except _FAILURES as exc:
            raise BackendUnavailable(f"redis: cannot read an ephemeral record: {exc}") from exc
        return _decode(raw)

    async def take(self, key: str) -> dict[str, Any] | None:
        try:
            raw = await self._client.getdel(self._prefix + key)
        except _FAILURES as exc:
            raise BackendUnavailable(f"redis: cannot take an ephemeral record: {exc}") from exc
        return _decode(raw)

    async def delete(self, key: str) -> None:
        try:
            await self._client.delete(self._prefix + key)
        except _FAILURES as exc:
            raise BackendUnavailable(f"redis: cannot delete an ephemeral record: {exc}") from exc

    async def touch(self, key: str, ttl: float) -> bool:
        try:
            renewed = await self._client.pexpire(self._prefix + key, _ms(ttl))
        except _FAILURES as exc:
            raise BackendUnavailable(f"redis: cannot renew an ephemeral record: {exc}") from exc
        return bool(renewed)

    async def append(self, key: str, items: list[dict[str, Any]], *, cap: int, ttl: float) -> None:
        if not items:
            return
        name = self._prefix + key
        values = [json.dumps(item, separators=(",", ":")) for item in items[-max(1, cap) :]]
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.rpush(name, *values)
                pipe.ltrim(name, -max(1, cap), -1)
                pipe.pexpire(name, _ms(ttl))
                await pipe.execute()
        except _FAILURES as exc:
            raise BackendUnavailable(f"redis: cannot append to an ephemeral list: {exc}") from exc

    async def items(self, key: str) -> list[dict[str, Any]]:
        try:
            raw = await self._client.lrange(self._prefix + key, 0, -1)
        except _FAILURES as exc:
            raise BackendUnavailable(f"redis: cannot read an ephemeral list: {exc}") from exc
        found = (_decode(item) for item in raw)
        return [item for item in found if item is not None]

    async def check(self) -> None:
        try:
            await self._client.ping()
        except _FAILURES as exc:
            raise BackendUnavailable(f"redis: ephemeral store unreachable: {exc}") from exc

    async def aclose(self) -> None:
        if self._owns_client:
            try:
                await self._client.aclose()
            except _FAILURES as exc:
                raise BackendUnavailable(f"redis: cannot close the client: {exc}") from exc
