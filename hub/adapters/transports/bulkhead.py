"""Bulkhead: at most ``max_concurrent`` calls to one external system in flight at once.

A call beyond it is refused at once (503 ``upstream_overloaded``) instead of queueing: a slow
system then costs its callers a quick refusal, never the hub's workers or other adapters' time.
"""

from __future__ import annotations

import asyncio

import httpx

from hub.errors import UpstreamOverloaded

__all__ = ["BulkheadTransport"]


class BulkheadTransport(httpx.AsyncBaseTransport):
    """Counts calls in flight through ``inner`` and refuses those over the limit."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *, name: str, max_concurrent: int) -> None:
        self._inner = inner
        self._name = name
        self._max = max_concurrent
        self._idle = asyncio.Event()
        self._idle.set()
        self.in_flight = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.in_flight >= self._max:
            raise UpstreamOverloaded(
                f"{self._name}: {self._max} calls are already in flight",
                headers={"Retry-After": "1"},
            )
        self.in_flight += 1
        self._idle.clear()
        try:
            return await self._inner.handle_async_request(request)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no call is in flight (a replaced adapter closes after its last call)."""
        await self._idle.wait()

    async def aclose(self) -> None:
        await self._inner.aclose()
