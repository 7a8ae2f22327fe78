"""What the service kit gives every service besides its runtime: queries, graphs, rules, data.

Each piece was written once per service before; these tests pin the behaviour the services'
own tests rely on, without a server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from litestar import Litestar, Request, get
from litestar.testing import TestClient

from hub.backends.events.base import Event
from hub.errors import InvalidRequest, InvalidTransition
from hub.problems import problem_details_plugin
from hub.servicekit.gateway import payment_outcome
from hub.servicekit.http import created, limit_of, listing, no_store, refuse, unknown_parameters
from hub.servicekit.idempotency import keyed_id
from hub.servicekit.isco import catalogue, occupation, search
from hub.servicekit.lifecycle import check_transition, history_items, reason_items, state_items
from hub.servicekit.localisation import band_of, ratio_of, required_ratio
from hub.servicekit.moments import moment_of

GRAPH = {
    "draft": {"offered": frozenset({"employer"})},
    "offered": {"accepted": frozenset({"employee"}), "withdrawn": frozenset({"employer"})},
    "accepted": {},
    "withdrawn": {},
}


def test_query_errors_are_all_refused_at_once() -> None:
    errors = unknown_parameters({"state": "x", "page": "2"}, ("state", "limit"))
    assert errors == ["page: unknown parameter"]
    assert limit_of({}, errors) == 20
    assert limit_of({"limit": "0"}, errors) == 0
    with pytest.raises(InvalidRequest) as refused:
        refuse(errors)
    assert refused.value.extra == {
        "errors": ["page: unknown parameter", "limit: a whole number from 1 to 100"]
    }
    refuse([])  # nothing found, nothing refused


def test_a_listing_reads_state_limit_and_cursor() -> None:
    @get("/", sync_to_thread=False)
    def handler(request: Request[Any, Any, Any]) -> dict[str, Any]:
        return listing(request, ("draft", "offered"))

    with TestClient(Litestar([handler], plugins=[problem_details_plugin()])) as client:
        answer = client.get("/", params={"state": "draft", "limit": "5", "cursor": "c"})
        assert answer.json() == {"state": "draft", "limit": 5, "cursor": "c"}
        assert client.get("/").json() == {"state": None, "limit": 20, "cursor": None}
        refused = client.get("/", params={"state": "gone", "x": "1"})
        assert refused.status_code == 400
        assert refused.json()["code"] == "invalid_request"
        assert refused.json()["errors"] == [
            "x: unknown parameter",
            "state: one of draft, offered",
        ]


def test_answers_are_not_stored_and_a_replay_is_200() -> None:
    assert no_store({"a": 1}).headers["Cache-Control"] == "no-store"
    made = created({"id": "x"}, "/x", False)
    assert made.status_code == 201
    assert made.headers["Location"] == "/x"
    replayed = created({"id": "x"}, "/x", True, status=202)
    assert replayed.status_code == 200
    assert replayed.headers["Idempotent-Replayed"] == "true"


def test_a_graph_refuses_unknown_moves_and_wrong_actors() -> None:
    check_transition(GRAPH, "draft", "offered", "employer", what="a contract")
    with pytest.raises(InvalidTransition, match="a contract that is draft cannot become accepted"):
        check_transition(GRAPH, "draft", "accepted", "employee", what="a contract")
    with pytest.raises(InvalidTransition, match="the employee cannot make a contract that is"):
        check_transition(GRAPH, "offered", "withdrawn", "employee", what="a contract")
    with pytest.raises(InvalidTransition):
        check_transition(GRAPH, "nowhere", "draft", "system", what="a contract")


def test_reasons_states_and_history_as_clients_see_them() -> None:
    assert reason_items({"late": "Too late."}) == [{"code": "late", "description": "Too late."}]
    assert state_items(("offered",), GRAPH)[0] == {
        "state": "offered",
        "next": ["accepted", "withdrawn"],
    }
    at = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    row = {
        "number": 1,
        "from_state": "draft",
        "to_state": "offered",
        "actor_kind": "employer",
        "actor_id": "p1",
        "at": at,
        "reason": None,
    }
    assert history_items([row]) == [
        {
            "number": 1,
            "from": "draft",
            "to": "offered",
            "actor": {"kind": "employer", "id": "p1"},
            "at": at.isoformat(),
            "reason": None,
        }
    ]


@pytest.mark.parametrize(
    ("citizens", "total", "band"),
    [
        (0, 9, "exempt"),
        (45, 100, "platinum"),
        (30, 100, "green"),
        (15, 100, "yellow"),
        (14, 100, "red"),
    ],
)
def test_the_localisation_bands_of_retail(citizens: int, total: int, band: str) -> None:
    required = required_ratio("retail")
    assert band_of(ratio=ratio_of(citizens, total), total=total, required=required) == band


def test_an_empty_workforce_is_wholly_local_and_unknown_sectors_need_the_default() -> None:
    assert ratio_of(0, 0) == 1.0
    assert required_ratio("space_mining") == 0.20


def test_the_isco_catalogue_is_read_once_and_searched() -> None:
    assert catalogue() is catalogue()
    code = next(iter(catalogue()))
    found = occupation(code)
    assert found is not None
    assert "professional" not in found.as_dict()
    assert all(item.skill_level == 4 for item in search(skill_level=4))
    assert search(words=code) == [found]
    assert occupation("0000") is None


def test_a_keyed_id_is_the_same_for_a_retry_only() -> None:
    first = keyed_id("ct_", "draft:e1:person:p1", "key-1")
    assert first == keyed_id("ct_", "draft:e1:person:p1", "key-1")
    assert first != keyed_id("ct_", "draft:e1:person:p1", "key-2")
    assert first.startswith("ct_")
    assert len(first) == 3 + 24


def test_payment_outcomes_of_own_payments_only() -> None:
    def event(kind: str, reference: str) -> Event:
        return Event(type=kind, payload={"reference": reference, "payment_id": "pay_1"})

    assert payment_outcome(event("payment.captured", "visa:1"), "visa:") == ("pay_1", "captured")
    assert payment_outcome(event("payment.captured", "permit:1"), "visa:") is None
    assert payment_outcome(event("payment.created", "visa:1"), "visa:") is None


def test_moments_of_events_are_aware() -> None:
    default = datetime(2000, 1, 1, tzinfo=UTC)
    assert moment_of("2026-01-02T03:04:05", default) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    zoned = moment_of("2026-01-02T03:04:05+03:00", default)
    assert zoned.utcoffset() == timedelta(hours=3)
    assert zoned.tzinfo == timezone(timedelta(hours=3))
    assert moment_of("not a moment", default) is default
    assert moment_of(None, default) is default
