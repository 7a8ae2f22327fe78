"""Circuit breaker for one upstream target: an open breaker is a passively ejected target.

    CLOSED --(failure_threshold consecutive failures)--> OPEN
    OPEN --(open_seconds elapsed, noticed on the next read)--> HALF_OPEN
    HALF_OPEN --(a probe succeeds)--> CLOSED
    HALF_OPEN --(a probe fails)--> OPEN

In HALF_OPEN at most ``half_open_max`` probes are in flight at once. The breaker does no I/O
and takes no locks: it lives on one event loop and every method is a few attribute updates.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

from hub.config.model import BreakerSpec

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(enum.Enum):
    """Where a breaker is in its state machine."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Consecutive-failure breaker with a timed open state and limited half-open probes."""

    __slots__ = (
        "_clock",
        "_failures",
        "_generation",
        "_opened_at",
        "_probes",
        "_spec",
        "_state",
        "on_change",
    )

    def __init__(self, spec: BreakerSpec, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._spec = spec
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probes = 0
        self._generation = 0
        self.on_change: Callable[[BreakerState, BreakerState], None] | None = None

    @property
    def spec(self) -> BreakerSpec:
        """The thresholds this breaker applies."""
        return self._spec

    @property
    def state(self) -> BreakerState:
        """Current state; an OPEN breaker whose ``open_seconds`` have passed reads HALF_OPEN."""
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self._spec.open_seconds
        ):
            self._move(BreakerState.HALF_OPEN)
        return self._state

    @property
    def generation(self) -> int:
        """Counts transitions: tells a caller whether its probe belongs to this half-open spell."""
        return self._generation

    @property
    def consecutive_failures(self) -> int:
        """Failures counted towards opening since the last success."""
        return self._failures

    @property
    def probes_in_flight(self) -> int:
        """Half-open probes granted and not yet resolved."""
        return self._probes

    def would_allow(self) -> bool:
        """Whether :meth:`allow` would grant a request now, without taking a probe slot."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        return self._probes < self._spec.half_open_max

    def allow(self) -> bool:
        """Grant or refuse a request; in HALF_OPEN a grant takes one of ``half_open_max`` slots."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        if self._probes < self._spec.half_open_max:
            self._probes += 1
            return True
        return False

    def record_success(self) -> None:
        """A request succeeded: closes a half-open breaker, resets the failure count when closed."""
        state = self.state
        if state is BreakerState.CLOSED:
            self._failures = 0
        elif state is BreakerState.HALF_OPEN:
            self._move(BreakerState.CLOSED)
        # A success reported while OPEN began before the breaker opened: it proves nothing now.

    def record_failure(self) -> None:
        """A request failed: opens after ``failure_threshold`` in a row, or when half-open."""
        state = self.state
        if state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures >= self._spec.failure_threshold:
                self._open()
        elif state is BreakerState.HALF_OPEN:
            self._open()

    def release_probe(self) -> None:
        """A half-open probe ended without a verdict (the client went away): free its slot."""
        if self.state is BreakerState.HALF_OPEN and self._probes > 0:
            self._probes -= 1

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._move(BreakerState.OPEN)

    def _move(self, new: BreakerState) -> None:
        old = self._state
        self._state = new
        self._failures = 0
        self._probes = 0
        self._generation += 1
        if self.on_change is not None:
            self.on_change(old, new)

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self._state.value} failures={self._failures}>"
