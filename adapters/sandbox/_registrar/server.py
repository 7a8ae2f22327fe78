"""The parts of a sandbox registrar app that are not its data: gate, answers, control endpoints.

Every API request (``/v1/*``, ``GET /v1/health`` included) passes :meth:`Registrar.gate`
first: it is counted, held to the quota (429), checked for the API key (401), delayed and
possibly failed as the faults say. Its answer goes
through :meth:`Registrar.answer`, which may cut the body short or break the record's contract.
Control endpoints (not counted, never delayed), from :mod:`adapters.sandbox._control.endpoints`:

- ``GET /_sandbox/health``: liveness, the faults and the quota;
- ``POST /_sandbox/faults``: change faults (see :mod:`.faults`); answers the faults in force;
- ``GET /_sandbox/stats``: what was received (see :mod:`.quota`);
- ``POST /_sandbox/reset``: clear the faults and the counts.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler

from adapters.sandbox._control import endpoints
from adapters.sandbox._control.endpoints import cut_short, key_matches
from adapters.sandbox._registrar.faults import RegistrarFaults
from adapters.sandbox._registrar.quota import Quota, Traffic

__all__ = ["STATE_KEY", "Registrar", "RegistrarConfig", "control_handlers", "registrar_of"]

STATE_KEY: Final = endpoints.CONTROL_KEY  # where the control endpoints find the registrar
KEY_HEADER: Final = "X-Registry-Key"


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrarConfig:
    """How one sandbox registrar runs."""

    name: str
    api_key: str | None = field(default=None, repr=False)
    seed: int = 2026
    latency_ms: int = 0
    quota_rate: int = 0
    quota_period: float = 1.0
    quota_burst: int = 0


def _problem(status: int, error: str, detail: str) -> Response[dict[str, Any]]:
    return Response({"error": error, "detail": detail}, status_code=status)


class Registrar:
    """The state of a running sandbox registrar."""

    def __init__(self, config: RegistrarConfig) -> None:
        self.config = config
        self.faults = RegistrarFaults(latency_ms=config.latency_ms)
        self.quota = Quota(
            rate=config.quota_rate, period=config.quota_period, burst=config.quota_burst
        )
        self.traffic = Traffic(period=config.quota_period)
        self.rng = random.Random(config.seed)  # noqa: S311 - fault draws, not secrets

    async def gate(self, request: Request[Any, Any, Any]) -> tuple[Response[Any] | None, str]:
        """An early answer (quota, key, injected error) or ``None``; and the fault to apply."""
        now = self.traffic.arrive(f"{request.method} {request.scope['path']}")
        if not self.quota.admit(now):
            self.traffic.over_quota += 1
            return _problem(429, "rate_limited", "the registry's quota is exceeded"), "ok"
        expected = self.config.api_key
        if expected is not None:
            given = request.headers.get(KEY_HEADER, "")
            if not key_matches(given, expected):
                self.traffic.unauthorized += 1
                return _problem(401, "unauthorized", f"a valid {KEY_HEADER} is required"), "ok"
        faults = self.faults
        await faults.hold()
        action = faults.draw(self.rng)
        if action == "error":
            return _problem(faults.error_status, "injected", "an injected failure"), "ok"
        self.traffic.served += 1
        return None, action

    def describe(self) -> dict[str, Any]:
        quota = self.quota
        return {
            "registry": self.config.name,
            "faults": self.faults.as_dict(),
            "quota": {"rate": quota.rate, "period": quota.period, "burst": quota.burst},
        }

    def stats(self) -> dict[str, Any]:
        """What the registry received (see :mod:`.quota`)."""
        return self.traffic.as_dict()

    def reset(self) -> None:
        """Clear the faults and the counts."""
        self.faults.reset(latency_ms=self.config.latency_ms)
        self.traffic.reset()

    def answer(
        self,
        body: dict[str, Any],
        action: str,
        *,
        status: int = 200,
        breach: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> Response[Any]:
        """The JSON answer, cut short or out of contract when the drawn fault says so."""
        if action == "malformed":
            return cut_short(status, body)
        if action == "out_of_contract" and breach is not None:
            return Response(breach(dict(body)), status_code=status)
        return Response(body, status_code=status)


def registrar_of(request: Request[Any, Any, Any]) -> Registrar:
    registrar: Registrar = request.app.state[STATE_KEY]
    return registrar


@get("/v1/health")
async def api_health(request: Request[Any, Any, Any]) -> Response[Any]:
    """The registry's own health endpoint (part of its API: counted, delayed, faulted)."""
    registrar = registrar_of(request)
    early, action = await registrar.gate(request)
    if early is not None:
        return early
    return registrar.answer({"status": "ok"}, action)


def control_handlers() -> list[HTTPRouteHandler]:
    """``GET /v1/health`` and the ``/_sandbox/*`` endpoints every registrar has."""
    return [api_health, *endpoints.control_handlers()]
