"""What every plugin over the hub's client shares: config, the client, health, input checks.

The hub builds each plugin with its :class:`~adapters.base.AdapterConfig` and an
``httpx.AsyncClient`` that already carries the resilience path; the plugin owns neither, so it
has nothing of its own to release. ``GET /v1/health`` goes through the same path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from adapters.base import AdapterConfig, HealthReport, InvalidRequest, Operation

__all__ = ["HubClientAdapter", "check_health", "matched", "only"]


def only(params: Mapping[str, str], *names: str) -> None:
    """Refuse parameters an operation does not take (a typo must not be silently ignored)."""
    extra = sorted(set(params) - set(names))
    if extra:
        raise InvalidRequest(f"unknown parameter(s): {', '.join(name[:40] for name in extra)}")


def matched(value: str | None, pattern: re.Pattern[str], what: str) -> str:
    """``value`` when it matches ``pattern``; 400 naming ``what`` otherwise."""
    if value is None or pattern.fullmatch(value) is None:
        raise InvalidRequest(f"{what} is missing or malformed")
    return value


async def check_health(http: httpx.AsyncClient, *, system: str) -> HealthReport:
    """``GET /v1/health`` (operation ``health`` of every contract); never raises."""
    try:
        response = await http.get(
            "/v1/health", extensions={"hub_operation": "health", "hub_idempotent": True}
        )
    except Exception as exc:  # a health check reports, it never raises
        return HealthReport(ok=False, detail=f"the {system}: {exc}")
    if response.status_code != 200:
        return HealthReport(ok=False, detail=f"the {system} answered {response.status_code}")
    return HealthReport(ok=True)


class HubClientAdapter:
    """What a plugin is besides its operations: config, the hub's client, health, shutdown.

    A subclass names its ``system`` (for errors and health) and its ``operations``.
    """

    system: ClassVar[str]
    operations: ClassVar[Mapping[str, Operation[Any, Any]]]

    def __init__(self, config: AdapterConfig, http: httpx.AsyncClient) -> None:
        self._config = config
        self._http = http

    @property
    def config(self) -> AdapterConfig:
        return self._config

    async def health(self) -> HealthReport:
        return await check_health(self._http, system=self.system)

    async def aclose(self) -> None:
        """Nothing of its own to release: the client is the hub's."""
