"""The occupations service's settings: one typed object, built once from ``OCCUPATIONS_*``.

The settings every service has (:mod:`hub.servicekit.settings`): its own database (an SQLite
file in ``OCCUPATIONS_DATA_DIR`` unless ``OCCUPATIONS_DATABASE_URL`` names one), the hub whose
internal tokens it trusts, and the bus (RabbitMQ, or the embedded bus on
``OCCUPATIONS_BUS_DATABASE_URL``). It reads no registrar, so it needs no client of its own at
the hub; it learns contracts and certificates from events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from hub.servicekit.settings import ServiceSettings

__all__ = ["OccupationSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OccupationSettings(ServiceSettings):
    """Everything the occupations service is configured with at start-up."""

    prefix: ClassVar[str] = "OCCUPATIONS"
    database_file: ClassVar[str] = "occupations.db"

    port: int = 9540
    #: The audience of the hub's internal tokens: the service's upstream id.
    audience: str = "occupations"
