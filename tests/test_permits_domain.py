"""The work permit rules without I/O: the state graph, the checks, validity and reminders."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.errors import InvalidRequest, InvalidTransition
from services.work_permits.domain import (
    ACTIVE_STATES,
    REASONS,
    STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    Actor,
    ContractFacts,
    State,
    VisaFacts,
    check_transition,
    consents_complete,
    expiry,
    issue_reasons,
    parse_issue_request,
    parse_transfer_request,
    reminder_due,
    renewal_reasons,
    renewed_expiry,
    transfer_reasons,
)

TODAY = date(2026, 5, 1)
EST = "est_a"
VISA = VisaFacts(visa_number="W000000001", establishment_id=EST, state="issued")
CONTRACT = ContractFacts(
    contract_id="ct_1", establishment_id=EST, person_id="p1", state="active",
    visa_number="W000000001",
)  # fmt: skip


def test_every_state_is_in_the_graph_and_every_edge_leads_to_a_state() -> None:
    literal = set(State.__args__)  # type: ignore[attr-defined]
    assert set(TRANSITIONS) == literal == set(STATES)
    for edges in TRANSITIONS.values():
        assert set(edges) <= literal
        assert all(actors for actors in edges.values())
    assert {"cancelled", "expired"} == TERMINAL_STATES
    assert {"active", "renewal_pending", "transfer_pending"} == ACTIVE_STATES


def test_every_state_is_reachable_from_active_and_every_held_state_ends() -> None:
    seen, todo = {"active"}, ["active"]
    while todo:
        for target in TRANSITIONS[todo.pop()]:  # type: ignore[index]
            if target not in seen:
                seen.add(target)
                todo.append(target)
    assert seen == set(STATES)
    for state in ACTIVE_STATES:
        assert {"cancelled", "expired"} <= set(TRANSITIONS[state])


@given(
    st.lists(st.sampled_from(STATES), max_size=15),
    st.sampled_from(["establishment", "worker", "officer", "system"]),
)
def test_a_walk_only_takes_edges_of_the_graph(targets: list[State], kind: str) -> None:
    state: State = "active"
    actor = Actor(kind=kind, id="x")  # type: ignore[arg-type]
    for target in targets:
        if kind in TRANSITIONS[state].get(target, frozenset()):
            check_transition(state, target, actor)
            state = target
        else:
            with pytest.raises(InvalidTransition):
                check_transition(state, target, actor)
    if state in TERMINAL_STATES:  # nothing leaves an end
        for target in STATES:
            with pytest.raises(InvalidTransition):
                check_transition(state, target, actor)


def test_only_the_system_renews_expires_and_completes() -> None:
    for actor in ("establishment", "worker", "officer"):
        with pytest.raises(InvalidTransition):
            check_transition("renewal_pending", "active", Actor(kind=actor, id="x"))  # type: ignore[arg-type]
        with pytest.raises(InvalidTransition):
            check_transition("active", "expired", Actor(kind=actor, id="x"))  # type: ignore[arg-type]
    with pytest.raises(InvalidTransition, match="worker cannot"):
        check_transition("active", "cancelled", Actor(kind="worker", id="p1"))
    check_transition("transfer_pending", "active", Actor(kind="worker", id="p1"))  # declines


def test_the_checks_of_an_issue() -> None:
    def reasons(visa: VisaFacts | None, contract: ContractFacts | None, **kw: object) -> list[str]:
        args = {"band": None, "holds_permit": False, "today": TODAY, **kw}
        return issue_reasons(EST, visa, contract, **args)  # type: ignore[arg-type]

    assert reasons(VISA, CONTRACT) == []
    assert reasons(None, CONTRACT) == ["visa_not_issued"]
    other = VisaFacts(visa_number="W000000001", establishment_id="est_b", state="issued")
    assert reasons(other, CONTRACT) == ["visa_not_issued"]
    lapsed = VisaFacts(
        visa_number="W000000001",
        establishment_id=EST,
        state="issued",
        valid_until=TODAY - timedelta(1),
    )
    assert reasons(lapsed, CONTRACT) == ["visa_not_issued"]
    cancelled = VisaFacts(visa_number="W000000001", establishment_id=EST, state="cancelled")
    assert reasons(cancelled, CONTRACT) == ["visa_not_issued"]
    assert reasons(VISA, None) == ["no_active_contract"]
    someone_else = ContractFacts(
        contract_id="ct_1", establishment_id=EST, person_id="p1", state="active",
        visa_number="W000000002",
    )  # fmt: skip
    assert reasons(VISA, someone_else) == ["no_active_contract"]
    ended = ContractFacts(
        contract_id="ct_1", establishment_id=EST, person_id="p1", state="active",
        visa_number="W000000001", end_date=TODAY - timedelta(days=1),
    )  # fmt: skip
    assert reasons(VISA, ended) == ["no_active_contract"]
    assert reasons(VISA, CONTRACT, band="red") == ["compliance_band_blocks"]
    assert reasons(VISA, CONTRACT, band="yellow") == []
    assert reasons(None, None, band="red", holds_permit=True) == list(REASONS)


def test_the_checks_of_a_transfer() -> None:
    new = ContractFacts(
        contract_id="ct_2", establishment_id="est_b", person_id="p1", state="active"
    )
    assert transfer_reasons("est_b", "p1", new, band=None, today=TODAY) == []
    assert transfer_reasons("est_b", "p2", new, band=None, today=TODAY) == ["no_active_contract"]
    assert transfer_reasons("est_c", "p1", new, band="red", today=TODAY) == [
        "no_active_contract", "compliance_band_blocks",
    ]  # fmt: skip


def test_the_checks_of_a_renewal() -> None:
    assert renewal_reasons(EST, "p1", CONTRACT, band="green", today=TODAY) == []
    terminated = ContractFacts(
        contract_id="ct_1", establishment_id=EST, person_id="p1", state="terminated"
    )
    assert renewal_reasons(EST, "p1", terminated, band="red", today=TODAY) == [
        "no_active_contract", "compliance_band_blocks",
    ]  # fmt: skip
    assert renewal_reasons(EST, "p2", CONTRACT, band=None, today=TODAY) == ["no_active_contract"]


def test_consents_need_all_three_parties() -> None:
    assert not consents_complete({})
    assert not consents_complete({"worker": {"by": "p"}, "new": {"by": "c"}})
    assert consents_complete({"worker": {"by": "p"}, "new": {"by": "c"}, "current": {"by": "o"}})


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31)))
def test_validity_is_a_year_capped_by_the_contract(issued: date) -> None:
    until = expiry(issued, None)
    assert 360 <= (until - issued).days <= 366
    assert expiry(issued, issued + timedelta(days=30)) == issued + timedelta(days=30)
    assert renewed_expiry(until, issued) > until
    late = renewed_expiry(issued, issued + timedelta(days=100))  # renewed after it lapsed
    assert late > issued + timedelta(days=100 + 359)


def test_the_reminder_window() -> None:
    assert reminder_due(TODAY + timedelta(days=30), TODAY, days=30)
    assert not reminder_due(TODAY + timedelta(days=31), TODAY, days=30)
    assert reminder_due(TODAY, TODAY, days=30)
    assert not reminder_due(TODAY - timedelta(days=1), TODAY, days=30)


def test_requests_list_every_finding() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_issue_request({"visa_number": "X", "extra": 1})
    assert caught.value.extra["errors"] == [
        "extra: unknown field",
        "visa_number: must be a work visa number (W and 9 digits)",
        "contract_id: required, 1 to 100 letters, digits or _.:-",
    ]
    with pytest.raises(InvalidRequest):
        parse_transfer_request([])
    assert parse_transfer_request({"person_id": "p1", "contract_id": "c"}).person_id == "p1"
