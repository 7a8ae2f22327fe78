"""The sandbox registrar's own quota, and what it counts of the traffic it receives.

A real registry limits its clients: ``rate`` requests per ``period`` with a tolerance of
``burst`` at once (GCRA, as most API gateways do). Requests over it get 429 and are counted as
``over_quota``: a test of the hub's outbound limit expects none. Every request that reaches the
registry (its API, not ``/_sandbox``) is counted, and the most seen in any sliding ``period``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Quota", "Traffic"]


@dataclass(slots=True, kw_only=True)
class Quota:
    """GCRA: ``rate`` per ``period`` seconds, ``burst`` extra at once; ``rate`` 0 is no quota."""

    rate: int = 0
    period: float = 1.0
    burst: int = 0
    _tat: float = 0.0

    def admit(self, now: float) -> bool:
        if self.rate <= 0:
            return True
        interval = self.period / self.rate
        tat = max(self._tat, now)
        if tat - now > self.burst * interval + 1e-9:
            return False
        self._tat = tat + interval
        return True


@dataclass(slots=True, kw_only=True)
class Traffic:
    """Counts of what the registry received (reset with ``POST /_sandbox/reset``)."""

    period: float = 1.0
    clock: Callable[[], float] = time.monotonic
    received: int = 0
    served: int = 0
    over_quota: int = 0
    unauthorized: int = 0
    by_path: dict[str, int] = field(default_factory=dict)
    max_in_period: int = 0
    _recent: deque[float] = field(default_factory=deque)

    def arrive(self, path: str) -> float:
        """Count one request; its arrival time."""
        now = self.clock()
        self.received += 1
        self.by_path[path] = self.by_path.get(path, 0) + 1
        recent = self._recent
        recent.append(now)
        while recent and recent[0] <= now - self.period:
            recent.popleft()
        self.max_in_period = max(self.max_in_period, len(recent))
        return now

    def reset(self) -> None:
        self.received = self.served = self.over_quota = self.unauthorized = 0
        self.max_in_period = 0
        self.by_path.clear()
        self._recent.clear()

    def as_dict(self) -> dict[str, object]:
        return {
            "received": self.received,
            "served": self.served,
            "over_quota": self.over_quota,
            "unauthorized": self.unauthorized,
            "max_in_period": self.max_in_period,
            "period": self.period,
            "by_path": dict(self.by_path),
        }
