"""``hub policies apply/approve/publish`` with four-eyes rules, against a running hub.

One real hub process (embedded back-ends) on a loopback port, seeded with a personal-data route
(``records``) under a governance rule, and an open one. Two admins: the bootstrap admin token,
and a platform admin whose access token is signed by the hub's own key ring read from its
database (what the hub issues a person after an MFA sign-in; the sign-in itself is tested
elsewhere). The CLI runs in-process with ``--url`` and ``--token``; the tests run in file order
and build on each other's drafts and versions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from hub.cli.main import app
from hub.db.engine import create_engine
from hub.db.key_store import KeyStore
from hub.db.people_store import PeopleStores
from hub.identity.acr import ACR_MFA
from hub.identity.keys import KeyRing
from hub.identity.tokens import TokenIssuer
from hub.settings import PROJECT_ROOT, Settings
from tests.hubproc import ADMIN_TOKEN, HubProcess, hub_env, run_hub, write_policies
from tests.upstreams import UpstreamServer

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
RULE = {"id": "personal-data", "sections": ["routes"], "tagged": "personal_data"}


@dataclass
class Governed:
    hub: HubProcess
    person_id: str
    person_token: str
    tmp: Path


def folder(tmp: Path, name: str, blue: UpstreamServer, *, records_path: str = "") -> Path:
    policies = write_policies(
        tmp / name,
        upstreams=[{"id": "blue", "targets": [{"url": blue.url}]}],
        routes=[
            {
                "id": "records",
                "prefix": "/records/",
                "upstream": "blue",
                "upstream_path": records_path,
                "tags": ["personal_data"],
            },
            {"id": "open", "prefix": "/open/", "upstream": "blue"},
        ],
    )
    (policies / "governance.yaml").write_text(yaml.safe_dump({"governance": {"approvals": [RULE]}}))
    return policies


async def _platform_admin(settings: Settings) -> tuple[str, str]:
    """A platform admin in the hub's database, and an access token the hub's keys signed."""
    engine = create_engine(settings.database_url)
    try:
        stores = PeopleStores.on(engine)
        person = await stores.persons.create(
            kind="citizen",
            identifier="1000000042",
            given_name="Omar",
            family_name="Reviewer",
            email="omar@example.gov",
        )
        await stores.staff.grant(person.id, "platform_admin")
        keyring = await KeyRing.load(KeyStore(engine), settings)
        issued = TokenIssuer(keyring, settings).issue(
            subject=person.id, client_id="hub-console", scopes=(), kind="person", acr=ACR_MFA
        )
        return person.id, issued.token
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def governed(
    tmp_path_factory: pytest.TempPathFactory, upstreams: tuple[UpstreamServer, UpstreamServer]
) -> Iterator[Governed]:
    tmp = tmp_path_factory.mktemp("approve-cli")
    policies = folder(tmp, "policies", upstreams[0])
    with run_hub(tmp / "hub", policies, env={"HUB_ACCESS_LOG": "false"}) as process:
        settings = Settings.from_env(hub_env(tmp / "hub", policies, process.port))
        person_id, token = asyncio.run(_platform_admin(settings))
        yield Governed(hub=process, person_id=person_id, person_token=token, tmp=tmp)


def hub_cli(hub: HubProcess, *args: str, token: str = ADMIN_TOKEN) -> Any:
    env = {"HUB_ADMIN_URL": hub.url, "HUB_CONTRACTS_DIR": str(PROJECT_ROOT / "contracts")}
    return CliRunner().invoke(app, ["policies", *args, "--token", token], env=env)


def admin(hub: HubProcess, path: str) -> Any:
    response = httpx.get(f"{hub.url}/admin/api/config{path}", headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def forwarded(hub: HubProcess, path: str) -> str:
    response = httpx.get(f"{hub.url}{path}")
    assert response.status_code == 200, response.text
    value: str = response.json()["path"]
    return value


def test_apply_keeps_a_protected_draft_for_a_second_admin(
    governed: Governed, upstreams: tuple[UpstreamServer, UpstreamServer]
) -> None:
    hub = governed.hub
    changed = folder(governed.tmp, "v2", upstreams[0], records_path="/v2")
    result = hub_cli(hub, "apply", str(changed), "--comment", "records v2")
    assert result.exit_code == 3, result.output
    assert result.output.splitlines() == [
        "changes against the active version 1:",
        "  routes: ~ records (changed)",
        '      $.upstream_path: "" -> "/v2"',
        "this change needs a second admin's approval (four eyes):",
        "  routes/records (changed; rule personal-data)",
        "draft 1 is kept at revision 1; another admin approves it:",
        "  hub policies approve 1 --comment WHY",
        "then anyone publishes it:",
        "  hub policies publish 1 --comment WHY",
    ]
    assert [d["id"] for d in admin(hub, "/drafts")] == [1]
    assert [v["version"] for v in admin(hub, "/versions")] == [1]
    assert forwarded(hub, "/records/1") == "/records/1"


def test_the_author_can_neither_approve_nor_publish_it_alone(governed: Governed) -> None:
    hub = governed.hub
    own = hub_cli(hub, "approve", "1", "--comment", "looks fine")
    assert own.exit_code == 1
    assert own.stderr.splitlines() == [
        "403 self_approval: admin-token created or edited draft 1: another admin must approve it"
    ]
    alone = hub_cli(hub, "publish", "1", "--comment", "records v2")
    assert alone.exit_code == 1
    assert alone.stderr.startswith(
        "403 approval_required: this change touches protected configuration"
        " (routes/records (changed))"
    )
    unknown = hub_cli(hub, "approve", "99", "--comment", "x", token=governed.person_token)
    assert unknown.exit_code == 1
    assert unknown.stderr.splitlines() == ["404 not_found: draft 99 does not exist"]
    assert [v["version"] for v in admin(hub, "/versions")] == [1]


def test_a_second_admin_approves_what_they_were_shown_then_it_is_published(
    governed: Governed,
) -> None:
    hub, reviewer = governed.hub, f"person:{governed.person_id}"
    approved = hub_cli(
        hub, "approve", "1", "--comment", "checked with the registry", token=governed.person_token
    )
    assert approved.exit_code == 0, approved.output
    assert approved.output.splitlines() == [
        "draft 1 at revision 1, based on version 1, edited by admin-token",
        "changes against the active version 1:",
        "  routes: ~ records (changed)",
        '      $.upstream_path: "" -> "/v2"',
        "protected (needs this approval):",
        "  routes/records (changed; rule personal-data)",
        f"approved revision 1 of draft 1 as {reviewer}; publish it with:"
        " hub policies publish 1 --comment WHY",
    ]
    published = hub_cli(hub, "publish", "1", "--comment", "records v2")
    assert published.exit_code == 0, published.output
    assert published.output.splitlines() == [
        f"published version 2 (based on 1), approved by {reviewer}"
    ]
    assert forwarded(hub, "/records/1") == "/v2/records/1"
    [change] = admin(hub, "/versions/2")["changes"]
    assert (change["actor"], change["approved_by"], change["comment"]) == (
        "admin-token",
        reviewer,
        "records v2",
    )


def test_apply_of_an_unprotected_change_publishes_at_once(
    governed: Governed, upstreams: tuple[UpstreamServer, UpstreamServer]
) -> None:
    hub = governed.hub
    changed = folder(governed.tmp, "v3", upstreams[0], records_path="/v2")
    routes = yaml.safe_load((changed / "routes.yaml").read_text())
    routes["routes"][1]["upstream_path"] = "/web"
    (changed / "routes.yaml").write_text(yaml.safe_dump(routes))
    result = hub_cli(hub, "apply", str(changed), "--comment", "open under /web")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "published version 3 (based on 2)"
    assert forwarded(hub, "/open/x") == "/web/open/x"
    assert admin(hub, "/drafts") == []
