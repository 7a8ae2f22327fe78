"""One adapter's httpx client, with the whole resilience path assembled around its transport."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from adapters.base import AdapterConfig
from hub.adapters.credentials import build_auth
from hub.adapters.transports.breaker import BreakerTransport, new_breaker
from hub.adapters.transports.bulkhead import BulkheadTransport
from hub.adapters.transports.contract import AdapterContract, ContractTransport
from hub.adapters.transports.deadline import DeadlineTransport
from hub.adapters.transports.observe import CallObserver, ObservingTransport
from hub.adapters.transports.ratelimit import RateLimitTransport
from hub.adapters.transports.retry import RetryTransport
from hub.adapters.transports.translate import TranslatingTransport
from hub.ratelimit.base import RateLimitStore
from hub.upstream.breaker import CircuitBreaker

__all__ = ["ResilientClient", "build_client", "rate_limit_key"]


def rate_limit_key(adapter_id: str) -> str:
    """The rate-limit store key of an adapter's outbound quota (shared by every replica)."""
    return f"adapter:{adapter_id}"


@dataclass(slots=True, eq=False)
class ResilientClient:
    """An adapter's client and the parts of its path that metrics and tests look at."""

    http: httpx.AsyncClient
    breaker: CircuitBreaker
    bulkhead: BulkheadTransport
    retry: RetryTransport
    rate_limit: RateLimitTransport | None

    async def aclose(self) -> None:
        await self.http.aclose()


def build_client(
    config: AdapterConfig,
    *,
    contract: AdapterContract,
    observer: CallObserver,
    limiter: RateLimitStore | None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ResilientClient:
    """The client an adapter is given. ``transport`` replaces the network (tests only).

    ``config.credentials`` must already hold the secret's value.
    """
    name = config.id
    real = transport or httpx.AsyncHTTPTransport(
        limits=httpx.Limits(
            max_connections=config.max_connections,
            max_keepalive_connections=config.max_connections,
            keepalive_expiry=30.0,
        ),
        retries=0,  # retries are the RetryTransport's, and only when safe
    )
    stack: httpx.AsyncBaseTransport = TranslatingTransport(real, name=name)
    stack = ContractTransport(stack, name=name, contract=contract)
    rate_limit = None
    if config.rate_limit is not None and limiter is not None:
        stack = rate_limit = RateLimitTransport(
            stack, name=name, store=limiter, limit=config.rate_limit, key=rate_limit_key(name)
        )
    stack = breaker = BreakerTransport(stack, name=name, breaker=new_breaker(config.breaker))
    stack = retry = RetryTransport(stack, name=name, policy=config.retry)
    stack = bulkhead = BulkheadTransport(stack, name=name, max_concurrent=config.max_concurrent)
    stack = DeadlineTransport(stack, name=name, total=config.timeouts.total)
    stack = ObservingTransport(stack, name=name, observer=observer)
    timeouts = config.timeouts
    http = httpx.AsyncClient(
        base_url=config.base_url,
        transport=stack,
        auth=build_auth(config.credentials),
        timeout=httpx.Timeout(
            connect=timeouts.connect, read=timeouts.read, write=timeouts.read, pool=timeouts.read
        ),
        follow_redirects=False,
        trust_env=False,  # no proxy or netrc from the environment: the config says where to go
        headers={"User-Agent": "hub-adapter"},
    )
    return ResilientClient(
        http=http,
        breaker=breaker.breaker,
        bulkhead=bulkhead,
        retry=retry,
        rate_limit=rate_limit,
    )
