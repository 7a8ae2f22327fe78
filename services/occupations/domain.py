"""The change-of-occupation rules, without I/O.

A request moves along::

    (refused: nothing is written)   in_review ──> approved
             ▲                          │   └───> rejected      (an agency officer decides)
    request ─┴──> approved              │
                                        (automatic when every rule passes)

Refusals (422 ``occupation_change_refused`` with the reason codes, nothing written): the worker
has no active contract with the establishment, the new occupation is the current one, or it is
reserved for citizens and the worker is not one. An unknown code is ``unknown_occupation``.
Referrals to the review queue: a professional occupation (ISCO-08 major groups 1-2, skill
level 4) without a verified qualification certificate of bachelor level or above.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

from hub.errors import InvalidRequest, InvalidTransition, UnknownOccupation
from services.occupations.catalogue import Occupation, occupation

__all__ = [
    "REASONS",
    "STATES",
    "ChangeRequest",
    "Decision",
    "Employment",
    "State",
    "as_reasons",
    "check_decision",
    "decide",
    "parse_change_request",
    "parse_decision",
]

State = Literal["in_review", "approved", "rejected"]
STATES: Final[tuple[State, ...]] = ("in_review", "approved", "rejected")

REASONS: Final[dict[str, str]] = {
    "no_active_contract": "The worker has no active contract with the establishment.",
    "same_occupation": "The worker already has that occupation.",
    "occupation_reserved_for_citizens": "The occupation is reserved for citizens.",
    "review_qualification_not_verified": (
        "A professional occupation (ISCO-08 major groups 1-2) needs a verified qualification "
        "certificate of bachelor level or above; an officer reviews the request."
    ),
}
_DEGREE_RANK: Final = {"diploma": 1, "bachelor": 2, "master": 3, "doctorate": 4}
_PERSON: Final = re.compile(r"[A-Za-z0-9_.:@-]{1,200}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeRequest:
    """An establishment's request to change a worker's occupation, validated."""

    person_id: str
    to: Occupation
    reason: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Employment:
    """What the service learnt from contract events about the worker at the establishment."""

    contract_id: str
    occupation: str
    citizen: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """Refused outright (``refusals``), or approved / sent for review (``review``)."""

    refusals: tuple[str, ...] = ()
    review: tuple[str, ...] = ()

    @property
    def state(self) -> State:
        return "in_review" if self.review else "approved"


def parse_change_request(body: object) -> ChangeRequest:
    """``{"person_id": ..., "to": "2512", "reason": "..."}``; every finding at once."""
    if not isinstance(body, dict):
        raise InvalidRequest("$: the body must be a JSON object", extra={"errors": ["$: object"]})
    errors = [
        f"{name}: unknown field" for name in sorted(set(body) - {"person_id", "to", "reason"})
    ]
    person = body.get("person_id")
    if not isinstance(person, str) or not _PERSON.fullmatch(person):
        errors.append("person_id: the worker's id as their contract names it")
    code = body.get("to")
    if not isinstance(code, str) or not re.fullmatch(r"[0-9]{4}", code):
        errors.append("to: a four-digit ISCO-08 code")
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
        errors.append("reason: at most 500 characters")
    if errors:
        raise InvalidRequest("; ".join(errors), extra={"errors": errors})
    assert isinstance(person, str)
    assert isinstance(code, str)
    found = occupation(code)
    if found is None:
        raise UnknownOccupation(
            f"occupation {code} is not in the catalogue (GET /api/occupations/v1/occupations)"
        )
    text = reason.strip() if isinstance(reason, str) else ""
    return ChangeRequest(person_id=person, to=found, reason=text or None)


def decide(
    request: ChangeRequest, employment: Employment | None, degrees: Iterable[str]
) -> Decision:
    """The rules: refusals first; else automatic approval or the officers' review."""
    refusals: list[str] = []
    if employment is None:
        refusals.append("no_active_contract")
    else:
        if employment.occupation == request.to.code:
            refusals.append("same_occupation")
        if request.to.reserved_for_citizens and not employment.citizen:
            refusals.append("occupation_reserved_for_citizens")
    if refusals:
        return Decision(refusals=tuple(refusals))
    best = max((_DEGREE_RANK.get(degree, 0) for degree in degrees), default=0)
    if request.to.professional and best < _DEGREE_RANK["bachelor"]:
        return Decision(review=("review_qualification_not_verified",))
    return Decision()


def parse_decision(body: object) -> tuple[bool, str | None]:
    """An officer's ``{"decision": "approve" | "reject", "reason": "..."}``."""
    if (
        not isinstance(body, dict)
        or body.get("decision") not in {"approve", "reject"}
        or set(body) - {"decision", "reason"}
        or not isinstance(body.get("reason", ""), str | None)
    ):
        raise InvalidRequest(
            'the body is {"decision": "approve" | "reject", "reason": "..."}',
            extra={"errors": ["decision: approve or reject"]},
        )
    approve = body["decision"] == "approve"
    reason = (body.get("reason") or "").strip()[:500] or None
    if not approve and reason is None:
        raise InvalidRequest(
            "reason: a rejection needs a reason", extra={"errors": ["reason: required"]}
        )
    return approve, reason


def check_decision(state: str) -> None:
    """Only a request in review is decided by an officer."""
    if state != "in_review":
        raise InvalidTransition(
            f"a request that is {state} cannot be decided", extra={"state": state}
        )


def as_reasons(codes: Iterable[str]) -> dict[str, Any]:
    """The codes and their explanations, for a problem's body."""
    listed = list(codes)
    return {"reasons": listed, "explanations": {code: REASONS[code] for code in listed}}
