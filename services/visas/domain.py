"""The visa rules, without I/O: states and their transitions, eligibility, decisions, refunds.

The state machine is :data:`TRANSITIONS`, the one place the graph is written::

    submitted ──> awaiting_payment ──> approved ──> issued ──> expired
                        │   │   ▲                      │
                        │   ▼   │                      └────> cancelled
                        │  in_review ──> rejected
                        │       └──────> cancelled
                        ├──> cancelled
                        └──> lapsed      (the fee was not paid in time)

Each edge names the actors that may take it: the ``applicant`` (establishment users, its
delegated vendor, or the person who applied), an ``officer`` (the agency_officer role) and the
``system`` (payment events, automatic decisions, the expiry sweep).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final, Literal

from hub.errors import InvalidRequest, UnknownOccupation
from hub.servicekit import lifecycle
from services.visas.compliance import Standing
from services.visas.occupations import Occupation, occupation

__all__ = [
    "ACTIVE_STATES",
    "FEES",
    "REASONS",
    "STATES",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "Actor",
    "ActorKind",
    "Decision",
    "EstablishmentFacts",
    "Kind",
    "SponsorFacts",
    "State",
    "Traveller",
    "VisitRequest",
    "WorkRequest",
    "automatic_decision",
    "check_transition",
    "parse_visit_request",
    "parse_work_request",
    "refund_amount",
    "validity",
    "visit_reasons",
    "work_reasons",
]

State = Literal[
    "submitted",
    "awaiting_payment",
    "in_review",
    "approved",
    "issued",
    "rejected",
    "cancelled",
    "expired",
    "lapsed",
]
Kind = Literal["work", "visit"]
ActorKind = Literal["applicant", "officer", "system"]

#: state -> {next state: the actors that may take that edge}
TRANSITIONS: Final[dict[State, dict[State, frozenset[ActorKind]]]] = {
    "submitted": {"awaiting_payment": frozenset({"system"})},
    "awaiting_payment": {
        "in_review": frozenset({"system"}),
        "approved": frozenset({"system"}),
        "cancelled": frozenset({"applicant", "officer"}),
        "lapsed": frozenset({"system"}),
    },
    "in_review": {
        "approved": frozenset({"officer"}),
        "rejected": frozenset({"officer"}),
        "cancelled": frozenset({"applicant", "officer"}),
    },
    "approved": {"issued": frozenset({"system"})},
    "issued": {
        "cancelled": frozenset({"applicant", "officer"}),
        "expired": frozenset({"system"}),
    },
    "rejected": {},
    "cancelled": {},
    "expired": {},
    "lapsed": {},
}
STATES: Final[tuple[State, ...]] = tuple(TRANSITIONS)
TERMINAL_STATES: Final = frozenset(s for s, edges in TRANSITIONS.items() if not edges)
#: States that hold a place in the establishment's visa quota (and block a second application).
ACTIVE_STATES: Final[frozenset[State]] = frozenset(
    {"submitted", "awaiting_payment", "in_review", "approved", "issued"}
)

#: The fee of each kind of visa, in the smallest unit of the currency (halalas: 1/100).
FEES: Final[dict[Kind, int]] = {"work": 200_000, "visit": 30_000}

#: Stable reason codes of failed eligibility checks and of manual-review referrals.
REASONS: Final[dict[str, str]] = {
    "establishment_not_found": "The commercial registry has no establishment with that number.",
    "establishment_not_active": "The establishment is not active in the commercial registry.",
    "compliance_band_red": "The establishment's localisation band (red) allows no new visas.",
    "compliance_band_restricts_occupation": (
        "The establishment's localisation band (yellow) allows visas only for skilled "
        "occupations (skill level 3 or 4)."
    ),
    "visa_quota_exhausted": "The establishment has used its whole work visa quota.",
    "occupation_reserved_for_citizens": "The occupation is reserved for citizens.",
    "salary_below_minimum": "The salary is below the occupation's minimum.",
    "applicant_blocked": "The traveller may not be granted a visa.",
    "applicant_has_active_application": "The traveller already has an open application or visa.",
    "sponsor_not_found": "The civil registry has no person with that national ID.",
    "sponsor_deceased": "The sponsor is recorded as deceased.",
    "visit_quota_exhausted": "The sponsor already has the most open visit visas allowed.",
    # manual review referrals (not refusals)
    "review_low_skill_occupation": "Occupations of skill level 1 or 2 are reviewed by an officer.",
    "review_salary_near_minimum": "Salaries under 1.25 times the minimum are reviewed.",
    "review_compliance_band": "Establishments outside the platinum, green or exempt bands.",
}

_NATIONALITY: Final = re.compile(r"[A-Z]{3}")
_PASSPORT: Final = re.compile(r"[A-Z0-9]{6,12}")
_CR_NUMBER: Final = re.compile(r"[0-9]{10}")
_NATIONAL_ID: Final = re.compile(r"[12][0-9]{9}")
_RELATIONSHIPS: Final = frozenset(
    {"spouse", "parent", "child", "sibling", "grandparent", "grandchild"}
)
_MAX_SALARY: Final = 1_000_000
_VISIT_LIMIT: Final = 3
_SKILLED: Final = 3
_REFUND_WINDOW: Final = timedelta(days=14)


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """Who takes a transition: their kind for the graph, and who they are for the record."""

    kind: ActorKind
    id: str
    label: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Traveller:
    """The foreign worker or visiting relative the visa is for."""

    given_name: str
    family_name: str
    nationality: str
    passport_number: str
    birth_date: date

    def as_dict(self) -> dict[str, str]:
        return {
            "given_name": self.given_name,
            "family_name": self.family_name,
            "nationality": self.nationality,
            "passport_number": self.passport_number,
            "birth_date": self.birth_date.isoformat(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkRequest:
    """An establishment's application for a work visa, validated."""

    cr_number: str
    traveller: Traveller
    occupation: Occupation
    monthly_salary: int
    duration_months: int
    contact_email: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VisitRequest:
    """A person's application for a visit visa for a relative, validated."""

    sponsor_national_id: str
    traveller: Traveller
    relationship: str
    duration_days: int
    contact_email: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EstablishmentFacts:
    """What the checks of a work visa know: the registry's record and the service's own."""

    found: bool
    status: str | None = None
    sector: str = ""
    size: str = ""
    standing: Standing | None = None
    quota: int = 0
    used: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class SponsorFacts:
    """What the checks of a visit visa know about the sponsor."""

    found: bool
    alive: bool = True
    open_visits: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """Where a paid application goes: approved, or the review queue with the reasons."""

    state: State
    reasons: tuple[str, ...] = field(default_factory=tuple)


def check_transition(current: str, target: State, actor: Actor) -> None:
    """Refuse a transition the graph does not have, or that ``actor`` may not take."""
    lifecycle.check_transition(TRANSITIONS, current, target, actor.kind, what="an application")


# ---- input --------------------------------------------------------------------------------


def _text(body: dict[str, Any], name: str, errors: list[str], *, at: str, limit: int = 100) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        errors.append(f"{at}{name}: required, a non-empty string")
        return ""
    if len(value) > limit:
        errors.append(f"{at}{name}: at most {limit} characters")
    return value.strip()


def _pattern(
    body: dict[str, Any],
    name: str,
    pattern: re.Pattern[str],
    what: str,
    *,
    errors: list[str],
    at: str,
) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        errors.append(f"{at}{name}: must be {what}")
        return ""
    return value


def _int(
    body: dict[str, Any], name: str, errors: list[str], *, low: int, high: int, default: int | None
) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors.append(f"{name}: must be a whole number from {low} to {high}")
        return low
    return value


def _email(body: dict[str, Any], errors: list[str]) -> str | None:
    value = body.get("contact_email")
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(
        r"[^@\s]{1,64}@[^@\s]{1,190}\.[a-z]{2,}", value
    ):
        errors.append("contact_email: must be an e-mail address")
        return None
    return value


def _traveller(value: object, at: str, errors: list[str], today: date) -> Traveller | None:
    if not isinstance(value, dict):
        errors.append(f"{at}: required, an object")
        return None
    prefix = f"{at}."
    given = _text(value, "given_name", errors, at=prefix)
    family = _text(value, "family_name", errors, at=prefix)
    nationality = _pattern(
        value,
        "nationality",
        _NATIONALITY,
        "an ISO 3166 alpha-3 code (IND)",
        errors=errors,
        at=prefix,
    )
    passport = _pattern(
        value,
        "passport_number",
        _PASSPORT,
        "6 to 12 capital letters or digits",
        errors=errors,
        at=prefix,
    )
    raw = value.get("birth_date")
    birth: date | None = None
    try:
        birth = date.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        birth = None
    if birth is None:
        errors.append(f"{prefix}birth_date: must be a date (YYYY-MM-DD)")
    elif not date(1900, 1, 1) <= birth <= today:
        errors.append(f"{prefix}birth_date: must be a past date after 1900")
    unknown = set(value) - {
        "given_name",
        "family_name",
        "nationality",
        "passport_number",
        "birth_date",
    }
    errors.extend(f"{prefix}{name}: unknown field" for name in sorted(unknown))
    if birth is None or not (given and family and nationality and passport):
        return None
    return Traveller(
        given_name=given,
        family_name=family,
        nationality=nationality,
        passport_number=passport,
        birth_date=birth,
    )


def _refuse(errors: list[str]) -> InvalidRequest:
    return InvalidRequest("; ".join(errors), extra={"errors": errors})


def parse_work_request(body: object, *, today: date) -> WorkRequest:
    """A work visa application from its JSON body; every finding at once when it is wrong."""
    if not isinstance(body, dict):
        raise _refuse(["$: the body must be a JSON object"])
    errors: list[str] = []
    known = {"cr_number", "worker", "occupation", "monthly_salary", "duration_months"}
    errors.extend(
        f"{name}: unknown field" for name in sorted(set(body) - known - {"contact_email"})
    )
    cr_number = _pattern(
        body, "cr_number", _CR_NUMBER, "a 10-digit CR number", errors=errors, at=""
    )
    traveller = _traveller(body.get("worker"), "worker", errors, today)
    code = body.get("occupation")
    if not isinstance(code, str) or not re.fullmatch(r"[0-9]{4}", code):
        errors.append("occupation: must be a four-digit ISCO-08 code")
        code = None
    salary = _int(body, "monthly_salary", errors, low=1, high=_MAX_SALARY, default=None)
    months = _int(body, "duration_months", errors, low=3, high=24, default=24)
    email = _email(body, errors)
    if errors:
        raise _refuse(errors)
    found = occupation(code) if code else None
    if found is None:
        raise UnknownOccupation(
            f"occupation {code} is not in the catalogue (GET /api/visas/v1/occupations)"
        )
    assert traveller is not None
    return WorkRequest(
        cr_number=cr_number,
        traveller=traveller,
        occupation=found,
        monthly_salary=salary,
        duration_months=months,
        contact_email=email,
    )


def parse_visit_request(body: object, *, today: date) -> VisitRequest:
    """A visit visa application from its JSON body; every finding at once when it is wrong."""
    if not isinstance(body, dict):
        raise _refuse(["$: the body must be a JSON object"])
    errors: list[str] = []
    known = {"sponsor_national_id", "visitor", "relationship", "duration_days", "contact_email"}
    errors.extend(f"{name}: unknown field" for name in sorted(set(body) - known))
    sponsor = _pattern(
        body, "sponsor_national_id", _NATIONAL_ID, "a 10-digit national ID", errors=errors, at=""
    )
    traveller = _traveller(body.get("visitor"), "visitor", errors, today)
    relationship = body.get("relationship")
    if relationship not in _RELATIONSHIPS:
        errors.append(f"relationship: must be one of {', '.join(sorted(_RELATIONSHIPS))}")
    days = _int(body, "duration_days", errors, low=7, high=180, default=90)
    email = _email(body, errors)
    if errors:
        raise _refuse(errors)
    assert traveller is not None
    assert isinstance(relationship, str)
    return VisitRequest(
        sponsor_national_id=sponsor,
        traveller=traveller,
        relationship=relationship,
        duration_days=days,
        contact_email=email,
    )


# ---- rules --------------------------------------------------------------------------------


def work_reasons(
    request: WorkRequest, establishment: EstablishmentFacts, *, blocked: bool, open_elsewhere: bool
) -> list[str]:
    """The reason codes of every failed check of a work visa application (empty: eligible)."""
    reasons: list[str] = []
    if not establishment.found:
        reasons.append("establishment_not_found")
    elif establishment.status != "active":
        reasons.append("establishment_not_active")
    standing = establishment.standing
    if standing is not None and not standing.allows(request.occupation.skill_level):
        reasons.append(
            "compliance_band_red"
            if standing.band == "red"
            else "compliance_band_restricts_occupation"
        )
    if establishment.found and establishment.used >= establishment.quota:
        reasons.append("visa_quota_exhausted")
    if request.occupation.reserved_for_citizens:
        reasons.append("occupation_reserved_for_citizens")
    if request.monthly_salary < request.occupation.minimum_monthly_salary:
        reasons.append("salary_below_minimum")
    if blocked:
        reasons.append("applicant_blocked")
    if open_elsewhere:
        reasons.append("applicant_has_active_application")
    return reasons


def visit_reasons(sponsor: SponsorFacts, *, blocked: bool, open_elsewhere: bool) -> list[str]:
    """The reason codes of every failed check of a visit visa application (empty: eligible)."""
    reasons: list[str] = []
    if not sponsor.found:
        reasons.append("sponsor_not_found")
    elif not sponsor.alive:
        reasons.append("sponsor_deceased")
    if sponsor.open_visits >= _VISIT_LIMIT:
        reasons.append("visit_quota_exhausted")
    if blocked:
        reasons.append("applicant_blocked")
    if open_elsewhere:
        reasons.append("applicant_has_active_application")
    return reasons


def automatic_decision(
    kind: Kind, *, skill_level: int, salary: int, minimum: int, band: str | None
) -> Decision:
    """A paid application's next state: approved, or the officers' queue with why."""
    if kind == "visit":
        return Decision(state="approved")
    reasons: list[str] = []
    if skill_level < _SKILLED:
        reasons.append("review_low_skill_occupation")
    if salary * 4 < minimum * 5:
        reasons.append("review_salary_near_minimum")
    if band not in {"platinum", "green", "exempt"}:
        reasons.append("review_compliance_band")
    return (
        Decision(state="in_review", reasons=tuple(reasons))
        if reasons
        else Decision(state="approved")
    )


def refund_amount(
    state: str, *, fee: int, paid: bool, issued_at: datetime | None, now: datetime
) -> int:
    """What a cancellation from ``state`` gives back of a ``fee``.

    Nothing was paid: nothing. Paid but not decided (the review queue): all of it. Issued and
    cancelled within 14 days of issue: half. Later: nothing.
    """
    if not paid:
        return 0
    if state in {"awaiting_payment", "in_review"}:
        return fee
    if state == "issued" and issued_at is not None and now - issued_at <= _REFUND_WINDOW:
        return fee // 2
    return 0


def validity(kind: Kind, *, months: int, days: int, issued_on: date) -> date:
    """The last day a visa issued on ``issued_on`` is valid."""
    if kind == "visit":
        return issued_on + timedelta(days=days)
    year, month = divmod(issued_on.month - 1 + months, 12)
    day = min(issued_on.day, 28)
    return date(issued_on.year + year, month + 1, day)
