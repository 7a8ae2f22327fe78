"""The qualification certificates of the sandbox education registry.

Numbers look like ``QC-2015-000123``: the year of award, then a serial below the population.
The demo ones belong to the hub demo's people: ``QC-2010-000001`` (Aisha Al-Harbi, bachelor),
``QC-2014-000002`` (Maria Santos, diploma) and ``QC-2001-000003`` (revoked). The holder of a
synthetic certificate is a synthetic citizen or resident.
"""

from __future__ import annotations

import re
from typing import Any, Final

from adapters.sandbox._registrar.synthetic import rng_for

__all__ = ["DEMO_CERTIFICATES", "NUMBER", "CertificateRegister"]

NUMBER: Final = re.compile(r"QC-(19[5-9][0-9]|20[0-9]{2})-([0-9]{6})")
_DEGREES: Final = ("diploma", "bachelor", "master", "doctorate")
_FIELDS: Final = (
    "civil engineering", "nursing", "accounting", "computer science", "business administration",
    "mechanical engineering", "medicine", "education", "law", "electrical engineering",
)  # fmt: skip
_INSTITUTIONS: Final = (
    "King Saud University", "King Abdulaziz University", "Imam Abdulrahman Bin Faisal University",
    "University of the Philippines", "Anna University", "University of Punjab",
    "Cairo University", "Tribhuvan University",
)  # fmt: skip

DEMO_CERTIFICATES: Final[dict[str, dict[str, Any]]] = {
    "QC-2010-000001": {
        "number": "QC-2010-000001",
        "holder_national_id": "1000000001",
        "holder_name": "Aisha Al-Harbi",
        "degree": "bachelor",
        "field": "business administration",
        "institution": "King Saud University",
        "year": 2010,
        "status": "valid",
    },
    "QC-2014-000002": {
        "number": "QC-2014-000002",
        "holder_national_id": "2000000001",
        "holder_name": "Maria Santos",
        "degree": "diploma",
        "field": "nursing",
        "institution": "University of the Philippines",
        "year": 2014,
        "status": "valid",
    },
    "QC-2001-000003": {
        "number": "QC-2001-000003",
        "holder_national_id": "1000000099",
        "holder_name": "Khalid Al-Otaibi",
        "degree": "master",
        "field": "law",
        "institution": "Cairo University",
        "year": 2001,
        "status": "revoked",
    },
}


class CertificateRegister:
    """Answers ``lookup(number)`` with a certificate record or ``None``."""

    def __init__(self, *, seed: int, population: int) -> None:
        self._seed = seed
        self._population = population

    def lookup(self, number: str) -> dict[str, Any] | None:
        demo = DEMO_CERTIFICATES.get(number)
        if demo is not None:
            return demo
        match = NUMBER.fullmatch(number)
        if match is None or int(match.group(2)) >= self._population:
            return None
        rng = rng_for(self._seed, number)
        holder = (1000000000 if rng.random() < 0.7 else 2000000000) + rng.randrange(
            max(1, self._population // 2)
        )
        return {
            "number": number,
            "holder_national_id": str(holder),
            "holder_name": f"Holder {holder % 100000:05d}",
            "degree": rng.choice(_DEGREES),
            "field": rng.choice(_FIELDS),
            "institution": rng.choice(_INSTITUTIONS),
            "year": int(match.group(1)),
            "status": "valid" if rng.random() < 0.98 else "revoked",
        }
