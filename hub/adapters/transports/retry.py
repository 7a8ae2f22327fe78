"""Retries, only when safe: tenacity around the rest of the path.

A call may be repeated when its operation is idempotent (the adapter says so in the request's
``hub_idempotent`` extension, set from the operation or an ``Idempotency-Key``), or when the
failed attempt never left the hub (connection refused, connect timeout). Failures worth a retry
are connection failures, timeouts, broken exchanges and answers whose status is in
``on_status``; an open circuit, a used-up quota or an answer outside the contract are not. A
retry budget per adapter keeps retries below a fraction of calls, so they cannot amplify an
outage. The first attempt runs without tenacity: the common case pays nothing for it.
"""

from __future__ import annotations

import asyncio
import random

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from adapters.base import RetryPolicy
from hub.adapters.transports.translate import is_unsent
from hub.errors import (
    HubError,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from hub.upstream.retry_budget import RetryBudget

__all__ = ["RetryTransport", "is_safe"]

_RETRYABLE = (UpstreamConnectError, UpstreamTimeout, UpstreamProtocolError)
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def is_safe(request: httpx.Request) -> bool:
    """Whether repeating ``request`` cannot do anything twice."""
    declared = request.extensions.get("hub_idempotent")
    if declared is not None:
        return bool(declared)
    return request.method in _IDEMPOTENT_METHODS or "idempotency-key" in request.headers


class _Again(Exception):
    """One failed attempt that may be repeated."""

    def __init__(self, error: HubError | None = None, response: httpx.Response | None = None):
        super().__init__("retry")
        self.error = error
        self.response = response


class RetryTransport(httpx.AsyncBaseTransport):
    """Repeats safe calls through ``inner`` on transient failures, with jittered backoff."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        *,
        name: str,
        policy: RetryPolicy,
        budget_ratio: float = 0.2,
    ) -> None:
        self._inner = inner
        self._name = name
        self._policy = policy
        self._statuses = frozenset(policy.on_status)
        self.budget = RetryBudget(budget_ratio)
        self.retries = 0  # attempts after the first, for metrics and tests

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.budget.record_request()
        safe = is_safe(request)
        try:
            return await self._attempt(request, safe=safe)
        except _Again as again:
            last = again
        policy = self._policy
        if policy.max_retries == 0:
            return self._give_up(last)
        await asyncio.sleep(random.uniform(0, policy.backoff_initial))  # noqa: S311 - jitter
        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.max_retries),
            wait=wait_random_exponential(multiplier=policy.backoff_initial, max=policy.backoff_max),
            retry=retry_if_exception_type(_Again),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if not self.budget.try_spend():
                        break  # the budget is spent: the last failure stands
                    self.retries += 1
                    try:
                        return await self._attempt(request, safe=safe)
                    except _Again as again:
                        last = again
                        raise
        except _Again as again:
            return self._give_up(again)
        return self._give_up(last)

    async def _attempt(self, request: httpx.Request, *, safe: bool) -> httpx.Response:
        try:
            response = await self._inner.handle_async_request(request)
        except _RETRYABLE as error:
            if safe or is_unsent(error):
                raise _Again(error=error) from error
            raise
        if safe and response.status_code in self._statuses:
            raise _Again(response=response)
        return response

    @staticmethod
    def _give_up(again: _Again) -> httpx.Response:
        if again.response is not None:
            return again.response  # the last answer, as the system gave it
        assert again.error is not None
        raise again.error

    async def aclose(self) -> None:
        await self._inner.aclose()
