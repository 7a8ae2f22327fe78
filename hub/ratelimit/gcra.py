"""The generic cell rate algorithm as a pure function of a bucket's theoretical arrival time.

A bucket is one integer, its TAT (theoretical arrival time, in microseconds): the instant at
which it would be empty again had every allowed request been spread ``T`` apart. A request
costing ``n`` is allowed when ``max(TAT, now) + n*T - now <= tau + T``; it then moves the TAT
to the left side's first term. Refusals leave the TAT alone, so they cost the client nothing.

A multi-bucket hit (:func:`decide_all`) passes only when every bucket would pass on its own,
and then moves every TAT; otherwise it moves none, so a refusal costs nothing anywhere.

Both stores run :func:`decide` and :func:`decide_all`; the Redis store repeats the arithmetic
in Lua (integers below 2**53 are exact there too), then calls them on each TAT's lead over
Redis' clock, the only thing a decision depends on, so the two cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from hub.ratelimit.base import Decision, Limit

__all__ = ["bounds", "decide", "decide_all", "emission_interval", "micros"]

_US = 1_000_000


def micros(seconds: float) -> int:
    """Seconds as whole microseconds (rounded down), the unit the algorithm counts in."""
    return math.floor(seconds * _US)


def emission_interval(limit: Limit) -> int:
    """``T = period / rate`` in microseconds, rounded up so the limit is never exceeded."""
    return -(-round(limit.period * _US) // limit.rate)


def bounds(limit: Limit, cost: int) -> tuple[int, int]:
    """The TAT increment for ``cost`` and the tolerance ``tau + T``, both in microseconds."""
    if not 1 <= cost <= limit.burst + 1:
        raise ValueError(f"cost must be between 1 and burst + 1 = {limit.burst + 1}, got {cost}")
    interval = emission_interval(limit)
    return interval * cost, interval * (limit.burst + 1)


def decide(tat: int | None, now: int, limit: Limit, cost: int = 1) -> tuple[Decision, int | None]:
    """Decide one hit at ``now`` on a bucket whose TAT is ``tat`` (``None``: never seen).

    Returns the decision and the new TAT to store, or ``None`` when the hit is refused (the
    bucket must be left as it was). Times are integer microseconds on any one clock.
    """
    increment, tolerance = bounds(limit, cost)
    interval = tolerance // (limit.burst + 1)
    base = now if tat is None or tat < now else tat
    new_tat = base + increment
    allow_at = new_tat - tolerance
    if now < allow_at:
        backlog = base - now
        refused = Decision(
            allowed=False,
            limit=limit.burst + 1,
            # a clock stepping back (another Redis master) can leave backlog above tolerance
            remaining=max(0, (tolerance - backlog) // interval),
            retry_after=(allow_at - now) / _US,
            reset_after=backlog / _US,
        )
        return refused, None
    backlog = new_tat - now
    allowed = Decision(
        allowed=True,
        limit=limit.burst + 1,
        remaining=(tolerance - backlog) // interval,
        retry_after=0.0,
        reset_after=backlog / _US,
    )
    return allowed, new_tat


def decide_all(
    tats: Sequence[int | None], now: int, limits: Sequence[Limit], cost: int = 1
) -> tuple[tuple[Decision, ...], tuple[int, ...] | None]:
    """Decide one hit on several buckets at once: all pass, or none is charged.

    Returns a decision per bucket and the new TATs to store (``None`` when refused: every
    bucket must be left as it was). A refused hit reports each bucket as it stands, with
    ``allowed`` false everywhere and ``retry_after`` 0 on the buckets that had room.
    """
    decisions: list[Decision] = []
    new_tats: list[int] = []
    for tat, limit in zip(tats, limits, strict=True):
        decision, new_tat = decide(tat, now, limit, cost)
        decisions.append(decision)
        if new_tat is not None:
            new_tats.append(new_tat)
    if len(new_tats) == len(decisions):
        return tuple(decisions), tuple(new_tats)
    return tuple(
        decision if not decision.allowed else _standing(tat, now, limit)
        for tat, limit, decision in zip(tats, limits, decisions, strict=True)
    ), None


def _standing(tat: int | None, now: int, limit: Limit) -> Decision:
    """A bucket that had room for a hit refused elsewhere: unchanged, and no wait of its own."""
    interval = emission_interval(limit)
    backlog = 0 if tat is None or tat < now else tat - now
    return Decision(
        allowed=False,
        limit=limit.burst + 1,
        remaining=max(0, (interval * (limit.burst + 1) - backlog) // interval),
        retry_after=0.0,
        reset_after=backlog / _US,
    )
