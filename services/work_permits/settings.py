"""The work permits service's settings: one typed object, built once from ``PERMITS_*`` variables.

The settings every service has (:mod:`hub.servicekit.settings`: where it serves, its own
database, the hub and its own client credentials there, for the renewal fee, and the event bus
it publishes to and learns from), and the service's own: when expiry reminders go out, and the
demo data of ``hub dev``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from hub.servicekit.settings import ServiceEnv, ServiceSettings

__all__ = ["PermitSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PermitSettings(ServiceSettings):
    """Everything the work permits service is configured with at start-up."""

    prefix: ClassVar[str] = "PERMITS"
    database_file: ClassVar[str] = "work_permits.db"

    port: int = 9530
    audience: str = "permits"
    #: How often expiry reminders and expiries are swept.
    sweep_seconds: float = 60.0
    #: How many days before ``expires_on`` the ``permit.expiring`` reminder goes out.
    reminder_days: int = 30
    #: Demo data (``hub dev``): an issued visa and an active contract of the demo worker at
    #: the demo establishment, as the visa and contracts services' events would teach them.
    demo_establishment: str = ""
    demo_worker: str = ""

    @classmethod
    def own_settings(cls, env: ServiceEnv) -> dict[str, Any]:
        return {
            "reminder_days": env.whole("REMINDER_DAYS", 30, low=1, high=365, unit="days"),
            "demo_establishment": env.text("DEMO_ESTABLISHMENT"),
            "demo_worker": env.text("DEMO_WORKER"),
        }
