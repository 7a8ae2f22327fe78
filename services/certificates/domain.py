"""The certificate rules, without I/O: what a submission is, and what the registry's record says.

A certificate is in one of these states::

    pending ──> verified     (the registry's record matches every claimed field)
       │   ──> mismatch      (the record differs: ``mismatches`` names the fields)
       │   ──> not_found     (the registry has no certificate with that number)
       └──> revoked          (the registry has it, revoked)

``pending`` means the registry could not be asked (the hub, the adapter or the registry was
down): it is asked again later, and no verdict is ever guessed. Only an answer of the registry
(a record, or "no such record") decides; the final states are never left.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal

from hub.errors import InvalidRequest

__all__ = [
    "BLOCKING_STATES",
    "FINAL_STATES",
    "STATES",
    "Claim",
    "State",
    "Verdict",
    "judge",
    "normalised",
    "parse_claim",
]

State = Literal["pending", "verified", "mismatch", "not_found", "revoked"]
STATES: Final[tuple[State, ...]] = ("pending", "verified", "mismatch", "not_found", "revoked")
FINAL_STATES: Final[frozenset[State]] = frozenset(STATES) - {"pending"}
#: What a person may not submit twice: a certificate verified, or still waiting to be.
BLOCKING_STATES: Final[frozenset[State]] = frozenset({"pending", "verified"})

_NUMBER: Final = re.compile(r"QC-[0-9]{4}-[0-9]{6}")
_NATIONAL_ID: Final = re.compile(r"[12][0-9]{9}")
_DEGREES: Final = frozenset({"diploma", "bachelor", "master", "doctorate"})
_FIELDS: Final = ("number", "national_id", "degree", "institution", "year")


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """What the worker says the certificate is."""

    number: str
    national_id: str
    degree: str
    institution: str
    year: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "national_id": self.national_id,
            "degree": self.degree,
            "institution": self.institution,
            "year": self.year,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """The registry's answer, judged against the claim."""

    state: State
    mismatches: tuple[str, ...] = ()


def normalised(text: str) -> str:
    """Case and spacing do not make a mismatch: ``"King  Saud university"`` is the same."""
    return " ".join(text.split()).casefold()


def parse_claim(body: object, *, this_year: int) -> Claim:
    """A submission from its JSON body; every finding at once when it is wrong."""
    if not isinstance(body, dict):
        raise InvalidRequest("$: the body must be a JSON object", extra={"errors": ["$: object"]})
    errors = [f"{name}: unknown field" for name in sorted(set(body) - set(_FIELDS))]
    number = body.get("number")
    if not isinstance(number, str) or not _NUMBER.fullmatch(number):
        errors.append("number: must be a certificate number like QC-2015-000123")
    national_id = body.get("national_id")
    if not isinstance(national_id, str) or not _NATIONAL_ID.fullmatch(national_id):
        errors.append("national_id: must be your 10-digit national or resident ID")
    degree = body.get("degree")
    if not isinstance(degree, str) or degree.strip().casefold() not in _DEGREES:
        errors.append(f"degree: one of {', '.join(sorted(_DEGREES))}")
    institution = body.get("institution")
    if not isinstance(institution, str) or not 2 <= len(institution.strip()) <= 200:
        errors.append("institution: 2 to 200 characters")
    year = body.get("year")
    if isinstance(year, bool) or not isinstance(year, int) or not 1950 <= year <= this_year:
        errors.append(f"year: a whole number from 1950 to {this_year}")
    if errors:
        raise InvalidRequest("; ".join(errors), extra={"errors": errors})
    assert isinstance(number, str)
    assert isinstance(national_id, str)
    assert isinstance(degree, str)
    assert isinstance(institution, str)
    assert isinstance(year, int)
    return Claim(
        number=number,
        national_id=national_id,
        degree=degree.strip().casefold(),
        institution=" ".join(institution.split()),
        year=year,
    )


def judge(claim: Claim, record: dict[str, Any] | None) -> Verdict:
    """The verdict on ``claim`` from the registry's ``record`` (``None``: no such certificate)."""
    if record is None:
        return Verdict(state="not_found")
    if record.get("status") == "revoked":
        return Verdict(state="revoked")
    mismatches: list[str] = []
    if str(record.get("holder_national_id", "")) != claim.national_id:
        mismatches.append("holder")
    if normalised(str(record.get("degree", ""))) != claim.degree:
        mismatches.append("degree")
    if normalised(str(record.get("institution", ""))) != normalised(claim.institution):
        mismatches.append("institution")
    if record.get("year") != claim.year:
        mismatches.append("year")
    if record.get("status") != "valid" and not mismatches:
        # a status the service does not know: no verdict is guessed
        raise ValueError(f"the registry answered an unknown status {record.get('status')!r}")
    if mismatches:
        return Verdict(state="mismatch", mismatches=tuple(mismatches))
    return Verdict(state="verified")
