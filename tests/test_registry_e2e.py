"""Certificates, occupations and compliance end to end through the running hub, real processes,
on the embedded back-end set (the journey test runs these services on both sets).

Processes: the hub (``hub serve``), the sandbox civil, commercial and education registries, and
the three services (``python -m services.certificates`` / ``occupations`` / ``compliance``),
each on a free loopback port. A worker signed in through the hub's SSO submits a qualification
certificate; the certificates service verifies it through the hub's education-registry route,
the read is in the hub's audit chain (``hub audit verify`` holds) and the worker sees it at
``/api/me/v1/data-access``. ``certificate.verified`` reaches the occupations service over the
bus, so the establishment's change of the worker's occupation to a professional one is approved
automatically; the compliance service reads the establishment's sector from the commercial
registry through the hub and emits ``compliance.band.changed`` as contracts come.

The contract service is built elsewhere: this test publishes its ``contract.activated`` events
on the bus itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from hub.backends.events.base import Event
from tests.fleet_support import (
    CERTIFICATES,
    COMPLIANCE,
    OCCUPATIONS,
    Fleet,
    people_stores,
    run_fleet,
)
from tests.sso_e2e_support import TIMEOUT, add_person

pytestmark = [
    pytest.mark.integration,
    # the journey test covers the real back-end set: see the module's docstring
    pytest.mark.parametrize("backends", ["embedded"], indirect=True),
]

CR = "4030000001"  # Demo Trading Co in the sandbox commercial registry: retail
WORKER, OWNER = "1000000001", "1000000301"  # the worker holds QC-2010-000001 in the sandbox


async def _arrange(url: str, owner: str, hr: str) -> str:
    async with people_stores(url) as people:
        establishment = await people.establishments.create(
            cr_number=CR, name="Demo Trading Co", sector="retail", size="small"
        )
        await people.establishments.add_member(establishment.id, owner, "owner")
        await people.establishments.add_member(establishment.id, hr, "hr_officer")
        await people.delegations.grant(  # a person's delegation needs an HR officer
            establishment.id,
            grantor=owner,
            scopes=["occupations.manage", "certificates.read", "compliance.read"],
            valid_until=datetime.now(UTC) + timedelta(days=30),
            grantee_person=hr,
        )
        return establishment.id


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, backends: dict[str, str]) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("registry-e2e")
    patterns = ["certificate.#", "occupation.#", "compliance.#", "notification.requested"]
    with run_fleet(
        tmp,
        backends,
        [CERTIFICATES, OCCUPATIONS, COMPLIANCE],
        listen={"registry": patterns},
        payments=False,
    ) as fleet:
        yield fleet


def _contract(establishment: str, number: int, person: str, *, citizen: bool) -> Event:
    return Event(
        type="contract.activated",
        payload={"contract_id": f"ct_e2e_{number}", "establishment_id": establishment,
                 "employee": {"id": person, "citizen": citizen,
                              "nationality": "SAU" if citizen else "PHL"},
                 "occupation": "5223", "salary": 5000, "start_date": "2026-01-01",
                 "end_date": None, "state": "active", "at": datetime.now(UTC).isoformat()},
    )  # fmt: skip


def test_a_certificate_verified_through_the_registry_unlocks_a_change_of_occupation(
    system: Fleet,
) -> None:
    hub, tmp, backends = system.hub, system.tmp, system.backends
    worker = add_person(tmp, hub, backends, WORKER, "Aisha")
    owner = add_person(tmp, hub, backends, OWNER, "Owner")
    establishment = system.loop.run(_arrange(system.database_url(), owner, worker))
    worker_auth = system.token(WORKER)

    # The worker submits the certificate; the registry's record decides: verified.
    base = f"{hub.url}/api/certificates/v1"
    claim = {"number": "QC-2010-000001", "national_id": WORKER, "degree": "bachelor",
             "institution": "King Saud University", "year": 2010}  # fmt: skip
    answer = httpx.post(f"{base}/me/certificates", json=claim, headers=worker_auth, timeout=TIMEOUT)
    assert answer.status_code == 201, answer.text
    certificate = answer.json()
    assert certificate["state"] == "verified", certificate
    assert certificate["audit_entry"] is not None
    wrong = httpx.post(
        f"{base}/me/certificates",
        json={**claim, "number": "QC-2014-000002", "national_id": WORKER},
        headers=worker_auth,
        timeout=TIMEOUT,
    )  # Maria's diploma: someone else's certificate
    assert wrong.json()["state"] == "mismatch"
    assert wrong.json()["registry"] is None
    stranger = httpx.get(f"{base}/me/certificates/{certificate['id']}", timeout=TIMEOUT)
    assert stranger.status_code == 401

    # The registrar read is in the hub's audit chain, the chain holds, the worker sees the read.
    reads = system.audit()
    assert any(
        (r.adapter, r.operation, r.purpose, r.record_ref, r.person_ref)
        == ("education-registry", "get_certificate", "qualification-verification",
            "QC-2010-000001", WORKER)
        for r in reads
    ), reads  # fmt: skip
    system.verify_audit()
    seen = httpx.get(f"{hub.url}/api/me/v1/data-access", headers=worker_auth, timeout=TIMEOUT)
    assert seen.status_code == 200, seen.text
    assert any(
        entry["purpose"]["code"] == "qualification-verification"
        and entry["record"] == "QC-2010-000001"
        for entry in seen.json()["entries"]
    ), seen.json()
    system.wait_events(
        lambda e: (
            e.type == "certificate.verified" and e.payload["certificate_id"] == certificate["id"]
        ),
        "certificate.verified",
    )
    notice = system.wait_events(
        lambda e: (
            e.type == "notification.requested" and e.payload["template"] == "certificate.verified"
        ),
        "the worker's notification",
    )[0]
    assert "channels" not in notice.payload

    # The worker shares it with the establishment; its HR (the worker herself holds the
    # delegation here) reads it through the hub.
    shared = httpx.post(
        f"{base}/me/certificates/{certificate['id']}/shares",
        json={"establishment_id": establishment},
        headers=worker_auth,
        timeout=TIMEOUT,
    )
    assert shared.status_code == 200, shared.text
    listed = httpx.get(
        f"{base}/establishments/{establishment}/certificates", headers=worker_auth, timeout=TIMEOUT
    )
    assert [c["id"] for c in listed.json()["items"]] == [certificate["id"]]

    # The contract (published here for the contract service) and the verified certificate
    # reached the occupations service: a professional occupation is approved at once.
    contracts = [_contract(establishment, n, f"citizen-{n}", citizen=True) for n in range(3)]
    contracts += [_contract(establishment, n, f"worker-{n}", citizen=False) for n in range(3, 10)]
    contracts.append(_contract(establishment, 10, worker, citizen=True))
    for event in contracts:
        system.loop.run(system.bus.publish(event))
    occupations = f"{hub.url}/api/occupations/v1/establishments/{establishment}/change-requests"
    deadline = time.monotonic() + 30
    while True:
        change = httpx.post(
            occupations,
            json={"person_id": worker, "to": "2421", "reason": "promoted to analyst"},
            headers=worker_auth,
            timeout=TIMEOUT,
        )
        if change.status_code != 422:  # the contract event may not be consumed yet
            break
        assert time.monotonic() < deadline, change.text
        time.sleep(0.2)
    assert change.status_code == 201, change.text
    assert change.json()["state"] == "approved", change.json()
    system.wait_events(lambda e: e.type == "occupation.change.approved", "the approval")

    # The compliance service read the sector through the hub (retail, 0.30 required): 4 citizens
    # of 11 employees is green; the standing is the establishment's readers' only.
    standing_url = f"{hub.url}/api/compliance/v1/establishments/{establishment}/standing"
    deadline = time.monotonic() + 30
    while True:
        standing = httpx.get(standing_url, headers=worker_auth, timeout=TIMEOUT)
        if (
            standing.status_code == 200
            and standing.json()["total"] == 11
            and standing.json()["band"]
        ):
            break
        assert time.monotonic() < deadline, standing.text
        if standing.status_code == 200 and standing.json()["cr_number"] is None:
            owner_auth = system.token(OWNER)
            httpx.put(
                standing_url.replace("/standing", "/registration"),
                json={"cr_number": CR},
                headers=owner_auth,
                timeout=TIMEOUT,
            )
        time.sleep(0.3)
    assert (standing.json()["band"], standing.json()["sector"]) == ("green", "retail")
    changed = system.wait_events(
        lambda e: e.type == "compliance.band.changed" and e.payload["band"] == "green",
        "the band change",
    )[0]
    assert changed.payload["establishment_id"] == establishment
    reads = system.audit()
    assert any(
        (r.adapter, r.purpose, r.record_ref) == ("commercial-registry", "compliance-monitoring", CR)
        for r in reads
    ), reads
    outsider = add_person(tmp, hub, backends, "1000000302", "Outsider")
    assert outsider
    outsider_auth = system.token("1000000302")
    refused = httpx.get(standing_url, headers=outsider_auth, timeout=TIMEOUT)
    assert refused.status_code == 403
