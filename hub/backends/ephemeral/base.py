"""The ephemeral store: small JSON records that expire, shared by every replica.

Login sessions, pending authorization requests, authorization codes and half-finished logins
live here: each has a lifetime of minutes to hours, and losing them all costs people a sign-in,
never data. In-process by default, Redis in production. Keys are chosen by the callers (with a
namespace such as ``session:``); values are JSON objects. A key may instead hold a capped list
of JSON objects (:meth:`EphemeralStore.append`), newest last: the request sample uses one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

__all__ = ["EphemeralStore"]


class EphemeralStore(ABC):
    """Expiring JSON records by key; every operation is atomic on its one key."""

    async def start(self) -> None:  # noqa: B027 - optional hook, most stores need none
        """Connect (nothing to do for the in-process store)."""

    @abstractmethod
    async def put(self, key: str, value: dict[str, Any], ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing any previous value."""

    @abstractmethod
    async def add(self, key: str, value: dict[str, Any], ttl: float) -> bool:
        """Store ``value`` only if ``key`` holds nothing; ``False`` when it already did."""

    @abstractmethod
    async def get(self, key: str) -> dict[str, Any] | None:
        """The value under ``key``, ``None`` when absent or expired."""

    async def get_touch(self, key: str, ttl: float) -> dict[str, Any] | None:
        """:meth:`get` and, when found, :meth:`touch` with ``ttl``; stores do it in one step."""
        value = await self.get(key)
        if value is not None:
            await self.touch(key, ttl)
        return value

    @abstractmethod
    async def take(self, key: str) -> dict[str, Any] | None:
        """Remove and return the value under ``key`` in one step: a second taker gets ``None``."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove ``key`` if present."""

    @abstractmethod
    async def touch(self, key: str, ttl: float) -> bool:
        """Give ``key`` a new lifetime of ``ttl`` seconds; ``False`` when it is gone."""

    @abstractmethod
    async def append(self, key: str, items: list[dict[str, Any]], *, cap: int, ttl: float) -> None:
        """Add ``items`` to the list at ``key``, keep its newest ``cap``, renew it for ``ttl``."""

    @abstractmethod
    async def items(self, key: str) -> list[dict[str, Any]]:
        """The list under ``key``, oldest first (empty when absent or expired)."""

    @abstractmethod
    async def check(self) -> None:
        """Readiness: return when usable, raise ``BackendUnavailable`` otherwise."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections."""
