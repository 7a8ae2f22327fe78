"""The localisation rule, without I/O: an establishment's band, from its workforce and sector.

The rule is :mod:`hub.servicekit.localisation`'s (the visa service reads it on its own record
of the workforce), computed here from employment contracts.

The size band is the establishment's headcount band (micro 1-9, small 10-49, medium 50-249,
large 250 and more); the registry's declared size is kept beside it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from hub.errors import InvalidRequest
from hub.servicekit.localisation import BANDS, Band, band_of, ratio_of, required_ratio

__all__ = [
    "BANDS",
    "Band",
    "Standing",
    "parse_registration",
    "required_ratio",
    "size_band",
    "standing",
]

_CR_NUMBER: Final = re.compile(r"[0-9]{10}")


def size_band(total: int) -> str:
    """The headcount band of an establishment with ``total`` employees."""
    if total < 10:
        return "micro"
    if total < 50:
        return "small"
    if total < 250:
        return "medium"
    return "large"


@dataclass(frozen=True, slots=True, kw_only=True)
class Standing:
    """An establishment's band and the figures behind it."""

    band: Band
    citizens: int
    total: int
    ratio: float
    required: float
    size_band: str


def standing(*, sector: str, citizens: int, total: int) -> Standing:
    """The band of an establishment of ``sector`` with ``citizens`` of ``total`` employees."""
    if citizens < 0 or total < citizens:
        raise ValueError("a workforce has 0 to total citizens")
    required = required_ratio(sector)
    ratio = ratio_of(citizens, total)
    return Standing(
        band=band_of(ratio=ratio, total=total, required=required),
        citizens=citizens,
        total=total,
        ratio=ratio,
        required=required,
        size_band=size_band(total),
    )


def parse_registration(body: object) -> str:
    """``{"cr_number": "4030000001"}``: the establishment's commercial registration."""
    if (
        not isinstance(body, dict)
        or set(body) != {"cr_number"}
        or not isinstance(body["cr_number"], str)
        or not _CR_NUMBER.fullmatch(body["cr_number"])
    ):
        raise InvalidRequest(
            'the body is {"cr_number": "<10 digits>"}',
            extra={"errors": ["cr_number: a 10-digit CR number"]},
        )
    return str(body["cr_number"])
