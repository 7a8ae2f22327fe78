"""The people of the sandbox civil registry: the demo people, then synthetic ones by ID.

Citizens hold national IDs ``1000000000 + n`` and residents resident IDs ``2000000000 + n``,
for ``n`` below the population (residents: half of it). The demo people are the hub's demo data
(``hub dev``) and the sandbox national IdP's, with the same names and birth dates, plus
``1000000004``, who is deceased, for tests and demos of that case.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import asdict, dataclass
from typing import Any, Final

from adapters.sandbox._registrar.synthetic import (
    CITIES,
    FAMILY_NAMES,
    FEMALE_NAMES,
    MALE_NAMES,
    NATIONALITIES,
    rng_for,
)
from adapters.sandbox.national_idp.people import DEFAULT_PEOPLE_FILE

__all__ = ["DECEASED_DEMO", "PersonRegister"]

DECEASED_DEMO: Final = "1000000004"
_STREETS: Final = ("King Fahd", "Prince Sultan", "Al Takhassusi", "Tahlia")
_SEX: Final = {"Aisha": "F", "Maria": "F", "Omar": "M", "Khalid": "M", "Huda": "F"}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Address:
    city: str
    district: str
    street: str
    postal_code: str


def _address(rng: Any) -> dict[str, str]:
    city, districts = rng.choice(CITIES)
    return asdict(
        _Address(
            city=city,
            district=rng.choice(districts),
            street=f"{rng.randint(1, 99)} {rng.choice(_STREETS)} St",
            postal_code=f"{rng.randint(11000, 34999)}",
        )
    )


class PersonRegister:
    """Answers ``lookup(id)`` with a person record (a JSON object) or ``None``."""

    def __init__(self, *, seed: int, population: int) -> None:
        self._seed = seed
        self._population = population
        self._demo: dict[str, dict[str, Any]] = {}
        people = json.loads(DEFAULT_PEOPLE_FILE.read_text(encoding="utf-8"))["people"]
        for entry in people:
            self._demo[entry["national_id"]] = self._demo_person(entry)
        deceased = self._demo_person(
            {
                "national_id": DECEASED_DEMO,
                "given_name": "Huda",
                "family_name": "Al-Dosari",
                "birthdate": "1941-02-09",
                "kind": "citizen",
            }
        )
        deceased.update(alive=False, death_date="2024-12-30", marital_status="widowed")
        self._demo[DECEASED_DEMO] = deceased

    def _demo_person(self, entry: dict[str, str]) -> dict[str, Any]:
        rng = rng_for(self._seed, entry["national_id"])
        resident = entry["kind"] == "resident"
        return {
            "national_id": entry["national_id"],
            "id_kind": entry["kind"],
            "given_name": entry["given_name"],
            "family_name": entry["family_name"],
            "birth_date": entry["birthdate"],
            "sex": _SEX.get(entry["given_name"], "M"),
            "nationality": "PHL" if resident else "SAU",
            "marital_status": "married" if entry["given_name"] != "Maria" else "single",
            "alive": True,
            "death_date": None,
            "address": _address(rng),
        }

    def lookup(self, national_id: str) -> dict[str, Any] | None:
        demo = self._demo.get(national_id)
        if demo is not None:
            return demo
        if len(national_id) != 10 or not national_id.isdigit():
            return None
        number = int(national_id[1:])
        kind = national_id[0]
        if kind == "1" and number < self._population:
            return self._synthetic(national_id, resident=False)
        if kind == "2" and number < self._population // 2:
            return self._synthetic(national_id, resident=True)
        return None

    def _synthetic(self, national_id: str, *, resident: bool) -> dict[str, Any]:
        rng = rng_for(self._seed, national_id)
        female = rng.random() < 0.5
        born = datetime.date(1950, 1, 1) + datetime.timedelta(days=rng.randint(0, 365 * 55))
        alive = rng.random() >= 0.02
        death = born + datetime.timedelta(days=rng.randint(365 * 30, 365 * 70))
        married = rng.random() < 0.6
        return {
            "national_id": national_id,
            "id_kind": "resident" if resident else "citizen",
            "given_name": rng.choice(FEMALE_NAMES if female else MALE_NAMES),
            "family_name": rng.choice(FAMILY_NAMES)
            if not resident
            else rng.choice(
                ("Kumar", "Khan", "Rahman", "Hassan", "Reyes", "Sharma", "Perera", "Ali")
            ),
            "birth_date": born.isoformat(),
            "sex": "F" if female else "M",
            "nationality": rng.choice(NATIONALITIES) if resident else "SAU",
            "marital_status": "married" if married else rng.choice(("single", "divorced")),
            "alive": alive,
            "death_date": None if alive else min(death, datetime.date(2025, 12, 31)).isoformat(),
            "address": _address(rng),
        }
