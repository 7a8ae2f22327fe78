"""The innermost wrapper: httpx's exceptions become hub errors, so nothing above sees httpx's.

A failure before the request left (connection refused, connect timeout) is marked ``unsent``:
such a call may be repeated whatever the operation, because the external system never saw it.
"""

from __future__ import annotations

import httpx

from hub.errors import (
    HubError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)

__all__ = ["TranslatingTransport", "is_unsent", "translate"]

_UNSENT = "hub_unsent"


def translate(exc: httpx.HTTPError, name: str) -> HubError:
    """The hub error for one httpx failure talking to adapter ``name``."""
    error: UpstreamError
    if isinstance(exc, httpx.ConnectTimeout):
        error = UpstreamTimeout(f"{name}: connecting timed out")
        error.extra[_UNSENT] = True
    elif isinstance(exc, httpx.TimeoutException):
        error = UpstreamTimeout(f"{name}: no answer in time")
    elif isinstance(exc, httpx.ConnectError):
        error = UpstreamConnectError(f"{name}: cannot connect")
        error.extra[_UNSENT] = True
    else:
        error = UpstreamProtocolError(f"{name}: the exchange failed ({type(exc).__name__})")
    return error


def is_unsent(error: HubError) -> bool:
    """Whether a failed call never reached the external system (so repeating it is safe)."""
    return bool(error.extra.get(_UNSENT))


class TranslatingTransport(httpx.AsyncBaseTransport):
    """Sends through ``inner`` and reads the body, translating every httpx exception."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *, name: str) -> None:
        self._inner = inner
        self._name = name

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self._inner.handle_async_request(request)
            # Read here, inside the timeouts and the breaker: a body that stalls is a failure.
            await response.aread()
        except httpx.HTTPError as exc:
            raise translate(exc, self._name) from exc
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
