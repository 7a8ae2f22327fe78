"""An upstream pool: its targets, the balancer, per-target breakers, the bulkhead, a retry budget.

The proxy calls :meth:`UpstreamPool.acquire` once per attempt and releases the returned
:class:`Lease` exactly once with the outcome. Both are O(targets), do no I/O and take no locks:
every pool lives on the one event loop, so plain attributes are enough.

Target selection, in order:

1. Bulkhead: ``in_flight >= max_concurrent`` raises :class:`~hub.errors.UpstreamOverloaded`.
2. Candidates: targets that are healthy (active checks) and whose breaker admits a request.
   Targets in ``exclude`` (already tried by this request) are avoided, but used when nothing
   else is left, so a single-target pool can still be retried.
3. None left: :class:`~hub.errors.CircuitOpen` if some healthy target is refused only by its
   breaker, otherwise :class:`~hub.errors.UpstreamUnavailable`. When active checks mark every
   target unhealthy the pool does not fall back to trying them anyway (unlike Envoy's panic
   mode): a failing health endpoint is the operator's statement that the target cannot serve.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from hub.config.model import RetrySpec, TargetSpec, UpstreamSpec
from hub.errors import CircuitOpen, ConfigError, UpstreamOverloaded, UpstreamUnavailable
from hub.upstream.balancer import for_policy
from hub.upstream.breaker import BreakerState, CircuitBreaker
from hub.upstream.retry_budget import RetryBudget

if TYPE_CHECKING:
    import aiohttp

__all__ = ["BreakerListener", "Lease", "Target", "TargetStatus", "UpstreamPool", "parse_target"]

logger = logging.getLogger(__name__)

_DEFAULT_PORTS = {"http": 80, "https": 443}

BreakerListener = Callable[[str, "Target", BreakerState, BreakerState], None]
"""Called as ``(upstream_id, target, old, new)`` on every breaker transition (metrics, logs)."""


@dataclass(slots=True, kw_only=True, eq=False)
class Target:
    """One server of a pool with its live state; compared and hashed by identity."""

    spec: TargetSpec
    index: int
    scheme: str
    host: str
    port: int
    base_path: str
    origin: str
    breaker: CircuitBreaker
    outstanding: int = 0
    healthy: bool = True

    @property
    def weight(self) -> int:
        """Balancing weight, at least 1."""
        return max(self.spec.weight, 1)

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` (starting with ``/``) on this target, base path included."""
        return f"{self.origin}{self.base_path}{path}"

    def __repr__(self) -> str:
        return f"<Target {self.origin}{self.base_path} healthy={self.healthy}>"


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetStatus:
    """A snapshot of one target for ``/metrics`` and ``/readyz``."""

    origin: str
    base_path: str
    healthy: bool
    breaker: BreakerState
    outstanding: int


def parse_target(spec: TargetSpec, *, index: int, breaker: CircuitBreaker) -> Target:
    """Build a :class:`Target` from its URL (``http(s)://host[:port][/base]``)."""
    parts = urlsplit(spec.url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError([f"target url {spec.url!r}: invalid port"]) from exc
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or parts.query or parts.fragment:
        raise ConfigError([f"target url {spec.url!r}: expected http(s)://host[:port][/base]"])
    port = port or _DEFAULT_PORTS[scheme]
    netloc = f"[{host}]" if ":" in host else host
    return Target(
        spec=spec,
        index=index,
        scheme=scheme,
        host=host,
        port=port,
        base_path=parts.path.rstrip("/"),
        origin=f"{scheme}://{netloc}:{port}",
        breaker=breaker,
    )


class Lease:
    """One attempt's hold on a target; :meth:`release` it exactly once with the outcome."""

    __slots__ = ("_generation", "_pool", "_probe", "released", "target")

    def __init__(self, pool: UpstreamPool, target: Target, *, probe: bool) -> None:
        self._pool = pool
        self.target = target
        self._probe = probe
        self._generation = target.breaker.generation
        self.released = False

    @property
    def probe(self) -> bool:
        """Whether this attempt is a half-open breaker's probe."""
        return self._probe

    def release(self, outcome: bool | None) -> None:
        """Give the target back: True success, False failure, None no verdict (client gone)."""
        if self.released:
            return
        self.released = True
        target = self.target
        target.outstanding -= 1
        self._pool._release()
        breaker = target.breaker
        if self._probe:
            # A probe from an earlier half-open spell must not free a slot of the current one.
            if breaker.generation != self._generation:
                return
            if outcome is None:
                breaker.release_probe()
            elif outcome:
                breaker.record_success()
            else:
                breaker.record_failure()
        elif outcome is not None and breaker.state is BreakerState.CLOSED:
            # Only probes decide a half-open breaker; an attempt that began before the breaker
            # opened says nothing about the target now.
            if outcome:
                breaker.record_success()
            else:
                breaker.record_failure()

    def __repr__(self) -> str:
        return f"<Lease {self.target.origin} released={self.released}>"


class UpstreamPool:
    """The live state of one upstream: targets, balancer, breakers, bulkhead and retry budget."""

    def __init__(
        self,
        spec: UpstreamSpec,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_breaker_change: BreakerListener | None = None,
    ) -> None:
        self.spec = spec
        self.session = session
        self._clock = clock
        targets = []
        for index, target_spec in enumerate(spec.targets):
            breaker = CircuitBreaker(spec.breaker, clock=clock)
            target = parse_target(target_spec, index=index, breaker=breaker)
            breaker.on_change = _breaker_listener(spec.id, target, on_breaker_change)
            targets.append(target)
        self.targets: tuple[Target, ...] = tuple(targets)
        self._balancer = for_policy(spec.balancing, len(targets))
        self.in_flight = 0
        self._holds = 0  # requests routed here that have not leased a target yet
        self._idle: asyncio.Event | None = None
        self._budgets: dict[float, RetryBudget] = {}
        self.retry_budget = self.retry_budget_for(RetrySpec().budget_ratio)

    def retry_budget_for(self, ratio: float) -> RetryBudget:
        """The pool's retry budget for routes with this ``budget_ratio`` (created on first use)."""
        budget = self._budgets.get(ratio)
        if budget is None:
            budget = self._budgets[ratio] = RetryBudget(ratio, clock=self._clock)
        return budget

    def acquire(self, exclude: Collection[Target] = ()) -> Lease:
        """Pick a target for one attempt; raise when the pool cannot take it (see module doc)."""
        if self.in_flight >= self.spec.max_concurrent:
            raise UpstreamOverloaded(
                f"upstream {self.spec.id!r} has {self.in_flight} requests in flight",
                extra={"upstream": self.spec.id},
            )
        preferred: list[Target] = []
        fallback: list[Target] = []
        for target in self.targets:
            if target.healthy and target.breaker.would_allow():
                (fallback if target in exclude else preferred).append(target)
        candidates = preferred or fallback
        if not candidates:
            raise self._unavailable()
        target = candidates[0] if len(candidates) == 1 else self._balancer.pick(candidates)
        breaker = target.breaker
        probe = breaker.state is BreakerState.HALF_OPEN
        lease = Lease(self, target, probe=probe)
        # would_allow() said yes a moment ago on this same loop, so this cannot refuse.
        breaker.allow()
        target.outstanding += 1
        self.in_flight += 1
        return lease

    def status(self) -> list[TargetStatus]:
        """A snapshot of every target, in configuration order."""
        return [
            TargetStatus(
                origin=target.origin,
                base_path=target.base_path,
                healthy=target.healthy,
                breaker=target.breaker.state,
                outstanding=target.outstanding,
            )
            for target in self.targets
        ]

    @property
    def available(self) -> bool:
        """Whether some target is healthy and admitted by its breaker (for readiness)."""
        return any(t.healthy and t.breaker.would_allow() for t in self.targets)

    def hold(self) -> None:
        """Keep the pool open for a request routed to it (taken before the request awaits)."""
        self._holds += 1

    def unhold(self) -> None:
        """Release a :meth:`hold` once the request is over."""
        self._holds -= 1
        self._maybe_idle()

    async def wait_idle(self) -> None:
        """Return once no lease or hold is outstanding."""
        while self.in_flight > 0 or self._holds > 0:
            if self._idle is None or self._idle.is_set():
                self._idle = asyncio.Event()
            await self._idle.wait()

    def _release(self) -> None:
        self.in_flight -= 1
        self._maybe_idle()

    def _maybe_idle(self) -> None:
        if self.in_flight == 0 and self._holds == 0 and self._idle is not None:
            self._idle.set()

    def _unavailable(self) -> UpstreamUnavailable:
        extra: dict[str, object] = {"upstream": self.spec.id}
        if any(t.healthy for t in self.targets):
            return CircuitOpen(
                f"every healthy target of upstream {self.spec.id!r} has an open circuit",
                extra=extra,
            )
        return UpstreamUnavailable(f"upstream {self.spec.id!r} has no healthy target", extra=extra)

    def __repr__(self) -> str:
        return f"<UpstreamPool {self.spec.id} in_flight={self.in_flight}>"


def _breaker_listener(
    upstream_id: str, target: Target, forward: BreakerListener | None
) -> Callable[[BreakerState, BreakerState], None]:
    def on_change(old: BreakerState, new: BreakerState) -> None:
        logger.info(
            "upstream %s target %s breaker %s -> %s",
            upstream_id,
            target.origin,
            old.value,
            new.value,
        )
        if forward is not None:
            forward(upstream_id, target, old, new)

    return on_change
