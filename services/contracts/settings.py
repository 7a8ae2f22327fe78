"""The contracts service's settings: one typed object, built once from ``CONTRACTS_*`` variables.

The settings every service has (:mod:`hub.servicekit.settings`: where it serves, its own
database, the hub and its own client credentials there, and the event bus it publishes to),
and the service's own: how long a registrar answer is reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from hub.servicekit.settings import ServiceEnv, ServiceSettings

__all__ = ["ContractSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractSettings(ServiceSettings):
    """Everything the contracts service is configured with at start-up."""

    prefix: ClassVar[str] = "CONTRACTS"
    database_file: ClassVar[str] = "contracts.db"

    port: int = 9520
    audience: str = "contracts"
    #: How long one registrar answer about an establishment is reused for draft checks.
    registry_cache_seconds: float = 30.0
    #: How often contracts past their end date are swept to ``expired``.
    sweep_seconds: float = 300.0

    @classmethod
    def own_settings(cls, env: ServiceEnv) -> dict[str, Any]:
        return {"registry_cache_seconds": env.number("REGISTRY_CACHE_SECONDS", 30.0)}
