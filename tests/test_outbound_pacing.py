"""The outbound limit paces real departures: a stalled event loop does not release a burst.

Slots are reserved ahead of time; when the loop is blocked past several slots, every sleeper
wakes at once. The external system counts arrivals, so the transport must space them again.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from adapters.base import OutboundLimit
from hub.adapters.transports.ratelimit import RateLimitTransport
from hub.ratelimit.memory import MemoryRateLimitStore


class _Recorder(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.departures: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.departures.append(asyncio.get_running_loop().time())
        return httpx.Response(200, request=request)


def _transport(limit: OutboundLimit) -> tuple[RateLimitTransport, _Recorder]:
    inner = _Recorder()
    transport = RateLimitTransport(
        inner, name="civil-registry", store=MemoryRateLimitStore(), limit=limit, key="out:civil"
    )
    return transport, inner


def _max_in_window(times: list[float], window: float) -> int:
    ordered = sorted(times)
    return max(
        sum(1 for t in ordered[i:] if t < start + window - 1e-6) for i, start in enumerate(ordered)
    )


async def _send(transport: RateLimitTransport, count: int) -> list[asyncio.Task[httpx.Response]]:
    request = httpx.Request("GET", "http://127.0.0.1:1/persons/1")
    tasks = [asyncio.create_task(transport.handle_async_request(request)) for _ in range(count)]
    await asyncio.sleep(0)  # every caller has reserved its slot and is asleep
    return tasks


async def test_a_stalled_loop_does_not_release_the_waiting_callers_together() -> None:
    # 50/s, no burst: one every 20 ms. Ten callers wait; the loop then stalls for 150 ms.
    transport, inner = _transport(OutboundLimit(rate=50, burst=0, max_wait=1.0))
    tasks = await _send(transport, 10)
    time.sleep(0.15)  # the stall under test: it blocks the event loop
    await asyncio.gather(*tasks)

    gaps = [b - a for a, b in zip(inner.departures, inner.departures[1:], strict=False)]
    assert len(inner.departures) == 10
    assert min(gaps) >= 0.02 - 0.002  # never two inside one slot, stall or not
    assert _max_in_window(inner.departures, 0.1) <= 5


async def test_the_systems_burst_still_leaves_at_once() -> None:
    # burst 4: five may leave together, as the system allows; the sixth waits its slot.
    transport, inner = _transport(OutboundLimit(rate=50, burst=4, max_wait=1.0))
    tasks = await _send(transport, 6)
    await asyncio.gather(*tasks)

    start = inner.departures[0]
    assert all(t - start < 0.01 for t in inner.departures[:5])
    assert inner.departures[5] - start >= 0.02 - 0.002


async def test_a_caller_beyond_the_waiting_places_is_refused_and_never_sent() -> None:
    transport, inner = _transport(OutboundLimit(rate=50, burst=0, max_wait=0.1))
    tasks = await _send(transport, 10)
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)

    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(inner.departures) == 6  # one now and five places of 20 ms in 0.1 s
    assert len(refused) == 4
    assert all(getattr(o, "headers", {}).get("Retry-After") for o in refused)
