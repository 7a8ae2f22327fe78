"""The establishments of the sandbox commercial registry: demo ones, then synthetic ones.

Commercial registration numbers are ``4030000000 + n`` for ``n`` below the population. The demo
establishment is the hub's (``hub dev``): ``4030000001`` Demo Trading Co, owned by Aisha
Al-Harbi (``1000000001``), active; ``4030000002`` is suspended and ``4030000003`` struck off,
for tests and demos of those cases. Owners of synthetic establishments are synthetic citizens.
"""

from __future__ import annotations

import datetime
from typing import Any, Final

from adapters.sandbox._registrar.synthetic import CITIES, FAMILY_NAMES, rng_for

__all__ = ["DEMO_ESTABLISHMENTS", "EstablishmentRegister"]

_SECTORS: Final = (
    "retail", "construction", "hospitality", "manufacturing", "healthcare", "logistics",
    "information_technology", "agriculture", "education", "professional_services",
)  # fmt: skip
_SIZES: Final = ("micro", "small", "medium", "large")
_WORDS: Final = ("Trading", "Contracting", "Services", "Industries", "Holding", "Logistics")

DEMO_ESTABLISHMENTS: Final[dict[str, dict[str, Any]]] = {
    "4030000001": {
        "cr_number": "4030000001",
        "name": "Demo Trading Co",
        "owner_national_id": "1000000001",
        "sector": "retail",
        "size": "small",
        "status": "active",
        "registered_on": "2016-03-01",
        "city": "Riyadh",
    },
    "4030000002": {
        "cr_number": "4030000002",
        "name": "Falcon Contracting Est",
        "owner_national_id": "1000000002",
        "sector": "construction",
        "size": "medium",
        "status": "suspended",
        "registered_on": "2009-10-20",
        "city": "Jeddah",
    },
    "4030000003": {
        "cr_number": "4030000003",
        "name": "Old Harbour Services",
        "owner_national_id": "1000000099",
        "sector": "hospitality",
        "size": "micro",
        "status": "struck_off",
        "registered_on": "2001-05-14",
        "city": "Dammam",
    },
}


class EstablishmentRegister:
    """Answers ``lookup(cr_number)`` with an establishment record or ``None``."""

    def __init__(self, *, seed: int, population: int) -> None:
        self._seed = seed
        self._population = population

    def lookup(self, cr_number: str) -> dict[str, Any] | None:
        demo = DEMO_ESTABLISHMENTS.get(cr_number)
        if demo is not None:
            return demo
        if len(cr_number) != 10 or not cr_number.startswith("403") or not cr_number.isdigit():
            return None
        number = int(cr_number) - 4030000000
        if not 0 <= number < self._population:
            return None
        rng = rng_for(self._seed, cr_number)
        roll = rng.random()
        status = "active" if roll < 0.92 else ("suspended" if roll < 0.97 else "struck_off")
        registered = datetime.date(1990, 1, 1) + datetime.timedelta(days=rng.randint(0, 12_000))
        owner = 1000000000 + rng.randrange(max(1, self._population))
        return {
            "cr_number": cr_number,
            "name": f"{rng.choice(FAMILY_NAMES).removeprefix('Al-')} {rng.choice(_WORDS)} Co",
            "owner_national_id": str(owner),
            "sector": rng.choice(_SECTORS),
            "size": rng.choices(_SIZES, weights=(50, 30, 15, 5))[0],
            "status": status,
            "registered_on": registered.isoformat(),
            "city": rng.choice(CITIES)[0],
        }
