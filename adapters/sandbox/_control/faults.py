"""The faults every sandbox has, and how a control request changes them.

Per API request: ``latency_ms`` is added to every answer; with ``hang`` the request is held
``hang_seconds`` (a hung system: clients hit their timeouts); ``slow_ms`` delays it further;
with probability ``error_rate`` it answers ``error_status``. A sandbox subclasses :class:`Faults`
with its own fields, names their kinds in ``RATES`` and ``FLAGS``, and lists in ``ACTIONS`` the
rates :meth:`Faults.draw` rolls, in order. Every other field is a number of milliseconds.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

__all__ = ["FaultError", "Faults"]

_MAX_MS = 120_000


class FaultError(ValueError):
    """A control request the sandbox refuses."""


@dataclass(slots=True, kw_only=True)
class Faults:
    """The faults in force; every field can be changed at run time."""

    #: Fields that are probabilities from 0 to 1, and fields that are true or false.
    RATES: ClassVar[frozenset[str]] = frozenset({"error_rate"})
    FLAGS: ClassVar[frozenset[str]] = frozenset({"hang"})
    #: ``(rate field, action)`` in the order :meth:`draw` rolls them; none hit is ``ok``.
    ACTIONS: ClassVar[tuple[tuple[str, str], ...]] = (("error_rate", "error"),)

    latency_ms: int = 0
    slow_ms: int = 0
    hang: bool = False
    hang_seconds: float = 30.0
    error_rate: float = 0.0
    error_status: int = 503

    def update(self, changes: Any) -> None:
        """Apply a control request's JSON object; keys left out keep their value.

        Every value is checked before any is applied: a refused request changes nothing.
        """
        if not isinstance(changes, dict):
            raise FaultError("the body must be a JSON object")
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise FaultError(f"unknown fault(s): {', '.join(unknown)}")
        checked = {name: self._checked(name, value) for name, value in changes.items()}
        for name, value in checked.items():
            setattr(self, name, value)

    def reset(self, *, latency_ms: int = 0) -> None:
        """Every fault back to its default, but the configured ``latency_ms``."""
        for f in fields(self):
            setattr(self, f.name, f.default)
        self.latency_ms = latency_ms

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    async def hold(self) -> None:
        """Hold an API request as ``hang`` and the delays say."""
        if self.hang:
            await asyncio.sleep(self.hang_seconds)
        delay = self.latency_ms + self.slow_ms
        if delay:
            await asyncio.sleep(delay / 1000)

    def draw(self, rng: random.Random) -> str:
        """What this API request does, after the delays: an action of ``ACTIONS``, or ``ok``."""
        roll = rng.random()
        for name, action in self.ACTIONS:
            rate: float = getattr(self, name)
            if roll < rate:
                return action
            roll -= rate
        return "ok"

    def _checked(self, name: str, value: Any) -> Any:
        if name in self.FLAGS:
            if not isinstance(value, bool):
                raise FaultError(f"{name} must be true or false")
            return value
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if name in self.RATES:
            if not number or not 0 <= value <= 1:
                raise FaultError(f"{name} must be a number from 0 to 1")
            return float(value)
        if name == "error_status":
            if not isinstance(value, int) or isinstance(value, bool) or not 400 <= value <= 599:
                raise FaultError("error_status must be an HTTP status from 400 to 599")
            return value
        if name == "hang_seconds":
            if not number or not 0 < value <= 600:
                raise FaultError("hang_seconds must be a number of seconds up to 600")
            return float(value)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_MS:
            raise FaultError(f"{name} must be a whole number of milliseconds up to {_MAX_MS}")
        return value
