"""The rate-limit store interface and the values that cross it."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self

__all__ = ["Bucket", "Decision", "FallbackMode", "Limit", "RateLimitStore", "check_buckets"]

# What a limit does while the shared store cannot be reached: decide in this process at the
# limit divided by the number of replicas, let every request through, or refuse with 503.
FallbackMode = Literal["local", "open", "closed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Limit:
    """``rate`` requests per ``period`` seconds, plus ``burst`` extra at once.

    The emission interval is ``T = period / rate`` and the tolerance ``tau = T * burst``, so
    ``burst + 1`` requests may pass at the same instant. Time is counted in whole microseconds:
    ``period`` is rounded to the microsecond and ``T`` up to the next one, which caps a single
    key at one million requests per second and never lets more through than asked.
    ``fallback`` matters only to :class:`hub.ratelimit.fallback.FallbackRateLimitStore`.
    """

    rate: int
    period: float
    burst: int = 0
    fallback: FallbackMode = "local"

    def __post_init__(self) -> None:
        if self.rate < 1:
            raise ValueError(f"rate must be at least 1, got {self.rate}")
        if not math.isfinite(self.period) or round(self.period * 1_000_000) < 1:
            raise ValueError(f"period must be at least one microsecond, got {self.period}")
        if self.burst < 0:
            raise ValueError(f"burst must not be negative, got {self.burst}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The answer to one hit, with what a client needs for ``RateLimit``/``Retry-After`` headers.

    ``limit`` is the most requests that may pass at once (``burst + 1``); ``remaining`` how many
    unit-cost requests would still pass right now; ``retry_after`` the seconds until this request
    would be allowed (0 when allowed); ``reset_after`` the seconds until the bucket is full again.
    """

    allowed: bool
    limit: int
    remaining: int
    retry_after: float
    reset_after: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Bucket:
    """One bucket of a multi-bucket hit: whose allowance (``key``) under which ``limit``."""

    key: str
    limit: Limit


def check_buckets(buckets: Sequence[Bucket]) -> None:
    """``ValueError`` unless ``buckets`` is non-empty and names each key once.

    A key named twice would be read twice before either write, so one hit would count once.
    """
    if not buckets:
        raise ValueError("a multi-bucket hit needs at least one bucket")
    keys = {bucket.key for bucket in buckets}
    if len(keys) != len(buckets):
        raise ValueError("a multi-bucket hit names the same key more than once")


class RateLimitStore(ABC):
    """Where GCRA buckets live: in this process, or shared by every replica (Redis)."""

    @abstractmethod
    async def hit(self, key: str, limit: Limit, cost: int = 1) -> Decision:
        """Count ``cost`` requests against ``key`` under ``limit``; a refusal consumes nothing.

        ``cost`` must be between 1 and ``limit.burst + 1`` (``ValueError`` otherwise). Raises
        :class:`hub.errors.BackendUnavailable` when the store cannot be reached.
        """

    @abstractmethod
    async def hit_all(self, buckets: Sequence[Bucket], cost: int = 1) -> tuple[Decision, ...]:
        """Count ``cost`` against every bucket at once, or against none of them.

        All buckets are decided in one atomic step (one Lua script call on Redis, one
        uninterrupted step in process): the hit passes only if every bucket has room, and a
        refusal consumes nothing from any bucket. One decision per bucket, in order; ``allowed``
        is the same in each. A refused hit reports each bucket as it stands: ``retry_after`` is
        that bucket's own wait (0 for a bucket that had room), ``remaining`` what it still holds.
        ``ValueError`` for no buckets, a key named twice, or a cost outside a bucket.
        """

    @abstractmethod
    async def check(self) -> None:
        """Readiness: return when usable, raise :class:`hub.errors.BackendUnavailable` if not."""

    @property
    def in_fallback(self) -> bool:
        """Whether hits are being decided without the shared store (it is unreachable)."""
        return False

    @abstractmethod
    async def aclose(self) -> None:
        """Release what the store owns; waits for hits already sent."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
