"""Circuit breaker per adapter: consecutive failures open it, and calls are refused at once.

It is :class:`hub.upstream.breaker.CircuitBreaker`, the proxy's breaker, around one external
system. A failure is an upstream error below (no connection, timeout, broken exchange, an answer
outside the contract) or a 5xx answer; a 4xx answer is the caller's problem and proves the system
alive. A call refused below without reaching the system (its rate limit) gives no verdict.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from adapters.base import BreakerPolicy
from hub.config.model import BreakerSpec
from hub.errors import AdapterRateLimited, CircuitOpen, HubError, UpstreamError
from hub.upstream.breaker import BreakerState, CircuitBreaker

__all__ = ["BreakerTransport", "new_breaker"]


def new_breaker(
    policy: BreakerPolicy, *, clock: Callable[[], float] | None = None
) -> CircuitBreaker:
    """A closed breaker with an adapter's thresholds."""
    spec = BreakerSpec(
        failure_threshold=policy.failure_threshold,
        open_seconds=policy.open_seconds,
        half_open_max=policy.half_open_max,
    )
    return CircuitBreaker(spec) if clock is None else CircuitBreaker(spec, clock=clock)


class BreakerTransport(httpx.AsyncBaseTransport):
    """Refuses calls while ``breaker`` is open; reports each call's outcome to it."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, *, name: str, breaker: CircuitBreaker
    ) -> None:
        self._inner = inner
        self._name = name
        self.breaker = breaker

    @property
    def state(self) -> BreakerState:
        return self.breaker.state

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        breaker = self.breaker
        if not breaker.allow():
            raise CircuitOpen(
                f"{self._name}: the circuit is open after repeated failures",
                headers={"Retry-After": str(max(1, int(breaker.spec.open_seconds)))},
            )
        try:
            response = await self._inner.handle_async_request(request)
        except AdapterRateLimited:
            breaker.release_probe()
            raise
        except UpstreamError:
            breaker.record_failure()
            raise
        except HubError:
            breaker.release_probe()  # refused on our side (a bad request): no verdict
            raise
        except BaseException:
            breaker.release_probe()  # cancelled (the caller left, the deadline passed)
            raise
        if response.status_code >= 500:
            breaker.record_failure()
        else:
            breaker.record_success()
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
