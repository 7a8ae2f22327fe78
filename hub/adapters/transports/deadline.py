"""The call's total timeout: every attempt, backoff and rate-limit wait together."""

from __future__ import annotations

import asyncio

import httpx

from hub.errors import UpstreamTimeout

__all__ = ["DeadlineTransport"]


class DeadlineTransport(httpx.AsyncBaseTransport):
    """Cancels the call through ``inner`` once ``total`` seconds have passed."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *, name: str, total: float) -> None:
        self._inner = inner
        self._name = name
        self._total = total

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            async with asyncio.timeout(self._total):
                return await self._inner.handle_async_request(request)
        except TimeoutError as exc:
            raise UpstreamTimeout(
                f"{self._name}: no answer within {self._total:g}s (retries included)"
            ) from exc

    async def aclose(self) -> None:
        await self._inner.aclose()
