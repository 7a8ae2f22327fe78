"""The visa service's settings: one typed object, built once from ``VISAS_*`` variables.

The settings every service has (:mod:`hub.servicekit.settings`: where it serves, its own
database, the hub and its own client credentials there, and the event bus it publishes to),
and the service's own: registrar answer reuse, the payment window, the verification key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from hub.servicekit.settings import ServiceEnv, ServiceSettings

__all__ = ["VisaSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class VisaSettings(ServiceSettings):
    """Everything the visa service is configured with at start-up."""

    prefix: ClassVar[str] = "VISAS"
    database_file: ClassVar[str] = "visas.db"

    port: int = 9510
    audience: str = "visas"
    #: How long one registrar answer about an establishment is reused for eligibility checks.
    registry_cache_seconds: float = 30.0
    #: How long an application may wait for its fee before it lapses.
    payment_window_seconds: float = 72 * 3600.0
    #: How often lapsed applications and expired visas are swept.
    sweep_seconds: float = 60.0
    #: Secret that derives visa verification codes (HMAC); a random one per start if unset.
    verification_key: str = field(default="", repr=False)

    @classmethod
    def own_settings(cls, env: ServiceEnv) -> dict[str, Any]:
        return {
            "registry_cache_seconds": env.number("REGISTRY_CACHE_SECONDS", 30.0),
            "payment_window_seconds": env.number("PAYMENT_WINDOW_SECONDS", 72 * 3600.0),
            "verification_key": env.text("VERIFICATION_KEY"),
        }
