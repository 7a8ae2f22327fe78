"""Issue 7's whole journey through the running hub: every service a real process, both back-ends.

Processes: the hub (``hub serve``); the sandbox civil, commercial and education registries, the
payment provider and the SMS and e-mail providers; and the visa, contracts, work permits,
occupations, certificates, compliance and notification services (``python -m services.<name>``),
each on a free loopback port. The test publishes no event: every service learns from the
others' events only.

A vendor delegated by Demo Trading Co applies for a work visa for Maria; the fee goes through
the payment provider; an agency officer signed in through the SSO approves; the visa is issued.
The vendor drafts Maria's contract (her visa number in it); Maria signs in through the SSO login,
accepts and signs; the vendor signs; both signatures verify. ``contract.activated`` teaches the
permits service the contract (the visa it learnt from ``visa.application.issued``): the permit
is issued. Maria's diploma is verified through the education registry; the establishment asks
to make her a nursing professional, which an officer approves (a diploma is below the bachelor's
the rule asks for, so it goes to review). The compliance service recomputes the establishment's
band from the contract events (the CR number comes in them). Every notification meant for Maria
or the vendor is delivered by e-mail (the sandbox's signed receipt through the hub) and shows
``delivered`` in their inbox through the hub; none is refused by the notification contract; and
every registrar read is in the hub's audit chain (``hub audit verify`` holds) and Maria's in her
``/api/me/v1/data-access``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

import httpx
import jwt
import pytest

from tests.fleet_support import (
    CERTIFICATES,
    COMPLIANCE,
    CONTRACTS,
    NOTIFICATIONS,
    OCCUPATIONS,
    PERMITS,
    VISAS,
    Fleet,
    delegating_establishment,
    people_stores,
    run_fleet,
)
from tests.helpers import until
from tests.sso_e2e_support import TIMEOUT, add_person

pytestmark = pytest.mark.integration

CR = "4030000001"  # Demo Trading Co in the sandbox commercial registry: active, retail
OWNER, OFFICER = "1000000201", "1000000202"
WORKER = "2000000001"  # Maria Santos, resident: QC-2014-000002 (a diploma) in the sandbox
VENDOR_SCOPES = "visas.apply contracts.manage permits.manage occupations.manage compliance.read"
VENDOR_EMAIL, WORKER_EMAIL = "hr@demo-trading.example", "maria@mail.example"


def _until(check: Callable[[], Any], what: str, seconds: float = 40) -> Any:
    return until(check, what, seconds=seconds, interval=0.2)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, backends: dict[str, str]) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("journey-e2e")
    services = [NOTIFICATIONS, VISAS, CONTRACTS, PERMITS, OCCUPATIONS, CERTIFICATES, COMPLIANCE]
    # the test only listens: it publishes nothing
    with run_fleet(tmp, backends, services, listen={"journey": ["#"]}, notify=True) as fleet:
        yield fleet


async def _arrange(url: str, owner: str, officer: str, vendor: str) -> str:
    async with people_stores(url) as people:
        establishment = await delegating_establishment(
            people, CR, "Demo Trading Co", owner, VENDOR_SCOPES.split(), grantee_client=vendor
        )
        await people.staff.grant(officer, "agency_officer", agency="immigration")
        return establishment


def _ok(answer: httpx.Response, *status: int) -> dict[str, Any]:
    assert answer.status_code in (status or (200,)), answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_visa_contract_permit_occupation_certificate_compliance_notified_and_audited(
    system: Fleet,
) -> None:
    hub, tmp, backends = system.hub, system.tmp, system.backends
    owner = add_person(tmp, hub, backends, OWNER, "Owner")
    officer = add_person(tmp, hub, backends, OFFICER, "Officer")
    worker = add_person(tmp, hub, backends, WORKER, "Maria", kind="resident")  # one person
    vendor = system.client("HR suite", "acme", VENDOR_SCOPES)
    establishment = system.loop.run(
        _arrange(system.database_url(), owner, officer, vendor["client_id"])
    )
    vendor_auth = system.acting_for(vendor, CR, VENDOR_SCOPES)
    # Maria signs in through the SSO login; she and the vendor want e-mail.
    worker_auth = system.token(WORKER)
    preferences = f"{hub.url}/api/notifications/v1/me/preferences"
    for auth, email in ((worker_auth, WORKER_EMAIL), (vendor_auth, VENDOR_EMAIL)):
        chosen = {"channels": ["email"], "language": "en", "email": email, "phone": None}
        _ok(httpx.put(preferences, json=chosen, headers=auth, timeout=TIMEOUT))

    # 1. The visa: the vendor applies, the fee is captured, an officer approves, it is issued.
    visa_body = {
        "cr_number": CR,
        "worker": {"given_name": "Maria", "family_name": "Santos", "nationality": "PHL",
                   "passport_number": "P2000001", "birth_date": "1988-02-11"},
        "occupation": "5223",  # shop sales assistants: an officer reviews it
        "monthly_salary": 8000,
        "contact_email": VENDOR_EMAIL,
    }  # fmt: skip
    application = _ok(
        httpx.post(
            f"{hub.url}/api/visas/v1/establishments/{establishment}/applications",
            json=visa_body,
            headers={**vendor_auth, "Idempotency-Key": "journey-visa"},
            timeout=TIMEOUT,
        ),
        201,
    )
    view = f"{hub.url}/api/visas/v1/applications/{application['id']}"
    _until(
        lambda: (
            httpx.get(view, headers=vendor_auth, timeout=TIMEOUT).json()["state"] == "in_review"
        ),
        "the visa fee was never captured",
    )
    officer_auth = system.token(OFFICER)
    decided = _ok(
        httpx.post(
            f"{hub.url}/api/visas/v1/review/applications/{application['id']}/decision",
            json={"decision": "approve", "reason": "documents in order"},
            headers=officer_auth,
            timeout=TIMEOUT,
        )
    )
    assert decided["state"] == "issued", decided
    visa_number = decided["visa"]["number"]

    # 2. The contract: drafted with her visa, offered, accepted and signed by Maria through the
    #    SSO, signed by the vendor; both signatures verify against the hub's keys.
    contracts = f"{hub.url}/api/contracts/v1"
    contract_body = {
        "cr_number": CR,
        "employee": {"id": worker, "name": "Maria Santos", "nationality": "PHL",
                     "citizen": False, "visa_number": visa_number},
        "occupation": "5223",
        "salary": 8000,
        "allowances": {"housing": 1500},
        "start_date": (date.today() + timedelta(days=7)).isoformat(),
        "terms": {"notice_days": 30, "clauses": []},
    }  # fmt: skip
    contract = _ok(
        httpx.post(
            f"{contracts}/establishments/{establishment}/contracts",
            json=contract_body,
            headers={**vendor_auth, "Idempotency-Key": "journey-contract"},
            timeout=TIMEOUT,
        ),
        201,
    )
    one = f"{contracts}/contracts/{contract['id']}"
    assert _ok(httpx.post(f"{one}/offer", headers=vendor_auth, timeout=TIMEOUT))["state"] == (
        "offered"
    )
    worker_auth = system.token(WORKER)  # she signs in again to review it
    mine = _ok(httpx.get(f"{contracts}/me/contracts", headers=worker_auth, timeout=TIMEOUT))
    assert [c["id"] for c in mine["items"]] == [contract["id"]]
    accepted = _ok(httpx.post(f"{one}/accept", headers=worker_auth, timeout=TIMEOUT))
    assert accepted["state"] == "accepted"
    _ok(httpx.post(f"{one}/sign", headers=worker_auth, timeout=TIMEOUT))
    active = _ok(httpx.post(f"{one}/sign", headers=vendor_auth, timeout=TIMEOUT))
    assert active["state"] == "active", active
    verified = _ok(httpx.get(f"{one}/signatures/verify", headers=worker_auth, timeout=TIMEOUT))
    assert (verified["valid"], verified["complete"]) == (True, True), verified
    signers = {s["party"]: s["signer"] for s in verified["signatures"]}
    assert (signers["employee"]["kind"], signers["employee"]["id"]) == ("person", worker)
    assert signers["employer"]["client_id"] == vendor["client_id"]
    jwks = _ok(httpx.get(f"{hub.url}/.well-known/jwks.json", timeout=TIMEOUT))
    signatures = _ok(httpx.get(f"{one}/signatures", headers=vendor_auth, timeout=TIMEOUT))
    assert len(signatures["items"]) == 2
    for signature in signatures["items"]:
        kid = jwt.get_unverified_header(signature["jws"])["kid"]
        key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid)).key
        claims = jwt.decode(signature["jws"], key, algorithms=["EdDSA"])
        assert claims["document_hash"] == verified["document_hash"]

    # 3. The permit: the permits service learnt the visa and the contract from their events.
    permits = f"{hub.url}/api/permits/v1/establishments/{establishment}/permits"
    body = {"visa_number": visa_number, "contract_id": contract["id"]}
    answer = _until(
        lambda: (
            (a := httpx.post(
                permits, json=body, headers={**vendor_auth, "Idempotency-Key": "journey-permit"},
                timeout=TIMEOUT,
            )).status_code in {200, 201}
            or a.json().get("code") not in {"no_active_contract", "visa_not_issued"}
        ) and a,
        "the permits service never learnt the visa and the contract",
    )  # fmt: skip
    permit = _ok(answer, 200, 201)
    assert (permit["state"], permit["person_id"], permit["establishment_id"]) == (
        "active", worker, establishment,
    )  # fmt: skip
    held = _ok(httpx.get(f"{hub.url}/api/permits/v1/me/permits", headers=worker_auth))
    assert [p["id"] for p in held["items"]] == [permit["id"]]

    # 4. Her diploma, verified through the education registry (the holder is who signed in).
    certificate = _ok(
        httpx.post(
            f"{hub.url}/api/certificates/v1/me/certificates",
            json={"number": "QC-2014-000002", "national_id": WORKER, "degree": "diploma",
                  "institution": "University of the Philippines", "year": 2014},
            headers=worker_auth,
            timeout=TIMEOUT,
        ),
        201,
    )  # fmt: skip
    assert certificate["state"] == "verified", certificate

    # 5. The change of occupation: the establishment asks, the rule sends it to an officer
    #    (a diploma is below a professional's bachelor), the officer approves.
    changes = f"{hub.url}/api/occupations/v1/establishments/{establishment}/change-requests"
    change = _ok(
        _until(
            lambda: (
                (a := httpx.post(
                    changes, json={"person_id": worker, "to": "2221", "reason": "nursing role"},
                    headers=vendor_auth, timeout=TIMEOUT,
                )).status_code != 422 or a.json().get("reasons") != ["no_active_contract"]
            ) and a,
            "the occupations service never learnt the contract",
        ),
        201,
    )  # fmt: skip
    assert change["state"] == "in_review", change
    approved = _ok(
        httpx.post(
            f"{hub.url}/api/occupations/v1/review/change-requests/{change['id']}/decision",
            json={"decision": "approve", "reason": "diploma verified, nursing experience"},
            headers=officer_auth,
            timeout=TIMEOUT,
        )
    )
    assert approved["state"] == "approved", approved

    # 6. The compliance band, recomputed from the contract events (the CR number in them).
    standing_url = f"{hub.url}/api/compliance/v1/establishments/{establishment}/standing"
    standing = _until(
        lambda: (
            (s := httpx.get(standing_url, headers=vendor_auth, timeout=TIMEOUT)).status_code == 200
            and s.json()["total"] == 1
            and s.json()["sector"] == "retail"
            and s.json()
        ),
        "the compliance service never recomputed the band",
    )
    assert (standing["band"], standing["citizens"], standing["cr_number"]) == ("exempt", 0, CR)
    changed = _until(
        lambda: [e for e in system.events if e.type == "compliance.band.changed"],
        "no compliance.band.changed",
    )
    assert changed[0].payload["establishment_id"] == establishment

    # 7. Every step's event, from the services themselves.
    for step in (
        "visa.application.issued", "contract.drafted", "contract.accepted", "contract.activated",
        "permit.issued", "certificate.verified", "occupation.change.requested",
        "occupation.change.approved",
    ):  # fmt: skip
        _until(lambda step=step: any(e.type == step for e in system.events), f"no {step}")
    activated = next(e for e in system.events if e.type == "contract.activated")
    assert activated.payload["cr_number"] == CR
    assert activated.payload["employee"]["id"] == worker

    # 8. Every notification meant for Maria or the vendor is delivered by e-mail and shows so in
    #    their inbox through the hub; the notification service refused none (its metrics).
    def requested() -> list[dict[str, Any]]:
        return [e.payload for e in system.events if e.type == "notification.requested"]

    expected = {
        "worker": {"contract.offered", "contract.activated", "permit.issued",
                   "certificate.verified", "occupation.change.approved"},
        "vendor": {"visa.application.issued", "contract.activated", "permit.issued"},
    }  # fmt: skip
    owners = {"worker": ("person", worker), "vendor": ("client", vendor["client_id"])}
    auths = {"worker": worker_auth, "vendor": vendor_auth}
    for who, templates in expected.items():
        _until(
            lambda who=who, templates=templates: (
                templates
                <= {
                    n["template"]
                    for n in requested()
                    if (n["recipient"]["kind"], n["recipient"]["id"]) == owners[who]
                }
            ),
            f"{who}: not every step asked for a notification",
        )
    for who, (kind, ident) in owners.items():
        wanted = {
            n["notification_id"]
            for n in requested()
            if (n["recipient"]["kind"], n["recipient"]["id"]) == (kind, ident)
        }

        def inbox(auth: dict[str, str] = auths[who]) -> list[dict[str, Any]]:
            page = httpx.get(
                f"{hub.url}/api/notifications/v1/me/inbox",
                params={"limit": "100"},
                headers=auth,
                timeout=TIMEOUT,
            )
            items: list[dict[str, Any]] = _ok(page)["items"]
            return items

        items = _until(
            lambda inbox=inbox, wanted=wanted: (
                len(found := [i for i in inbox() if i["status"] == "delivered"]) >= len(wanted)
                and found
            ),
            f"{who}: not every notification was delivered\n{system.logs()}",
            seconds=60,
        )
        assert {i["template"] for i in items} >= expected[who]
        assert all(i["channel"] == "email" for i in items)
        mails = system.loop.run(system.notify["email-provider"].messages())
        address = WORKER_EMAIL if who == "worker" else VENDOR_EMAIL
        ids = {d["provider_id"] for i in items for d in i["deliveries"] if d["channel"] == "email"}
        assert ids <= {m["id"] for m in mails if m["to"] == address}
    metrics = httpx.get(f"{system.urls['notifications']}/metrics", timeout=TIMEOUT).text
    refused = [
        line
        for line in metrics.splitlines()
        if line.startswith("notifications_events_total") and 'outcome="invalid"' in line
    ]
    assert all(line.endswith(" 0.0") for line in refused), refused

    def applied() -> float:  # each distinct request became one message, the band's included
        text = httpx.get(f"{system.urls['notifications']}/metrics", timeout=TIMEOUT).text
        line = 'notifications_events_total{outcome="applied",type="notification.requested"}'
        return sum(float(row.split()[-1]) for row in text.splitlines() if row.startswith(line))

    # The band change is the establishment's: in its inbox, which the vendor acting for it reads.
    def band_notice() -> list[dict[str, Any]]:
        page = httpx.get(
            f"{hub.url}/api/notifications/v1/me/inbox",
            params={"establishment": establishment},
            headers=vendor_auth,
            timeout=TIMEOUT,
        )
        return [i for i in _ok(page)["items"] if i["template"] == "compliance.band.changed"]

    band = _until(band_notice, "the establishment was never told of its band")
    assert band[0]["data"]["band"] == "exempt"
    other = httpx.get(
        f"{hub.url}/api/notifications/v1/me/inbox",
        params={"establishment": establishment},
        headers=worker_auth,
        timeout=TIMEOUT,
    )
    assert (other.status_code, other.json()["code"]) == (403, "establishment_not_permitted")
    distinct = {n["notification_id"] for n in requested()}
    assert any(n["recipient"]["kind"] == "establishment" for n in requested())
    _until(lambda: applied() == len(distinct), f"not every request applied: {applied()}")

    # 9. Every registrar read is in the hub's audit chain, the chain holds, and Maria sees the
    #    read of her certificate.
    reads = {(r.adapter, r.purpose, r.record_ref) for r in system.audit()}
    for read in (
        ("commercial-registry", "visa-eligibility", CR),
        ("commercial-registry", "employment-contract", CR),
        ("education-registry", "qualification-verification", "QC-2014-000002"),
        ("commercial-registry", "compliance-monitoring", CR),
    ):
        assert read in reads, reads
    system.verify_audit()
    seen = _ok(httpx.get(f"{hub.url}/api/me/v1/data-access", headers=worker_auth))
    assert any(
        entry["purpose"]["code"] == "qualification-verification"
        and entry["record"] == "QC-2014-000002"
        for entry in seen["entries"]
    ), seen
