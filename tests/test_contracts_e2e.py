"""An employment contract end to end through the running hub, with real processes, embedded.

On the embedded back-end set only: the journey test (``test_journey_e2e.py``) runs the same
service, this flow included, through the hub on both sets; a second run here added a minute
to CI and nothing the journey does not check.

Processes: the hub (``hub serve``), the sandbox civil, commercial and education registries, the
sandbox payment provider (the policies' payment routes need it) and the contracts service
(``python -m services.contracts``), each on a free loopback port. A vendor application
delegated ``contracts.manage`` by an establishment drafts a contract (the establishment is
checked in the sandbox commercial registry through the hub, and the read is in the audit
chain) and offers it; the employee signs in through the hub's SSO, finds it among their own,
accepts and signs it; the vendor signs for the establishment; the contract is active and both
signatures verify against the hub's JWKS, each naming the principal the hub authenticated.

Not yet end to end: the notification service has not landed, so the test stops at the
``notification.requested`` events on the bus.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import httpx
import jwt
import pytest

from tests.fleet_support import (
    CONTRACTS,
    Fleet,
    delegating_establishment,
    people_stores,
    run_fleet,
)
from tests.sso_e2e_support import TIMEOUT, add_person

pytestmark = [
    pytest.mark.integration,
    # the journey test covers the real back-end set: see the module's docstring
    pytest.mark.parametrize("backends", ["embedded"], indirect=True),
]

CR = "4030000001"  # Demo Trading Co in the sandbox commercial registry: active
SUSPENDED = "4030000002"
OWNER, EMPLOYEE = "1000000301", "1000000302"


async def _arrange(url: str, owner: str, vendor: str) -> str:
    async with people_stores(url) as people:
        return await delegating_establishment(
            people, CR, "Demo Trading Co", owner, ["contracts.manage"], grantee_client=vendor
        )


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, backends: dict[str, str]) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("contracts-e2e")
    with run_fleet(tmp, backends, [CONTRACTS], listen={"contracts": ["#"]}) as fleet:
        yield fleet


def test_draft_sign_in_accept_sign_and_verify_through_the_hub(system: Fleet) -> None:
    hub, tmp, backends = system.hub, system.tmp, system.backends
    owner = add_person(tmp, hub, backends, OWNER, "Owner")
    employee_id = add_person(tmp, hub, backends, EMPLOYEE, "Ravi")
    vendor = system.client("HR suite", "acme", "contracts.manage")
    establishment = system.loop.run(_arrange(system.database_url(), owner, vendor["client_id"]))
    vendor_auth = system.acting_for(vendor, CR, "contracts.manage")
    base = f"{hub.url}/api/contracts/v1"
    start = (date.today() + timedelta(days=14)).isoformat()
    body = {
        "cr_number": CR,
        "employee": {
            "id": employee_id, "name": "Ravi Tester", "nationality": "IND", "citizen": False,
            "visa_number": "W123456789",
        },
        "occupation": "2512",
        "salary": 15000,
        "allowances": {"housing": 3000},
        "start_date": start,
        "terms": {"notice_days": 60, "clauses": ["Remote work two days a week."]},
    }  # fmt: skip
    url = f"{base}/establishments/{establishment}/contracts"

    # A suspended establishment is refused with its stable code, and nothing is made.
    refused = httpx.post(
        url,
        json={**body, "cr_number": SUSPENDED},
        headers={**vendor_auth, "Idempotency-Key": "e2e-suspended"},
        timeout=TIMEOUT,
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "establishment_not_active"

    headers = {**vendor_auth, "Idempotency-Key": "e2e-1"}
    drafted = httpx.post(url, json=body, headers=headers, timeout=TIMEOUT)
    assert drafted.status_code == 201, drafted.text
    contract = drafted.json()
    again = httpx.post(url, json=body, headers=headers, timeout=TIMEOUT)
    assert (again.status_code, again.json()["id"]) == (200, contract["id"])
    one = f"{base}/contracts/{contract['id']}"
    offered = httpx.post(f"{one}/offer", headers=vendor_auth, timeout=TIMEOUT)
    assert offered.json()["state"] == "offered", offered.text

    # The registrar check went through the hub's adapter, under its purpose, into the audit.
    reads = system.audit()
    assert any(
        (r.adapter, r.operation, r.purpose, r.record_ref)
        == ("commercial-registry", "get_establishment", "employment-contract", CR)
        for r in reads
    ), reads

    # The employee signs in through the SSO, finds the offer among their own and accepts it.
    employee_auth = system.token(EMPLOYEE)
    mine = httpx.get(f"{base}/me/contracts", headers=employee_auth, timeout=TIMEOUT)
    assert mine.status_code == 200, mine.text
    assert [c["id"] for c in mine.json()["items"]] == [contract["id"]]
    theirs = httpx.get(url, headers=employee_auth, timeout=TIMEOUT)
    assert theirs.status_code == 403  # not the establishment's
    accepted = httpx.post(f"{one}/accept", headers=employee_auth, timeout=TIMEOUT)
    assert accepted.json()["state"] == "accepted", accepted.text

    # Both sign: the hub signs each hash for the principal it authenticated.
    signed = httpx.post(f"{one}/sign", headers=employee_auth, timeout=TIMEOUT)
    assert signed.json()["state"] == "accepted", signed.text
    active = httpx.post(f"{one}/sign", headers=vendor_auth, timeout=TIMEOUT)
    assert active.json()["state"] == "active", active.text

    verified = httpx.get(f"{one}/signatures/verify", headers=employee_auth, timeout=TIMEOUT)
    assert verified.status_code == 200, verified.text
    result = verified.json()
    assert (result["valid"], result["complete"]) == (True, True), result
    by_party = {s["party"]: s["signer"] for s in result["signatures"]}
    assert (by_party["employee"]["kind"], by_party["employee"]["id"]) == ("person", employee_id)
    assert (by_party["employer"]["kind"], by_party["employer"]["client_id"]) == (
        "client",
        vendor["client_id"],
    )
    assert by_party["employer"]["on_behalf_of"] == establishment

    # Anyone holding the JWS checks it against the hub's published keys.
    signatures = httpx.get(f"{one}/signatures", headers=vendor_auth, timeout=TIMEOUT).json()
    jwks = httpx.get(f"{hub.url}/.well-known/jwks.json", timeout=TIMEOUT).json()
    for signature in signatures["items"]:
        kid = jwt.get_unverified_header(signature["jws"])["kid"]
        key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid)).key
        claims = jwt.decode(signature["jws"], key, algorithms=["EdDSA"])
        assert claims["document_hash"] == result["document_hash"] == contract["document_hash"]

    pdf = httpx.get(f"{one}/document?format=pdf", headers=employee_auth, timeout=TIMEOUT)
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-1.4")

    # The events and the notification requests reached the bus for the other services.
    activated = system.wait_events(
        lambda e: e.type == "contract.activated", "activation", seconds=20
    )
    assert activated[0].payload["employee"] == {
        "id": employee_id,
        "nationality": "IND",
        "citizen": False,
    }
    notices = system.wait_events(
        lambda e: (
            e.type == "notification.requested"
            and e.payload["template"] == "contract.activated"
            and e.payload["recipient"]["id"] == employee_id
        ),
        "activation notice",
        seconds=20,
    )
    assert "channels" not in notices[0].payload
