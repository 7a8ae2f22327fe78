"""A work permit end to end through the running hub, with real processes, on both back-end sets.

Processes: the hub (``hub serve``), the sandbox civil and commercial registries, the sandbox
payment provider, the visa service (``python -m services.visas``) and the work permits service
(``python -m services.work_permits``), each on a free loopback port. A vendor application
delegated by an establishment gets a work visa issued (the visa service's
``visa.application.issued`` event teaches the permits service the visa); the test publishes
``contract.activated`` on the bus, standing in for the contracts service, which has not
landed; the vendor requests the permit through the hub, renews it with a fee the provider
captures (its signed webhook reaches the hub, whose ``payment.captured`` event reaches the
service), and a second establishment takes the worker over with the consent of the worker
(signed in through the hub's SSO) and of both establishments.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from hub.backends.events.base import Event
from tests.fleet_support import (
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

CR_A = "4030000001"  # Demo Trading Co in the sandbox commercial registry
CR_B = "4030000005"  # Tiny Shop
# the sign-in tests make citizens (national IDs); a resident worker would be the same here
OWNER, WORKER = "1000000201", "1000000301"
SCOPES = "visas.apply permits.manage"


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, backends: dict[str, str]) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("permits-e2e")
    listen = {"permits": ["permit.#"], "notifications": ["notification.requested"]}
    with run_fleet(tmp, backends, [VISAS, PERMITS], listen=listen) as fleet:
        yield fleet


async def _arrange(url: str, owner: str, vendors: dict[str, str]) -> dict[str, str]:
    """Two establishments, each delegating visas.apply and permits.manage to its vendor."""
    async with people_stores(url) as people:
        return {
            cr: await delegating_establishment(
                people, cr, name, owner, SCOPES.split(), grantee_client=vendors[cr]
            )
            for cr, name in ((CR_A, "Demo Trading Co"), (CR_B, "Tiny Shop"))
        }


def _contract_activated(
    contract_id: str, establishment: str, person: str, visa_number: str
) -> Event:
    """What the contracts service publishes when both parties signed (ISSUE 7's payload)."""
    return Event(
        type="contract.activated",
        payload={
            "contract_id": contract_id,
            "establishment_id": establishment,
            "employee": {"id": person, "nationality": "IND", "citizen": False},
            "occupation": "2512",
            "salary": 15000,
            "start_date": datetime.now(UTC).date().isoformat(),
            "end_date": None,
            "state": "active",
            "at": datetime.now(UTC).isoformat(),
            "visa_number": visa_number,
        },
    )


def test_visa_contract_permit_renewal_and_transfer_through_the_hub(system: Fleet) -> None:
    hub, tmp, backends = system.hub, system.tmp, system.backends
    owner = add_person(tmp, hub, backends, OWNER, "Owner")
    worker = add_person(tmp, hub, backends, WORKER, "Ravi")
    vendors = {cr: system.client(f"HR suite {cr}", f"acme-{cr}", SCOPES) for cr in (CR_A, CR_B)}
    ids = system.loop.run(
        _arrange(system.database_url(), owner, {cr: v["client_id"] for cr, v in vendors.items()})
    )
    est_a, est_b = ids[CR_A], ids[CR_B]
    vendor_a = system.acting_for(vendors[CR_A], CR_A, SCOPES)
    vendor_b = system.acting_for(vendors[CR_B], CR_B, SCOPES)

    # 1. A work visa, issued by the visa service's automatic rules once its fee is captured.
    application = httpx.post(
        f"{hub.url}/api/visas/v1/establishments/{est_a}/applications",
        json={
            "cr_number": CR_A,
            "worker": {
                "given_name": "Ravi",
                "family_name": "Kumar",
                "nationality": "IND",
                "passport_number": "P7654321",
                "birth_date": "1990-04-01",
            },
            "occupation": "2512",
            "monthly_salary": 15000,
        },
        headers={**vendor_a, "Idempotency-Key": "visa-1"},
        timeout=TIMEOUT,
    )
    assert application.status_code == 201, application.text
    view = f"{hub.url}/api/visas/v1/applications/{application.json()['id']}"
    issued = until(
        lambda: (
            (v := httpx.get(view, headers=vendor_a, timeout=TIMEOUT).json())["state"] == "issued"
            and v
        ),
        "the visa was never issued",
    )
    visa_number = issued["visa"]["number"]

    # 2. Before the contract is active, the permit is refused and nothing is written.
    permits = f"{hub.url}/api/permits/v1/establishments/{est_a}/permits"
    body = {"visa_number": visa_number, "contract_id": "ct-e2e-a"}
    headers = {**vendor_a, "Idempotency-Key": "permit-1"}
    early = until(
        lambda: (
            (a := httpx.post(permits, json=body, headers=headers, timeout=TIMEOUT))
            .json()
            .get("code")
            == "no_active_contract"  # the visa is known (learnt from its event), the contract not
            and a
        ),
        "the permits service never learnt of the visa",
    )
    assert early.status_code == 422

    # 3. The contract is activated (the contracts service's event, published by this test).
    system.loop.run(system.bus.publish(_contract_activated("ct-e2e-a", est_a, worker, visa_number)))
    answer = until(
        lambda: (
            (a := httpx.post(permits, json=body, headers=headers, timeout=TIMEOUT)).status_code
            in {200, 201}
            and a
        ),
        "the permit was never issued",
    )
    permit = answer.json()
    assert (permit["state"], permit["person_id"], permit["establishment_id"]) == (
        "active", worker, est_a,
    )  # fmt: skip
    assert permit["worker"]["passport_number"] == "P7654321"
    replay = httpx.post(permits, json=body, headers=headers, timeout=TIMEOUT)
    assert (replay.status_code, replay.json()["id"]) == (200, permit["id"])
    url = f"{hub.url}/api/permits/v1/permits/{permit['id']}"
    mine = system.token(WORKER)
    assert httpx.get(url, headers=mine, timeout=TIMEOUT).status_code == 200
    assert httpx.get(url, headers=vendor_b, timeout=TIMEOUT).status_code == 404

    # 4. The renewal fee goes through the hub's payments API; the captured payment renews it.
    renew = httpx.post(
        f"{url}/renew", headers={**vendor_a, "Idempotency-Key": "renew-1"}, timeout=TIMEOUT
    )
    assert renew.status_code == 202, renew.text
    again = httpx.post(
        f"{url}/renew", headers={**vendor_a, "Idempotency-Key": "renew-1"}, timeout=TIMEOUT
    )
    assert again.status_code == 200
    renewed = until(
        lambda: (
            (p := httpx.get(url, headers=vendor_a, timeout=TIMEOUT).json())["renewals"] == 1 and p
        ),
        "the permit was never renewed",
    )
    assert renewed["state"] == "active"
    assert renewed["expires_on"] > permit["expires_on"]
    book = system.loop.run(system.payments().book())
    assert len([i for i in book["intents"] if i["amount"] == 96_000]) == 1  # one charge

    # 5. A transfer to the second establishment: its vendor asks (its consent), the worker
    #    signed in through the SSO consents, and the permit moves only at the current
    #    establishment's consent.
    system.loop.run(system.bus.publish(_contract_activated("ct-e2e-b", est_b, worker, visa_number)))
    transfers = f"{hub.url}/api/permits/v1/establishments/{est_b}/transfers"
    requested = until(
        lambda: (
            (
                a := httpx.post(
                    transfers,
                    json={"person_id": worker, "contract_id": "ct-e2e-b"},
                    headers={**vendor_b, "Idempotency-Key": "transfer-1"},
                    timeout=TIMEOUT,
                )
            ).status_code
            == 201
            and a
        ),
        "the transfer was never accepted",
    ).json()
    assert requested["missing"] == ["worker", "current"]
    transfer = f"{hub.url}/api/permits/v1/transfers/{requested['id']}"
    posing = httpx.post(
        f"{transfer}/consent", json={"as": "worker"}, headers=vendor_b, timeout=TIMEOUT
    )
    assert posing.status_code == 403
    consent = httpx.post(
        f"{transfer}/consent", json={"as": "worker"}, headers=mine, timeout=TIMEOUT
    )
    assert consent.status_code == 200, consent.text
    assert httpx.get(url, headers=vendor_a, timeout=TIMEOUT).json()["establishment_id"] == est_a
    done = httpx.post(
        f"{transfer}/consent", json={"as": "current"}, headers=vendor_a, timeout=TIMEOUT
    )
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "completed"
    moved = httpx.get(url, headers=vendor_b, timeout=TIMEOUT).json()
    assert (moved["establishment_id"], moved["contract_id"]) == (est_b, "ct-e2e-b")
    assert httpx.get(url, headers=vendor_a, timeout=TIMEOUT).status_code == 404

    # 6. Each step's domain event and notification requests are on the bus.
    for step in ("issued", "renewed", "transferred"):
        until(
            lambda step=step: any(
                e.type == f"permit.{step}" and e.payload["permit_id"] == permit["id"]
                for e in system.events
            ),
            f"no permit.{step} event",
        )
        notices = until(
            lambda step=step: [
                e for e in system.events
                if e.type == "notification.requested" and e.payload["template"] == f"permit.{step}"
            ],
            f"no permit.{step} notification",
        )  # fmt: skip
        assert all("channels" not in n.payload for n in notices)
