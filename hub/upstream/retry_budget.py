"""Retry budget: retries stay a bounded fraction of requests, so retries cannot amplify an outage.

Modelled on Finagle's ``RetryBudget`` (a leaky token bucket): every request deposits ``ratio``
tokens, every retry withdraws one, and deposits and withdrawals both expire after ``ttl``
seconds. A fixed reserve of ``min_per_second * ttl`` tokens lets a quiet client still retry a
little. Over any ``ttl`` window, then, retries <= ``ratio`` x requests + the reserve.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["RetryBudget"]

_SLOTS = 10
# Tolerates float drift: five deposits of 0.2 must buy exactly one retry.
_EPSILON = 1e-9


class RetryBudget:
    """Token bucket over a sliding window of ``_SLOTS`` slots; O(slots), no I/O, no locks."""

    __slots__ = ("_clock", "_current", "_ratio", "_reserve", "_slot_seconds", "_slots")

    def __init__(
        self,
        ratio: float,
        *,
        min_per_second: float = 3.0,
        ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ratio < 0 or min_per_second < 0 or ttl <= 0:
            raise ValueError("ratio and min_per_second must be >= 0 and ttl > 0")
        self._ratio = ratio
        self._reserve = min_per_second * ttl
        self._slot_seconds = ttl / _SLOTS
        self._clock = clock
        self._slots = [0.0] * _SLOTS
        self._current = int(clock() // self._slot_seconds)

    @property
    def ratio(self) -> float:
        """Tokens deposited per request."""
        return self._ratio

    @property
    def balance(self) -> float:
        """Retries that may be spent now (deposits - withdrawals in the window + reserve)."""
        self._advance()
        return sum(self._slots) + self._reserve

    def record_request(self) -> None:
        """Deposit ``ratio`` tokens for one first attempt."""
        self._advance()
        self._slots[self._current % _SLOTS] += self._ratio

    def try_spend(self) -> bool:
        """Withdraw one token for a retry; False when the budget is spent."""
        self._advance()
        if sum(self._slots) + self._reserve < 1.0 - _EPSILON:
            return False
        self._slots[self._current % _SLOTS] -= 1.0
        return True

    def _advance(self) -> None:
        now = int(self._clock() // self._slot_seconds)
        gap = now - self._current
        if gap <= 0:
            return
        slots = self._slots
        if gap >= _SLOTS:
            for i in range(_SLOTS):
                slots[i] = 0.0
        else:
            for step in range(1, gap + 1):
                slots[(self._current + step) % _SLOTS] = 0.0
        self._current = now

    def __repr__(self) -> str:
        return f"<RetryBudget ratio={self._ratio} balance={self.balance:.2f}>"
