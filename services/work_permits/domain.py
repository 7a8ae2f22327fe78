"""The work permit rules, without I/O: states and their transitions, eligibility, validity.

The state machine is :data:`TRANSITIONS`, the one place the graph is written::

    (issue) ──> active ──> renewal_pending ──> active      (fee paid: renewed; or not: as it was)
                 │  │            ├──> cancelled
                 │  │            └──> expired
                 │  └──> transfer_pending ──> active       (every consent: transferred; or declined)
                 │               ├──> cancelled
                 │               └──> expired
                 ├──> cancelled
                 └──> expired

A permit is issued straight into ``active``: every check runs before its first row is written.
Each edge names the actors that may take it: the ``establishment`` (its owner, an HR officer
delegated ``permits.manage``, or a vendor application it delegated), the ``worker`` (the
permit's holder, signed in through the hub's SSO), an ``officer`` (the agency_officer role)
and the ``system`` (payment events, a transfer's last consent, the expiry sweep).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final, Literal

from hub.errors import InvalidRequest
from hub.servicekit import lifecycle

__all__ = [
    "ACTIVE_STATES",
    "CONSENT_PARTIES",
    "REASONS",
    "RENEWAL_FEE",
    "STATES",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "Actor",
    "ActorKind",
    "ContractFacts",
    "IssueRequest",
    "Party",
    "State",
    "TransferRequest",
    "VisaFacts",
    "check_transition",
    "consents_complete",
    "expiry",
    "issue_reasons",
    "parse_issue_request",
    "parse_transfer_request",
    "reminder_due",
    "renewal_reasons",
    "renewed_expiry",
    "transfer_reasons",
]

State = Literal["active", "renewal_pending", "transfer_pending", "cancelled", "expired"]
ActorKind = Literal["establishment", "worker", "officer", "system"]
Party = Literal["worker", "current", "new"]

#: state -> {next state: the actors that may take that edge}
TRANSITIONS: Final[dict[State, dict[State, frozenset[ActorKind]]]] = {
    "active": {
        "renewal_pending": frozenset({"establishment"}),
        "transfer_pending": frozenset({"establishment"}),
        "cancelled": frozenset({"establishment", "officer"}),
        "expired": frozenset({"system"}),
    },
    "renewal_pending": {
        "active": frozenset({"system"}),
        "cancelled": frozenset({"establishment", "officer"}),
        "expired": frozenset({"system"}),
    },
    "transfer_pending": {
        # the system completes a transfer at its last consent; any party may decline it
        "active": frozenset({"system", "establishment", "worker"}),
        "cancelled": frozenset({"establishment", "officer"}),
        "expired": frozenset({"system"}),
    },
    "cancelled": {},
    "expired": {},
}
STATES: Final[tuple[State, ...]] = tuple(TRANSITIONS)
TERMINAL_STATES: Final = frozenset(s for s, edges in TRANSITIONS.items() if not edges)
#: States in which a permit is held: one person holds at most one such permit.
ACTIVE_STATES: Final[frozenset[State]] = frozenset(STATES) - TERMINAL_STATES
#: Who must consent to a transfer: the worker, the current and the new establishment.
CONSENT_PARTIES: Final[tuple[Party, ...]] = ("worker", "current", "new")

#: The renewal fee, in the smallest unit of the currency (halalas: 1/100).
RENEWAL_FEE: Final = 96_000
_VALIDITY_MONTHS: Final = 12

#: Stable reason codes of refused issues and transfers (each is also a problem's ``code``).
REASONS: Final[dict[str, str]] = {
    "visa_not_issued": (
        "The establishment holds no issued, valid work visa with that number "
        "(unknown, not yet issued, cancelled, expired or another establishment's)."
    ),
    "no_active_contract": (
        "There is no active employment contract with that id between the establishment "
        "and the worker of the visa."
    ),
    "compliance_band_blocks": "The establishment's localisation band (red) allows no permits.",
    "permit_already_active": "The worker already holds an active work permit.",
}

_VISA_NUMBER: Final = re.compile(r"W[0-9]{9}")
_ID: Final = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """Who takes a transition: their kind for the graph, and who they are for the record."""

    kind: ActorKind
    id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IssueRequest:
    """An establishment's request for a worker's permit, validated."""

    visa_number: str
    contract_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferRequest:
    """A new establishment's request to take over a worker's permit, validated."""

    person_id: str
    contract_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VisaFacts:
    """What the service learnt about a visa from the visa service's events."""

    visa_number: str
    establishment_id: str | None
    state: str
    valid_until: date | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractFacts:
    """What the service learnt about an employment contract from the contracts' events."""

    contract_id: str
    establishment_id: str
    person_id: str
    state: str
    visa_number: str | None = None
    occupation: str | None = None
    end_date: date | None = None


def check_transition(current: str, target: State, actor: Actor) -> None:
    """Refuse a transition the graph does not have, or that ``actor`` may not take."""
    lifecycle.check_transition(TRANSITIONS, current, target, actor.kind, what="a permit")


# ---- input --------------------------------------------------------------------------------


def _refuse(errors: list[str]) -> InvalidRequest:
    return InvalidRequest("; ".join(errors), extra={"errors": errors})


def _fields(body: object, known: set[str]) -> tuple[dict[str, Any], list[str]]:
    if not isinstance(body, dict):
        raise _refuse(["$: the body must be a JSON object"])
    return body, [f"{name}: unknown field" for name in sorted(set(body) - known)]


def parse_issue_request(body: object) -> IssueRequest:
    """A permit request from its JSON body; every finding at once when it is wrong."""
    fields, errors = _fields(body, {"visa_number", "contract_id"})
    visa = fields.get("visa_number")
    if not isinstance(visa, str) or not _VISA_NUMBER.fullmatch(visa):
        errors.append("visa_number: must be a work visa number (W and 9 digits)")
    contract = fields.get("contract_id")
    if not isinstance(contract, str) or not _ID.fullmatch(contract):
        errors.append("contract_id: required, 1 to 100 letters, digits or _.:-")
    if errors:
        raise _refuse(errors)
    assert isinstance(visa, str)
    assert isinstance(contract, str)
    return IssueRequest(visa_number=visa, contract_id=contract)


def parse_transfer_request(body: object) -> TransferRequest:
    """A transfer request from its JSON body; every finding at once when it is wrong."""
    fields, errors = _fields(body, {"person_id", "contract_id"})
    person = fields.get("person_id")
    if not isinstance(person, str) or not _ID.fullmatch(person):
        errors.append("person_id: required, 1 to 100 letters, digits or _.:-")
    contract = fields.get("contract_id")
    if not isinstance(contract, str) or not _ID.fullmatch(contract):
        errors.append("contract_id: required, 1 to 100 letters, digits or _.:-")
    if errors:
        raise _refuse(errors)
    assert isinstance(person, str)
    assert isinstance(contract, str)
    return TransferRequest(person_id=person, contract_id=contract)


# ---- rules --------------------------------------------------------------------------------


def _contract_ok(
    contract: ContractFacts | None, establishment_id: str, *, person_id: str | None, today: date
) -> bool:
    return (
        contract is not None
        and contract.state == "active"
        and contract.establishment_id == establishment_id
        and (person_id is None or contract.person_id == person_id)
        and (contract.end_date is None or contract.end_date >= today)
    )


def issue_reasons(
    establishment_id: str,
    visa: VisaFacts | None,
    contract: ContractFacts | None,
    *,
    band: str | None,
    holds_permit: bool,
    today: date,
) -> list[str]:
    """The reason codes of every failed check of a permit request (empty: it may be issued)."""
    reasons: list[str] = []
    if (
        visa is None
        or visa.state != "issued"
        or visa.establishment_id != establishment_id
        or (visa.valid_until is not None and visa.valid_until < today)
    ):
        reasons.append("visa_not_issued")
    # the contract must be the establishment's, active, and for the worker of this visa
    if not _contract_ok(contract, establishment_id, person_id=None, today=today) or (
        contract is not None and visa is not None and contract.visa_number != visa.visa_number
    ):
        reasons.append("no_active_contract")
    if band == "red":
        reasons.append("compliance_band_blocks")
    if holds_permit:
        reasons.append("permit_already_active")
    return reasons


def transfer_reasons(
    to_establishment: str,
    person_id: str,
    contract: ContractFacts | None,
    *,
    band: str | None,
    today: date,
) -> list[str]:
    """The reason codes of every failed check of a transfer to ``to_establishment``."""
    reasons: list[str] = []
    if not _contract_ok(contract, to_establishment, person_id=person_id, today=today):
        reasons.append("no_active_contract")
    if band == "red":
        reasons.append("compliance_band_blocks")
    return reasons


def renewal_reasons(
    establishment_id: str,
    person_id: str,
    contract: ContractFacts | None,
    *,
    band: str | None,
    today: date,
) -> list[str]:
    """The reason codes of every failed check of a renewal (the permit's own contract)."""
    reasons: list[str] = []
    if not _contract_ok(contract, establishment_id, person_id=person_id, today=today):
        reasons.append("no_active_contract")
    if band == "red":
        reasons.append("compliance_band_blocks")
    return reasons


def consents_complete(consents: dict[str, Any]) -> bool:
    """Whether every party of a transfer has consented."""
    return all(consents.get(party) for party in CONSENT_PARTIES)


def _add_months(day: date, months: int) -> date:
    year, month = divmod(day.month - 1 + months, 12)
    return date(day.year + year, month + 1, min(day.day, 28))


def expiry(issued_on: date, contract_end: date | None) -> date:
    """The last day of a new permit: a year, and never past its contract's end."""
    until = _add_months(issued_on, _VALIDITY_MONTHS)
    return min(until, contract_end) if contract_end is not None else until


def renewed_expiry(expires_on: date, today: date) -> date:
    """The last day after a renewal: a year more, counted from today if it already lapsed."""
    return _add_months(max(expires_on, today), _VALIDITY_MONTHS)


def reminder_due(expires_on: date, today: date, *, days: int) -> bool:
    """Whether the expiry reminder of a permit is due (``days`` before ``expires_on``)."""
    return today <= expires_on <= today + timedelta(days=days)
