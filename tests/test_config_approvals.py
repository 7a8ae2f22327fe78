"""Four-eyes approval through the admin API: protected drafts need a second admin to publish.

The whole hub runs in-process (``HubApp`` through Litestar's ``AsyncTestClient``, as in
:mod:`tests.sso_support`) on both back-end sets. Version 1 is seeded with governance rules:
changes of personal-data routes (``records`` is tagged), their permissions and upstreams need an
approval, and so do issuers and the rules themselves. Three identities act: the bootstrap admin
token, and two platform admins signed in at MFA (session cookie, same origin). Traffic through
the gateway shows what is active.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from litestar.testing import AsyncTestClient

from hub.asgi import HubApp
from hub.db.migrate import migrate
from hub.db.person_store import Person
from hub.settings import Settings
from tests.hubproc import ADMIN_TOKEN, hub_env, write_policies
from tests.sso_support import ISSUER, PORT, SsoHub, backend_env
from tests.test_admin_guard import SAME_ORIGIN, cookie_of, make_admin
from tests.upstreams import UpstreamServer

__all__ = ["backend_env"]  # a fixture, used by name

pytestmark = pytest.mark.integration

TOKEN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BASE = "/admin/api/config"
DRAFTS = f"{BASE}/drafts"
GOVERNANCE = {
    "approvals": [
        {
            "id": "personal-data",
            "sections": ["routes", "permissions", "upstreams"],
            "tagged": "personal_data",
        },
        {"id": "trust", "sections": ["issuers"]},
    ]
}


def seed_document(blue: UpstreamServer) -> dict[str, Any]:
    return {
        "upstreams": [
            {"id": "registry", "targets": [{"url": blue.url}]},
            {"id": "web", "targets": [{"url": blue.url}]},
        ],
        "routes": [
            {
                "id": "records",
                "prefix": "/records/",
                "upstream": "registry",
                "tags": ["personal_data"],
            },
            {"id": "open", "prefix": "/open/", "upstream": "web"},
        ],
        "products": [],
        "permissions": [
            {
                "id": "records.read",
                "routes": ["records"],
                "rules": [{"id": "reads", "effect": "allow", "resources": {"methods": ["GET"]}}],
            }
        ],
        "governance": GOVERNANCE,
    }


@pytest.fixture
async def hub(
    tmp_path: Path,
    backend_env: dict[str, str],
    upstreams: tuple[UpstreamServer, UpstreamServer],
) -> AsyncIterator[SsoHub]:
    seed = seed_document(upstreams[0])
    policies = write_policies(
        tmp_path / "policies", upstreams=seed["upstreams"], routes=seed["routes"]
    )
    for section in ("permissions", "governance"):
        (policies / f"{section}.yaml").write_text(yaml.safe_dump({section: seed[section]}))
    settings = Settings.from_env(hub_env(tmp_path, policies, PORT, extra=backend_env))
    if not settings.embedded_database:
        await migrate(settings.database_url)
    app = HubApp(settings)
    async with AsyncTestClient(app=app, base_url=ISSUER) as client:  # type: ignore[arg-type]
        hub = SsoHub(app, client)
        hub.person = hub.create_person("1000000001", given_name="Huda")
        make_admin(hub)
        yield hub


def admin(hub: SsoHub, person: Person | None = None) -> dict[str, str]:
    """The headers of a platform admin's session: the hub's person unless told."""
    return {**cookie_of(hub, person), **SAME_ORIGIN}


def second_admin(hub: SsoHub) -> tuple[Person, dict[str, str]]:
    other = hub.create_person("1000000002", given_name="Omar", email="omar@example.gov")
    make_admin(hub, other)
    return other, admin(hub, other)


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


async def active(hub: SsoHub) -> dict[str, Any]:
    response = await hub.client.get(f"{BASE}/active", headers=TOKEN)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def draft_of(hub: SsoHub, edit: Any, headers: dict[str, str]) -> dict[str, Any]:
    """A draft of the active document with ``edit`` applied, created by ``headers``."""
    document = copy.deepcopy((await active(hub))["document"])
    edit(document)
    response = await hub.client.post(DRAFTS, json={"document": document}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def move_records(document: dict[str, Any]) -> None:
    document["routes"][0]["upstream_path"] = "/v2"


def move_open(document: dict[str, Any]) -> None:
    document["routes"][1]["upstream_path"] = "/v2"


async def forwarded_path(hub: SsoHub, path: str) -> str:
    response = await hub.client.get(path)
    assert response.status_code == 200, response.text
    forwarded: str = response.json()["path"]
    return forwarded


RECORDS_CHANGED = [
    {"section": "routes", "id": "records", "change": "changed", "rules": ["personal-data"]}
]


async def test_a_protected_change_is_published_only_after_a_second_admin_approves(
    hub: SsoHub,
) -> None:
    author = admin(hub)
    me = f"person:{hub.person.id}"
    draft = await draft_of(hub, move_records, author)
    assert draft["editors"] == [me]
    assert draft["approval"] == {
        "required": True,
        "items": RECORDS_CHANGED,
        "approved": False,
        "approved_by": None,
        "approved_revision": None,
        "approved_at": None,
        "comment": None,
    }
    diff = (await hub.client.get(f"{DRAFTS}/{draft['id']}/diff", headers=author)).json()
    assert diff["approval"] == draft["approval"]

    # Not yet: the author cannot publish it alone, nor approve it.
    refused = await hub.client.post(
        f"{DRAFTS}/{draft['id']}/publish", json={"comment": "records v2"}, headers=author
    )
    body = problem(refused, 403, "approval_required")
    assert body["detail"] == (
        "this change touches protected configuration (routes/records (changed)) and needs a"
        " second admin's approval: ask an admin who neither created nor edited draft"
        f" {draft['id']} to approve its revision 1 (POST /admin/api/config/drafts/{draft['id']}"
        "/approve), then publish it"
    )
    assert body["items"] == RECORDS_CHANGED
    own = await hub.client.post(
        f"{DRAFTS}/{draft['id']}/approve", json={"revision": 1, "comment": "mine"}, headers=author
    )
    assert problem(own, 403, "self_approval")["detail"] == (
        f"{me} created or edited draft {draft['id']}: another admin must approve it"
    )
    assert await forwarded_path(hub, "/records/42") == "/records/42"

    # The admin token is another identity: it approves what it read.
    approved = await hub.client.post(
        f"{DRAFTS}/{draft['id']}/approve",
        json={"revision": 1, "comment": "checked the new path with the registry team"},
        headers=TOKEN,
    )
    assert approved.status_code == 200, approved.text
    view = approved.json()
    assert view.pop("approved_at").endswith(("Z", "+00:00"))
    assert view == {
        "required": True,
        "items": RECORDS_CHANGED,
        "approved": True,
        "approved_by": "admin-token",
        "approved_revision": 1,
        "comment": "checked the new path with the registry team",
    }
    shown = (await hub.client.get(f"{DRAFTS}/{draft['id']}", headers=author)).json()
    assert shown["approval"]["approved"] is True

    published = await hub.client.post(
        f"{DRAFTS}/{draft['id']}/publish", json={"comment": "records v2"}, headers=author
    )
    assert published.status_code == 201, published.text
    assert (published.json()["version"], published.json()["approved_by"]) == (2, "admin-token")
    assert await forwarded_path(hub, "/records/42") == "/v2/records/42"
    [change] = (await hub.client.get(f"{BASE}/versions/2", headers=TOKEN)).json()["changes"]
    assert (change["actor"], change["approved_by"], change["protected"]) == (
        me,
        "admin-token",
        RECORDS_CHANGED,
    )


async def test_an_edit_voids_the_approval_and_an_approver_who_edits_is_an_editor(
    hub: SsoHub,
) -> None:
    other, other_headers = second_admin(hub)
    draft = await draft_of(hub, move_records, TOKEN)
    url = f"{DRAFTS}/{draft['id']}"
    ok = await hub.client.post(
        f"{url}/approve", json={"revision": 1, "comment": "fine"}, headers=admin(hub)
    )
    assert ok.status_code == 200, ok.text

    # The token changes the draft after the approval: revision 2 is not approved.
    document = draft["document"]
    document["routes"][0]["upstream_path"] = "/v3"
    edited = await hub.client.put(url, json={"document": document, "revision": 1}, headers=TOKEN)
    assert edited.status_code == 200, edited.text
    approval = edited.json()["approval"]
    assert (approval["approved"], approval["approved_revision"]) == (False, 1)
    refused = await hub.client.post(f"{url}/publish", json={"comment": "v3"}, headers=TOKEN)
    problem(refused, 403, "approval_required")

    # An approval names the revision it read: the old one is a conflict.
    stale = await hub.client.post(
        f"{url}/approve", json={"revision": 1, "comment": "fine"}, headers=admin(hub)
    )
    body = problem(stale, 409, "conflict")
    assert (body["detail"], body["revision"]) == (
        f"draft {draft['id']} changed: it is at revision 2, not 1",
        2,
    )
    # The first approver now edits too; from then on only a third admin may approve.
    document["routes"][0]["upstream_path"] = "/v4"
    edited = await hub.client.put(
        url, json={"document": document, "revision": 2}, headers=admin(hub)
    )
    assert edited.json()["editors"] == ["admin-token", f"person:{hub.person.id}"]
    for headers in (admin(hub), TOKEN):
        again = await hub.client.post(
            f"{url}/approve", json={"revision": 3, "comment": "fine"}, headers=headers
        )
        problem(again, 403, "self_approval")
    third = await hub.client.post(
        f"{url}/approve", json={"revision": 3, "comment": "checked v4"}, headers=other_headers
    )
    assert third.json()["approved_by"] == f"person:{other.id}"
    published = await hub.client.post(f"{url}/publish", json={"comment": "v4"}, headers=TOKEN)
    assert published.status_code == 201, published.text
    assert await forwarded_path(hub, "/records/1") == "/v4/records/1"


async def test_approval_failure_paths(hub: SsoHub) -> None:
    draft = await draft_of(hub, move_records, admin(hub))
    url = f"{DRAFTS}/{draft['id']}/approve"
    good = {"revision": 1, "comment": "ok"}
    # Unknown draft; no credential; a wrong token.
    unknown = await hub.client.post(f"{DRAFTS}/999/approve", json=good, headers=TOKEN)
    assert problem(unknown, 404, "not_found")["detail"] == "draft 999 does not exist"
    problem(await hub.client.post(url, json=good), 401, "unauthorized")
    problem(
        await hub.client.post(url, json=good, headers={"Authorization": "Bearer wrong"}),
        401,
        "unauthorized",
    )
    # A signed-in person without the platform_admin role.
    citizen = hub.create_person("1000000009", given_name="Sara", email="sara@example.gov")
    problem(
        await hub.client.post(url, json=good, headers=admin(hub, citizen)),
        403,
        "admin_role_required",
    )
    # Bad bodies.
    for body in ({"comment": "ok"}, {"revision": "one", "comment": "ok"}, {"revision": 1}, []):
        problem(await hub.client.post(url, json=body, headers=TOKEN), 400, "invalid_request")
    blank = await hub.client.post(url, json={"revision": 1, "comment": "  "}, headers=TOKEN)
    assert problem(blank, 400, "invalid_request")["detail"] == (
        "a comment is required: say what you checked"
    )
    # Nothing was approved by any of these.
    after = (await hub.client.get(f"{DRAFTS}/{draft['id']}", headers=TOKEN)).json()
    assert after["approval"]["approved_by"] is None

    # An invalid draft cannot be approved.
    document = draft["document"]
    document["routes"][0]["upstream"] = "nowhere"
    await hub.client.put(
        f"{DRAFTS}/{draft['id']}", json={"document": document, "revision": 1}, headers=admin(hub)
    )
    invalid = await hub.client.post(url, json={"revision": 2, "comment": "ok"}, headers=TOKEN)
    assert problem(invalid, 422, "invalid_configuration")["errors"] == [
        "$.routes[0].upstream: 'nowhere' is not a defined upstream"
    ]

    # A draft overtaken by another publish cannot be approved (it could never be published).
    overtaken = await draft_of(hub, move_records, admin(hub))
    unprotected = await draft_of(hub, move_open, admin(hub))
    done = await hub.client.post(
        f"{DRAFTS}/{unprotected['id']}/publish", json={"comment": "open v2"}, headers=TOKEN
    )
    assert done.status_code == 201, done.text
    late = await hub.client.post(f"{DRAFTS}/{overtaken['id']}/approve", json=good, headers=TOKEN)
    body = problem(late, 409, "conflict")
    assert (body["active_version"], body["based_on"]) == (2, 1)


async def test_a_draft_needing_no_approval_publishes_alone_and_may_still_be_reviewed(
    hub: SsoHub,
) -> None:
    author = admin(hub)
    alone = await draft_of(hub, move_open, author)
    assert alone["approval"]["required"] is False
    assert alone["approval"]["items"] == []
    published = await hub.client.post(
        f"{DRAFTS}/{alone['id']}/publish", json={"comment": "open v2"}, headers=author
    )
    assert published.status_code == 201, published.text
    assert published.json()["approved_by"] is None

    # A voluntary review is recorded all the same, and the publish names the reviewer.
    reviewed = await draft_of(hub, lambda d: d["routes"][1].update(upstream_path="/v3"), author)
    ok = await hub.client.post(
        f"{DRAFTS}/{reviewed['id']}/approve",
        json={"revision": 1, "comment": "second pair of eyes"},
        headers=TOKEN,
    )
    assert ok.status_code == 200, ok.text
    assert (ok.json()["required"], ok.json()["approved"]) == (False, True)
    published = await hub.client.post(
        f"{DRAFTS}/{reviewed['id']}/publish", json={"comment": "open v3"}, headers=author
    )
    assert published.json()["approved_by"] == "admin-token"
    [change] = (await hub.client.get(f"{BASE}/versions/3", headers=TOKEN)).json()["changes"]
    assert (change["approved_by"], change["protected"]) == ("admin-token", None)


async def test_a_direct_publish_of_a_protected_change_is_refused(hub: SsoHub) -> None:
    for edit, items in (
        (move_records, RECORDS_CHANGED),
        (
            lambda d: d["permissions"][0]["rules"][0]["resources"].update(methods=["GET", "POST"]),
            [
                {
                    "section": "permissions",
                    "id": "records.read",
                    "change": "changed",
                    "rules": ["personal-data"],
                }
            ],
        ),
        (
            lambda d: d["upstreams"][0].update(max_concurrent=8),
            [
                {
                    "section": "upstreams",
                    "id": "registry",
                    "change": "changed",
                    "rules": ["personal-data"],
                }
            ],
        ),
    ):
        current = await active(hub)
        document = copy.deepcopy(current["document"])
        edit(document)
        response = await hub.client.post(
            f"{BASE}/versions",
            json={"document": document, "based_on": current["version"], "comment": "x"},
            headers=TOKEN,
        )
        body = problem(response, 403, "approval_required")
        assert body["items"] == items
        assert body["detail"].endswith(
            "publish it through a draft (POST /admin/api/config/drafts) that another admin approves"
        )
    assert (await active(hub))["version"] == 1
    # What no rule protects is published directly as before.
    document = copy.deepcopy((await active(hub))["document"])
    move_open(document)
    response = await hub.client.post(
        f"{BASE}/versions", json={"document": document, "based_on": 1}, headers=TOKEN
    )
    assert response.status_code == 201, response.text


async def test_changing_the_rules_needs_an_approval_too(hub: SsoHub) -> None:
    author = admin(hub)
    dropped = await draft_of(hub, lambda d: d.pop("governance"), author)
    assert dropped["approval"]["items"] == [
        {"section": "governance", "id": "*", "change": "removed", "rules": ["governance"]}
    ]
    # Dropping the rules in the same change as a protected edit escapes nothing.
    both = await draft_of(hub, lambda d: (d.pop("governance"), move_records(d)), author)
    assert [(i["section"], i["id"]) for i in both["approval"]["items"]] == [
        ("governance", "*"),
        ("routes", "records"),
    ]
    # So does untagging the route.
    untagged = await draft_of(hub, lambda d: (d["routes"][0].pop("tags"), move_records(d)), author)
    assert untagged["approval"]["items"] == RECORDS_CHANGED
    refused = await hub.client.post(
        f"{DRAFTS}/{dropped['id']}/publish", json={"comment": "no more rules"}, headers=author
    )
    problem(refused, 403, "approval_required")


async def test_a_rollback_is_one_step_and_audited_with_what_it_changed(hub: SsoHub) -> None:
    draft = await draft_of(hub, move_records, admin(hub))
    await hub.client.post(
        f"{DRAFTS}/{draft['id']}/approve", json={"revision": 1, "comment": "ok"}, headers=TOKEN
    )
    published = await hub.client.post(
        f"{DRAFTS}/{draft['id']}/publish", json={"comment": "v2"}, headers=admin(hub)
    )
    assert published.status_code == 201, published.text

    # Emergency: one admin, one step, no approval; the audit says what it undid.
    back = await hub.client.post(
        f"{BASE}/versions/1/activate",
        json={"based_on": 2, "comment": "registry rejects /v2"},
        headers=TOKEN,
    )
    assert back.status_code == 200, back.text
    assert await forwarded_path(hub, "/records/7") == "/records/7"
    undo = (await hub.client.get(f"{BASE}/versions/1", headers=TOKEN)).json()["changes"][-1]
    assert (undo["action"], undo["actor"], undo["approved_by"], undo["protected"]) == (
        "activate",
        "admin-token",
        None,
        RECORDS_CHANGED,
    )
