"""The compliance service's settings: one typed object, built once from ``COMPLIANCE_*``.

The settings every service has (:mod:`hub.servicekit.settings`: its own database, the hub and
its own client credentials there for the commercial registry's route, the bus), and its own:
how often and how long registry records are used, and the demo registrations of ``hub dev``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from hub.servicekit.settings import ServiceEnv, ServiceSettings

__all__ = ["ComplianceSettings"]


def _pairs(env: ServiceEnv) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for item in filter(None, (part.strip() for part in env.text("DEMO_REGISTRATIONS").split(","))):
        establishment, _, cr_number = item.partition("=")
        if not establishment or not (cr_number.isdigit() and len(cr_number) == 10):
            env.issues.append(
                f"{env.name('DEMO_REGISTRATIONS')}: {item!r} is not est_id=<10-digit CR>"
            )
            continue
        pairs.append((establishment, cr_number))
    return tuple(pairs)


@dataclass(frozen=True, slots=True, kw_only=True)
class ComplianceSettings(ServiceSettings):
    """Everything the compliance service is configured with at start-up."""

    prefix: ClassVar[str] = "COMPLIANCE"
    database_file: ClassVar[str] = "compliance.db"

    port: int = 9560
    #: The audience of the hub's internal tokens: the service's upstream id.
    audience: str = "compliance"
    #: How often establishments without a fresh registry record are read again.
    refresh_seconds: float = 30.0
    #: How long a registry record (sector, size, status) is used before it is read again.
    registry_max_age_seconds: float = 24 * 3600.0
    #: Demo data (``hub dev``): establishments and their CR numbers, ``est_x=4030000001,...``.
    demo_registrations: tuple[tuple[str, str], ...] = ()

    @classmethod
    def own_settings(cls, env: ServiceEnv) -> dict[str, Any]:
        return {
            "refresh_seconds": env.number("REFRESH_SECONDS", 30.0),
            "registry_max_age_seconds": env.number("REGISTRY_MAX_AGE_SECONDS", 86400.0),
            "demo_registrations": _pairs(env),
        }
