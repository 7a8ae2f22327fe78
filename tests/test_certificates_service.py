"""The certificates service in-process, on SQLite and PostgreSQL (its own schema).

The hub is stood in for at the service's only door (tests/registry_support.py); the service's
code, tables, outbox and relay are real, the bus is the in-process one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.certificates.app import create_app
from services.certificates.settings import CertificateSettings
from tests.registry_support import RegistryHub
from tests.service_support import Running, principal, problem, serve, storage
from tests.visas_support import ISSUER

BASE = "/api/certificates/v1"
EST, OTHER = "est_demo", "est_other"


def claim(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "number": "QC-2010-000001",
        "national_id": "1000000001",
        "degree": "bachelor",
        "institution": "King Saud University",
        "year": 2010,
    }
    body.update(changes)
    return body


class World:
    def __init__(self, service: Running, hub: RegistryHub) -> None:
        self.service = service
        self.client = service.client
        self.hub = hub
        self.aisha = principal(hub, "p-aisha", audience="certificates")
        self.omar = principal(hub, "p-omar", audience="certificates")
        self.hr = principal(
            hub, "p-hr", delegated=(f"{EST}:certificates.read",), audience="certificates"
        )
        self.owner_other = principal(
            hub, "p-other", memberships=(f"{OTHER}:owner",), audience="certificates"
        )

    async def submit(self, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        return await self.client.post(
            f"{BASE}/me/certificates",
            content=json.dumps(claim() if body is None else body),
            headers=headers or self.aisha,
        )

    async def counts(self) -> dict[str, int]:
        counts: dict[str, int] = await self.service.app.state[
            "certificates"
        ].workflow.store.table_counts()
        return counts


@pytest.fixture
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    settings = CertificateSettings(
        **await storage(database_url, tmp_path, "certificates"),
        hub_url=ISSUER,
        client_id="certificates-service",
        client_secret="s3cret",
        bus_database_url="unused",
        retry_seconds=3600,
    )
    hub = RegistryHub()
    probe = principal(hub, "p-probe", audience="certificates")
    url = f"{BASE}/me/certificates"
    async with serve(create_app, settings, hub, probe=url, headers=probe) as service:
        yield World(service, hub)


async def test_a_worker_submits_a_certificate_the_registry_verifies(world: World) -> None:
    answer = await world.submit(claim(institution="king saud  university"))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["state"] == "verified"
    assert body["mismatches"] == []
    assert body["registry"]["field"] == "business administration"
    assert body["audit_entry"] is not None  # the hub's audit entry of the read
    assert ("GET", "/api/registry/v1/certificates/QC-2010-000001") in world.hub.calls
    (event,) = await world.service.wait_events(lambda e: e.type == "certificate.verified")
    assert event.payload["certificate_id"] == body["id"]
    assert event.payload["person_id"] == "p-aisha"
    assert event.payload["national_id"] == "1000000001"
    assert {event.payload[k] for k in ("number", "degree", "year")} == {
        "QC-2010-000001",
        "bachelor",
        2010,
    }
    (notice,) = await world.service.wait_events(lambda e: e.type == "notification.requested")
    assert notice.payload["template"] == "certificate.verified"
    assert notice.payload["recipient"] == {"kind": "person", "id": "p-aisha"}
    assert "channels" not in notice.payload
    assert notice.payload["notification_id"] == f"{body['id']}.verified"
    mine = await world.client.get(f"{BASE}/me/certificates", headers=world.aisha)
    assert [item["id"] for item in mine.json()["items"]] == [body["id"]]


async def test_the_holder_is_who_the_hub_says_signed_in_not_the_id_typed_in(world: World) -> None:
    """The token's national_id (the hub's records) is compared with the registry's holder."""
    omar = principal(world.hub, "p-omar", audience="certificates", national_id="1000000002")
    posing = await world.submit(claim(national_id="1000000001"), headers=omar)  # Aisha's ID
    assert posing.status_code == 201, posing.text
    assert (posing.json()["state"], posing.json()["mismatches"]) == ("mismatch", ["holder"])
    assert posing.json()["registry"] is None  # Aisha's record is not shown to Omar
    assert posing.json()["national_id"] == "1000000002"
    aisha = principal(world.hub, "p-aisha", audience="certificates", national_id="1000000001")
    typo = await world.submit(claim(national_id="1000000003"), headers=aisha)  # a typo
    assert typo.status_code == 201, typo.text
    assert typo.json()["state"] == "verified"
    assert typo.json()["national_id"] == "1000000001"


@pytest.mark.parametrize(
    ("changes", "state", "mismatches"),
    [
        ({"year": 2011, "institution": "Cairo University"}, "mismatch", ["institution", "year"]),
        ({"degree": "master"}, "mismatch", ["degree"]),
        ({"national_id": "1000000002"}, "mismatch", ["holder"]),
        ({"number": "QC-2020-000999"}, "not_found", []),
        ({"number": "QC-2001-000003", "national_id": "1000000099"}, "revoked", []),
    ],
)
async def test_every_other_answer_is_a_rejection_with_its_reason(
    world: World, changes: dict[str, Any], state: str, mismatches: list[str]
) -> None:
    answer = await world.submit(claim(**changes))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["state"], body["mismatches"]) == (state, mismatches)
    if "holder" in mismatches or state == "not_found":
        assert body["registry"] is None  # someone else's record is never shown
    (event,) = await world.service.wait_events(lambda e: e.type == "certificate.rejected")
    assert event.payload["outcome"] == state
    assert event.payload["mismatches"] == mismatches
    assert not world.service.of_type("certificate.verified")
    # a rejected certificate may be submitted again, corrected
    again = await world.submit()
    assert again.status_code == 201
    assert again.json()["state"] == "verified"


async def test_an_unavailable_registry_gives_no_verdict_until_it_answers(world: World) -> None:
    world.hub.fail_registry = True
    answer = await world.submit()
    assert answer.status_code == 201, answer.text
    pending = answer.json()
    assert pending["state"] == "pending"
    assert pending["next_check_at"] is not None
    notice = await world.service.wait_events(lambda e: e.type == "notification.requested")
    assert notice[0].payload["template"] == "certificate.pending"
    still = await world.client.post(
        f"{BASE}/me/certificates/{pending['id']}/check", headers=world.aisha
    )
    assert still.status_code == 200
    assert still.json()["state"] == "pending"
    assert still.json()["attempts"] == 2
    assert not world.service.of_type("certificate.verified")
    assert not world.service.of_type("certificate.rejected")

    world.hub.fail_registry = False
    checked = await world.client.post(
        f"{BASE}/me/certificates/{pending['id']}/check", headers=world.aisha
    )
    assert checked.status_code == 200, checked.text
    assert checked.json()["state"] == "verified"
    await world.service.wait_events(lambda e: e.type == "certificate.verified")
    decided = await world.client.post(
        f"{BASE}/me/certificates/{pending['id']}/check", headers=world.aisha
    )
    problem(decided, 409, "invalid_transition")


async def test_the_recheck_loop_decides_due_pending_certificates(world: World) -> None:
    world.hub.fail_registry = True
    pending = (await world.submit()).json()
    workflow = world.service.app.state["certificates"].workflow
    assert await workflow.sweep() == 0  # not due yet (an hour away)
    world.hub.fail_registry = False
    row = await workflow.store.get(pending["id"])
    async with workflow.store.writing() as conn:
        await workflow.store.update(conn, row, {"next_check_at": row["submitted_at"]}, [])
    assert await workflow.sweep() == 1
    assert (await workflow.store.get(pending["id"]))["state"] == "verified"


async def test_a_resubmission_replays_and_a_different_claim_conflicts(world: World) -> None:
    first = await world.submit()
    again = await world.submit()
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    before = await world.counts()
    other = await world.submit(claim(year=2009))
    problem(other, 409, "certificate_already_submitted")
    assert await world.counts() == before
    reads = [c for c in world.hub.calls if c[1] == "/api/registry/v1/certificates/QC-2010-000001"]
    assert len(reads) == 1  # the registry was asked once


@pytest.mark.parametrize(
    "body",
    [
        [],
        {},
        claim(number="12345"),
        claim(national_id="99"),
        claim(degree="wizard"),
        claim(institution=""),
        claim(year=1800),
        claim(year="2010"),
        claim(extra=1),
    ],
)
async def test_bad_bodies_are_problems_and_change_nothing(world: World, body: Any) -> None:
    before = await world.counts()
    answer = await world.submit(body)
    problem(answer, 400, "invalid_request")
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert await world.counts() == before
    assert not [c for c in world.hub.calls if c[1].startswith("/api/registry/")]


async def test_tokens_and_principals(world: World) -> None:
    missing = await world.client.post(f"{BASE}/me/certificates", content=json.dumps(claim()))
    assert missing.status_code == 401
    forged = principal(RegistryHub(), "p-aisha", audience="certificates")
    assert (await world.submit(headers=forged)).status_code == 401
    wrong_audience = principal(world.hub, "p-aisha", audience="visas")
    assert (await world.submit(headers=wrong_audience)).status_code == 401
    client = principal(world.hub, "c-1", kind="client", audience="certificates")
    refused = await world.submit(headers=client)
    assert refused.status_code == 403
    assert (await world.client.get(f"{BASE}/me/certificates", headers=client)).status_code == 403
    not_json = await world.client.post(f"{BASE}/me/certificates", content=b"{", headers=world.aisha)
    assert not_json.status_code == 400


async def test_a_worker_sees_and_manages_only_their_own(world: World) -> None:
    mine = (await world.submit()).json()
    url = f"{BASE}/me/certificates/{mine['id']}"
    assert (await world.client.get(url, headers=world.aisha)).status_code == 200
    for method, path, body in (
        ("GET", url, None),
        ("POST", f"{url}/check", None),
        ("POST", f"{url}/shares", {"establishment_id": EST}),
        ("DELETE", f"{url}/shares/{EST}", None),
    ):
        answer = await world.client.request(
            method,
            path,
            headers=world.omar,
            content=None if body is None else json.dumps(body),
        )
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["code"] == "certificate_not_found"
    listed = await world.client.get(f"{BASE}/me/certificates", headers=world.omar)
    assert listed.json()["items"] == []
    assert (await world.client.get(f"{url}x", headers=world.aisha)).status_code == 404


async def test_shared_certificates_are_seen_by_that_establishments_hr_only(world: World) -> None:
    mine = (await world.submit()).json()
    url = f"{BASE}/me/certificates/{mine['id']}"
    listing = f"{BASE}/establishments/{EST}/certificates"
    assert (await world.client.get(listing, headers=world.hr)).json()["items"] == []
    not_shared = await world.client.get(f"{listing}/{mine['id']}", headers=world.hr)
    assert not_shared.status_code == 404

    for bad in ({}, {"establishment_id": "acme"}, {"establishment_id": EST, "x": 1}):
        refused = await world.client.post(
            f"{url}/shares", content=json.dumps(bad), headers=world.aisha
        )
        assert refused.status_code == 400, bad
    shared = await world.client.post(
        f"{url}/shares", content=json.dumps({"establishment_id": EST}), headers=world.aisha
    )
    assert shared.status_code == 200, shared.text
    assert shared.json()["shared_with"] == [EST]

    seen = await world.client.get(listing, headers=world.hr)
    (item,) = seen.json()["items"]
    assert item["id"] == mine["id"]
    assert item["state"] == "verified"
    assert "national_id" not in item  # the HR view carries no identity number
    one = await world.client.get(f"{listing}/{mine['id']}", headers=world.hr)
    assert one.status_code == 200

    # another establishment's owner, a person without the delegation, a vendor not acting for it
    vendor = principal(
        world.hub, "c-v", kind="client", establishment=OTHER,
        delegated=(f"{EST}:certificates.read",), audience="certificates",
    )  # fmt: skip
    visas_only = principal(
        world.hub, "p-v", delegated=(f"{EST}:visas.apply",), audience="certificates"
    )
    for headers in (world.owner_other, world.omar, vendor, visas_only):
        for path in (listing, f"{listing}/{mine['id']}"):
            answer = await world.client.get(path, headers=headers)
            assert answer.status_code == 403, path
            assert answer.json()["code"] == "establishment_not_permitted"
    other_listing = f"{BASE}/establishments/{OTHER}/certificates"
    assert (await world.client.get(other_listing, headers=world.owner_other)).json()["items"] == []

    gone = await world.client.delete(f"{url}/shares/{EST}", headers=world.aisha)
    assert gone.status_code == 204
    assert (await world.client.get(listing, headers=world.hr)).json()["items"] == []
