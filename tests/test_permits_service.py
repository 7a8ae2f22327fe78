"""The work permits service's HTTP API in-process, on SQLite and PostgreSQL (its own schema).

The hub is an ``httpx.MockTransport`` at the service's only door (tests/visas_support.py: the
token endpoint, the JWKS, the payments API); the service's own code, tables, outbox, relay and
consumers are real, and the event bus is the in-process one. What the service knows of visas,
contracts and bands it learns from events this test publishes on the bus, standing in for the
visa, contracts and compliance services.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from sqlalchemy import select

from hub.backends.events.base import Event
from hub.events.tables import processed_events
from services.work_permits.app import create_app
from services.work_permits.domain import RENEWAL_FEE
from services.work_permits.notices import REFERENCE_PREFIX
from services.work_permits.settings import PermitSettings
from tests.service_support import Running, principal, problem, product_schema, serve, storage
from tests.visas_support import ISSUER, FakeHub

EST, OTHER = "est_demo", "est_other"
WORKER = "2100000001"
VISA = "W000000001"
schema = partial(product_schema, "work_permits")


def visa_event(
    state: str = "issued", *, number: str = VISA, establishment: str = EST, at: str | None = None
) -> Event:
    return Event(
        type=f"visa.application.{state}",
        payload={
            "application_id": f"va_{number}",
            "kind": "work",
            "state": state,
            "establishment_id": establishment,
            "occupation": "2512",
            "nationality": "IND",
            "visa_number": number,
            "passport_number": "P1234567",
            "worker_name": "Ravi Kumar",
            "valid_until": (date.today() + timedelta(days=700)).isoformat(),
            "actor": {"kind": "system", "id": "issuer"},
            "at": at or "2026-01-01T00:00:00+00:00",
        },
    )


def contract_event(
    kind: str = "activated",
    *,
    contract_id: str = "ct_1",
    establishment: str = EST,
    person: str = WORKER,
    visa: str | None = VISA,
    at: str = "2026-01-02T00:00:00+00:00",
    occupation: str = "2512",
) -> Event:
    return Event(
        type=f"contract.{kind}",
        payload={
            "contract_id": contract_id,
            "establishment_id": establishment,
            "employee": {"id": person, "nationality": "IND", "citizen": False},
            "occupation": occupation,
            "salary": 15000,
            "start_date": "2026-01-01",
            "end_date": None,
            "state": "terminated" if kind == "terminated" else "active",
            "at": at,
            "visa_number": visa,
        },
    )


class World:
    def __init__(self, service: Running, hub: FakeHub) -> None:
        self.app = service.app
        self.client = service.client
        self.hub = hub
        self.bus = service.bus
        self.events = service.events
        self.token = token = partial(principal, hub, audience="permits")
        self.owner = token("p-owner", memberships=(f"{EST}:owner",))
        self.vendor = token(
            "c-vendor", kind="client", client_id="c-vendor", establishment=EST,
            delegated=(f"{EST}:permits.manage",),
        )  # fmt: skip
        self.reader = token("p-hr", delegated=(f"{EST}:permits.read",))
        self.other_owner = token("p-other", memberships=(f"{OTHER}:owner",))
        self.worker = token(WORKER)
        self.someone = token("2999999999")
        self.officer = token("p-officer", roles=("agency_officer",))

    @property
    def store(self) -> Any:
        return self.app.state["permits"].workflow.store

    @property
    def workflow(self) -> Any:
        return self.app.state["permits"].workflow

    async def learn(self, *events: Event) -> None:
        """Publish events and wait until the service's consumers applied them."""
        for event in events:
            await self.bus.publish(event)
        ids = {event.id for event in events}
        for _ in range(300):
            async with self.store.engine.connect() as conn:
                done = set(
                    (
                        await conn.execute(
                            select(processed_events.c.event_id).where(
                                processed_events.c.event_id.in_(ids)
                            )
                        )
                    ).scalars()
                )
            if done >= ids:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"events never applied: {ids - done}")

    async def issue(
        self,
        body: Any = None,
        *,
        key: str = "k-1",
        headers: dict[str, str] | None = None,
        establishment: str = EST,
    ) -> httpx.Response:
        return await self.client.post(
            f"/api/permits/v1/establishments/{establishment}/permits",
            content=json.dumps(
                {"visa_number": VISA, "contract_id": "ct_1"} if body is None else body
            ),
            headers={**(headers or self.vendor), "idempotency-key": key},
        )

    async def issued(self) -> dict[str, Any]:
        await self.learn(visa_event(), contract_event())
        answer = await self.issue()
        assert answer.status_code == 201, answer.text
        body: dict[str, Any] = answer.json()
        return body

    async def get(self, permit_id: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.get(
            f"/api/permits/v1/permits/{permit_id}", headers=headers or self.officer
        )

    async def wait_state(self, permit_id: str, state: str) -> dict[str, Any]:
        for _ in range(300):
            body: dict[str, Any] = (await self.get(permit_id)).json()
            if body.get("state") == state:
                return body
            await asyncio.sleep(0.02)
        raise AssertionError(f"{permit_id} never became {state}: {body}")

    async def wait_event(self, event_type: str, count: int = 1) -> list[Event]:
        for _ in range(300):
            found = [e for e in self.events if e.type == event_type]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {event_type}: {[e.type for e in self.events]}")

    async def counts(self) -> dict[str, int]:
        counts: dict[str, int] = await self.store.table_counts()
        return counts

    async def pay(self, payment_id: str, state: str = "captured") -> None:
        await self.learn(
            Event(
                type=f"payment.{state}",
                payload={"payment_id": payment_id, "reference": REFERENCE_PREFIX + "x"},
            )
        )


@pytest.fixture
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    settings = PermitSettings(
        **await storage(database_url, tmp_path, "work_permits"),
        hub_url=ISSUER,
        client_id="permits-service",
        client_secret="s3cret",
        sweep_seconds=3600,
        reminder_days=30,
    )
    hub = FakeHub()
    probe = principal(hub, "p-officer", audience="permits", roles=("agency_officer",))
    url = "/api/permits/v1/permits/wp_x"
    async with serve(create_app, settings, hub, probe=url, headers=probe) as service:
        yield World(service, hub)


# ---- issue ----------------------------------------------------------------------------------


async def test_a_delegated_vendor_gets_a_permit_for_a_visa_and_a_contract(world: World) -> None:
    permit = await world.issued()
    jsonschema.validate(permit, schema("permit.schema.json"))
    assert permit["state"] == "active"
    assert permit["person_id"] == WORKER
    assert permit["worker"] == {
        "name": "Ravi Kumar",
        "nationality": "IND",
        "passport_number": "P1234567",
    }
    assert permit["occupation"] == "2512"
    assert date.fromisoformat(permit["expires_on"]) > date.today() + timedelta(days=360)
    (issued,) = await world.wait_event("permit.issued")
    assert {k: issued.payload[k] for k in ("permit_id", "person_id", "establishment_id")} == {
        "permit_id": permit["id"],
        "person_id": WORKER,
        "establishment_id": EST,
    }
    assert issued.payload["expires_on"] == permit["expires_on"]
    notices = await world.wait_event("notification.requested", 2)
    assert {n.payload["recipient"]["kind"] for n in notices} == {"person", "client"}
    for notice in notices:
        assert "channels" not in notice.payload  # the person's preference decides
        assert notice.payload["template"] == "permit.issued"
        assert notice.payload["reference"] == REFERENCE_PREFIX + permit["id"]
    assert len({n.payload["notification_id"] for n in notices}) == 2

    # the worker sees it among their own; another person does not
    mine = await world.client.get("/api/permits/v1/me/permits", headers=world.worker)
    assert [p["id"] for p in mine.json()["items"]] == [permit["id"]]
    jsonschema.validate(mine.json(), schema("permit-page.schema.json"))
    theirs = await world.client.get("/api/permits/v1/me/permits", headers=world.someone)
    assert theirs.json()["items"] == []
    history = await world.client.get(
        f"/api/permits/v1/permits/{permit['id']}/history", headers=world.worker
    )
    assert [(h["from"], h["to"]) for h in history.json()["items"]] == [(None, "active")]


@pytest.mark.parametrize(
    ("events", "code", "status"),
    [
        ([contract_event()], "visa_not_issued", 422),
        ([visa_event(establishment=OTHER), contract_event()], "visa_not_issued", 422),
        (
            [visa_event(), visa_event("cancelled", at="2026-01-03T00:00:00Z"), contract_event()],
            "visa_not_issued",
            422,
        ),
        ([visa_event()], "no_active_contract", 422),
        ([visa_event(), contract_event(establishment=OTHER)], "no_active_contract", 422),
        ([visa_event(), contract_event(visa="W000000999")], "no_active_contract", 422),
        (
            [visa_event(), contract_event(), contract_event("terminated", at="2026-02-01T00:00Z")],
            "no_active_contract",
            422,
        ),
        (
            [
                visa_event(),
                contract_event(),
                Event(
                    type="compliance.band.changed",
                    payload={"establishment_id": EST, "band": "red", "previous": "yellow",
                             "at": "2026-01-05T00:00:00+00:00"},
                ),
            ],
            "compliance_band_blocks",
            422,
        ),
    ],
)  # fmt: skip
async def test_refusals_have_stable_codes_and_write_nothing(
    world: World, events: list[Event], code: str, status: int
) -> None:
    await world.learn(*events)
    before = await world.counts()
    answer = await world.issue()
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code
    assert answer.json()["reasons"][0] == code
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert await world.counts() == before


async def test_a_second_active_permit_is_refused(world: World) -> None:
    first = await world.issued()
    await world.learn(
        visa_event(number="W000000002"), contract_event(contract_id="ct_2", visa="W000000002")
    )
    before = await world.counts()
    second = await world.issue({"visa_number": "W000000002", "contract_id": "ct_2"}, key="k-2")
    problem(second, 409, "permit_already_active")
    assert await world.counts() == before
    # once the first is cancelled the worker may hold a new one
    await world.client.post(
        f"/api/permits/v1/permits/{first['id']}/cancel",
        json={"reason": "left"},
        headers=world.owner,
    )
    again = await world.issue({"visa_number": "W000000002", "contract_id": "ct_2"}, key="k-3")
    assert again.status_code == 201, again.text


async def test_a_retry_with_the_same_key_makes_nothing_new(world: World) -> None:
    first = await world.issued()
    again = await world.issue()
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first["id"]
    other = await world.issue({"visa_number": VISA, "contract_id": "ct_9"})
    problem(other, 409, "idempotency_conflict")
    assert (await world.counts())["work_permits"] == 1


async def test_concurrent_requests_make_one_permit(world: World) -> None:
    await world.learn(visa_event(), contract_event())
    answers = await asyncio.gather(*(world.issue(key=f"race-{n % 2}") for n in range(6)))
    assert all(a.status_code in {200, 201, 409} for a in answers), [a.text for a in answers]
    assert (await world.counts())["work_permits"] == 1
    assert (await world.counts())["work_permit_holders"] == 1


# ---- renew ----------------------------------------------------------------------------------


async def test_renewal_charges_once_and_renews_when_paid(world: World) -> None:
    permit = await world.issued()
    url = f"/api/permits/v1/permits/{permit['id']}/renew"
    answer = await world.client.post(url, headers={**world.owner, "idempotency-key": "r-1"})
    assert answer.status_code == 202, answer.text
    assert answer.json()["state"] == "renewal_pending"
    assert answer.json()["renewal"]["fee"] == RENEWAL_FEE
    replay = await world.client.post(url, headers={**world.owner, "idempotency-key": "r-1"})
    assert replay.status_code == 200
    second = await world.client.post(url, headers={**world.vendor, "idempotency-key": "r-2"})
    problem(second, 409, "invalid_transition")
    assert len(world.hub.payments) == 1  # one charge, whatever the retries

    payment_id = answer.json()["renewal"]["payment_id"]
    await world.pay(payment_id)
    await world.pay(payment_id)  # a duplicate is absorbed
    renewed = await world.wait_state(permit["id"], "active")
    assert renewed["renewals"] == 1
    assert renewed["expires_on"] > permit["expires_on"]
    (event,) = await world.wait_event("permit.renewed")
    assert event.payload["expires_on"] == renewed["expires_on"]


async def test_a_failed_fee_leaves_the_permit_as_it_was_and_can_be_retried(world: World) -> None:
    permit = await world.issued()
    url = f"/api/permits/v1/permits/{permit['id']}/renew"
    first = await world.client.post(url, headers={**world.owner, "idempotency-key": "r-1"})
    await world.pay(first.json()["renewal"]["payment_id"], "failed")
    back = await world.wait_state(permit["id"], "active")
    assert (back["renewals"], back["expires_on"]) == (0, permit["expires_on"])
    retry = await world.client.post(url, headers={**world.owner, "idempotency-key": "r-2"})
    assert retry.status_code == 202
    assert retry.json()["renewal"]["payment_id"] != first.json()["renewal"]["payment_id"]


async def test_a_payment_outage_changes_nothing(world: World) -> None:
    permit = await world.issued()
    before = await world.counts()
    world.hub.fail_payments = True
    url = f"/api/permits/v1/permits/{permit['id']}/renew"
    answer = await world.client.post(url, headers={**world.owner, "idempotency-key": "r-1"})
    problem(answer, 503, "hub_unavailable")
    assert await world.counts() == before
    assert (await world.get(permit["id"])).json()["state"] == "active"


async def test_no_renewal_without_the_contract_or_in_the_red_band(world: World) -> None:
    permit = await world.issued()
    url = f"/api/permits/v1/permits/{permit['id']}/renew"
    await world.learn(
        Event(
            type="compliance.band.changed",
            payload={"establishment_id": EST, "band": "red", "at": "2026-01-05T00:00:00Z"},
        )
    )
    red = await world.client.post(url, headers={**world.owner, "idempotency-key": "r-1"})
    problem(red, 422, "compliance_band_blocks")
    await world.learn(contract_event("terminated", at="2026-02-01T00:00:00Z"))
    ended = await world.client.post(url, headers={**world.owner, "idempotency-key": "r-2"})
    assert ended.json()["code"] == "no_active_contract"
    assert ended.json()["reasons"] == ["no_active_contract", "compliance_band_blocks"]
    assert world.hub.payments == {}  # nothing charged
    assert (await world.get(permit["id"])).json()["state"] == "active"


# ---- transfer -------------------------------------------------------------------------------


async def _transfer(world: World, permit: dict[str, Any]) -> dict[str, Any]:
    await world.learn(contract_event(contract_id="ct_new", establishment=OTHER))
    answer = await world.client.post(
        f"/api/permits/v1/establishments/{OTHER}/transfers",
        json={"person_id": WORKER, "contract_id": "ct_new"},
        headers={**world.other_owner, "idempotency-key": "t-1"},
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_a_transfer_needs_all_three_consents(world: World) -> None:
    permit = await world.issued()
    transfer = await _transfer(world, permit)
    jsonschema.validate(transfer, schema("transfer.schema.json"))
    assert transfer["missing"] == ["worker", "current"]
    url = f"/api/permits/v1/transfers/{transfer['id']}"

    worker = await world.client.post(f"{url}/consent", json={"as": "worker"}, headers=world.worker)
    assert worker.status_code == 200, worker.text
    assert worker.json()["missing"] == ["current"]
    # without the current establishment's consent nothing moved
    held = (await world.get(permit["id"], world.owner)).json()
    assert (held["state"], held["establishment_id"]) == ("transfer_pending", EST)
    assert (await world.get(permit["id"], world.other_owner)).status_code == 404
    assert not [e for e in world.events if e.type == "permit.transferred"]
    renew = await world.client.post(
        f"/api/permits/v1/permits/{permit['id']}/renew",
        headers={**world.owner, "idempotency-key": "r"},
    )
    assert renew.json()["code"] == "invalid_transition"  # a conflicting action

    done = await world.client.post(f"{url}/consent", json={"as": "current"}, headers=world.owner)
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "completed"
    moved = (await world.get(permit["id"], world.other_owner)).json()
    assert (moved["state"], moved["establishment_id"], moved["contract_id"]) == (
        "active", OTHER, "ct_new",
    )  # fmt: skip
    assert (await world.get(permit["id"], world.owner)).status_code == 404
    (event,) = await world.wait_event("permit.transferred")
    assert event.payload["establishment_id"] == OTHER
    assert event.payload["from_establishment"] == EST
    again = await world.client.post(f"{url}/consent", json={"as": "worker"}, headers=world.worker)
    assert again.status_code == 409


async def test_concurrent_consents_move_the_permit_once(world: World) -> None:
    permit = await world.issued()
    transfer = await _transfer(world, permit)
    url = f"/api/permits/v1/transfers/{transfer['id']}/consent"
    worker, current = await asyncio.gather(
        world.client.post(url, json={"as": "worker"}, headers=world.worker),
        world.client.post(url, json={"as": "current"}, headers=world.owner),
    )
    assert (worker.status_code, current.status_code) == (200, 200), (worker.text, current.text)
    assert {worker.json()["state"], current.json()["state"]} == {"pending", "completed"}
    await world.wait_event("permit.transferred")
    moved = (await world.get(permit["id"])).json()
    assert moved["establishment_id"] == OTHER
    history = (
        await world.client.get(
            f"/api/permits/v1/permits/{permit['id']}/history", headers=world.officer
        )
    ).json()["items"]
    assert [h["to"] for h in history] == ["active", "transfer_pending", "active"]
    cancels = await asyncio.gather(
        *(
            world.client.post(
                f"/api/permits/v1/permits/{permit['id']}/cancel",
                json={"reason": f"r{n}"},
                headers=world.other_owner,
            )
            for n in range(3)
        )
    )
    assert sorted(c.status_code for c in cancels) == [200, 409, 409]
    assert len([e for e in world.events if e.type == "permit.cancelled"]) <= 1


async def test_only_the_parties_answer_for_themselves(world: World) -> None:
    permit = await world.issued()
    transfer = await _transfer(world, permit)
    url = f"/api/permits/v1/transfers/{transfer['id']}"
    before = await world.counts()
    posing = await world.client.post(f"{url}/consent", json={"as": "worker"}, headers=world.owner)
    problem(posing, 403, "consent_not_permitted")
    as_current = await world.client.post(
        f"{url}/consent", json={"as": "current"}, headers=world.worker
    )
    assert as_current.json()["code"] == "consent_not_permitted"
    reader = await world.client.post(f"{url}/consent", json={"as": "current"}, headers=world.reader)
    assert reader.json()["code"] == "consent_not_permitted"
    for headers in (world.someone, world.token("p-x", memberships=("est_third:owner",))):
        hidden = await world.client.get(url, headers=headers)
        problem(hidden, 404, "transfer_not_found")
        assert (
            await world.client.post(f"{url}/consent", json={"as": "worker"}, headers=headers)
        ).status_code == 404
    bad = await world.client.post(f"{url}/consent", json={"as": "boss"}, headers=world.worker)
    assert bad.status_code == 400
    assert await world.counts() == before


async def test_a_declined_transfer_leaves_the_permit_where_it_was(world: World) -> None:
    permit = await world.issued()
    transfer = await _transfer(world, permit)
    url = f"/api/permits/v1/transfers/{transfer['id']}"
    declined = await world.client.post(
        f"{url}/decline", json={"as": "worker", "reason": "staying"}, headers=world.worker
    )
    assert declined.json()["state"] == "declined"
    held = (await world.get(permit["id"], world.owner)).json()
    assert (held["state"], held["establishment_id"], held["transfer_id"]) == ("active", EST, None)
    late = await world.client.post(f"{url}/consent", json={"as": "current"}, headers=world.owner)
    problem(late, 409, "invalid_transition")


async def test_the_last_consent_is_refused_when_the_new_contract_ended(world: World) -> None:
    permit = await world.issued()
    transfer = await _transfer(world, permit)
    url = f"/api/permits/v1/transfers/{transfer['id']}"
    await world.client.post(f"{url}/consent", json={"as": "worker"}, headers=world.worker)
    await world.learn(
        contract_event(
            "terminated", contract_id="ct_new", establishment=OTHER, at="2026-03-01T00:00:00Z"
        )
    )
    refused = await world.client.post(f"{url}/consent", json={"as": "current"}, headers=world.owner)
    problem(refused, 422, "no_active_contract")
    still = (await world.client.get(url, headers=world.owner)).json()
    assert (still["state"], still["missing"]) == ("pending", ["current"])  # nothing recorded
    assert (await world.get(permit["id"])).json()["establishment_id"] == EST


async def test_transfer_requests_are_checked(world: World) -> None:
    permit = await world.issued()
    url = f"/api/permits/v1/establishments/{OTHER}/transfers"
    body = {"person_id": WORKER, "contract_id": "ct_new"}
    no_contract = await world.client.post(
        url, json=body, headers={**world.other_owner, "idempotency-key": "a"}
    )
    assert no_contract.json()["code"] == "no_active_contract"
    not_theirs = await world.client.post(
        url, json=body, headers={**world.owner, "idempotency-key": "b"}
    )
    assert not_theirs.json()["code"] == "establishment_not_permitted"
    own = await world.client.post(
        f"/api/permits/v1/establishments/{EST}/transfers",
        json={"person_id": WORKER, "contract_id": "ct_1"},
        headers={**world.owner, "idempotency-key": "c"},
    )
    assert own.status_code == 400
    transfer = await _transfer(world, permit)
    second = await world.client.post(
        url, json=body, headers={**world.other_owner, "idempotency-key": "d"}
    )
    assert second.json()["code"] == "invalid_transition"  # one pending transfer at a time
    # cancelling the permit ends the pending transfer with it
    await world.client.post(
        f"/api/permits/v1/permits/{permit['id']}/cancel", json={"reason": "x"}, headers=world.owner
    )
    ended = await world.client.get(
        f"/api/permits/v1/transfers/{transfer['id']}", headers=world.other_owner
    )
    assert ended.json()["state"] == "cancelled"


# ---- cancel, expiry, learning ---------------------------------------------------------------


async def test_cancel_needs_a_reason_and_the_establishment(world: World) -> None:
    permit = await world.issued()
    url = f"/api/permits/v1/permits/{permit['id']}/cancel"
    assert (await world.client.post(url, json={}, headers=world.owner)).status_code == 400
    assert (await world.client.post(url, headers=world.owner)).status_code == 400
    worker = await world.client.post(url, json={"reason": "x"}, headers=world.worker)
    assert worker.json()["code"] == "establishment_not_permitted"
    reader = await world.client.post(url, json={"reason": "x"}, headers=world.reader)
    assert reader.status_code == 403
    stranger = await world.client.post(url, json={"reason": "x"}, headers=world.other_owner)
    assert stranger.status_code == 404
    cancelled = await world.client.post(
        url, json={"reason": "contract ended"}, headers=world.vendor
    )
    assert cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["cancel_reason"] == "contract ended"
    (event,) = await world.wait_event("permit.cancelled")
    assert event.payload["reason"] == "contract ended"
    again = await world.client.post(url, json={"reason": "x"}, headers=world.owner)
    assert again.json()["code"] == "invalid_transition"


async def test_the_sweep_reminds_once_then_expires(world: World) -> None:
    permit = await world.issued()
    expires = date.fromisoformat(permit["expires_on"])
    workflow = world.workflow
    real = workflow._clock
    try:
        workflow._clock = lambda: real() + (expires - date.today()) - timedelta(days=10)
        assert await workflow.sweep() == 1
        assert await workflow.sweep() == 0  # once
        (expiring,) = await world.wait_event("permit.expiring")
        assert expiring.payload["expires_on"] == permit["expires_on"]
        notices = [
            e for e in world.events
            if e.type == "notification.requested" and e.payload["template"] == "permit.expiring"
        ]  # fmt: skip
        assert len(notices) == 2
        workflow._clock = lambda: real() + (expires - date.today()) + timedelta(days=1)
        assert await workflow.sweep() == 1
    finally:
        workflow._clock = real
    assert (await world.wait_state(permit["id"], "expired"))["state"] == "expired"
    await world.wait_event("permit.expired")
    assert (await world.counts())["work_permit_holders"] == 0


async def test_occupation_changes_and_band_order_are_learnt(world: World) -> None:
    permit = await world.issued()
    await world.learn(
        Event(
            type="occupation.change.approved",
            payload={"request_id": "oc_1", "person_id": WORKER, "establishment_id": EST,
                     "from": "2512", "to": "2511", "reason": "promotion"},
        )
    )  # fmt: skip
    assert (await world.get(permit["id"])).json()["occupation"] == "2511"
    newer = {"establishment_id": OTHER, "band": "green", "at": "2026-02-01T00:00:00+00:00"}
    older = {"establishment_id": OTHER, "band": "red", "at": "2026-01-01T00:00:00+00:00"}
    await world.learn(Event(type="compliance.band.changed", payload=newer))
    await world.learn(Event(type="compliance.band.changed", payload=older))  # late and stale
    await _transfer(world, permit)  # green: allowed


# ---- bad input and access -------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[]",
        json.dumps({"visa_number": "V000000001", "contract_id": "ct_1"}),
        json.dumps({"visa_number": VISA}),
        json.dumps({"visa_number": VISA, "contract_id": "ct_1", "extra": 1}),
        json.dumps({"visa_number": VISA, "contract_id": "a b"}),
    ],
)
async def test_bad_bodies_are_problems(world: World, raw: str) -> None:
    answer = await world.client.post(
        f"/api/permits/v1/establishments/{EST}/permits",
        content=raw,
        headers={**world.vendor, "idempotency-key": "bad"},
    )
    problem(answer, 400, "invalid_request")
    assert (await world.counts())["work_permits"] == 0


async def test_the_key_and_the_token_are_required(world: World) -> None:
    url = f"/api/permits/v1/establishments/{EST}/permits"
    body = {"visa_number": VISA, "contract_id": "ct_1"}
    no_key = await world.client.post(url, json=body, headers=world.vendor)
    assert no_key.json()["code"] == "idempotency_key_required"
    no_token = await world.client.post(url, json=body, headers={"idempotency-key": "k"})
    assert no_token.status_code == 401
    forged = principal(FakeHub(), "p-owner", audience="permits")
    assert (await world.client.get(url, headers=forged)).json()["code"] == "invalid_token"
    visas_audience = principal(world.hub, "p-owner", audience="visas")
    assert (await world.client.get(url, headers=visas_audience)).status_code == 401
    listing = await world.client.get(url, params={"state": "flying"}, headers=world.owner)
    assert listing.status_code == 400


async def test_object_level_authorisation_on_every_endpoint(world: World) -> None:
    permit = await world.issued()
    transfer = await _transfer(world, permit)
    pid, tid = permit["id"], transfer["id"]
    # (method, path, body, key?) and who gets what: the establishment's reader may read only;
    # another establishment and another person see nothing of it
    reads = [
        ("GET", f"/api/permits/v1/permits/{pid}"),
        ("GET", f"/api/permits/v1/permits/{pid}/history"),
        ("GET", f"/api/permits/v1/establishments/{EST}/permits"),
        ("GET", f"/api/permits/v1/establishments/{EST}/transfers"),
        ("GET", f"/api/permits/v1/transfers/{tid}"),
    ]
    for method, path in reads:
        assert (await world.client.request(method, path, headers=world.reader)).status_code == 200
        for stranger in (world.someone, world.token("p-x", memberships=("est_third:owner",))):
            answer = await world.client.request(method, path, headers=stranger)
            assert answer.status_code in {403, 404}, (path, answer.text)
            assert answer.json()["code"] in {
                "permit_not_found", "transfer_not_found", "establishment_not_permitted",
            }  # fmt: skip
    # the worker sees their permit and its transfer, not the establishment's listings
    for path in (f"/api/permits/v1/permits/{pid}", f"/api/permits/v1/transfers/{tid}"):
        assert (await world.client.get(path, headers=world.worker)).status_code == 200
    for path in (f"/api/permits/v1/establishments/{EST}/permits",):
        assert (await world.client.get(path, headers=world.worker)).status_code == 403
    before = await world.counts()
    issue = {"visa_number": VISA, "contract_id": "ct_1"}
    take_over = {"person_id": WORKER, "contract_id": "ct_1"}
    writes = [
        (f"/api/permits/v1/establishments/{EST}/permits", issue),
        (f"/api/permits/v1/establishments/{EST}/transfers", take_over),
        (f"/api/permits/v1/permits/{pid}/renew", None),
        (f"/api/permits/v1/permits/{pid}/cancel", {"reason": "x"}),
        (f"/api/permits/v1/transfers/{tid}/consent", {"as": "current"}),
        (f"/api/permits/v1/transfers/{tid}/decline", {"as": "current"}),
    ]  # fmt: skip
    vendor_elsewhere = world.token(
        "c-2", kind="client", client_id="c-2", establishment=OTHER,
        delegated=(f"{EST}:permits.manage",),
    )  # fmt: skip
    for path, body in writes:
        for headers in (world.reader, world.someone, vendor_elsewhere):
            answer = await world.client.post(
                path,
                content=b"" if body is None else json.dumps(body),
                headers={**headers, "idempotency-key": "w"},
            )
            assert answer.status_code in {403, 404}, (path, answer.text)
    assert await world.counts() == before
