"""Acting for an establishment, end to end through a running hub, on both back-end sets.

A vendor application delegated by an establishment gets a token for it and reads that
establishment's records, but not another's; an HR officer the owner delegated to does the same
with a person token from the hub's SSO; the upstream reads the establishment, the delegation and
the delegated scopes from the internal token; a revoked delegation stops new tokens at once and
the gateway refuses the token already issued.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from hub.db.engine import create_engine
from hub.db.people_store import PeopleStores
from hub.settings import Settings
from tests.helpers import LoopThread
from tests.hubproc import (
    ADMIN_TOKEN,
    HubProcess,
    hub_command,
    hub_env,
    run_hub,
    write_policies,
)
from tests.service_processes import person_token
from tests.sso_e2e_support import (
    TIMEOUT,
    add_person,
    principal_of,
)
from tests.upstreams import UpstreamServer

pytestmark = pytest.mark.integration

CR, OTHER_CR = "4030000011", "4030000012"
OWNER, OFFICER = "1000000101", "1000000102"

PERMISSION: dict[str, Any] = {
    "id": "est.records.read",
    "routes": ["records"],
    "rules": [
        {
            "id": "vendor-acting-for-it",
            "effect": "allow",
            "subjects": {"kinds": ["client"], "scopes": ["records.read"]},
            "resources": {"operations": ["listEstablishmentRecords"]},
            "conditions": [
                {"attr": "principal.establishment", "op": "eq", "ref": "path.establishment_id"}
            ],
        },
        {
            "id": "delegated-officer",
            "effect": "allow",
            "subjects": {"kinds": ["person"]},
            "conditions": [
                {
                    "attr": "principal.delegated_scopes",
                    "op": "delegated_by",
                    "ref": "path.establishment_id",
                    "value": ["records.read"],
                }
            ],
        },
    ],
}


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("delegation-e2e")


@pytest.fixture(scope="module")
def hub(tmp: Path, backends: dict[str, str]) -> Iterator[HubProcess]:
    upstream = UpstreamServer("svc").start()
    try:
        policies = write_policies(
            tmp / "policies",
            upstreams=[{"id": "svc", "targets": [{"url": upstream.url}]}],
            routes=[
                {
                    # the echo contract's listEstablishmentRecords operation
                    "id": "records",
                    "product": "echo",
                    "version": 1,
                    "path": "/api/echo/v1/establishments/{establishment_id}/records",
                    "upstream": "svc",
                    "auth": {"methods": ["jwt"]},
                }
            ],
            products=[
                {"id": "echo", "version": 1, "title": "Echo", "contract": "products/echo/v1"}
            ],
        )
        (policies / "permissions.yaml").write_text(yaml.safe_dump({"permissions": [PERMISSION]}))
        env = {"HUB_ACCESS_LOG": "false", "HUB_CONFIG_POLL_SECONDS": "0.5", **backends}
        with run_hub(tmp, policies, env=env) as process:
            yield process
    finally:
        upstream.close()


@dataclass(frozen=True, slots=True)
class World:
    establishment: str
    other: str
    officer: str
    vendor: dict[str, str]
    vendor_delegation: str
    officer_delegation: str


async def _arrange(url: str, owner: str, officer: str, vendor: str) -> tuple[str, ...]:
    engine = create_engine(url)
    try:
        people = PeopleStores.on(engine)
        mine = await people.establishments.create(
            cr_number=CR, name="Trading Co", sector="retail", size="small"
        )
        other = await people.establishments.create(
            cr_number=OTHER_CR, name="Other Co", sector="retail", size="small"
        )
        for establishment in (mine, other):
            await people.establishments.add_member(establishment.id, owner, "owner")
        await people.establishments.add_member(mine.id, officer, "hr_officer")
        until = datetime.now(UTC) + timedelta(days=30)
        to_vendor = await people.delegations.grant(
            mine.id,
            grantor=owner,
            scopes=["records.read"],
            valid_until=until,
            grantee_client=vendor,
        )
        to_officer = await people.delegations.grant(
            mine.id,
            grantor=owner,
            scopes=["records.read"],
            valid_until=until,
            grantee_person=officer,
        )
        return mine.id, other.id, to_vendor.id, to_officer.id
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def world(tmp: Path, hub: HubProcess, backends: dict[str, str]) -> World:
    owner = add_person(tmp, hub, backends, OWNER, "Owner")
    officer = add_person(tmp, hub, backends, OFFICER, "Officer")
    vendor = hub_command(
        tmp, hub, backends,
        "clients", "create", "--name", "HR suite", "--owner", "acme", "--scopes", "records.read",
    )  # fmt: skip
    url = Settings.from_env(hub_env(tmp, tmp / "policies", hub.port, extra=backends)).database_url
    loop = LoopThread()
    try:
        mine, other, to_vendor, to_officer = loop.run(
            _arrange(url, owner, officer, vendor["client_id"])
        )
    finally:
        loop.close()
    return World(
        establishment=mine,
        other=other,
        officer=officer,
        vendor=vendor,
        vendor_delegation=to_vendor,
        officer_delegation=to_officer,
    )


def vendor_token(hub: HubProcess, world: World, establishment: str) -> httpx.Response:
    return httpx.post(
        f"{hub.url}/oauth2/token",
        data={"grant_type": "client_credentials", "establishment": establishment},
        auth=(world.vendor["client_id"], world.vendor["client_secret"]),
        timeout=TIMEOUT,
    )


def records(hub: HubProcess, token: str, establishment: str) -> httpx.Response:
    return httpx.get(
        f"{hub.url}/api/echo/v1/establishments/{establishment}/records",
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )


def test_a_delegated_vendor_reads_its_establishment_and_no_other(
    hub: HubProcess, world: World
) -> None:
    answer = vendor_token(hub, world, CR)
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]

    mine = records(hub, token, world.establishment)
    assert mine.status_code == 200, mine.text
    seen = principal_of(hub, mine.json())
    assert seen.kind == "client"
    assert seen.establishment == world.establishment
    assert seen.delegation == world.vendor_delegation
    assert seen.delegated_scopes == {f"{world.establishment}:records.read"}
    assert seen.delegations == {world.vendor_delegation}

    theirs = records(hub, token, world.other)
    assert theirs.status_code == 403
    assert theirs.json()["code"] == "permission_denied"
    assert theirs.json()["detail"] == "missing permission: est.records.read"

    # no delegation from the other establishment: no token at all
    refused = vendor_token(hub, world, OTHER_CR)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"


def officer_token(hub: HubProcess, tmp: Path, backends: dict[str, str]) -> str:
    return person_token(tmp, hub, backends, OFFICER)


def test_a_delegated_hr_officer_reads_its_establishment_and_no_other(
    hub: HubProcess, world: World, tmp: Path, backends: dict[str, str]
) -> None:
    token = officer_token(hub, tmp, backends)

    mine = records(hub, token, world.establishment)
    assert mine.status_code == 200, mine.text
    seen = principal_of(hub, mine.json())
    assert (seen.kind, seen.subject) == ("person", world.officer)
    assert seen.memberships == {f"{world.establishment}:hr_officer"}
    assert seen.delegated_scopes == {f"{world.establishment}:records.read"}
    assert seen.delegations == {world.officer_delegation}
    assert seen.establishment is None  # a person acts for no single establishment

    theirs = records(hub, token, world.other)
    assert theirs.status_code == 403
    assert theirs.json()["code"] == "permission_denied"


def test_a_revoked_delegation_stops_new_tokens_and_the_issued_one(
    hub: HubProcess, world: World, tmp: Path, backends: dict[str, str]
) -> None:
    token = vendor_token(hub, world, world.establishment).json()["access_token"]
    assert records(hub, token, world.establishment).status_code == 200

    hub_command(
        tmp, hub, backends,
        "delegations", "revoke", world.vendor_delegation, "--reason", "contract ended",
    )  # fmt: skip
    refused = vendor_token(hub, world, CR)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"

    # Revoked outside the running hub (the CLI): the gateway learns it at its next poll.
    deadline = time.monotonic() + 15
    while (answer := records(hub, token, world.establishment)).status_code == 200:
        assert time.monotonic() < deadline, "the revoked delegation's token is still accepted"
        time.sleep(0.2)
    assert answer.status_code == 401
    assert answer.json()["code"] == "invalid_token"
    assert "delegation revoked" in answer.headers["www-authenticate"]


def test_explain_shows_the_operation_and_the_affiliation_that_decided(
    hub: HubProcess, world: World
) -> None:
    path = f"/api/echo/v1/establishments/{world.establishment}/records"
    officer = {
        "kind": "person",
        "subject": world.officer,
        "delegated_scopes": [f"{world.establishment}:records.read"],
    }
    answer = httpx.post(
        f"{hub.url}/admin/api/policies/explain",
        json={"principal": officer, "request": {"method": "GET", "path": path}},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["operation"] == "listEstablishmentRecords"
    assert (result["decision"], result["rule"]) == ("allow", "delegated-officer")
    by_rule = {t["rule"]: t["failed"] for t in result["trace"]}
    assert by_rule["vendor-acting-for-it"] == "principal.kind in [client]"

    elsewhere = httpx.post(
        f"{hub.url}/admin/api/policies/explain",
        json={
            "principal": officer,
            "request": {"method": "GET", "path": path.replace(world.establishment, world.other)},
        },
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=TIMEOUT,
    ).json()
    assert (elsewhere["decision"], elsewhere["rule"]) == ("deny", None)
    failed = {t["rule"]: t["failed"] for t in elsewhere["trace"]}
    assert failed["delegated-officer"] == (
        "principal.delegated_scopes delegated_by path.establishment_id with [records.read]"
    )
