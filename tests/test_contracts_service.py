"""The contracts service's HTTP API in-process, on SQLite and PostgreSQL, with the hub stood in for.

The hub is an ``httpx.MockTransport`` at the service's only door (tests/contracts_support.py,
whose signing endpoint signs as the hub's does); the service's own code, tables, outbox and
relay are real, and the event bus is the in-process one. Each test drives the contract through
HTTP and checks the rows, signatures and events.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import update

from hub.backends.events.base import Event
from hub.errors import ConfigError
from services.contracts.app import create_app
from services.contracts.settings import ContractSettings
from services.contracts.store import contracts, signatures
from tests.contracts_support import ISSUER, ContractsHub
from tests.service_support import Running, principal, problem, product_schema, serve, storage

EST = "est_demo"
OTHER = "est_other"
EMPLOYEE = "p-ravi"
schema = partial(product_schema, "contracts")
START = (date.today() + timedelta(days=30)).isoformat()
END = (date.today() + timedelta(days=30 + 730)).isoformat()


def draft_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "cr_number": "4030000001",
        "employee": {
            "id": EMPLOYEE,
            "name": "Ravi Kumar",
            "nationality": "IND",
            "citizen": False,
            "visa_number": "W123456789",
        },
        "occupation": "2512",
        "salary": 15000,
        "allowances": {"housing": 3000, "transport": 800},
        "start_date": START,
        "end_date": END,
        "terms": {"probation_days": 90, "notice_days": 60, "clauses": ["Remote work allowed."]},
        "contact_email": "hr@demo-trading.example",
    }
    body.update(changes)
    return body


class World:
    def __init__(self, service: Running, hub: ContractsHub) -> None:
        self.app = service.app
        self.client = service.client
        self.hub = hub
        self.bus = service.bus
        self.events = service.events
        self.owner = principal(hub, "p-owner", memberships=(f"{EST}:owner",))
        self.hr = principal(hub, "p-hr", delegated=(f"{EST}:contracts.manage",))
        self.reader = principal(hub, "p-reader", delegated=(f"{EST}:contracts.read",))
        self.vendor = principal(
            hub, "c-vendor", kind="client", client_id="c-vendor", establishment=EST,
            delegated=(f"{EST}:contracts.manage",),
        )  # fmt: skip
        self.visa_vendor = principal(
            hub, "c-visas", kind="client", client_id="c-visas", establishment=EST,
            delegated=(f"{EST}:visas.apply",),
        )  # fmt: skip
        self.employee = principal(hub, EMPLOYEE)
        self.stranger = principal(hub, "p-stranger", memberships=(f"{OTHER}:owner",))
        self.other_person = principal(hub, "p-else")

    async def draft(
        self, body: Any = None, *, key: str = "k-1", headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return await self.client.post(
            f"/api/contracts/v1/establishments/{EST}/contracts",
            content=json.dumps(draft_body() if body is None else body),
            headers={**(headers or self.vendor), "idempotency-key": key},
        )

    async def act(
        self, contract_id: str, action: str, headers: dict[str, str], body: Any = None
    ) -> httpx.Response:
        return await self.client.post(
            f"/api/contracts/v1/contracts/{contract_id}/{action}",
            content=b"" if body is None else json.dumps(body).encode(),
            headers=headers,
        )

    async def get(self, path: str, headers: dict[str, str], **params: Any) -> httpx.Response:
        return await self.client.get(f"/api/contracts/v1{path}", headers=headers, params=params)

    async def accepted(self, key: str = "k-1", **changes: Any) -> str:
        answer = await self.draft(draft_body(**changes), key=key)
        assert answer.status_code == 201, answer.text
        contract_id: str = answer.json()["id"]
        assert (await self.act(contract_id, "offer", self.hr)).status_code == 200
        assert (await self.act(contract_id, "accept", self.employee)).status_code == 200
        return contract_id

    async def active(self, key: str = "k-1", **changes: Any) -> str:
        contract_id = await self.accepted(key, **changes)
        assert (await self.act(contract_id, "sign", self.owner)).status_code == 200
        signed = await self.act(contract_id, "sign", self.employee)
        assert signed.json()["state"] == "active", signed.text
        return contract_id

    async def wait_events(self, predicate: Any, what: str) -> list[Event]:
        for _ in range(250):
            found = [e for e in self.events if predicate(e)]
            if found:
                return found
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {what}: {[e.type for e in self.events]}")

    async def counts(self) -> dict[str, int]:
        counts: dict[str, int] = await self.app.state["contracts"].workflow.store.table_counts()
        return counts

    async def tamper(self, table: Any, contract_id: str, **values: Any) -> None:
        engine = self.app.state["contracts"].workflow.store.engine
        async with engine.begin() as conn:
            column = table.c.contract_id if table is signatures else table.c.id
            await conn.execute(update(table).where(column == contract_id).values(**values))


@pytest.fixture
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    settings = ContractSettings(
        **await storage(database_url, tmp_path, "contracts"),
        hub_url=ISSUER,
        client_id="contracts-service",
        client_secret="s3cret",
        sweep_seconds=3600,
    )
    hub = ContractsHub()
    probe = principal(hub, "p-owner", memberships=(f"{EST}:owner",))
    url = "/api/contracts/v1/contracts/x"
    async with serve(create_app, settings, hub, probe=url, headers=probe) as service:
        yield World(service, hub)


# ---- the whole life of a contract -----------------------------------------------------------


async def test_draft_offer_accept_sign_activate_and_verify(world: World) -> None:
    jsonschema.validate(draft_body(), schema("draft-request.schema.json"))
    answer = await world.draft()
    assert answer.status_code == 201, answer.text
    contract = answer.json()
    jsonschema.validate(contract, schema("contract.schema.json"))
    assert contract["state"] == "draft"
    assert answer.headers["location"] == f"/api/contracts/v1/contracts/{contract['id']}"
    assert ("GET", "/api/registry/v1/establishments/4030000001") in world.hub.calls
    cid = contract["id"]
    # the employee does not see a draft as theirs to act on yet, but may read it
    assert (await world.act(cid, "accept", world.employee)).json()["code"] == "invalid_transition"

    offered = await world.act(cid, "offer", world.hr)
    assert offered.json()["state"] == "offered", offered.text
    mine = await world.get("/me/contracts", world.employee)
    assert [c["id"] for c in mine.json()["items"]] == [cid]
    jsonschema.validate(mine.json(), schema("contract-page.schema.json"))
    accepted = await world.act(cid, "accept", world.employee)
    assert accepted.json()["state"] == "accepted"

    first = await world.act(cid, "sign", world.owner)
    assert first.json()["state"] == "accepted", first.text  # one signature: not yet active
    half = (await world.get(f"/contracts/{cid}/signatures/verify", world.employee)).json()
    assert (half["complete"], half["valid"]) == (False, False)
    assert half["signatures"][0]["valid"] is True

    second = await world.act(cid, "sign", world.employee)
    assert second.json()["state"] == "active", second.text
    verified = await world.get(f"/contracts/{cid}/signatures/verify", world.employee)
    assert verified.status_code == 200
    result = verified.json()
    jsonschema.validate(result, schema("verification.schema.json"))
    assert (result["complete"], result["valid"]) == (True, True)
    assert result["document_hash"] == contract["document_hash"]
    by_party = {s["party"]: s for s in result["signatures"]}
    assert by_party["employer"]["signer"] == {
        "kind": "person", "id": "p-owner", "idp": ISSUER, "client_id": None, "on_behalf_of": EST,
    }  # fmt: skip
    assert by_party["employee"]["signer"]["id"] == EMPLOYEE
    assert by_party["employee"]["signer"]["on_behalf_of"] is None

    history_page = (await world.get(f"/contracts/{cid}/history", world.vendor)).json()
    jsonschema.validate(history_page, schema("history.schema.json"))
    signed_page = (await world.get(f"/contracts/{cid}/signatures", world.vendor)).json()
    jsonschema.validate(signed_page, schema("signature-list.schema.json"))
    history = history_page["items"]
    assert [(h["from"], h["to"], h["actor"]["kind"]) for h in history] == [
        (None, "draft", "employer"),
        ("draft", "offered", "employer"),
        ("offered", "accepted", "employee"),
        ("accepted", "active", "system"),
    ]

    activated = await world.wait_events(lambda e: e.type == "contract.activated", "activation")
    payload = activated[0].payload
    assert payload == {
        "contract_id": cid,
        "establishment_id": EST,
        "cr_number": "4030000001",  # the compliance service reads it
        "employee": {"id": EMPLOYEE, "nationality": "IND", "citizen": False},
        "occupation": "2512",
        "salary": 15000,
        "start_date": START,
        "end_date": END,
        "state": "active",
        "version": 1,
        "at": payload["at"],
        "visa_number": "W123456789",
    }
    types = {e.type for e in world.events}
    assert {"contract.drafted", "contract.accepted", "contract.activated"} <= types
    notices = [e.payload for e in world.events if e.type == "notification.requested"]
    templates = {(n["template"], n["recipient"]["id"]) for n in notices}
    assert ("contract.offered", EMPLOYEE) in templates
    assert ("contract.accepted", "c-vendor") in templates  # the drafter hears of the answer
    assert ("contract.activated", EMPLOYEE) in templates
    assert all("channels" not in n for n in notices)
    assert len({n["notification_id"] for n in notices}) == len(notices)
    employer_notice = next(n for n in notices if n["template"] == "contract.accepted")
    assert employer_notice["recipient"]["email"] == "hr@demo-trading.example"


async def test_a_citizen_contract_carries_no_visa_number(world: World) -> None:
    employee = {"id": "p-sara", "name": "Sara", "nationality": "SAU", "citizen": True}
    answer = await world.draft(draft_body(employee=employee, occupation="4110", salary=6000))
    assert answer.status_code == 201, answer.text
    drafted = await world.wait_events(lambda e: e.type == "contract.drafted", "draft")
    assert "visa_number" not in drafted[0].payload
    assert drafted[0].payload["employee"]["citizen"] is True


# ---- signatures -------------------------------------------------------------------------------


async def test_tampering_with_the_stored_terms_fails_verification(world: World) -> None:
    cid = await world.active()
    contract = (await world.get(f"/contracts/{cid}", world.owner)).json()
    store = world.app.state["contracts"].workflow.store
    document = (await store.get(cid))["document"]
    raised = {**document, "salary": {"monthly": 99000, "currency": "SAR"}}
    await world.tamper(contracts, cid, document=raised)
    tampered = (await world.get(f"/contracts/{cid}/signatures/verify", world.owner)).json()
    assert tampered["valid"] is False
    assert tampered["document_hash"] != contract["document_hash"]
    for signature in tampered["signatures"]:
        assert "document_hash_mismatch" in signature["problems"]

    await world.tamper(contracts, cid, document=document)  # put the terms back: valid again
    assert (await world.get(f"/contracts/{cid}/signatures/verify", world.owner)).json()["valid"]


async def test_a_forged_signer_or_a_foreign_key_fails_verification(world: World) -> None:
    cid = await world.active()
    await world.tamper(
        signatures,
        cid,
        signer={"kind": "person", "id": "p-mallory", "idp": ISSUER, "client_id": None,
                "on_behalf_of": None},
    )  # fmt: skip
    forged = (await world.get(f"/contracts/{cid}/signatures/verify", world.owner)).json()
    assert forged["valid"] is False
    assert all("signer_mismatch" in s["problems"] for s in forged["signatures"])

    # a JWS with the same claims but signed by a key the hub does not publish
    rows = await world.app.state["contracts"].workflow.store.signatures_of(cid, "")
    claims = jwt.decode(rows[0]["jws"], options={"verify_signature": False})
    header = jwt.get_unverified_header(rows[0]["jws"])
    other = jwt.encode(claims, ed25519.Ed25519PrivateKey.generate(), algorithm="EdDSA",
                       headers={"kid": header["kid"], "typ": header["typ"]})  # fmt: skip
    await world.tamper(signatures, cid, jws=other)
    foreign = (await world.get(f"/contracts/{cid}/signatures/verify", world.owner)).json()
    assert all("jws_signature_invalid" in s["problems"] for s in foreign["signatures"])


async def test_the_signer_is_the_callers_token_not_the_body(world: World) -> None:
    cid = await world.accepted()
    signed = await world.act(cid, "sign", world.hr, {"as": "employer"})
    assert signed.status_code == 200, signed.text
    body = world.hub.signed[-1]
    assert body["signer_token"] == world.hr["x-hub-principal-token"]
    assert body["on_behalf_of"] == EST
    stored = (await world.get(f"/contracts/{cid}/signatures", world.hr)).json()["items"]
    assert stored[0]["signer"]["id"] == "p-hr"

    # a hub answer naming another signer is refused and nothing is kept
    world.hub.forge_signer = "p-mallory"
    refused = await world.act(cid, "sign", world.employee)
    problem(refused, 503, "hub_unavailable")
    assert (await world.counts())["contract_signatures"] == 1
    world.hub.forge_signer = None
    world.hub.fail_signing = True
    down = await world.act(cid, "sign", world.employee)
    assert down.json()["code"] == "hub_unavailable"
    assert (await world.counts())["contract_signatures"] == 1
    assert (await world.get(f"/contracts/{cid}", world.hr)).json()["state"] == "accepted"


async def test_signing_needs_an_accepted_contract_and_only_once(world: World) -> None:
    draft = (await world.draft()).json()
    early = await world.act(draft["id"], "sign", world.owner)
    problem(early, 409, "invalid_transition")
    cid = await world.accepted(key="k-2")
    assert (await world.act(cid, "sign", world.owner)).status_code == 200
    twice = await world.act(cid, "sign", world.vendor)
    problem(twice, 409, "already_signed")
    bad = await world.act(cid, "sign", world.employee, {"as": "boss"})
    assert bad.status_code == 400
    as_employee = await world.act(cid, "sign", world.owner, {"as": "employee"})
    assert as_employee.status_code == 403


# ---- amendments -------------------------------------------------------------------------------


async def _propose(
    world: World, cid: str, headers: dict[str, str], body: Any = None, key: str = "a-1"
) -> httpx.Response:
    if body is None:
        jsonschema.validate(
            {"changes": {"salary": 18000}, "reason": "annual raise"},
            schema("amendment-request.schema.json"),
        )
    return await world.client.post(
        f"/api/contracts/v1/contracts/{cid}/amendments",
        content=json.dumps(
            {"changes": {"salary": 18000}, "reason": "annual raise"} if body is None else body
        ),
        headers={**headers, "idempotency-key": key},
    )


async def test_an_amendment_signed_by_one_side_changes_nothing(world: World) -> None:
    cid = await world.active()
    before = (await world.get(f"/contracts/{cid}", world.owner)).json()
    proposed = await _propose(world, cid, world.hr)
    assert proposed.status_code == 201, proposed.text
    amendment = proposed.json()
    jsonschema.validate(amendment, schema("amendment.schema.json"))
    assert (amendment["state"], amendment["version"]) == ("proposed", 2)
    replay = await _propose(world, cid, world.hr)
    assert (replay.status_code, replay.json()["id"]) == (200, amendment["id"])
    second = await _propose(world, cid, world.employee, key="a-2")
    problem(second, 409, "amendment_open")

    url = f"contracts/{cid}/amendments/{amendment['id']}"
    one = await world.client.post(f"/api/contracts/v1/{url}/sign", headers=world.owner)
    assert one.status_code == 200, one.text
    assert len(one.json()["signatures"]) == 1
    jsonschema.validate(one.json(), schema("amendment.schema.json"))
    after_one = (await world.get(f"/contracts/{cid}", world.owner)).json()
    assert after_one["salary"] == before["salary"]
    assert after_one["version"] == 1
    assert after_one["document_hash"] == before["document_hash"]
    check = (await world.get(f"/contracts/{cid}/signatures/verify", world.owner)).json()
    assert (check["version"], check["valid"]) == (1, True)  # the signed version still holds
    again = await world.client.post(f"/api/contracts/v1/{url}/sign", headers=world.hr)
    assert again.json()["code"] == "already_signed"

    both = await world.client.post(f"/api/contracts/v1/{url}/sign", headers=world.employee)
    assert both.json()["state"] == "applied", both.text
    amended = (await world.get(f"/contracts/{cid}", world.employee)).json()
    assert amended["salary"]["monthly"] == 18000
    assert amended["version"] == 2
    assert amended["document_hash"] == amendment["document_hash"]
    verified = (await world.get(f"/contracts/{cid}/signatures/verify", world.employee)).json()
    assert (verified["version"], verified["valid"], verified["complete"]) == (2, True, True)
    events = await world.wait_events(lambda e: e.type == "contract.amended", "amendment")
    assert events[0].payload["salary"] == 18000
    assert events[0].payload["amendment_id"] == amendment["id"]
    assert any(e.type == "contract.amendment.proposed" for e in world.events)
    listed_page = (await world.get(f"/contracts/{cid}/amendments", world.reader)).json()
    jsonschema.validate(listed_page, schema("amendment-list.schema.json"))
    assert [a["state"] for a in listed_page["items"]] == ["applied"]


async def test_amendments_are_rejected_or_withdrawn_by_the_right_side(world: World) -> None:
    cid = await world.active()
    first = (await _propose(world, cid, world.employee, key="e-1")).json()
    base = f"/api/contracts/v1/contracts/{cid}/amendments/{first['id']}"
    own = await world.client.post(f"{base}/reject", headers=world.employee)
    assert own.json()["code"] == "invalid_transition"  # a proposer withdraws, not rejects
    rejected = await world.client.post(f"{base}/reject", headers=world.hr)
    assert rejected.json()["state"] == "rejected"
    late = await world.client.post(f"{base}/sign", headers=world.hr)
    assert late.json()["code"] == "invalid_transition"

    second = (await _propose(world, cid, world.hr, {"changes": {"end_date": None}})).json()
    base = f"/api/contracts/v1/contracts/{cid}/amendments/{second['id']}"
    assert (await world.client.post(f"{base}/withdraw", headers=world.employee)).status_code == 409
    withdrawn = await world.client.post(f"{base}/withdraw", headers=world.vendor)
    assert withdrawn.json()["state"] == "withdrawn"
    assert (await world.get(f"/contracts/{cid}", world.hr)).json()["end_date"] == END


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"changes": {}}, "invalid_request"),
        ({"changes": {"employee": {"id": "x"}}}, "invalid_request"),
        ({"changes": {"salary": -1}}, "invalid_request"),
        ({"changes": {"salary": 100}}, "contract_ineligible"),
        ({"changes": {"occupation": "1212"}}, "contract_ineligible"),  # reserved for citizens
        ({"changes": {"occupation": "0000"}}, "unknown_occupation"),
        ({"changes": {"end_date": "2000-01-01"}}, "invalid_request"),
        ([], "invalid_request"),
    ],
)
async def test_bad_amendments_are_problems(world: World, body: Any, code: str) -> None:
    cid = await world.active()
    answer = await _propose(world, cid, world.hr, body)
    assert answer.json()["code"] == code, answer.text
    assert (await world.counts())["contract_amendments"] == 0


async def test_only_an_active_contract_is_amended(world: World) -> None:
    cid = await world.accepted()
    answer = await _propose(world, cid, world.hr)
    assert answer.json()["code"] == "invalid_transition"


# ---- termination, withdrawal, expiry ------------------------------------------------------------


async def test_termination_needs_a_reason_and_ends_the_contract(world: World) -> None:
    cid = await world.active()
    bare = await world.act(cid, "terminate", world.employee)
    assert bare.status_code == 400
    empty = await world.act(cid, "terminate", world.employee, {"reason": "  "})
    assert empty.json()["code"] == "invalid_request"
    ended = await world.act(cid, "terminate", world.employee, {"reason": "moving abroad"})
    assert ended.json()["state"] == "terminated", ended.text
    assert ended.json()["termination_reason"] == "moving abroad"
    events = await world.wait_events(lambda e: e.type == "contract.terminated", "termination")
    assert events[0].payload["reason"] == "moving abroad"
    again = await world.act(cid, "terminate", world.owner, {"reason": "again"})
    assert again.json()["code"] == "invalid_transition"
    reader = await world.act(cid, "terminate", world.reader, {"reason": "x"})
    assert reader.status_code == 403


async def test_the_sides_answer_for_themselves(world: World) -> None:
    draft = (await world.draft()).json()
    cid = draft["id"]
    assert (await world.act(cid, "offer", world.employee)).status_code == 403
    assert (await world.act(cid, "offer", world.owner)).status_code == 200
    assert (await world.act(cid, "accept", world.owner)).status_code == 403
    declined = await world.act(cid, "decline", world.employee, {"reason": "salary"})
    assert declined.json()["state"] == "declined"
    other = (await world.draft(key="k-2")).json()
    withdrawn = await world.act(other["id"], "withdraw", world.hr)
    assert withdrawn.json()["state"] == "withdrawn"
    assert (await world.act(other["id"], "offer", world.hr)).json()["code"] == "invalid_transition"


async def test_the_sweep_expires_contracts_past_their_end(world: World) -> None:
    cid = await world.active()
    workflow = world.app.state["contracts"].workflow
    real = workflow._clock
    workflow._clock = lambda: real() + timedelta(days=1000)
    try:
        assert await workflow.sweep() == 1
        assert await workflow.sweep() == 0
    finally:
        workflow._clock = real
    assert (await world.get(f"/contracts/{cid}", world.owner)).json()["state"] == "expired"
    await world.wait_events(lambda e: e.type == "contract.expired", "expiry")


# ---- drafts that are refused ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "code", "reasons"),
    [
        ({"cr_number": "4030000002"}, "establishment_not_active", ["establishment_not_active"]),
        ({"cr_number": "4030000003"}, "establishment_not_active", ["establishment_not_active"]),
        ({"cr_number": "4030000099"}, "contract_ineligible", ["establishment_not_found"]),
        ({"occupation": "1212", "salary": 9000}, "contract_ineligible",
         ["occupation_reserved_for_citizens"]),
        ({"salary": 5000}, "contract_ineligible", ["salary_below_minimum"]),
    ],
)  # fmt: skip
async def test_refused_drafts_have_stable_codes_and_leave_nothing(
    world: World, changes: dict[str, Any], code: str, reasons: list[str]
) -> None:
    answer = await world.draft(draft_body(**changes))
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == code
    assert answer.json()["reasons"] == reasons
    counts = await world.counts()
    assert counts["contracts"] == counts["outbox_events"] == counts["contract_idempotency"] == 0
    assert counts["contract_establishments"] == 0


async def test_a_suspended_establishment_says_its_status(world: World) -> None:
    answer = await world.draft(draft_body(cr_number="4030000002"))
    assert answer.json()["status"] == "suspended"


async def test_a_cr_number_bound_to_another_establishment_is_refused(world: World) -> None:
    assert (await world.draft()).status_code == 201
    tiny = principal(world.hub, "p-tiny", memberships=("est_tiny:owner",))
    answer = await world.client.post(
        "/api/contracts/v1/establishments/est_tiny/contracts",
        json=draft_body(),
        headers={**tiny, "idempotency-key": "t"},
    )
    assert answer.json()["code"] == "establishment_mismatch"


async def test_a_registrar_outage_refuses_cleanly(world: World) -> None:
    world.hub.fail_registry = True
    answer = await world.draft()
    problem(answer, 503, "hub_unavailable")
    assert (await world.counts())["contracts"] == 0


def _employee(**changes: Any) -> dict[str, Any]:
    return {**draft_body()["employee"], **changes}


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "invalid_request"),
        ("", "invalid_request"),
        ("[]", "invalid_request"),
        (json.dumps({**draft_body(), "extra": 1}), "invalid_request"),
        (json.dumps(draft_body(occupation="0000")), "unknown_occupation"),
        (json.dumps(draft_body(cr_number="12")), "invalid_request"),
        (json.dumps(draft_body(salary="lots")), "invalid_request"),
        (json.dumps(draft_body(employee=_employee(visa_number=None))), "invalid_request"),
        (json.dumps(draft_body(employee=_employee(citizen=True))), "invalid_request"),
        (json.dumps(draft_body(employee=_employee(nationality="india"))), "invalid_request"),
        (json.dumps(draft_body(end_date=START)), "invalid_request"),
        (json.dumps(draft_body(start_date="2000-01-01")), "invalid_request"),
        (json.dumps(draft_body(allowances={"Housing!": 1})), "invalid_request"),
        (json.dumps(draft_body(terms={"weekly_hours": 80})), "invalid_request"),
        (json.dumps(draft_body(terms={"clauses": [""]})), "invalid_request"),
        (json.dumps(draft_body(salary=1.5)), "invalid_request"),
    ],
)
async def test_bad_bodies_are_problems_with_stable_codes(world: World, raw: str, code: str) -> None:
    answer = await world.client.post(
        f"/api/contracts/v1/establishments/{EST}/contracts",
        content=raw,
        headers={**world.vendor, "idempotency-key": "bad"},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == code
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert (await world.counts())["contracts"] == 0


async def test_every_field_error_is_listed_at_once(world: World) -> None:
    answer = await world.draft({"cr_number": "x", "employee": {"citizen": "no"}, "salary": 0})
    errors = answer.json()["errors"]
    assert "cr_number: must be a 10-digit CR number" in errors
    assert "employee.citizen: required, true or false" in errors
    assert "salary: must be a whole number from 1 to 1000000" in errors
    assert "start_date: must be a date (YYYY-MM-DD)" in errors


# ---- idempotency ------------------------------------------------------------------------------


async def test_a_retry_with_the_same_key_creates_nothing_new(world: World) -> None:
    first = await world.draft(key="same")
    second = await world.draft(key="same")
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.headers["idempotent-replayed"] == "true"
    assert first.json()["id"] == second.json()["id"]
    assert (await world.counts())["contracts"] == 1
    other = await world.draft(draft_body(salary=16000), key="same")
    problem(other, 409, "idempotency_conflict")
    # the same key from another caller is another request
    theirs = await world.draft(key="same", headers=world.hr)
    assert theirs.status_code == 201
    assert theirs.json()["id"] != first.json()["id"]


async def test_concurrent_retries_make_one_contract(world: World) -> None:
    answers = await asyncio.gather(*(world.draft(key="race") for _ in range(5)))
    ok = [a for a in answers if a.status_code in {200, 201}]
    assert ok, [a.text for a in answers]
    assert {a.json()["id"] for a in ok} == {ok[0].json()["id"]}
    assert all(a.status_code in {200, 201, 409} for a in answers), [a.text for a in answers]
    assert (await world.counts())["contracts"] == 1


async def test_first_drafts_of_a_new_establishment_may_race(world: World) -> None:
    answers = await asyncio.gather(*(world.draft(key=f"new-{n}") for n in range(5)))
    assert [a.status_code for a in answers] == [201] * 5, [a.text for a in answers]
    assert (await world.counts())["contract_establishments"] == 1


async def test_the_key_and_the_token_are_required(world: World) -> None:
    url = f"/api/contracts/v1/establishments/{EST}/contracts"
    no_key = await world.client.post(url, json=draft_body(), headers=world.vendor)
    assert no_key.json()["code"] == "idempotency_key_required"
    bad_key = await world.client.post(
        url, json=draft_body(), headers={**world.vendor, "idempotency-key": "a b"}
    )
    assert bad_key.json()["code"] == "invalid_header"
    no_token = await world.client.post(url, json=draft_body(), headers={"idempotency-key": "k"})
    assert no_token.status_code == 401
    forged = principal(ContractsHub(), "p-owner", memberships=(f"{EST}:owner",))
    refused = await world.client.post(
        url, json=draft_body(), headers={**forged, "idempotency-key": "k"}
    )
    problem(refused, 401, "invalid_token")
    wrong = principal(world.hub, "p-owner", memberships=(f"{EST}:owner",), audience="visas")
    assert (await world.client.get(url, headers=wrong)).status_code == 401
    assert (await world.counts())["contracts"] == 0


# ---- object-level authorisation, endpoint by endpoint -------------------------------------------

#: (method, path under /contracts/{cid}, body) of every endpoint on one contract
ONE_CONTRACT: list[tuple[str, str, Any]] = [
    ("GET", "", None),
    ("GET", "/history", None),
    ("GET", "/signatures", None),
    ("GET", "/signatures/verify", None),
    ("GET", "/document", None),
    ("GET", "/amendments", None),
    ("GET", "/amendments/{aid}", None),
    ("POST", "/offer", None),
    ("POST", "/accept", None),
    ("POST", "/decline", None),
    ("POST", "/withdraw", None),
    ("POST", "/sign", None),
    ("POST", "/terminate", {"reason": "x"}),
    ("POST", "/amendments", {"changes": {"salary": 20000}}),
    ("POST", "/amendments/{aid}/sign", None),
    ("POST", "/amendments/{aid}/reject", None),
    ("POST", "/amendments/{aid}/withdraw", None),
]
_WRITES = {(method, path) for method, path, _ in ONE_CONTRACT if method == "POST"}


async def test_outsiders_see_no_contract_on_any_endpoint(world: World) -> None:
    cid = await world.active()
    aid = (await _propose(world, cid, world.hr)).json()["id"]
    before = await world.counts()
    outsiders = {
        "stranger": world.stranger,
        "another person": world.other_person,
        "a vendor without contracts.*": world.visa_vendor,
        "another establishment's vendor": principal(
            world.hub, "c-2", kind="client", client_id="c-2", establishment=OTHER,
            delegated=(f"{OTHER}:contracts.manage",),
        ),
        "a vendor naming the establishment without a delegation": principal(
            world.hub, "c-3", kind="client", client_id="c-3", establishment=EST
        ),
        "the employee's id from another identity provider": principal(
            world.hub, EMPLOYEE, idp="https://elsewhere.example"
        ),
    }  # fmt: skip
    for who, headers in outsiders.items():
        for method, path, body in ONE_CONTRACT:
            url = f"/api/contracts/v1/contracts/{cid}{path.format(aid=aid)}"
            extra = {"idempotency-key": "x"} if path == "/amendments" else {}
            answer = await world.client.request(
                method, url, json=body, headers={**headers, **extra}
            )
            assert answer.status_code == 404, (who, method, path, answer.text)
            assert answer.json()["code"] == "contract_not_found", (who, path)
    assert await world.counts() == before  # nothing was written by any of them


async def test_a_read_delegation_reads_but_never_writes(world: World) -> None:
    cid = await world.active()
    aid = (await _propose(world, cid, world.hr)).json()["id"]
    for method, path, body in ONE_CONTRACT:
        url = f"/api/contracts/v1/contracts/{cid}{path.format(aid=aid)}"
        extra = {"idempotency-key": "r"} if path == "/amendments" else {}
        answer = await world.client.request(
            method, url, json=body, headers={**world.reader, **extra}
        )
        if (method, path) in _WRITES:
            assert answer.status_code == 403, (path, answer.text)
            employees_only = path in {"/accept", "/decline"}
            expected = "forbidden" if employees_only else "establishment_not_permitted"
            assert answer.json()["code"] == expected, path
        else:
            assert answer.status_code == 200, (path, answer.text)


async def test_establishment_listings_are_the_establishments_own(world: World) -> None:
    cid = (await world.draft()).json()["id"]
    url = f"/establishments/{EST}/contracts"
    for headers in (world.owner, world.hr, world.reader, world.vendor):
        listed = await world.get(url, headers)
        assert [c["id"] for c in listed.json()["items"]] == [cid]
    for headers in (world.stranger, world.employee, world.visa_vendor):
        refused = await world.get(url, headers)
        problem(refused, 403, "establishment_not_permitted")
    # writing needs contracts.manage: neither the reader nor the employee may draft
    for headers in (world.reader, world.employee, world.stranger):
        drafted = await world.draft(headers=headers, key="nope")
        assert drafted.json()["code"] == "establishment_not_permitted"
    assert (await world.get("/me/contracts", world.other_person)).json()["items"] == []
    elsewhere = principal(world.hub, EMPLOYEE, idp="https://elsewhere.example")
    assert (await world.get("/me/contracts", elsewhere)).json()["items"] == []
    assert (await world.get("/me/contracts", world.vendor)).json()["items"] == []
    for params in ({"state": "flying"}, {"limit": "0"}, {"cursor": "zz"}, {"colour": "red"}):
        bad = await world.get(url, world.owner, **params)
        assert bad.status_code == 400, params


async def test_listings_paginate(world: World) -> None:
    made = [(await world.draft(key=f"p{n}")).json()["id"] for n in range(5)]
    seen: list[str] = []
    page = (await world.get(f"/establishments/{EST}/contracts", world.owner, limit=2)).json()
    seen += [c["id"] for c in page["items"]]
    while page["next_cursor"]:
        page = (
            await world.get(
                f"/establishments/{EST}/contracts", world.owner, limit=2,
                cursor=page["next_cursor"],
            )
        ).json()  # fmt: skip
        seen += [c["id"] for c in page["items"]]
    assert sorted(seen) == sorted(made)
    assert len(seen) == 5
    drafts = await world.get(f"/establishments/{EST}/contracts", world.owner, state="active")
    assert drafts.json()["items"] == []


# ---- documents ----------------------------------------------------------------------------------


async def test_the_document_as_escaped_html(world: World) -> None:
    employee = _employee(name="<script>alert(1)</script> & co")
    cid = (await world.draft(draft_body(employee=employee))).json()["id"]
    answer = await world.get(f"/contracts/{cid}/document", world.owner)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "<script>" not in answer.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in answer.text
    assert "Monthly salary: 15,000 SAR" in answer.text
    bad = await world.get(f"/contracts/{cid}/document", world.owner, format="docx")
    assert bad.status_code == 400


async def test_the_document_as_a_valid_pdf(world: World) -> None:
    cid = await world.active()
    by_query = await world.get(f"/contracts/{cid}/document", world.employee, format="pdf")
    by_accept = await world.client.get(
        f"/api/contracts/v1/contracts/{cid}/document",
        headers={**world.employee, "accept": "application/pdf"},
    )
    for answer in (by_query, by_accept):
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/pdf"
        _check_pdf(answer.content)
    assert b"Employment contract" in by_query.content
    assert b"hub-signed" in by_query.content


def _check_pdf(pdf: bytes) -> None:
    """The header, the trailer and every cross-reference offset pointing at its object."""
    assert pdf.startswith(b"%PDF-1.4\n")
    assert pdf.rstrip().endswith(b"%%EOF")
    startxref = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n", 1)[0])
    assert pdf[startxref:].startswith(b"xref\n")
    table = pdf[startxref:].split(b"trailer", 1)[0].split(b"\n")
    count = int(table[1].split()[1])
    entries = table[2 : 2 + count]
    assert entries[0] == b"0000000000 65535 f "
    for number, entry in enumerate(entries[1:], start=1):
        offset = int(entry.split()[0])
        assert pdf[offset:].startswith(f"{number} 0 obj".encode()), number
    for match in re.finditer(rb"<< /Length (\d+) >>\nstream\n", pdf):
        end = match.end() + int(match.group(1))
        assert pdf[end:].startswith(b"\nendstream")


async def test_public_reasons_and_states(world: World) -> None:
    answer = await world.client.get("/api/contracts/v1/reasons")
    jsonschema.validate(answer.json(), schema("reasons.schema.json"))
    assert {s["state"] for s in answer.json()["states"]} >= {"draft", "active", "terminated"}
    assert "establishment_not_active" in {r["code"] for r in answer.json()["reasons"]}


def test_settings_come_from_contracts_variables_and_refuse_nonsense(tmp_path: Path) -> None:
    settings = ContractSettings.from_env(
        {"CONTRACTS_DATA_DIR": str(tmp_path), "CONTRACTS_BUS_DATABASE_URL": "sqlite+aiosqlite://"}
    )
    assert (settings.port, settings.audience) == (9520, "contracts")
    assert settings.database_url.endswith("/contracts.db")
    with pytest.raises(ConfigError) as raised:
        ContractSettings.from_env(
            {
                "CONTRACTS_PORT": "x",
                "CONTRACTS_DATABASE_SCHEMA": "s",
                "CONTRACTS_SWEEP_SECONDS": "-1",
            }
        )
    text_of = str(raised.value)
    for name in ("CONTRACTS_PORT", "CONTRACTS_DATABASE_SCHEMA", "CONTRACTS_SWEEP_SECONDS"):
        assert name in text_of
    assert "CONTRACTS_BUS_DATABASE_URL or CONTRACTS_AMQP_URL" in text_of
