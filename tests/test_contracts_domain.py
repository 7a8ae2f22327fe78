"""The contract rules without I/O: the state graph, signing, amendments, input and hashing."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hub.errors import ContractIneligible, InvalidRequest, InvalidTransition, UnknownOccupation
from services.contracts import domain, occupations
from services.contracts.domain import (
    AMENDMENT_STATES,
    AMENDMENT_TRANSITIONS,
    PARTIES,
    STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    Actor,
    AmendmentState,
    State,
    amended_document,
    canonical_json,
    check_amendment,
    check_transition,
    document_hash,
    document_of,
    draft_reasons,
    parse_amendment,
    parse_draft,
    state_after_signing,
)
from services.contracts.occupations import occupation

ROOT = Path(__file__).resolve().parent.parent
TODAY = date(2027, 1, 1)
ACTORS = ("employer", "employee", "system")


def test_every_state_is_in_the_one_graph() -> None:
    assert set(STATES) == set(get_args(State))
    assert set(AMENDMENT_STATES) == set(get_args(AmendmentState))
    for edges in TRANSITIONS.values():
        assert set(edges) <= set(STATES)
        assert all(actors and actors <= set(ACTORS) for actors in edges.values())
    assert {"declined", "withdrawn", "terminated", "expired"} == TERMINAL_STATES
    # every state is reachable from draft
    seen, frontier = {"draft"}, ["draft"]
    while frontier:
        for target in TRANSITIONS[frontier.pop()]:  # type: ignore[index]
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(STATES)
    # only the system makes a contract active (both signatures), and only from accepted
    assert [(s, e["active"]) for s, e in TRANSITIONS.items() if "active" in e] == [
        ("accepted", frozenset({"system"}))
    ]


@given(st.sampled_from(STATES), st.sampled_from(STATES), st.sampled_from(ACTORS))
def test_check_transition_follows_the_graph(current: str, target: Any, kind: Any) -> None:
    allowed = kind in TRANSITIONS[current].get(target, frozenset())  # type: ignore[index]
    try:
        check_transition(current, target, Actor(kind=kind, id="x"))
    except InvalidTransition:
        assert not allowed
    else:
        assert allowed


def test_an_unknown_state_moves_nowhere() -> None:
    with pytest.raises(InvalidTransition):
        check_transition("flying", "active", Actor(kind="system", id="x"))


@given(st.sampled_from(STATES), st.frozensets(st.sampled_from(PARTIES)))
def test_only_both_signatures_on_an_accepted_contract_activate_it(
    state: str, signed: frozenset[str]
) -> None:
    after = state_after_signing(state, signed)
    assert (after == "active") == (state == "accepted" and signed == frozenset(PARTIES))
    assert after in {None, "active"}


@given(
    st.sampled_from(AMENDMENT_STATES),
    st.sampled_from(AMENDMENT_STATES),
    st.sampled_from(ACTORS),
    st.sampled_from(PARTIES),
)
def test_amendment_steps_follow_their_graph(
    current: str, target: Any, side: str, proposer: Any
) -> None:
    role = "system" if side == "system" else ("proposer" if side == proposer else "counterparty")
    allowed = role in AMENDMENT_TRANSITIONS[current].get(target, frozenset())  # type: ignore[index]
    try:
        check_amendment(current, target, side, proposer)
    except InvalidTransition:
        assert not allowed
    else:
        assert allowed


# ---- the whole machine, driven at random ------------------------------------------------------


def _document() -> dict[str, Any]:
    draft = parse_draft(
        {
            "cr_number": "4030000001",
            "employee": {
                "id": "p-1", "name": "Ravi", "nationality": "IND", "citizen": False,
                "visa_number": "W123456789",
            },
            "occupation": "2512",
            "salary": 15000,
            "start_date": "2027-02-01",
        },
        today=TODAY,
    )  # fmt: skip
    return document_of(
        draft, contract_id="ct_1", establishment_id="est", establishment_name="X", currency="SAR"
    )


class ContractMachine(RuleBasedStateMachine):
    """A contract's life as the workflow runs it, with only the domain's functions.

    The invariants are issue 7's promises: the terms change only when both sides signed an
    amendment; a contract is active only with both signatures; terminal states are final.
    """

    def __init__(self) -> None:
        super().__init__()
        self.state: str = "draft"
        self.signed: set[str] = set()
        self.document = _document()
        self.history: list[str] = ["draft"]
        self.amendment: dict[str, Any] | None = None  # {"document", "signed", "proposer"}
        self.applied = 0

    def _move(self, target: Any, kind: Any) -> bool:
        try:
            check_transition(self.state, target, Actor(kind=kind, id=kind))
        except InvalidTransition:
            return False
        self.state = target
        self.history.append(target)
        return True

    @rule(goal=st.sampled_from(STATES), kind=st.sampled_from(ACTORS))
    def step(self, goal: Any, kind: Any) -> None:
        if goal == "active":  # the workflow never asks for it: signing does
            return
        before = self.state
        if self._move(goal, kind):
            assert before not in TERMINAL_STATES

    @rule()
    def offer_and_accept(self) -> None:
        # the happy path's two steps, so random runs reach signing often
        if self._move("offered", "employer"):
            self._move("accepted", "employee")

    @rule(party=st.sampled_from(PARTIES))
    def sign(self, party: str) -> None:
        if self.state != "accepted" or party in self.signed:
            return
        self.signed.add(party)
        after = state_after_signing(self.state, frozenset(self.signed))
        if after is not None:
            assert self._move(after, "system")

    @precondition(lambda self: self.state == "active" and self.amendment is None)
    @rule(party=st.sampled_from(PARTIES), salary=st.integers(7000, 90000))
    def propose(self, party: str, salary: int) -> None:
        changes, _ = parse_amendment({"changes": {"salary": salary}}, document=self.document)
        self.amendment = {
            "document": amended_document(self.document, changes),
            "signed": set(),
            "proposer": party,
        }

    @precondition(lambda self: self.amendment is not None)
    @rule(party=st.sampled_from(PARTIES))
    def sign_amendment(self, party: str) -> None:
        assert self.amendment is not None
        if self.state != "active":
            return
        self.amendment["signed"].add(party)
        if self.amendment["signed"] >= set(PARTIES):
            check_amendment("proposed", "applied", "system", self.amendment["proposer"])
            self.document = self.amendment["document"]
            self.amendment = None
            self.applied += 1

    @precondition(lambda self: self.amendment is not None)
    @rule(side=st.sampled_from(PARTIES), goal=st.sampled_from(["rejected", "withdrawn"]))
    def close(self, side: str, goal: Any) -> None:
        assert self.amendment is not None
        try:
            check_amendment("proposed", goal, side, self.amendment["proposer"])
        except InvalidTransition:
            return
        self.amendment = None

    @invariant()
    def active_means_both_signed(self) -> None:
        if "active" in self.history:
            assert self.signed == set(PARTIES)
            assert self.history[self.history.index("active") - 1] == "accepted"

    @invariant()
    def terms_change_only_with_both_signatures(self) -> None:
        assert self.document["version"] == 1 + self.applied
        if self.amendment is not None and self.amendment["signed"] != set(PARTIES):
            assert self.document["version"] != self.amendment["document"]["version"]

    @invariant()
    def terminal_states_are_final(self) -> None:
        for index, state in enumerate(self.history[:-1]):
            assert state not in TERMINAL_STATES, self.history[index:]


TestContractMachine = ContractMachine.TestCase
TestContractMachine.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)


# ---- the signed document ----------------------------------------------------------------------


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": 1, "a": {"d": "é", "c": None}}) == (
        '{"a":{"c":null,"d":"é"},"b":1}'.encode()
    )
    with pytest.raises(ValueError, match="floating"):
        canonical_json({"salary": 1.5})


@given(
    st.dictionaries(
        st.text(max_size=5),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=10,
        ),
        max_size=5,
    )
)
def test_the_hash_ignores_key_order_and_sees_every_change(document: dict[str, Any]) -> None:
    reordered = dict(reversed(list(document.items())))
    assert document_hash(reordered) == document_hash(document)
    assert document_hash(document) == hashlib.sha256(canonical_json(document)).hexdigest()
    changed = {**document, "\x00tampered": True}
    assert document_hash(changed) != document_hash(document)


def test_an_amendment_is_the_next_version_and_leaves_the_original() -> None:
    document = _document()
    frozen = json.dumps(document, sort_keys=True)
    changes, reason = parse_amendment(
        {"changes": {"salary": 20000, "end_date": "2029-01-31"}, "reason": " raise "},
        document=document,
    )
    new = amended_document(document, changes)
    assert (new["version"], new["salary"]["monthly"], new["end_date"]) == (2, 20000, "2029-01-31")
    assert reason == "raise"
    assert json.dumps(document, sort_keys=True) == frozen
    assert document_hash(new) != document_hash(document)


def test_an_amendment_of_some_terms_keeps_the_others() -> None:
    document = _document()
    document["terms"]["clauses"] = ["Remote work allowed."]
    changes, _ = parse_amendment({"changes": {"terms": {"notice_days": 90}}}, document=document)
    new = amended_document(document, changes)
    assert new["terms"] == {**document["terms"], "notice_days": 90}
    with pytest.raises(InvalidRequest):
        parse_amendment({"changes": {"terms": {"weekly_hours": 99}}}, document=document)


# ---- input and rules ------------------------------------------------------------------------


def test_draft_rules_give_every_reason() -> None:
    reserved = occupation("1212")
    assert reserved is not None
    assert reserved.reserved_for_citizens
    assert draft_reasons(
        occupation=reserved, salary=100, citizen=False, establishment_status="suspended"
    ) == ["establishment_not_active", "occupation_reserved_for_citizens", "salary_below_minimum"]
    assert draft_reasons(
        occupation=reserved, salary=9000, citizen=True, establishment_status=None
    ) == ["establishment_not_found"]
    assert (
        draft_reasons(occupation=reserved, salary=9000, citizen=True, establishment_status="active")
        == []
    )


def test_amendment_input_is_checked() -> None:
    document = _document()
    for body in ({}, {"changes": {}}, {"changes": {"cr_number": "1"}}, {"changes": {"salary": 0}}):
        with pytest.raises(InvalidRequest):
            parse_amendment(body, document=document)
    with pytest.raises(UnknownOccupation):
        parse_amendment({"changes": {"occupation": "0000"}}, document=document)
    with pytest.raises(ContractIneligible):
        parse_amendment({"changes": {"salary": 10}}, document=document)


def test_a_draft_names_its_defaults() -> None:
    document = _document()
    assert document["terms"] == {
        "probation_days": 90,
        "notice_days": 30,
        "annual_leave_days": 21,
        "weekly_hours": 48,
        "clauses": [],
    }
    assert document["end_date"] is None
    assert document["allowances"] == {}


def test_the_catalogue_is_the_shared_isco08_data() -> None:
    shared = json.loads((ROOT / "contracts" / "data" / "isco08.json").read_text())
    codes = {entry["code"] for entry in shared["occupations"]}
    assert len(codes) > 10
    assert codes == set(occupations.catalogue())
    assert domain.REASONS.keys() >= {"establishment_not_active", "salary_below_minimum"}
