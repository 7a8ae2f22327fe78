"""The visa service's HTTP API in-process, on SQLite and PostgreSQL, with the hub stood in for.

The hub is an ``httpx.MockTransport`` at the service's only door (tests/visas_support.py); the
service's own code, tables, outbox and relay are real, and the event bus is the in-process one.
Each test drives the pipeline through HTTP and checks the rows, transitions and events.
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
from services.visas.app import create_app
from services.visas.settings import VisaSettings
from services.visas.workflow import REFERENCE_PREFIX
from tests.service_support import (
    CONTRACTS,
    Running,
    principal,
    problem,
    product_schema,
    serve,
    storage,
)
from tests.visas_support import ISSUER, FakeHub

EST = "est_demo"
OTHER = "est_other"
schema = partial(product_schema, "visas")


def work_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "cr_number": "4030000001",
        "worker": {
            "given_name": "Ravi",
            "family_name": "Kumar",
            "nationality": "IND",
            "passport_number": "P1234567",
            "birth_date": "1990-04-01",
        },
        "occupation": "2512",
        "monthly_salary": 15000,
        "contact_email": "hr@demo-trading.example",
    }
    body.update(changes)
    return body


class World:
    def __init__(self, service: Running, hub: FakeHub) -> None:
        self.app = service.app
        self.client = service.client
        self.hub = hub
        self.bus = service.bus
        self.events = service.events
        self.owner = principal(hub, "p-owner", memberships=(f"{EST}:owner",))
        self.vendor = principal(
            hub, "c-vendor", kind="client", client_id="c-vendor", establishment=EST,
            delegated=(f"{EST}:visas.apply",),
        )  # fmt: skip
        self.officer = principal(hub, "p-officer", roles=("agency_officer",))
        self.stranger = principal(hub, "p-stranger", memberships=(f"{OTHER}:owner",))

    async def apply(
        self, body: Any = None, *, key: str = "k-1", headers: dict[str, str] | None = None
    ) -> Any:
        return await self.client.post(
            f"/api/visas/v1/establishments/{EST}/applications",
            content=json.dumps(work_body() if body is None else body),
            headers={**(headers or self.vendor), "idempotency-key": key},
        )

    async def pay(self, application_id: str, state: str = "captured") -> None:
        payment = self.hub.payment_for(application_id)
        await self.bus.publish(
            Event(
                type=f"payment.{state}",
                payload={"payment_id": payment["id"], "reference": payment["reference"]},
            )
        )

    async def wait_state(self, application_id: str, state: str) -> dict[str, Any]:
        for _ in range(200):
            answer = await self.client.get(
                f"/api/visas/v1/applications/{application_id}", headers=self.officer
            )
            if answer.json().get("state") == state:
                body: dict[str, Any] = answer.json()
                return body
            await asyncio.sleep(0.02)
        raise AssertionError(f"{application_id} never became {state}: {answer.json()}")

    async def wait_events(self, count: int) -> list[Event]:
        for _ in range(200):
            if len(self.events) >= count:
                return self.events
            await asyncio.sleep(0.02)
        raise AssertionError(f"only {len(self.events)} events: {[e.type for e in self.events]}")

    async def counts(self) -> dict[str, int]:
        store = self.app.state["visas"].workflow.store
        counts: dict[str, int] = await store.table_counts()
        return counts


@pytest.fixture
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    settings = VisaSettings(
        **await storage(database_url, tmp_path, "visas"),
        hub_url=ISSUER,
        client_id="visas-service",
        client_secret="s3cret",
        verification_key="test-key",
        sweep_seconds=3600,
    )
    hub = FakeHub()
    probe = principal(hub, "p-officer", roles=("agency_officer",))
    url = "/api/visas/v1/applications/x"
    async with serve(create_app, settings, hub, probe=url, headers=probe) as service:
        yield World(service, hub)


# ---- the pipeline ---------------------------------------------------------------------------


async def test_a_delegated_vendor_applies_pays_and_gets_a_visa_issued(world: World) -> None:
    answer = await world.apply()
    assert answer.status_code == 201, answer.text
    application = answer.json()
    jsonschema.validate(application, schema("application.schema.json"))
    assert application["state"] == "awaiting_payment"
    assert application["fee"]["amount"] == 200_000
    assert ("GET", "/api/registry/v1/establishments/4030000001") in world.hub.calls
    payment = world.hub.payment_for(application["id"])
    assert payment["reference"] == REFERENCE_PREFIX + application["id"]

    await world.pay(application["id"])
    issued = await world.wait_state(application["id"], "issued")  # skilled, well paid: automatic
    visa = issued["visa"]
    assert visa["number"].startswith("W")

    verified = await world.client.get(
        f"/api/visas/v1/verify/{visa['number']}", params={"code": visa["verification_code"]}
    )
    assert verified.status_code == 200
    jsonschema.validate(verified.json(), schema("verification.schema.json"))
    assert verified.json()["valid"] is True
    assert verified.json()["holder"] == "R. K****"
    assert "passport_number" not in verified.json()

    history = (
        await world.client.get(
            f"/api/visas/v1/applications/{application['id']}/history", headers=world.vendor
        )
    ).json()["items"]
    assert [(h["from"], h["to"]) for h in history] == [
        (None, "submitted"),
        ("submitted", "awaiting_payment"),
        ("awaiting_payment", "approved"),
        ("approved", "issued"),
    ]
    assert all(h["actor"]["kind"] == "system" and h["at"] for h in history)

    events = await world.wait_events(8)
    types = [e.type for e in events]
    for state in ("submitted", "awaiting_payment", "approved", "issued"):
        assert f"visa.application.{state}" in types
    notices = [e for e in events if e.type == "notification.requested"]
    assert {n.payload["template"] for n in notices} >= {"visa.application.issued"}
    issued_notice = next(n for n in notices if n.payload["template"] == "visa.application.issued")
    assert issued_notice.payload["recipient"]["client_id"] == "c-vendor"
    assert "channels" not in issued_notice.payload  # the recipient's preference decides
    event_contract = CONTRACTS / "events" / "notification.requested.schema.json"
    jsonschema.validate(issued_notice.payload, json.loads(event_contract.read_text()))


async def test_a_low_skill_application_waits_for_an_officer_who_approves(world: World) -> None:
    application = (await world.apply(work_body(occupation="5223", monthly_salary=3500))).json()
    await world.pay(application["id"])
    queued = await world.wait_state(application["id"], "in_review")
    assert "review_low_skill_occupation" in queued["review_reasons"]

    queue = await world.client.get(
        "/api/visas/v1/review/applications", params={"state": "in_review"}, headers=world.officer
    )
    assert [item["id"] for item in queue.json()["items"]] == [application["id"]]
    assert queue.json()["items"][0]["checks"]["compliance"]["band"] == "exempt"

    decided = await world.client.post(
        f"/api/visas/v1/review/applications/{application['id']}/decision",
        json={"decision": "approve", "reason": "documents in order"},
        headers=world.officer,
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["state"] == "issued"
    history = (
        await world.client.get(
            f"/api/visas/v1/applications/{application['id']}/history", headers=world.officer
        )
    ).json()["items"]
    approve = next(h for h in history if h["to"] == "approved")
    assert approve["actor"] == {"kind": "officer", "id": "p-officer"}
    assert approve["reason"] == "documents in order"


async def test_an_officer_rejects_with_a_reason_and_not_without(world: World) -> None:
    application = (await world.apply(work_body(occupation="9313", monthly_salary=2000))).json()
    await world.pay(application["id"])
    await world.wait_state(application["id"], "in_review")
    url = f"/api/visas/v1/review/applications/{application['id']}/decision"
    bare = await world.client.post(url, json={"decision": "reject"}, headers=world.officer)
    problem(bare, 400, "invalid_request")
    rejected = await world.client.post(
        url, json={"decision": "reject", "reason": "contract missing"}, headers=world.officer
    )
    assert rejected.json()["state"] == "rejected"
    again = await world.client.post(url, json={"decision": "approve"}, headers=world.officer)
    problem(again, 409, "invalid_transition")


# ---- idempotency and nothing half-written ---------------------------------------------------


async def test_a_retry_with_the_same_key_creates_nothing_new(world: World) -> None:
    first = await world.apply(key="same")
    second = await world.apply(key="same")
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.headers["idempotent-replayed"] == "true"
    assert first.json()["id"] == second.json()["id"]
    assert len(world.hub.payments) == 1  # one charge
    assert (await world.counts())["visa_applications"] == 1

    other = await world.apply(work_body(monthly_salary=16000), key="same")
    problem(other, 409, "idempotency_conflict")


async def test_concurrent_retries_make_one_application_and_one_charge(world: World) -> None:
    answers = await asyncio.gather(*(world.apply(key="race") for _ in range(5)))
    ok = [a for a in answers if a.status_code in {200, 201}]
    assert ok, [a.text for a in answers]
    assert {a.json()["id"] for a in ok} == {ok[0].json()["id"]}
    assert all(a.status_code in {200, 201, 409} for a in answers), [a.text for a in answers]
    assert (await world.counts())["visa_applications"] == 1
    assert len(world.hub.payments) == 1


async def test_a_failed_payment_request_leaves_no_rows(world: World) -> None:
    world.hub.fail_payments = True
    answer = await world.apply()
    problem(answer, 503, "hub_unavailable")
    counts = await world.counts()
    assert counts["visa_applications"] == counts["visa_transitions"] == 0
    assert counts["visa_idempotency"] == counts["outbox_events"] == 0
    assert counts["visa_establishments"] == 0

    world.hub.fail_payments = False  # the retry with the same key goes through, once
    retried = await world.apply()
    assert retried.status_code == 201
    assert len(world.hub.payments) == 1


async def test_a_registrar_outage_refuses_cleanly(world: World) -> None:
    world.hub.fail_registry = True
    answer = await world.apply()
    problem(answer, 503, "hub_unavailable")
    assert (await world.counts())["visa_applications"] == 0
    assert world.hub.payments == {}


async def test_a_payment_event_before_the_row_commits_is_kept_and_applied(world: World) -> None:
    world.hub.payments["visa-fee:early"] = {}  # not used: the id is derived, shown below
    application = (await world.apply(key="fast")).json()
    # a duplicate delivery of the same event is absorbed by the idempotent consumer
    await world.pay(application["id"])
    await world.pay(application["id"])
    issued = await world.wait_state(application["id"], "issued")
    assert issued["fee"]["paid_at"] is not None
    history = (
        await world.client.get(
            f"/api/visas/v1/applications/{application['id']}/history", headers=world.officer
        )
    ).json()["items"]
    assert len(history) == 4


# ---- eligibility ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reasons"),
    [
        ({"cr_number": "4030000099"}, ["establishment_not_found"]),
        ({"cr_number": "4030000002"}, ["establishment_not_active"]),
        ({"occupation": "4110", "monthly_salary": 4000}, ["occupation_reserved_for_citizens"]),
        ({"monthly_salary": 6000}, ["salary_below_minimum"]),
    ],
)
async def test_failed_checks_answer_stable_reason_codes(
    world: World, changes: dict[str, Any], reasons: list[str]
) -> None:
    answer = await world.apply(work_body(**changes))
    problem(answer, 422, "visa_ineligible")
    assert answer.json()["reasons"] == reasons
    assert (await world.counts())["visa_applications"] == 0
    assert world.hub.payments == {}


async def test_blocked_and_duplicate_travellers_and_the_quota(world: World) -> None:
    store = world.app.state["visas"].workflow.store
    await store.block("IND", "B7654321", "security")
    blocked = await world.apply(
        work_body(worker={**work_body()["worker"], "passport_number": "B7654321"}), key="b"
    )
    assert blocked.json()["reasons"] == ["applicant_blocked"]

    assert (await world.apply(key="first")).status_code == 201
    duplicate = await world.apply(key="second")
    assert duplicate.json()["reasons"] == ["applicant_has_active_application"]

    # Tiny Shop is micro: three places
    tiny = principal(world.hub, "p-tiny", memberships=("est_tiny:owner",))
    for n in range(4):
        worker = {**work_body()["worker"], "passport_number": f"T000000{n}"}
        answer = await world.client.post(
            "/api/visas/v1/establishments/est_tiny/applications",
            json=work_body(cr_number="4030000005", worker=worker),
            headers={**tiny, "idempotency-key": f"tiny-{n}"},
        )
        assert answer.status_code == (201 if n < 3 else 422), answer.text
    assert answer.json()["reasons"] == ["visa_quota_exhausted"]


async def test_the_compliance_band_gates_new_visas(world: World) -> None:
    store = world.app.state["visas"].workflow.store
    for n in range(9):  # fewer than 10 employees in all: exempt; foreigners counted from visas
        await _issued(world, f"S{n:07d}", key=f"staff-{n}")
    # 2 citizens of 11 in retail (0.30 required): 0.18 is yellow, skilled occupations only
    await store.declare_workforce(EST, "4030000001", 2)
    low = await world.apply(work_body(occupation="5223", monthly_salary=3500), key="low")
    assert low.json()["reasons"] == ["compliance_band_restricts_occupation"]
    skilled = await world.apply(key="skilled")
    assert skilled.status_code == 201
    assert skilled.json()["state"] == "awaiting_payment"
    await store.declare_workforce(EST, "4030000001", 1)  # 1 of 10: red
    worker = {**work_body()["worker"], "passport_number": "R1234567"}
    red = await world.apply(work_body(worker=worker), key="red")
    assert red.json()["reasons"] == ["compliance_band_red"]


async def test_the_compliance_services_band_is_preferred_when_known(world: World) -> None:
    """compliance.band.changed (services/compliance) overrides the service's own figures."""

    async def band(name: str, at: str, citizens: int = 1, total: int = 40) -> None:
        before = (await world.counts())["processed_events"]
        await world.bus.publish(
            Event(
                type="compliance.band.changed",
                payload={
                    "establishment_id": EST,
                    "band": name,
                    "previous": None,
                    "ratio": citizens / total,
                    "citizens": citizens,
                    "total": total,
                    "required": 0.3,
                    "sector": "retail",
                    "size_band": "small",
                    "at": at,
                },
            )
        )
        for _ in range(200):
            if (await world.counts())["processed_events"] > before:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the band event was not consumed")

    # on its own figures the establishment is exempt (nobody employed); the compliance
    # service says red: no new visa
    await band("red", "2026-06-01T00:00:00+00:00")
    red = await world.apply(key="red")
    assert red.status_code == 422
    assert red.json()["reasons"] == ["compliance_band_red"]
    await band("green", "2026-05-01T00:00:00+00:00", 12, 40)  # older, arriving late: ignored
    assert (await world.apply(key="still-red")).json()["reasons"] == ["compliance_band_red"]
    await band("green", "2026-07-01T00:00:00+00:00", 12, 40)
    allowed = await world.apply(key="green")
    assert allowed.status_code == 201, allowed.text
    queue = await world.client.get("/api/visas/v1/review/applications", headers=world.officer)
    (item,) = queue.json()["items"]
    assert item["checks"]["compliance"]["band"] == "green"
    assert item["checks"]["compliance"]["foreigners"] == 28


async def _issued(world: World, passport: str, *, key: str) -> dict[str, Any]:
    worker = {**work_body()["worker"], "passport_number": passport}
    application = (await world.apply(work_body(worker=worker), key=key)).json()
    await world.pay(application["id"])
    return await world.wait_state(application["id"], "issued")


# ---- bad input and access ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code", "status"),
    [
        ("not json", "invalid_request", 400),
        ("[]", "invalid_request", 400),
        (json.dumps(work_body(occupation="0000")), "unknown_occupation", 400),
        (json.dumps(work_body(cr_number="12")), "invalid_request", 400),
        (json.dumps(work_body(monthly_salary="lots")), "invalid_request", 400),
        (json.dumps(work_body(worker={"given_name": "A"})), "invalid_request", 400),
        (json.dumps({**work_body(), "extra": 1}), "invalid_request", 400),
    ],
)
async def test_bad_bodies_are_problems_with_stable_codes(
    world: World, raw: str, code: str, status: int
) -> None:
    answer = await world.client.post(
        f"/api/visas/v1/establishments/{EST}/applications",
        content=raw,
        headers={**world.vendor, "idempotency-key": "bad"},
    )
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert (await world.counts())["visa_applications"] == 0


async def test_every_field_error_is_listed_at_once(world: World) -> None:
    answer = await world.apply(
        {"cr_number": "x", "worker": {"nationality": "india"}, "monthly_salary": 0}
    )
    errors = answer.json()["errors"]
    assert "cr_number: must be a 10-digit CR number" in errors
    assert "worker.nationality: must be an ISO 3166 alpha-3 code (IND)" in errors
    assert "monthly_salary: must be a whole number from 1 to 1000000" in errors


async def test_the_key_and_the_token_are_required(world: World) -> None:
    url = f"/api/visas/v1/establishments/{EST}/applications"
    no_key = await world.client.post(url, json=work_body(), headers=world.vendor)
    assert no_key.json()["code"] == "idempotency_key_required"
    no_token = await world.client.post(url, json=work_body(), headers={"idempotency-key": "k"})
    assert no_token.status_code == 401
    forged = principal(FakeHub(), "p-owner", memberships=(f"{EST}:owner",))
    refused = await world.client.post(
        url, json=work_body(), headers={**forged, "idempotency-key": "k"}
    )
    problem(refused, 401, "invalid_token")
    wrong_audience = principal(world.hub, "p", audience="payments")
    assert (await world.client.get(url, headers=wrong_audience)).status_code == 401


async def test_an_establishments_users_see_only_its_applications(world: World) -> None:
    application = (await world.apply()).json()
    url = f"/api/visas/v1/applications/{application['id']}"
    assert (await world.client.get(url, headers=world.owner)).status_code == 200
    assert (await world.client.get(url, headers=world.vendor)).status_code == 200
    hidden = await world.client.get(url, headers=world.stranger)
    problem(hidden, 404, "application_not_found")

    listing = await world.client.get(
        f"/api/visas/v1/establishments/{EST}/applications", headers=world.stranger
    )
    problem(listing, 403, "establishment_not_permitted")
    cancel = await world.client.post(f"{url}/cancel", headers=world.stranger)
    assert cancel.status_code == 404

    # a vendor delegated by another establishment cannot apply for this one
    other_vendor = principal(
        world.hub, "c-2", kind="client", client_id="c-2", establishment=OTHER,
        delegated=(f"{OTHER}:visas.apply",),
    )  # fmt: skip
    refused = await world.apply(headers=other_vendor, key="theirs")
    assert refused.json()["code"] == "establishment_not_permitted"
    # an HR officer with only a read delegation may list but not apply
    reader = principal(world.hub, "p-hr", delegated=(f"{EST}:visas.read",))
    listed = await world.client.get(
        f"/api/visas/v1/establishments/{EST}/applications", headers=reader
    )
    assert listed.status_code == 200
    assert (await world.apply(headers=reader, key="hr")).status_code == 403


async def test_officer_endpoints_need_the_role(world: World) -> None:
    answer = await world.client.get("/api/visas/v1/review/applications", headers=world.owner)
    problem(answer, 403, "agency_officer_required")
    decide = await world.client.post(
        "/api/visas/v1/review/applications/va_x/decision",
        json={"decision": "approve"},
        headers=world.owner,
    )
    assert decide.json()["code"] == "agency_officer_required"
    unknown = await world.client.post(
        "/api/visas/v1/review/applications/va_x/decision",
        json={"decision": "approve"},
        headers=world.officer,
    )
    assert unknown.status_code == 404
    bad = await world.client.post(
        "/api/visas/v1/review/applications/va_x/decision",
        json={"decision": "maybe"},
        headers=world.officer,
    )
    assert bad.status_code == 400


# ---- cancel, refunds, expiry ------------------------------------------------------------------


async def test_cancel_refunds_by_the_rules(world: World) -> None:
    unpaid = (await world.apply(key="unpaid")).json()
    cancelled = await world.client.post(
        f"/api/visas/v1/applications/{unpaid['id']}/cancel",
        json={"reason": "changed plans"},
        headers=world.owner,
    )
    assert cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["fee"]["refunded"] == 0
    assert world.hub.refunds == {}

    issued = await _issued(world, "C1234567", key="paid")
    cancel = await world.client.post(
        f"/api/visas/v1/applications/{issued['id']}/cancel", headers=world.vendor
    )
    assert cancel.json()["fee"]["refunded"] == 100_000  # half, within 14 days of issue
    assert world.hub.refunds[f"visa-refund:{issued['id']}"]["amount"] == 100_000
    again = await world.client.post(
        f"/api/visas/v1/applications/{issued['id']}/cancel", headers=world.vendor
    )
    problem(again, 409, "invalid_transition")
    assert len(world.hub.refunds) == 1
    verified = await world.client.get(
        f"/api/visas/v1/verify/{issued['visa']['number']}",
        params={"code": issued["visa"]["verification_code"]},
    )
    assert verified.json()["valid"] is False
    assert verified.json()["status"] == "cancelled"


async def test_the_sweep_lapses_unpaid_and_expires_issued(world: World) -> None:
    workflow = world.app.state["visas"].workflow
    unpaid = (await world.apply(key="late")).json()
    issued = await _issued(world, "E1234567", key="old")
    real = workflow._clock
    workflow._clock = lambda: real() + __import__("datetime").timedelta(days=800)
    try:
        assert await workflow.sweep() == 2
    finally:
        workflow._clock = real
    assert (await world.wait_state(unpaid["id"], "lapsed"))["state"] == "lapsed"
    assert (await world.wait_state(issued["id"], "expired"))["state"] == "expired"


async def test_verification_reveals_nothing_without_the_code(world: World) -> None:
    issued = await _issued(world, "V1234567", key="v")
    number = issued["visa"]["number"]
    wrong = await world.client.get(f"/api/visas/v1/verify/{number}", params={"code": "AAAAAAAA"})
    assert wrong.json() == {"valid": False}
    unknown = await world.client.get("/api/visas/v1/verify/W000000000", params={"code": "AAAAAAAA"})
    assert unknown.json() == {"valid": False}
    missing = await world.client.get(f"/api/visas/v1/verify/{number}")
    assert missing.status_code == 400


# ---- visit visas ------------------------------------------------------------------------------


def visit_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sponsor_national_id": "1000000001",
        "visitor": {
            "given_name": "Amina",
            "family_name": "Haddad",
            "nationality": "JOR",
            "passport_number": "J7654321",
            "birth_date": "1960-02-02",
        },
        "relationship": "parent",
    }
    body.update(changes)
    return body


async def test_a_person_applies_for_a_visit_visa_for_a_relative(world: World) -> None:
    me = principal(world.hub, "p-sponsor")
    answer = await world.client.post(
        "/api/visas/v1/me/applications", json=visit_body(), headers={**me, "idempotency-key": "v1"}
    )
    assert answer.status_code == 201, answer.text
    application = answer.json()
    assert ("GET", "/api/registry/v1/persons/1000000001") in world.hub.calls
    await world.pay(application["id"])
    issued = await world.wait_state(application["id"], "issued")
    assert issued["visa"]["number"].startswith("V")
    mine = await world.client.get("/api/visas/v1/me/applications", headers=me)
    assert [a["id"] for a in mine.json()["items"]] == [application["id"]]
    theirs = await world.client.get("/api/visas/v1/me/applications", headers=world.owner)
    assert theirs.json()["items"] == []

    other_visitor = {**visit_body()["visitor"], "passport_number": "J0000001"}
    dead = await world.client.post(
        "/api/visas/v1/me/applications",
        json=visit_body(sponsor_national_id="1000000009", visitor=other_visitor),
        headers={**me, "idempotency-key": "v2"},
    )
    assert dead.json()["reasons"] == ["sponsor_deceased"]
    vendor = await world.client.post(
        "/api/visas/v1/me/applications",
        json=visit_body(),
        headers={**world.vendor, "idempotency-key": "v3"},
    )
    assert vendor.status_code == 403
    # The sponsor is the signed-in person by the hub's records, not whoever's ID is typed in.
    someone = principal(world.hub, "p-other", national_id="1000000002")
    borrowed = await world.client.post(
        "/api/visas/v1/me/applications",
        json=visit_body(visitor={**other_visitor, "passport_number": "J0000002"}),
        headers={**someone, "idempotency-key": "v4"},
    )
    assert (borrowed.status_code, borrowed.json()["code"]) == (403, "forbidden")
    own = principal(world.hub, "p-sponsor2", national_id="1000000001")
    allowed = await world.client.post(
        "/api/visas/v1/me/applications",
        json=visit_body(visitor={**other_visitor, "passport_number": "J0000003"}),
        headers={**own, "idempotency-key": "v5"},
    )
    assert allowed.status_code == 201, allowed.text


# ---- search -----------------------------------------------------------------------------------


async def test_search_filters_paginates_and_finds_words(world: World) -> None:
    made = []
    for n, (nationality, code) in enumerate(
        [("IND", "2512"), ("PHL", "2221"), ("IND", "7411"), ("EGY", "2512"), ("PHL", "2512")]
    ):
        worker = {
            **work_body()["worker"],
            "nationality": nationality,
            "passport_number": f"Q{n:07d}",
        }
        if n == 3:
            worker["family_name"] = "Mansour"
        body = work_body(worker=worker, occupation=code, monthly_salary=20000)
        made.append((await world.apply(body, key=f"s{n}")).json()["id"])
    url = f"/api/visas/v1/establishments/{EST}/applications"

    async def ids(**params: Any) -> list[str]:
        answer = await world.client.get(url, params=params, headers=world.owner)
        assert answer.status_code == 200, answer.text
        return [item["id"] for item in answer.json()["items"]]

    assert await ids(nationality="IND") == [made[2], made[0]]
    assert await ids(occupation="2512", nationality="PHL") == [made[4]]
    assert await ids(state="awaiting_payment") == list(reversed(made))
    assert await ids(state="issued") == []
    assert await ids(q="mansour") == [made[3]]
    assert await ids(q="software developers") == [made[4], made[3], made[0]]
    assert await ids(submitted_from="2000-01-01", submitted_to="2001-01-01") == []

    page = (await world.client.get(url, params={"limit": 2}, headers=world.owner)).json()
    seen = [item["id"] for item in page["items"]]
    while page["next_cursor"]:
        page = (
            await world.client.get(
                url, params={"limit": 2, "cursor": page["next_cursor"]}, headers=world.owner
            )
        ).json()
        seen += [item["id"] for item in page["items"]]
    assert seen == list(reversed(made))
    jsonschema.validate(page, schema("application-page.schema.json"))

    for params in (
        {"state": "flying"},
        {"limit": "0"},
        {"nationality": "india"},
        {"cursor": "zz"},
        {"colour": "red"},
    ):
        bad = await world.client.get(url, params=params, headers=world.owner)
        assert bad.status_code == 400, params
        assert bad.json()["code"] == "invalid_request"
    officers = await world.client.get(
        "/api/visas/v1/review/applications", params={"q": "Kumar"}, headers=world.officer
    )
    assert len(officers.json()["items"]) == 4


async def test_public_catalogue_and_reasons(world: World) -> None:
    listed = await world.client.get("/api/visas/v1/occupations", params={"q": "software"})
    jsonschema.validate(listed.json(), schema("occupation-list.schema.json"))
    assert [o["code"] for o in listed.json()["items"]] == ["2512"]
    assert (await world.client.get("/api/visas/v1/occupations/9999")).status_code == 404
    reasons = (await world.client.get("/api/visas/v1/reasons")).json()
    jsonschema.validate(reasons, schema("reasons.schema.json"))
    assert {r["code"] for r in reasons["reasons"]} >= {"visa_quota_exhausted", "applicant_blocked"}


async def test_the_cr_number_must_be_the_one_the_hubs_register_gives(world: World) -> None:
    """The token's registrations name the establishment's CR number: another one is refused."""
    url = f"/api/visas/v1/establishments/{EST}/applications"
    registered = principal(
        world.hub, "p-owner", memberships=(f"{EST}:owner",), registrations=(f"{EST}:4030000002",)
    )
    wrong = await world.client.post(
        url, json=work_body(), headers={**registered, "idempotency-key": "cr-1"}
    )
    assert (wrong.status_code, wrong.json()["code"]) == (409, "establishment_mismatch"), wrong.text
    assert ("GET", "/api/registry/v1/establishments/4030000001") not in world.hub.calls
    right = principal(
        world.hub, "p-owner", memberships=(f"{EST}:owner",), registrations=(f"{EST}:4030000001",)
    )
    ok = await world.client.post(
        url, json=work_body(), headers={**right, "idempotency-key": "cr-2"}
    )
    assert ok.status_code == 201, ok.text
