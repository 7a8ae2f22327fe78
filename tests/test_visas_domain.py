"""The visa rules without I/O: the state graph, eligibility, decisions, refunds, the band."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.errors import InvalidRequest, InvalidTransition, UnknownOccupation
from services.visas import compliance
from services.visas.domain import (
    ACTIVE_STATES,
    REASONS,
    STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    Actor,
    EstablishmentFacts,
    SponsorFacts,
    State,
    automatic_decision,
    check_transition,
    parse_work_request,
    refund_amount,
    validity,
    visit_reasons,
    work_reasons,
)
from services.visas.occupations import catalogue

TODAY = date(2026, 5, 1)
SYSTEM = Actor(kind="system", id="visas")


def test_every_state_is_in_the_graph_and_every_edge_leads_to_a_state() -> None:
    literal = set(State.__args__)  # type: ignore[attr-defined]
    assert set(TRANSITIONS) == literal == set(STATES)
    for edges in TRANSITIONS.values():
        assert set(edges) <= literal
        assert all(actors for actors in edges.values())
    assert {"rejected", "cancelled", "expired", "lapsed"} == TERMINAL_STATES
    assert ACTIVE_STATES.isdisjoint(TERMINAL_STATES)


def test_every_state_is_reachable_from_submitted() -> None:
    seen, todo = {"submitted"}, ["submitted"]
    while todo:
        for target in TRANSITIONS[todo.pop()]:  # type: ignore[index]
            if target not in seen:
                seen.add(target)
                todo.append(target)
    assert seen == set(STATES)


@given(
    st.lists(st.sampled_from(STATES), max_size=12),
    st.sampled_from(["applicant", "officer", "system"]),
)
def test_a_walk_only_takes_edges_of_the_graph(targets: list[State], kind: str) -> None:
    state: State = "submitted"
    actor = Actor(kind=kind, id="x")  # type: ignore[arg-type]
    for target in targets:
        allowed = kind in TRANSITIONS[state].get(target, frozenset())
        if allowed:
            check_transition(state, target, actor)
            state = target
        else:
            with pytest.raises(InvalidTransition):
                check_transition(state, target, actor)


def test_only_officers_decide_and_only_the_system_issues() -> None:
    applicant = Actor(kind="applicant", id="p")
    with pytest.raises(InvalidTransition, match="applicant cannot"):
        check_transition("in_review", "approved", applicant)
    with pytest.raises(InvalidTransition):
        check_transition("approved", "issued", Actor(kind="officer", id="o"))
    check_transition("approved", "issued", SYSTEM)
    with pytest.raises(InvalidTransition, match="cannot become"):
        check_transition("rejected", "issued", SYSTEM)


def _request(**changes: object) -> object:
    body: dict[str, object] = {
        "cr_number": "4030000001",
        "worker": {"given_name": "A", "family_name": "B", "nationality": "IND",
                   "passport_number": "P1234567", "birth_date": "1990-01-01"},
        "occupation": "2512",
        "monthly_salary": 9000,
    }  # fmt: skip
    body.update(changes)
    return body


def test_parse_work_request_and_its_refusals() -> None:
    parsed = parse_work_request(_request(), today=TODAY)
    assert parsed.occupation.title == "Software developers"
    assert parsed.duration_months == 24
    with pytest.raises(UnknownOccupation):
        parse_work_request(_request(occupation="0001"), today=TODAY)
    with pytest.raises(InvalidRequest) as refused:
        parse_work_request(
            _request(worker={"birth_date": "2999-01-01", "nationality": "IND"}), today=TODAY
        )
    assert "worker.birth_date: must be a past date after 1900" in refused.value.extra["errors"]
    assert "worker.given_name: required, a non-empty string" in refused.value.extra["errors"]
    with pytest.raises(InvalidRequest):
        parse_work_request(_request(monthly_salary=True), today=TODAY)


def test_work_reasons_list_every_failed_check() -> None:
    request = parse_work_request(_request(occupation="4110", monthly_salary=100), today=TODAY)
    facts = EstablishmentFacts(
        found=True,
        status="suspended",
        standing=compliance.standing(sector="retail", citizens=0, foreigners=20),
        quota=3,
        used=3,
    )
    assert work_reasons(request, facts, blocked=True, open_elsewhere=True) == [
        "establishment_not_active",
        "compliance_band_red",
        "visa_quota_exhausted",
        "occupation_reserved_for_citizens",
        "salary_below_minimum",
        "applicant_blocked",
        "applicant_has_active_application",
    ]
    assert all(
        reason in REASONS
        for reason in work_reasons(request, facts, blocked=True, open_elsewhere=True)
    )
    assert visit_reasons(
        SponsorFacts(found=False, open_visits=3), blocked=False, open_elsewhere=False
    ) == [
        "sponsor_not_found",
        "visit_quota_exhausted",
    ]


@pytest.mark.parametrize(
    ("citizens", "foreigners", "band"),
    [(1, 5, "exempt"), (10, 10, "platinum"), (6, 14, "green"), (4, 16, "yellow"), (1, 19, "red")],
)
def test_the_localisation_band(citizens: int, foreigners: int, band: str) -> None:
    standing = compliance.standing(sector="retail", citizens=citizens, foreigners=foreigners)
    assert standing.band == band
    assert standing.allows(4) is (band != "red")
    assert standing.allows(2) is (band not in {"red", "yellow"})


@given(st.integers(0, 500), st.integers(0, 500))
def test_more_citizens_never_lower_the_band(citizens: int, foreigners: int) -> None:
    order = ["red", "yellow", "green", "platinum"]
    before = compliance.standing(sector="construction", citizens=citizens, foreigners=foreigners)
    after = compliance.standing(sector="construction", citizens=citizens + 1, foreigners=foreigners)
    if "exempt" not in {before.band, after.band}:
        assert order.index(after.band) >= order.index(before.band)


def test_automatic_decisions() -> None:
    assert (
        automatic_decision("work", skill_level=4, salary=9000, minimum=7000, band="green").state
        == "approved"
    )
    review = automatic_decision("work", skill_level=2, salary=3000, minimum=3000, band="yellow")
    assert review.state == "in_review"
    assert review.reasons == (
        "review_low_skill_occupation",
        "review_salary_near_minimum",
        "review_compliance_band",
    )
    assert (
        automatic_decision("visit", skill_level=0, salary=0, minimum=0, band=None).state
        == "approved"
    )


def test_refund_rules() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    assert refund_amount("awaiting_payment", fee=100, paid=False, issued_at=None, now=now) == 0
    assert refund_amount("in_review", fee=100, paid=True, issued_at=None, now=now) == 100
    recent = now - timedelta(days=3)
    assert refund_amount("issued", fee=100, paid=True, issued_at=recent, now=now) == 50
    old = now - timedelta(days=30)
    assert refund_amount("issued", fee=100, paid=True, issued_at=old, now=now) == 0


def test_validity() -> None:
    assert validity("work", months=24, days=0, issued_on=date(2026, 1, 31)) == date(2028, 1, 28)
    assert validity("work", months=3, days=0, issued_on=date(2026, 11, 15)) == date(2027, 2, 15)
    assert validity("visit", months=0, days=90, issued_on=date(2026, 1, 1)) == date(2026, 4, 1)


def test_the_catalogue_is_isco_08_shaped() -> None:
    occupations = catalogue()
    assert len(occupations) >= 60
    for code, occupation in occupations.items():
        assert len(code) == 4
        assert code.isdigit()
        assert code[0] != "0"
        assert occupation.major_group == code[0]
        assert occupation.skill_level == {"1": 4, "2": 4, "3": 3, "9": 1}.get(code[0], 2)
