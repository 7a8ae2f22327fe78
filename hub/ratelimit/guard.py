"""Protective limits of the hub's own endpoints, which no route in ``policies/`` declares.

The receipt callbacks take no credential (their HMAC is the proof), and the signing endpoint
answers a service's client with the hub's key: both are worth flooding, and checking an HMAC
or a token costs the hub CPU. Each gets a GCRA limit in the shared rate-limit store, keyed by
who is calling (the callback's adapter and address, the signing client), so a flood from one
caller never locks out another. A refused request gets 429 ``rate_limited`` with
``Retry-After`` and the IETF ``RateLimit`` headers, as a route's limit does, and consumes nothing.
While Redis is unreachable the limit is decided in this process (``fallback="local"``).
"""

from __future__ import annotations

import math
from typing import Final

from hub.errors import RateLimited
from hub.ratelimit.base import Limit, RateLimitStore

__all__ = ["CALLBACK_LIMIT", "SIGNING_LIMIT", "guard"]

#: A provider sends receipts in bursts after a campaign; per adapter and sending address.
CALLBACK_LIMIT: Final = Limit(rate=100, period=1.0, burst=200, fallback="local")
#: Two signatures a contract, a few amendments: per calling client.
SIGNING_LIMIT: Final = Limit(rate=50, period=1.0, burst=100, fallback="local")


async def guard(store: RateLimitStore | None, name: str, key: str, limit: Limit) -> None:
    """Count one request of ``key`` against ``limit`` (the policy ``name``), or raise 429.

    ``store`` is ``None`` before the runtime starts its limiter: nothing is counted then.
    """
    if store is None:
        return
    decision = await store.hit(f"native:{name}:{key}", limit)
    window = f"{limit.period:g}"
    headers = {
        "RateLimit-Policy": f'"{name}";q={limit.rate};w={window}',
        "RateLimit": f'"{name}";r={decision.remaining};t={math.ceil(decision.reset_after)}',
    }
    if not decision.allowed:
        retry_after = str(max(1, math.ceil(decision.retry_after - 1e-9)))
        raise RateLimited(
            f"too many {name} requests; retry in {retry_after} s",
            headers={**headers, "Retry-After": retry_after},
        )
