"""The first compliance rule: an establishment's localisation band, from its workforce.

The rule is :mod:`hub.servicekit.localisation`'s: a red band refuses new work visas, a yellow one
allows only skilled occupations (skill level 3+). The workforce the rule reads is the visa
service's own record (citizens declared for the establishment, foreigners counted from its
issued work visas), unless the compliance service (services/compliance, which computes it from
employment contracts) has sent the establishment's band in a ``compliance.band.changed`` event:
that band is preferred.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from hub.servicekit.localisation import BANDS, Band, band_of, ratio_of, required_ratio

__all__ = ["BANDS", "Band", "Standing", "required_ratio", "standing"]

_SKILLED: Final = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Standing:
    """An establishment's band and the figures behind it."""

    band: Band
    citizens: int
    foreigners: int
    ratio: float
    required: float

    def allows(self, skill_level: int) -> bool:
        """Whether this band allows a new work visa for an occupation of ``skill_level``."""
        if self.band == "red":
            return False
        return self.band != "yellow" or skill_level >= _SKILLED

    def as_dict(self) -> dict[str, object]:
        return {
            "band": self.band,
            "citizens": self.citizens,
            "foreigners": self.foreigners,
            "ratio": round(self.ratio, 4),
            "required": self.required,
        }


def standing(*, sector: str, citizens: int, foreigners: int) -> Standing:
    """The band of an establishment of ``sector`` with this workforce."""
    if citizens < 0 or foreigners < 0:
        raise ValueError("a workforce count cannot be negative")
    total = citizens + foreigners
    required = required_ratio(sector)
    ratio = ratio_of(citizens, total)
    return Standing(
        band=band_of(ratio=ratio, total=total, required=required),
        citizens=citizens,
        foreigners=foreigners,
        ratio=ratio,
        required=required,
    )
