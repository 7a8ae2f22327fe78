"""The occupations service in-process, on SQLite and PostgreSQL (its own schema).

Contracts and certificates are learnt from events: the tests publish the contract service's
``contract.*`` and the certificates service's ``certificate.verified`` events on the bus
themselves (those services are built elsewhere), in the payloads issue 7 fixes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hub.backends.events.base import Event
from services.occupations.app import create_app
from services.occupations.settings import OccupationSettings
from tests.registry_support import RegistryHub
from tests.service_support import Running, principal, problem, product_schema, serve, storage
from tests.visas_support import ISSUER

BASE = "/api/occupations/v1"
EST, OTHER = "est_demo", "est_other"
schema = partial(product_schema, "occupations")
WORKER, CITIZEN = "2000000001", "1000000001"


def contract_event(
    kind: str, contract_id: str, person: str, *, occupation: str = "5223", citizen: bool = False,
    establishment: str = EST,
) -> Event:  # fmt: skip
    return Event(
        type=f"contract.{kind}",
        payload={
            "contract_id": contract_id,
            "establishment_id": establishment,
            "employee": {
                "id": person,
                "nationality": "SAU" if citizen else "PHL",
                "citizen": citizen,
            },
            "occupation": occupation,
            "salary": 5000,
            "start_date": "2026-01-01",
            "end_date": None,
            "state": "active" if kind != "terminated" else "terminated",
            "at": "2026-01-01T00:00:00+00:00",
        },
    )


def certificate_event(person: str, degree: str = "bachelor") -> Event:
    return Event(
        type="certificate.verified",
        payload={"certificate_id": f"qc_{person}_{degree}", "person_id": f"sub-{person}",
                 "national_id": person, "number": "QC-2010-000001", "degree": degree,
                 "institution": "King Saud University", "year": 2010},
    )  # fmt: skip


class World:
    def __init__(self, service: Running, hub: RegistryHub) -> None:
        self.service = service
        self.client = service.client
        self.hub = hub
        self.auth = auth = partial(principal, hub, audience="occupations")
        self.hr = auth("p-hr", delegated=(f"{EST}:occupations.manage",))
        self.owner = auth("p-owner", memberships=(f"{EST}:owner",))
        self.officer = auth("p-officer", roles=("agency_officer",))
        self.other_owner = auth("p-x", memberships=(f"{OTHER}:owner",))
        self.worker = auth(WORKER)

    async def publish(self, *events: Event) -> None:
        before = (await self.counts())["processed_events"]
        for event in events:
            await self.service.bus.publish(event)
        for _ in range(250):
            if (await self.counts())["processed_events"] >= before + len(events):
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the service did not consume the events")

    async def ask(
        self, to: str, person: str = WORKER, *, headers: dict[str, str] | None = None,
        establishment: str = EST, **extra: Any,
    ) -> Any:  # fmt: skip
        return await self.client.post(
            f"{BASE}/establishments/{establishment}/change-requests",
            content=json.dumps({"person_id": person, "to": to, **extra}),
            headers=headers or self.hr,
        )

    async def counts(self) -> dict[str, int]:
        store = self.service.app.state["occupations"].workflow.store
        counts: dict[str, int] = await store.table_counts()
        return counts


@pytest.fixture
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    settings = OccupationSettings(
        **await storage(database_url, tmp_path, "occupations"),
        hub_url=ISSUER,
        bus_database_url="unused",
    )
    hub = RegistryHub()
    probe = principal(hub, "p-probe", audience="occupations")
    url = f"{BASE}/me/change-requests"
    async with serve(create_app, settings, hub, probe=url, headers=probe) as service:
        yield World(service, hub)


async def test_the_catalogue_is_public_and_searchable(world: World) -> None:
    everything = await world.client.get(f"{BASE}/occupations")
    assert everything.status_code == 200
    jsonschema.validate(everything.json(), schema("occupation-list.schema.json"))
    assert everything.json()["count"] >= 60
    found = await world.client.get(f"{BASE}/occupations", params={"q": "software"})
    assert [o["code"] for o in found.json()["items"]] == ["2512"]
    managers = await world.client.get(f"{BASE}/occupations", params={"major_group": "1"})
    assert {o["skill_level"] for o in managers.json()["items"]} == {4}
    assert all(o["professional"] for o in managers.json()["items"])
    one = await world.client.get(f"{BASE}/occupations/9313")
    assert one.json()["title"] == "Building construction labourers"
    assert one.json()["professional"] is False
    missing = await world.client.get(f"{BASE}/occupations/0000")
    assert missing.status_code == 404
    for params in ({"skill_level": "5"}, {"major_group": "x"}, {"sort": "x"}):
        bad = await world.client.get(f"{BASE}/occupations", params=params)
        assert bad.status_code == 400, params
        assert bad.json()["code"] == "invalid_request"


async def test_a_change_the_rules_pass_is_approved_at_once(world: World) -> None:
    await world.publish(contract_event("activated", "ct_1", WORKER, occupation="5223"))
    answer = await world.ask("4321", reason="moved to the warehouse")
    assert answer.status_code == 201, answer.text
    body = answer.json()
    jsonschema.validate(body, schema("change-request.schema.json"))
    assert body["state"] == "approved"
    assert (body["from"]["code"], body["to"]["code"]) == ("5223", "4321")
    (requested,) = await world.service.wait_events(
        lambda e: e.type == "occupation.change.requested"
    )
    (approved,) = await world.service.wait_events(lambda e: e.type == "occupation.change.approved")
    for event in (requested, approved):
        assert {k: event.payload[k] for k in ("request_id", "person_id", "from", "to")} == {
            "request_id": body["id"], "person_id": WORKER, "from": "5223", "to": "4321",
        }  # fmt: skip
        assert event.payload["establishment_id"] == EST
    notices = await world.service.wait_events(lambda e: e.type == "notification.requested", 2)
    assert [n.payload["template"] for n in notices] == [
        "occupation.change.requested",
        "occupation.change.approved",
    ]
    assert all(n.payload["recipient"]["id"] == WORKER for n in notices)
    assert all("channels" not in n.payload for n in notices)
    # the worker's occupation is now the new one: asking for it again is the same occupation
    again = await world.ask("4321")
    assert again.status_code == 422
    assert again.json()["reasons"] == ["same_occupation"]


async def test_a_professional_occupation_needs_a_verified_certificate(world: World) -> None:
    await world.publish(contract_event("activated", "ct_1", WORKER))
    queued = await world.ask("2512")
    assert queued.status_code == 201, queued.text
    assert queued.json()["state"] == "in_review"
    assert queued.json()["review_reasons"] == ["review_qualification_not_verified"]
    second = await world.ask("2511")
    problem(second, 409, "change_request_open")

    # a diploma is not enough; a bachelor's degree (verified for the same person) is
    await world.publish(contract_event("activated", "ct_2", CITIZEN, citizen=True))
    await world.publish(certificate_event(CITIZEN, "diploma"))
    assert (await world.ask("2512", CITIZEN)).json()["state"] == "in_review"
    await world.publish(contract_event("activated", "ct_3", "1000000003", citizen=True))
    await world.publish(certificate_event("1000000003"))
    auto = await world.ask("2512", "1000000003")
    assert auto.json()["state"] == "approved"


async def test_an_officer_approves_or_rejects_with_a_reason(world: World) -> None:
    await world.publish(
        contract_event("activated", "ct_1", WORKER),
        contract_event("activated", "ct_2", CITIZEN, citizen=True),
    )
    first = (await world.ask("2512")).json()
    second = (await world.ask("2221", CITIZEN)).json()
    queue = await world.client.get(f"{BASE}/review/change-requests", headers=world.officer)
    assert {item["id"] for item in queue.json()["items"]} == {first["id"], second["id"]}
    decision = f"{BASE}/review/change-requests/{first['id']}/decision"
    no_reason = await world.client.post(
        decision, content=json.dumps({"decision": "reject"}), headers=world.officer
    )
    assert no_reason.status_code == 400
    for bad in ({"decision": "maybe"}, {"decision": "approve", "x": 1}, []):
        refused = await world.client.post(decision, content=json.dumps(bad), headers=world.officer)
        assert refused.status_code == 400, bad
    rejected = await world.client.post(
        decision,
        content=json.dumps({"decision": "reject", "reason": "no software experience"}),
        headers=world.officer,
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["state"] == "rejected"
    assert rejected.json()["decision_reason"] == "no software experience"
    (event,) = await world.service.wait_events(lambda e: e.type == "occupation.change.rejected")
    assert event.payload["reason"] == "no software experience"
    twice = await world.client.post(
        decision, content=json.dumps({"decision": "approve"}), headers=world.officer
    )
    problem(twice, 409, "invalid_transition")

    approved = await world.client.post(
        f"{BASE}/review/change-requests/{second['id']}/decision",
        content=json.dumps({"decision": "approve", "reason": "checked the diploma"}),
        headers=world.officer,
    )
    assert approved.json()["state"] == "approved"
    await world.service.wait_events(lambda e: e.type == "occupation.change.approved")
    assert (await world.ask("2221", CITIZEN)).json()["reasons"] == ["same_occupation"]
    unknown = await world.client.post(
        f"{BASE}/review/change-requests/oc_nope/decision",
        content=json.dumps({"decision": "approve"}),
        headers=world.officer,
    )
    problem(unknown, 404, "change_request_not_found")


END = contract_event("terminated", "ct_1", WORKER)


@pytest.mark.parametrize(
    ("events", "to", "person", "reasons"),
    [
        ([], "4321", WORKER, ["no_active_contract"]),
        ([contract_event("activated", "ct_1", WORKER)], "5223", WORKER, ["same_occupation"]),
        ([contract_event("activated", "ct_1", WORKER)], "4110", WORKER,
         ["occupation_reserved_for_citizens"]),
        ([contract_event("activated", "ct_1", WORKER), END], "4321", WORKER,
         ["no_active_contract"]),
        # out of order: the termination first; the late activation does not revive it
        ([END, contract_event("activated", "ct_1", WORKER)], "4321", WORKER,
         ["no_active_contract"]),
        ([contract_event("activated", "ct_1", WORKER, establishment=OTHER)], "4321", WORKER,
         ["no_active_contract"]),
    ],
)  # fmt: skip
async def test_refusals_write_nothing(
    world: World, events: list[Event], to: str, person: str, reasons: list[str]
) -> None:
    if events:
        await world.publish(*events)
    before = await world.counts()
    answer = await world.ask(to, person)
    problem(answer, 422, "occupation_change_refused")
    assert answer.json()["reasons"] == reasons
    assert set(answer.json()["explanations"]) == set(reasons)
    assert await world.counts() == before
    assert not world.service.of_type("occupation.change.requested")


async def test_a_citizen_may_take_a_reserved_occupation(world: World) -> None:
    await world.publish(contract_event("activated", "ct_1", CITIZEN, citizen=True))
    assert (await world.ask("4110", CITIZEN)).json()["state"] == "approved"


async def test_an_amendment_changes_the_current_occupation(world: World) -> None:
    await world.publish(
        contract_event("activated", "ct_1", WORKER),
        contract_event("amended", "ct_1", WORKER, occupation="4321"),
    )
    assert (await world.ask("4321")).json()["reasons"] == ["same_occupation"]


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"to": "4321"},
        {"person_id": WORKER},
        {"person_id": WORKER, "to": "43"},
        {"person_id": WORKER, "to": "4321", "x": 1},
        {"person_id": "a b", "to": "4321"},
        {"person_id": WORKER, "to": "4321", "reason": 5},
    ],
)
async def test_bad_bodies_are_problems(world: World, body: Any) -> None:
    before = await world.counts()
    answer = await world.client.post(
        f"{BASE}/establishments/{EST}/change-requests", content=json.dumps(body), headers=world.hr
    )
    problem(answer, 400, "invalid_request")
    assert await world.counts() == before


async def test_an_unknown_code_is_refused(world: World) -> None:
    await world.publish(contract_event("activated", "ct_1", WORKER))
    answer = await world.ask("0001")
    problem(answer, 400, "unknown_occupation")


async def test_who_may_request_and_see(world: World) -> None:
    await world.publish(contract_event("activated", "ct_1", WORKER))
    assert (await world.ask("4321", headers=world.owner)).status_code == 201
    vendor = world.auth(
        "c-v", kind="client", establishment=EST, delegated=(f"{EST}:occupations.manage",)
    )
    listing = f"{BASE}/establishments/{EST}/change-requests"
    (item,) = (await world.client.get(listing, headers=vendor)).json()["items"]
    one = f"{BASE}/change-requests/{item['id']}"
    for headers in (world.hr, world.owner, vendor, world.officer, world.worker):
        assert (await world.client.get(one, headers=headers)).status_code == 200
    mine = await world.client.get(f"{BASE}/me/change-requests", headers=world.worker)
    assert [i["id"] for i in mine.json()["items"]] == [item["id"]]

    visas_only = world.auth("p-v", delegated=(f"{EST}:visas.apply",))
    wrong_vendor = world.auth(
        "c-w", kind="client", establishment=OTHER, delegated=(f"{EST}:occupations.manage",)
    )
    stranger = world.auth("p-stranger")
    for headers in (visas_only, wrong_vendor, world.other_owner, stranger):
        refused = await world.ask("4110", headers=headers)
        problem(refused, 403, "establishment_not_permitted")
        assert (await world.client.get(listing, headers=headers)).status_code == 403
        hidden = await world.client.get(one, headers=headers)
        problem(hidden, 404, "change_request_not_found")
    for headers in (world.hr, world.owner, vendor, world.worker):
        queue = await world.client.get(f"{BASE}/review/change-requests", headers=headers)
        problem(queue, 403, "agency_officer_required")
        decided = await world.client.post(
            f"{one.replace('/change-requests/', '/review/change-requests/')}/decision",
            content=json.dumps({"decision": "approve"}),
            headers=headers,
        )
        assert decided.status_code == 403
    bad_filter = await world.client.get(listing, params={"state": "x"}, headers=world.hr)
    assert bad_filter.status_code == 400


async def test_tokens(world: World) -> None:
    url = f"{BASE}/establishments/{EST}/change-requests"
    assert (await world.client.get(url)).status_code == 401
    forged = principal(RegistryHub(), "p-hr", audience="occupations")
    assert (await world.client.get(url, headers=forged)).status_code == 401
    elsewhere = principal(world.hub, "p-hr", audience="visas")
    assert (await world.client.get(url, headers=elsewhere)).status_code == 401
    not_json = await world.client.post(url, content=b"{", headers=world.hr)
    assert not_json.status_code == 400


async def test_a_redelivered_event_is_applied_once(world: World) -> None:
    event = contract_event("activated", "ct_1", WORKER)
    await world.publish(event)
    await world.service.bus.publish(event)  # the same id again: skipped
    await world.publish(contract_event("terminated", "ct_1", WORKER))
    assert (await world.ask("4321")).json()["reasons"] == ["no_active_contract"]
