"""The outermost wrapper: every call counted and timed, by adapter, operation and outcome."""

from __future__ import annotations

import time
from typing import Protocol

import httpx

from hub.errors import HubError

__all__ = ["CallObserver", "ObservingTransport"]


class CallObserver(Protocol):
    """Where the outcome of each adapter call goes (the hub's Prometheus metrics)."""

    def adapter_call(self, adapter: str, operation: str, outcome: str, seconds: float) -> None:
        """One call ended: ``outcome`` is ``ok``, the answer's status class, or an error code."""


class ObservingTransport(httpx.AsyncBaseTransport):
    """Reports each call through ``inner`` to ``observer``."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, *, name: str, observer: CallObserver
    ) -> None:
        self._inner = inner
        self._name = name
        self._observer = observer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        operation = str(request.extensions.get("hub_operation", ""))
        outcome = "cancelled"
        try:
            response = await self._inner.handle_async_request(request)
            status = response.status_code
            outcome = "ok" if status < 400 or status == 404 else f"http_{status // 100}xx"
            return response
        except HubError as error:
            outcome = error.code
            raise
        finally:
            self._observer.adapter_call(
                self._name, operation, outcome, time.perf_counter() - started
            )

    async def aclose(self) -> None:
        await self._inner.aclose()
