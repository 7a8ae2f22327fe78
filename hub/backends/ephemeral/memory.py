"""The in-process ephemeral store, for one hub process (the embedded default and tests)."""

from __future__ import annotations

import copy
import json
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from hub.backends.ephemeral.base import EphemeralStore

__all__ = ["MemoryEphemeralStore"]

# Expired records are swept every this many writes, so the dictionary stays bounded.
_SWEEP_EVERY = 1024


class MemoryEphemeralStore(EphemeralStore):
    """A dictionary of ``key -> (expires_at, value)``; values are copied in and out."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._data: dict[str, tuple[float, dict[str, Any]]] = {}
        # Lists hold JSON text, as Redis does: compact, and a reader never shares an object.
        self._lists: dict[str, tuple[float, deque[str]]] = {}
        self._writes = 0

    async def put(self, key: str, value: dict[str, Any], ttl: float) -> None:
        self._write(key, value, ttl)

    async def add(self, key: str, value: dict[str, Any], ttl: float) -> bool:
        if self._live(key) is not None:
            return False
        self._write(key, value, ttl)
        return True

    async def get(self, key: str) -> dict[str, Any] | None:
        value = self._live(key)
        return None if value is None else copy.deepcopy(value)

    async def get_touch(self, key: str, ttl: float) -> dict[str, Any] | None:
        value = self._live(key)
        if value is None:
            return None
        self._data[key] = (self._clock() + ttl, value)
        return copy.deepcopy(value)

    async def take(self, key: str) -> dict[str, Any] | None:
        value = self._live(key)
        self._data.pop(key, None)
        return value

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)
        self._lists.pop(key, None)

    async def touch(self, key: str, ttl: float) -> bool:
        value = self._live(key)
        if value is None:
            return False
        self._data[key] = (self._clock() + ttl, value)
        return True

    async def append(self, key: str, items: list[dict[str, Any]], *, cap: int, ttl: float) -> None:
        entry = self._lists.get(key)
        values: deque[str] = deque(maxlen=max(1, cap))
        if entry is not None and entry[0] > self._clock():
            values.extend(entry[1])
        values.extend(json.dumps(item, separators=(",", ":")) for item in items)
        self._lists[key] = (self._clock() + ttl, values)

    async def items(self, key: str) -> list[dict[str, Any]]:
        entry = self._lists.get(key)
        if entry is None:
            return []
        if entry[0] <= self._clock():
            del self._lists[key]
            return []
        return [json.loads(text) for text in entry[1]]

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        self._data.clear()
        self._lists.clear()

    def __len__(self) -> int:
        return len(self._data)

    def _live(self, key: str) -> dict[str, Any] | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._data[key]
            return None
        return entry[1]

    def _write(self, key: str, value: dict[str, Any], ttl: float) -> None:
        self._data[key] = (self._clock() + ttl, copy.deepcopy(value))
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            now = self._clock()
            for stale in [k for k, (expires, _v) in self._data.items() if expires <= now]:
                del self._data[stale]
