"""Load-balancing policies: pick one target among the candidates the pool allows.

Both policies are O(candidates), allocate nothing per pick and keep their state in plain
attributes indexed by the target's position in the pool (``index``), so a candidate list that
skips ejected or excluded targets never disturbs the others' bookkeeping.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

__all__ = ["Balancer", "Candidate", "LeastOutstanding", "SmoothWeightedRoundRobin", "for_policy"]


class Candidate(Protocol):
    """What a policy needs to know about a target."""

    @property
    def index(self) -> int: ...

    @property
    def weight(self) -> int: ...

    @property
    def outstanding(self) -> int: ...


C = TypeVar("C", bound=Candidate)


class Balancer(Protocol):
    """A load-balancing policy over targets numbered ``0..size-1``."""

    def pick(self, candidates: Sequence[C]) -> C:
        """Return one of ``candidates`` (never empty)."""
        ...


class SmoothWeightedRoundRobin:
    """Nginx's smooth weighted round robin: weights 5,1,1 give a a b a c a a, not a a a a a b c."""

    __slots__ = ("_current",)

    def __init__(self, size: int) -> None:
        self._current = [0] * size

    def pick(self, candidates: Sequence[C]) -> C:
        """Raise every candidate by its weight, take the highest, lower it by the total."""
        current = self._current
        total = 0
        best = candidates[0]
        best_score = None
        for candidate in candidates:
            weight = candidate.weight
            score = current[candidate.index] + weight
            current[candidate.index] = score
            total += weight
            if best_score is None or score > best_score:
                best, best_score = candidate, score
        current[best.index] -= total
        return best


class LeastOutstanding:
    """Fewest requests in flight per unit of weight; ties go round in turn."""

    __slots__ = ("_cursor", "_size")

    def __init__(self, size: int) -> None:
        self._size = max(size, 1)
        self._cursor = 0

    def pick(self, candidates: Sequence[C]) -> C:
        """Compare ``outstanding / weight`` by cross-multiplying; start the scan at the cursor."""
        count = len(candidates)
        # Start at the first candidate at or after the cursor so equal loads take turns.
        start = 0
        for position, candidate in enumerate(candidates):
            if candidate.index >= self._cursor:
                start = position
                break
        best = candidates[start]
        for step in range(1, count):
            candidate = candidates[(start + step) % count]
            if candidate.outstanding * best.weight < best.outstanding * candidate.weight:
                best = candidate
        self._cursor = (best.index + 1) % self._size
        return best


def for_policy(policy: str, size: int) -> SmoothWeightedRoundRobin | LeastOutstanding:
    """The balancer named by an upstream's ``balancing`` setting."""
    if policy == "round_robin":
        return SmoothWeightedRoundRobin(size)
    if policy == "least_outstanding":
        return LeastOutstanding(size)
    raise ValueError(f"unknown balancing policy {policy!r}")
