"""The localisation rule: an establishment's band, from its workforce and its sector.

The localisation ratio is citizen employees over all employees. Each sector requires a ratio;
the band says how the establishment stands against it:

=========  =====================================  ========================================
band       when                                   new work visas and permits
=========  =====================================  ========================================
exempt     fewer than 10 employees in all         allowed
platinum   ratio >= 1.5 x required                allowed
green      ratio >= required                      allowed
yellow     ratio >= 0.5 x required                only skilled occupations (skill level 3+)
red        below that                             refused
=========  =====================================  ========================================

The visa service reads it on its own record of the workforce, the compliance service on the
employment contracts; both read the same rule here.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["BANDS", "Band", "band_of", "ratio_of", "required_ratio"]

Band = Literal["exempt", "platinum", "green", "yellow", "red"]
BANDS: Final[tuple[Band, ...]] = ("exempt", "platinum", "green", "yellow", "red")

_REQUIRED: Final[dict[str, float]] = {
    "retail": 0.30,
    "construction": 0.10,
    "hospitality": 0.20,
    "manufacturing": 0.15,
    "healthcare": 0.25,
    "logistics": 0.15,
    "information_technology": 0.25,
    "agriculture": 0.05,
    "education": 0.40,
    "professional_services": 0.30,
}
_DEFAULT_REQUIRED: Final = 0.20
_EXEMPT_BELOW: Final = 10


def required_ratio(sector: str) -> float:
    """The localisation ratio an establishment of ``sector`` must reach."""
    return _REQUIRED.get(sector, _DEFAULT_REQUIRED)


def ratio_of(citizens: int, total: int) -> float:
    """The localisation ratio of ``citizens`` among ``total`` employees (1 with none)."""
    return citizens / total if total else 1.0


def band_of(*, ratio: float, total: int, required: float) -> Band:
    """The band of ``total`` employees at ``ratio`` where ``required`` is the sector's ratio."""
    if total < _EXEMPT_BELOW:
        return "exempt"
    if ratio >= 1.5 * required:
        return "platinum"
    if ratio >= required:
        return "green"
    if ratio >= 0.5 * required:
        return "yellow"
    return "red"
