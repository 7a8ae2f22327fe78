"""The certificates service's settings: one typed object, built once from ``CERTIFICATES_*``.

The settings every service has (:mod:`hub.servicekit.settings`: its own database, the hub and
its own client credentials there for the education registry's route, the bus), and its own:
how often certificates the registry could not answer for are checked again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from hub.servicekit.settings import ServiceEnv, ServiceSettings

__all__ = ["CertificateSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateSettings(ServiceSettings):
    """Everything the certificates service is configured with at start-up."""

    prefix: ClassVar[str] = "CERTIFICATES"
    database_file: ClassVar[str] = "certificates.db"

    port: int = 9550
    #: The audience of the hub's internal tokens: the service's upstream id.
    audience: str = "certificates"
    #: How often certificates the registry could not answer for are checked again.
    retry_seconds: float = 60.0

    @classmethod
    def own_settings(cls, env: ServiceEnv) -> dict[str, Any]:
        return {"retry_seconds": env.number("RETRY_SECONDS", 60.0)}
