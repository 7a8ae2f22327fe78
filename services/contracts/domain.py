"""The contract rules, without I/O: states, input, the signed document and its hash, amendments.

The state machine is :data:`TRANSITIONS`, the one place the graph is written::

    draft ──> offered ──> accepted ──> active ──> terminated
      │          │  │         │  │        └─────> expired      (past its end date)
      │          │  └> declined  └> declined
      └──────────┴─────────> withdrawn <──┘

Each edge names the sides that may take it: the ``employer`` (the establishment's owner, an
HR officer or a vendor delegated ``contracts.manage``), the ``employee`` (the signed-in person
the contract names) and the ``system`` (both signatures present, the expiry sweep).

A signature is over the contract's *document*: its terms as one JSON object
(:func:`document_of`), hashed as :func:`document_hash` (SHA-256 of the canonical JSON:
RFC 8785 style, sorted keys, no whitespace, UTF-8; the document holds only strings, whole
numbers, booleans and nulls, so JCS's number rules never come into play). An amendment is a
new document (the next ``version``) that takes effect only when both sides have signed it;
:data:`AMENDMENT_TRANSITIONS` is its own small graph.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal

from hub.errors import ContractIneligible, InvalidRequest, InvalidTransition, UnknownOccupation
from hub.servicekit import lifecycle
from services.contracts.occupations import Occupation, occupation

__all__ = [
    "AMENDABLE",
    "AMENDMENT_STATES",
    "AMENDMENT_TRANSITIONS",
    "PARTIES",
    "REASONS",
    "STATES",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "Actor",
    "ActorKind",
    "AmendmentState",
    "Draft",
    "Employee",
    "Party",
    "State",
    "amended_document",
    "canonical_json",
    "check_amendment",
    "check_transition",
    "document_hash",
    "document_of",
    "draft_reasons",
    "parse_amendment",
    "parse_draft",
    "parse_reason",
    "state_after_signing",
]

State = Literal[
    "draft",
    "offered",
    "accepted",
    "active",
    "declined",
    "withdrawn",
    "terminated",
    "expired",
]
ActorKind = Literal["employer", "employee", "system"]
Party = Literal["employer", "employee"]
AmendmentState = Literal["proposed", "applied", "rejected", "withdrawn"]

#: state -> {next state: the sides that may take that edge}
TRANSITIONS: Final[dict[State, dict[State, frozenset[ActorKind]]]] = {
    "draft": {
        "offered": frozenset({"employer"}),
        "withdrawn": frozenset({"employer"}),
    },
    "offered": {
        "accepted": frozenset({"employee"}),
        "declined": frozenset({"employee"}),
        "withdrawn": frozenset({"employer"}),
    },
    "accepted": {
        "active": frozenset({"system"}),
        "declined": frozenset({"employee"}),
        "withdrawn": frozenset({"employer"}),
    },
    "active": {
        "terminated": frozenset({"employer", "employee"}),
        "expired": frozenset({"system"}),
    },
    "declined": {},
    "withdrawn": {},
    "terminated": {},
    "expired": {},
}
STATES: Final[tuple[State, ...]] = tuple(TRANSITIONS)
TERMINAL_STATES: Final = frozenset(s for s, edges in TRANSITIONS.items() if not edges)
PARTIES: Final[tuple[Party, ...]] = ("employer", "employee")
#: The states in which the parties sign the contract's current version.
SIGNING_STATE: Final[State] = "accepted"
#: The states in which an amendment may be proposed and signed.
AMENDABLE: Final[frozenset[State]] = frozenset({"active"})

#: amendment state -> {next state: who may take it}; ``proposer``/``counterparty`` are
#: resolved against the amendment's proposing side by :func:`check_amendment`.
AMENDMENT_TRANSITIONS: Final[dict[AmendmentState, dict[AmendmentState, frozenset[str]]]] = {
    "proposed": {
        "applied": frozenset({"system"}),  # both sides signed
        "rejected": frozenset({"counterparty"}),
        "withdrawn": frozenset({"proposer"}),
    },
    "applied": {},
    "rejected": {},
    "withdrawn": {},
}
AMENDMENT_STATES: Final[tuple[AmendmentState, ...]] = tuple(AMENDMENT_TRANSITIONS)

#: Stable reason codes of refused drafts.
REASONS: Final[dict[str, str]] = {
    "establishment_not_found": "The commercial registry has no establishment with that number.",
    "establishment_not_active": "The establishment is suspended or struck off.",
    "occupation_reserved_for_citizens": "The occupation is reserved for citizens.",
    "salary_below_minimum": "The salary is below the occupation's minimum.",
}

_CR_NUMBER: Final = re.compile(r"[0-9]{10}")
_NATIONALITY: Final = re.compile(r"[A-Z]{3}")
_PERSON_ID: Final = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
_VISA_NUMBER: Final = re.compile(r"W[0-9]{9}")
_ALLOWANCE: Final = re.compile(r"[a-z][a-z_]{0,29}")
_EMAIL: Final = re.compile(r"[^@\s]{1,64}@[^@\s]{1,190}\.[a-z]{2,}")
_MAX_MONEY: Final = 1_000_000
_MAX_ALLOWANCES: Final = 10
_MAX_CLAUSES: Final = 30
_CLAUSE_LIMIT: Final = 2000
_TERM_LIMITS: Final[dict[str, tuple[int, int, int]]] = {
    # name: (low, high, default)
    "probation_days": (0, 180, 90),
    "notice_days": (0, 180, 30),
    "annual_leave_days": (21, 60, 21),
    "weekly_hours": (1, 48, 48),
}
_DRAFT_FIELDS: Final = frozenset(
    {
        "cr_number",
        "employee",
        "occupation",
        "salary",
        "allowances",
        "start_date",
        "end_date",
        "terms",
        "contact_email",
    }
)
_EMPLOYEE_FIELDS: Final = frozenset({"id", "name", "nationality", "citizen", "visa_number"})
_AMENDABLE_FIELDS: Final = frozenset({"occupation", "salary", "allowances", "end_date", "terms"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """Who takes a transition: their side for the graph, and who they are for the record."""

    kind: ActorKind
    id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Employee:
    """The person the contract employs: their hub person id (the SSO's ``sub``)."""

    id: str
    name: str
    nationality: str
    citizen: bool
    visa_number: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "nationality": self.nationality,
            "citizen": self.citizen,
            "visa_number": self.visa_number,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Draft:
    """An employer's contract draft, validated."""

    cr_number: str
    employee: Employee
    occupation: Occupation
    salary: int
    allowances: dict[str, int]
    start_date: date
    end_date: date | None
    terms: dict[str, Any]
    contact_email: str | None = None


def check_transition(current: str, target: State, actor: Actor) -> None:
    """Refuse a transition the graph does not have, or that ``actor`` may not take."""
    lifecycle.check_transition(TRANSITIONS, current, target, actor.kind, what="a contract")


def check_amendment(current: str, target: AmendmentState, side: str, proposer: Party) -> None:
    """Refuse an amendment step the graph does not have, or that ``side`` may not take."""
    edges = AMENDMENT_TRANSITIONS.get(current)  # type: ignore[call-overload]
    if edges is None or target not in edges:
        raise InvalidTransition(
            f"an amendment that is {current} cannot become {target}",
            extra={"state": current, "target": target},
        )
    role = "system" if side == "system" else ("proposer" if side == proposer else "counterparty")
    if role not in edges[target]:
        raise InvalidTransition(
            f"the {side} cannot make an amendment that is {current} {target}",
            extra={"state": current, "target": target},
        )


def state_after_signing(state: str, signed: frozenset[str]) -> State | None:
    """The state a signature moves the contract to: ``active`` once both sides signed."""
    if state == SIGNING_STATE and signed >= frozenset(PARTIES):
        return "active"
    return None


# ---- the signed document -------------------------------------------------------------------


def canonical_json(value: object) -> bytes:
    """RFC 8785-style canonical JSON: sorted keys, no whitespace, UTF-8; no floats allowed."""

    def check(item: object) -> None:
        if isinstance(item, float):
            raise ValueError("a signed document holds no floating-point numbers")
        if isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str):
                    raise ValueError("object keys are strings")
                check(inner)
        elif isinstance(item, list | tuple):
            for inner in item:
                check(inner)

    check(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def document_hash(document: dict[str, Any]) -> str:
    """The SHA-256 (hex) of the document's canonical JSON: what each party signs."""
    return hashlib.sha256(canonical_json(document)).hexdigest()


def document_of(
    draft: Draft,
    *,
    contract_id: str,
    establishment_id: str,
    establishment_name: str | None,
    currency: str,
) -> dict[str, Any]:
    """The contract's terms as one JSON object (version 1)."""
    return {
        "contract_id": contract_id,
        "version": 1,
        "establishment": {
            "id": establishment_id,
            "cr_number": draft.cr_number,
            "name": establishment_name,
        },
        "employee": draft.employee.as_dict(),
        "occupation": {"code": draft.occupation.code, "title": draft.occupation.title},
        "salary": {"monthly": draft.salary, "currency": currency},
        "allowances": dict(sorted(draft.allowances.items())),
        "start_date": draft.start_date.isoformat(),
        "end_date": None if draft.end_date is None else draft.end_date.isoformat(),
        "terms": draft.terms,
    }


def amended_document(document: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """The next version of ``document`` with validated ``changes`` applied."""
    new: dict[str, Any] = json.loads(json.dumps(document))  # a deep copy of plain JSON
    new["version"] = int(document["version"]) + 1
    if "occupation" in changes:
        found: Occupation = changes["occupation"]
        new["occupation"] = {"code": found.code, "title": found.title}
    if "salary" in changes:
        new["salary"] = {**new["salary"], "monthly": changes["salary"]}
    if "allowances" in changes:
        new["allowances"] = dict(sorted(changes["allowances"].items()))
    if "end_date" in changes:
        end: date | None = changes["end_date"]
        new["end_date"] = None if end is None else end.isoformat()
    if "terms" in changes:
        new["terms"] = changes["terms"]
    return new


# ---- input --------------------------------------------------------------------------------


def _refuse(errors: list[str]) -> InvalidRequest:
    return InvalidRequest("; ".join(errors), extra={"errors": errors})


def _date(value: object, name: str, errors: list[str]) -> date | None:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    errors.append(f"{name}: must be a date (YYYY-MM-DD)")
    return None


def _money(value: object, name: str, errors: list[str], *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= _MAX_MONEY:
        errors.append(f"{name}: must be a whole number from {low} to {_MAX_MONEY}")
        return low
    return value


def _allowances(value: object, errors: list[str]) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > _MAX_ALLOWANCES:
        errors.append(f"allowances: an object of at most {_MAX_ALLOWANCES} named amounts")
        return {}
    out: dict[str, int] = {}
    for name, amount in value.items():
        if not _ALLOWANCE.fullmatch(name):
            errors.append(f"allowances.{name}: a name is lower-case letters and _")
            continue
        out[name] = _money(amount, f"allowances.{name}", errors, low=0)
    return out


def _terms(value: object, errors: list[str]) -> dict[str, Any]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        errors.append("terms: must be an object")
        return {}
    out: dict[str, Any] = {}
    errors.extend(
        f"terms.{name}: unknown field" for name in sorted(set(value) - {*_TERM_LIMITS, "clauses"})
    )
    for name, (low, high, default) in _TERM_LIMITS.items():
        number = value.get(name, default)
        if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
            errors.append(f"terms.{name}: must be a whole number from {low} to {high}")
        out[name] = number
    clauses = value.get("clauses", [])
    if (
        not isinstance(clauses, list)
        or len(clauses) > _MAX_CLAUSES
        or not all(isinstance(c, str) and 0 < len(c.strip()) <= _CLAUSE_LIMIT for c in clauses)
    ):
        errors.append(
            f"terms.clauses: at most {_MAX_CLAUSES} non-empty texts of up to {_CLAUSE_LIMIT} "
            "characters"
        )
        clauses = []
    out["clauses"] = [c.strip() for c in clauses]
    return out


def _employee(value: object, errors: list[str]) -> Employee | None:
    if not isinstance(value, dict):
        errors.append("employee: required, an object")
        return None
    errors.extend(f"employee.{n}: unknown field" for n in sorted(set(value) - _EMPLOYEE_FIELDS))
    person = value.get("id")
    if not isinstance(person, str) or not _PERSON_ID.fullmatch(person):
        errors.append("employee.id: required, the person's id (the hub's person id)")
    name = value.get("name")
    if not isinstance(name, str) or not 0 < len(name.strip()) <= 200:
        errors.append("employee.name: required, 1 to 200 characters")
    nationality = value.get("nationality")
    if not isinstance(nationality, str) or not _NATIONALITY.fullmatch(nationality):
        errors.append("employee.nationality: must be an ISO 3166 alpha-3 code (IND)")
    citizen = value.get("citizen")
    if not isinstance(citizen, bool):
        errors.append("employee.citizen: required, true or false")
    visa = value.get("visa_number")
    if citizen is False and (not isinstance(visa, str) or not _VISA_NUMBER.fullmatch(visa)):
        errors.append("employee.visa_number: a foreign worker needs a work visa number (W+9)")
    if citizen is True and visa is not None:
        errors.append("employee.visa_number: a citizen needs no visa")
    if not (
        isinstance(person, str)
        and isinstance(name, str)
        and isinstance(nationality, str)
        and isinstance(citizen, bool)
    ):
        return None
    return Employee(
        id=person,
        name=name.strip(),
        nationality=nationality,
        citizen=citizen,
        visa_number=visa if isinstance(visa, str) else None,
    )


def _occupation(value: object, errors: list[str]) -> str | None:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}", value):
        errors.append("occupation: must be a four-digit ISCO-08 code")
        return None
    return value


def _known(code: str) -> Occupation:
    found = occupation(code)
    if found is None:
        raise UnknownOccupation(
            f"occupation {code} is not in the catalogue (ISCO-08 subset of the platform)"
        )
    return found


def parse_draft(body: object, *, today: date) -> Draft:
    """A contract draft from its JSON body; every finding at once when it is wrong."""
    if not isinstance(body, dict):
        raise _refuse(["$: the body must be a JSON object"])
    errors = [f"{name}: unknown field" for name in sorted(set(body) - _DRAFT_FIELDS)]
    cr = body.get("cr_number")
    if not isinstance(cr, str) or not _CR_NUMBER.fullmatch(cr):
        errors.append("cr_number: must be a 10-digit CR number")
    employee = _employee(body.get("employee"), errors)
    code = _occupation(body.get("occupation"), errors)
    salary = _money(body.get("salary"), "salary", errors, low=1)
    allowances = _allowances(body.get("allowances"), errors)
    start = _date(body.get("start_date"), "start_date", errors)
    end = None if body.get("end_date") is None else _date(body["end_date"], "end_date", errors)
    if start is not None and start < today:
        errors.append("start_date: must not be in the past")
    if start is not None and end is not None and end <= start:
        errors.append("end_date: must be after start_date")
    terms = _terms(body.get("terms"), errors)
    email = body.get("contact_email")
    if email is not None and (not isinstance(email, str) or not _EMAIL.fullmatch(email)):
        errors.append("contact_email: must be an e-mail address")
    if errors:
        raise _refuse(errors)
    assert employee is not None
    assert code is not None
    assert start is not None
    assert isinstance(cr, str)
    return Draft(
        cr_number=cr,
        employee=employee,
        occupation=_known(code),
        salary=salary,
        allowances=allowances,
        start_date=start,
        end_date=end,
        terms=terms,
        contact_email=email,
    )


def draft_reasons(
    *, occupation: Occupation, salary: int, citizen: bool, establishment_status: str | None
) -> list[str]:
    """The reason codes of every failed rule of a draft (empty: it may be made)."""
    reasons: list[str] = []
    if establishment_status is None:
        reasons.append("establishment_not_found")
    elif establishment_status != "active":
        reasons.append("establishment_not_active")
    if occupation.reserved_for_citizens and not citizen:
        reasons.append("occupation_reserved_for_citizens")
    if salary < occupation.minimum_monthly_salary:
        reasons.append("salary_below_minimum")
    return reasons


def parse_amendment(body: object, *, document: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """An amendment's validated changes and reason; at least one change, none unknown."""
    if not isinstance(body, dict):
        raise _refuse(["$: the body must be a JSON object"])
    errors = [f"{name}: unknown field" for name in sorted(set(body) - {"changes", "reason"})]
    changes = body.get("changes")
    if not isinstance(changes, dict) or not changes:
        raise _refuse([*errors, "changes: required, an object with at least one change"])
    errors.extend(
        f"changes.{name}: cannot be amended (one of {', '.join(sorted(_AMENDABLE_FIELDS))})"
        for name in sorted(set(changes) - _AMENDABLE_FIELDS)
    )
    out: dict[str, Any] = {}
    if "occupation" in changes:
        code = _occupation(changes["occupation"], errors)
        if code is not None:
            out["occupation"] = code
    if "salary" in changes:
        out["salary"] = _money(changes["salary"], "changes.salary", errors, low=1)
    if "allowances" in changes:
        out["allowances"] = _allowances(changes["allowances"], errors)
    if "end_date" in changes:
        end = (
            None
            if changes["end_date"] is None
            else _date(changes["end_date"], "changes.end_date", errors)
        )
        if end is not None and end <= date.fromisoformat(document["start_date"]):
            errors.append("changes.end_date: must be after the start date")
        out["end_date"] = end
    if "terms" in changes:
        # the terms named are changed, the others kept (allowances are replaced whole)
        terms = changes["terms"]
        merged = {**document["terms"], **terms} if isinstance(terms, dict) else terms
        out["terms"] = _terms(merged, errors)
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
        errors.append("reason: at most 500 characters")
    if errors:
        raise _refuse(errors)
    if "occupation" in out:
        found = _known(out["occupation"])
        if found.reserved_for_citizens and not document["employee"]["citizen"]:
            raise ContractIneligible(
                "the amendment is not allowed: occupation_reserved_for_citizens",
                extra={"reasons": ["occupation_reserved_for_citizens"]},
            )
        out["occupation"] = found
    code = out["occupation"].code if "occupation" in out else document["occupation"]["code"]
    minimum = _known(code).minimum_monthly_salary
    if out.get("salary", document["salary"]["monthly"]) < minimum:
        raise ContractIneligible(
            "the amendment is not allowed: salary_below_minimum",
            extra={"reasons": ["salary_below_minimum"]},
        )
    return out, (reason.strip() or None) if isinstance(reason, str) else None


def parse_reason(body: object, *, required: bool) -> str | None:
    """``{"reason": "..."}`` (or nothing when not ``required``): a termination's reason."""
    if body is None and not required:
        return None
    if (
        not isinstance(body, dict)
        or set(body) - {"reason"}
        or not isinstance(body.get("reason", ""), str)
    ):
        raise _refuse(['$: the body is {"reason": "..."}'])
    reason = str(body.get("reason", "")).strip()
    if required and not reason:
        raise _refuse(["reason: required, why the contract ends"])
    if len(reason) > 500:
        raise _refuse(["reason: at most 500 characters"])
    return reason or None
