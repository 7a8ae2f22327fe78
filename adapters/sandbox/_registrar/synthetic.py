"""Deterministic synthetic data: every record is a function of the seed and its key alone.

No table is built: a sandbox with a population of a million answers any key in the range at
once, and the same seed always gives the same record, on every machine and every run.
"""

from __future__ import annotations

import random
from typing import Final

__all__ = [
    "CITIES",
    "FAMILY_NAMES",
    "FEMALE_NAMES",
    "MALE_NAMES",
    "NATIONALITIES",
    "rng_for",
]

MALE_NAMES: Final = (
    "Abdullah", "Ahmed", "Faisal", "Fahad", "Hassan", "Ibrahim", "Khalid", "Majed", "Nasser",
    "Omar", "Saad", "Sultan", "Turki", "Yousef", "Ziyad", "Rakan", "Bandar", "Hamad",
)  # fmt: skip
FEMALE_NAMES: Final = (
    "Aisha", "Amal", "Dana", "Fatimah", "Hind", "Lama", "Maha", "Noura", "Reem", "Sara",
    "Shahad", "Lina", "Joud", "Ghada", "Munira", "Rawan", "Haya", "Maryam",
)  # fmt: skip
FAMILY_NAMES: Final = (
    "Al-Harbi", "Al-Qahtani", "Al-Otaibi", "Al-Ghamdi", "Al-Zahrani", "Al-Shehri", "Al-Dosari",
    "Al-Mutairi", "Al-Anazi", "Al-Shammari", "Al-Subaie", "Al-Maliki", "Al-Juhani", "Al-Balawi",
)  # fmt: skip
# Nationalities of residents (ISO 3166-1 alpha-3), roughly as common as in the labour market.
NATIONALITIES: Final = ("IND", "PAK", "BGD", "EGY", "PHL", "NPL", "YEM", "SDN", "JOR", "LKA")
CITIES: Final = (
    ("Riyadh", ("Al Olaya", "Al Malaz", "Al Nakheel", "Al Yasmin")),
    ("Jeddah", ("Al Rawdah", "Al Hamra", "Al Safa")),
    ("Dammam", ("Al Faisaliyah", "Al Shati")),
    ("Makkah", ("Al Aziziyah", "Al Awali")),
    ("Madinah", ("Quba", "Al Aqiq")),
)


def rng_for(seed: int, key: str) -> random.Random:
    """The generator of one record: seeded by the sandbox seed and the record's key."""
    return random.Random(f"{seed}:{key}")  # noqa: S311 - synthetic data, not secrets
