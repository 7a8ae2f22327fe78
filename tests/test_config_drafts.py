"""Drafts of the whole configuration: edit, validate, diff, publish; safety checks; the audit.

The hub runs in-process (``HubApp`` through Litestar's ``AsyncTestClient``) on both back-end
sets, a fresh database per test, as in ``tests/test_admin_api.py``: version 1 (seeded) sends
/svc/ to the blue upstream; the drafts move it to green. Traffic is observed, not inferred.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from hub.asgi import HubApp
from hub.config.loader import config_checksum
from hub.db.migrate import migrate
from hub.settings import Settings
from tests.fixtures_upstreams import blue_document
from tests.hubproc import ADMIN_TOKEN, hub_env, write_policies
from tests.sso_support import SsoHub, backend_env, sso_hub
from tests.test_admin_guard import SAME_ORIGIN, cookie_of, make_admin
from tests.upstreams import UpstreamServer

__all__ = ["backend_env", "sso_hub"]  # fixtures, used by name

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BASE = "/admin/api/config"
DRAFTS = f"{BASE}/drafts"


def green_document(blue: UpstreamServer, green: UpstreamServer) -> dict[str, Any]:
    """svc moves to green under /green; a route is added; both upstreams stay."""
    return {
        "upstreams": [
            {"id": "blue", "targets": [{"url": blue.url}]},
            {"id": "green", "targets": [{"url": green.url}]},
        ],
        "routes": [
            {"id": "svc", "prefix": "/svc/", "upstream": "green", "upstream_path": "/green"},
            {"id": "extra", "path": "/extra/{id}", "methods": ["GET"], "upstream": "blue"},
        ],
        "products": [],
    }


@pytest.fixture
def policies(tmp_path: Path, upstreams: tuple[UpstreamServer, UpstreamServer]) -> Path:
    doc = blue_document(upstreams[0])
    return write_policies(tmp_path / "policies", upstreams=doc["upstreams"], routes=doc["routes"])


@pytest.fixture
async def client(
    tmp_path: Path, policies: Path, backend_env: dict[str, str]
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings.from_env(hub_env(tmp_path, policies, 8080, extra=backend_env))
    if not settings.embedded_database:
        await migrate(settings.database_url)
    async with AsyncTestClient(app=HubApp(settings)) as test_client:  # type: ignore[arg-type]
        yield test_client


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


async def served_by(client: httpx.AsyncClient) -> str:
    response = await client.get("/svc/probe")
    assert response.status_code == 200, response.text
    server: str = response.json()["server"]
    return server


async def new_draft(client: httpx.AsyncClient, body: dict[str, Any] | None = None) -> Any:
    response = await client.post(DRAFTS, json=body or {}, headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()


# --- authentication -----------------------------------------------------------------------------


async def test_every_draft_endpoint_needs_an_admin(client: httpx.AsyncClient) -> None:
    draft = await new_draft(client)
    calls = [
        ("POST", DRAFTS, {}),
        ("GET", DRAFTS, None),
        ("GET", f"{DRAFTS}/{draft['id']}", None),
        ("PUT", f"{DRAFTS}/{draft['id']}", {"document": {}, "revision": 1}),
        ("DELETE", f"{DRAFTS}/{draft['id']}", None),
        ("POST", f"{DRAFTS}/{draft['id']}/validate", None),
        ("GET", f"{DRAFTS}/{draft['id']}/diff", None),
        ("POST", f"{DRAFTS}/{draft['id']}/publish", {"comment": "x"}),
        ("POST", f"{BASE}/diff", {"document": {}}),
    ]
    for method, path, body in calls:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = await client.request(method, path, json=body, headers=headers)
            problem(response, 401, "unauthorized")
    # Nothing changed: the draft is still there, at its first revision, and version 1 is active.
    again = await client.get(f"{DRAFTS}/{draft['id']}", headers=AUTH)
    assert again.json()["revision"] == 1
    assert [v["version"] for v in (await client.get(f"{BASE}/versions", headers=AUTH)).json()] == [
        1
    ]


# --- create, read, replace, delete --------------------------------------------------------------


async def test_drafts_are_created_read_replaced_and_deleted(
    client: httpx.AsyncClient, upstreams: tuple[UpstreamServer, UpstreamServer]
) -> None:
    active = (await client.get(f"{BASE}/active", headers=AUTH)).json()
    draft = await new_draft(client, {"comment": "try green"})
    assert draft["id"] == 1
    assert draft["based_on"] == 1
    assert draft["revision"] == 1
    assert draft["document"] == active["document"]
    assert (draft["created_by"], draft["updated_by"], draft["comment"]) == (
        "admin-token",
        "admin-token",
        "try green",
    )
    given = green_document(*upstreams)
    second = await new_draft(client, {"document": given})
    assert (second["id"], second["document"], second["based_on"]) == (2, given, 1)

    listed = (await client.get(DRAFTS, headers=AUTH)).json()
    assert [(d["id"], d["revision"]) for d in listed] == [(2, 1), (1, 1)]
    assert all("document" not in d for d in listed)

    replaced = await client.put(
        f"{DRAFTS}/1", json={"document": given, "revision": 1, "comment": "green"}, headers=AUTH
    )
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["revision"], replaced.json()["comment"]) == (2, "green")
    assert replaced.json()["document"] == given
    assert (await client.get(f"{DRAFTS}/1", headers=AUTH)).json() == replaced.json()

    # A second admin still holding revision 1 does not overwrite the edit.
    stale = await client.put(
        f"{DRAFTS}/1", json={"document": active["document"], "revision": 1}, headers=AUTH
    )
    body = problem(stale, 409, "conflict")
    assert body["detail"] == "draft 1 changed: it is at revision 2, not 1"
    assert body["revision"] == 2
    assert (await client.get(f"{DRAFTS}/1", headers=AUTH)).json()["document"] == given

    deleted = await client.delete(f"{DRAFTS}/1", headers=AUTH)
    assert deleted.status_code == 204
    assert [d["id"] for d in (await client.get(DRAFTS, headers=AUTH)).json()] == [2]
    # Drafts change nothing that is served.
    assert await served_by(client) == "blue"


async def test_an_unknown_draft_is_404_everywhere(client: httpx.AsyncClient) -> None:
    calls = [
        ("GET", f"{DRAFTS}/9", None),
        ("PUT", f"{DRAFTS}/9", {"document": {}, "revision": 1}),
        ("DELETE", f"{DRAFTS}/9", None),
        ("POST", f"{DRAFTS}/9/validate", None),
        ("GET", f"{DRAFTS}/9/diff", None),
        ("POST", f"{DRAFTS}/9/publish", {"comment": "why"}),
    ]
    for method, path, body in calls:
        response = await client.request(method, path, json=body, headers=AUTH)
        assert problem(response, 404, "not_found")["detail"] == "draft 9 does not exist"


async def test_malformed_draft_requests_are_400_problems(client: httpx.AsyncClient) -> None:
    await new_draft(client)
    for method, path, body in [
        ("POST", DRAFTS, {"document": [1]}),
        ("PUT", f"{DRAFTS}/1", {"document": {}}),
        ("PUT", f"{DRAFTS}/1", {"document": {}, "revision": "one"}),
        ("POST", f"{DRAFTS}/1/publish", {}),
    ]:
        response = await client.request(method, path, json=body, headers=AUTH)
        problem(response, 400, "invalid_request")


# --- validate and diff --------------------------------------------------------------------------


async def test_validating_a_draft_names_every_bad_path(
    client: httpx.AsyncClient, upstreams: tuple[UpstreamServer, UpstreamServer]
) -> None:
    good = green_document(*upstreams)
    draft = await new_draft(client, {"document": good})
    ok = await client.post(f"{DRAFTS}/{draft['id']}/validate", headers=AUTH)
    assert ok.status_code == 200, ok.text
    assert ok.json() == {
        "valid": True,
        "checksum": config_checksum(good),
        "routes": 2,
        "upstreams": 2,
    }
    bad = copy.deepcopy(good)
    bad["routes"][0]["upstream"] = "visa"
    bad["routes"][1]["methods"] = ["FETCH"]
    bad["upstreams"][1]["targets"] = []
    await client.put(f"{DRAFTS}/{draft['id']}", json={"document": bad, "revision": 1}, headers=AUTH)
    response = await client.post(f"{DRAFTS}/{draft['id']}/validate", headers=AUTH)
    assert problem(response, 422, "invalid_configuration")["errors"] == [
        "$.routes[0].upstream: 'visa' is not a defined upstream",
        "$.routes[1].methods[0]: 'FETCH' is not a standard HTTP method (use one of DELETE, GET,"
        " HEAD, OPTIONS, PATCH, POST, PUT)",
        "$.upstreams[1].targets: [] should be non-empty",
    ]
    # An invalid draft cannot be published either, and stays for fixing.
    published = await client.post(
        f"{DRAFTS}/{draft['id']}/publish", json={"comment": "try"}, headers=AUTH
    )
    problem(published, 422, "invalid_configuration")
    assert (await client.get(f"{DRAFTS}/{draft['id']}", headers=AUTH)).status_code == 200


async def test_the_diff_names_added_removed_and_changed_items_with_field_paths(
    client: httpx.AsyncClient, upstreams: tuple[UpstreamServer, UpstreamServer]
) -> None:
    blue, green = upstreams
    document = green_document(blue, green)
    document["upstreams"] = [document["upstreams"][1]]  # blue goes away
    document["routes"][1]["upstream"] = "green"
    draft = await new_draft(client, {"document": document})
    response = await client.get(f"{DRAFTS}/{draft['id']}/diff", headers=AUTH)
    assert response.status_code == 200, response.text
    diff = response.json()
    assert (diff["active_version"], diff["based_on"], diff["changed"]) == (1, 1, True)
    assert diff["summary"] == {
        "routes": {"added": ["extra"], "removed": [], "changed": ["svc"]},
        "upstreams": {"added": ["green"], "removed": ["blue"], "changed": []},
    }
    [routes, upstream_section] = diff["sections"]
    assert routes["changed"] == [
        {
            "id": "svc",
            "fields": [
                {"path": "$.upstream", "change": "changed", "old": "blue", "new": "green"},
                {"path": "$.upstream_path", "change": "added", "old": None, "new": "/green"},
            ],
        }
    ]
    assert upstream_section["section"] == "upstreams"
    assert diff["lines"] == [
        "routes: + extra (added)",
        "routes: ~ svc (changed)",
        '    $.upstream: "blue" -> "green"',
        '    $.upstream_path: (absent) -> "/green"',
        "upstreams: + green (added)",
        "upstreams: - blue (removed)",
    ]
    assert diff["text"].startswith("--- active\n+++ draft\n")
    assert "-  upstream: blue\n" in diff["text"]
    assert "+  upstream_path: /green\n" in diff["text"]

    # The same diff for any document, without a draft.
    direct = await client.post(f"{BASE}/diff", json={"document": document}, headers=AUTH)
    assert direct.json()["sections"] == diff["sections"]
    # A draft of the active document changes nothing.
    same = await new_draft(client)
    unchanged = (await client.get(f"{DRAFTS}/{same['id']}/diff", headers=AUTH)).json()
    assert (unchanged["changed"], unchanged["sections"], unchanged["text"]) == (False, [], "")


# --- publish ------------------------------------------------------------------------------------


async def test_publishing_a_draft_switches_traffic_audits_and_deletes_it(
    client: httpx.AsyncClient, upstreams: tuple[UpstreamServer, UpstreamServer]
) -> None:
    document = green_document(*upstreams)
    draft = await new_draft(client, {"document": document})
    missing = await client.post(
        f"{DRAFTS}/{draft['id']}/publish", json={"comment": "  "}, headers=AUTH
    )
    assert problem(missing, 400, "invalid_request")["detail"] == (
        "a comment is required: say why this change is made"
    )
    response = await client.post(
        f"{DRAFTS}/{draft['id']}/publish", json={"comment": "move svc to green"}, headers=AUTH
    )
    assert response.status_code == 201, response.text
    published = response.json()
    assert (published["version"], published["based_on"], published["draft"]) == (2, 1, 1)
    assert published["created_by"] == "admin-token"
    assert await served_by(client) == "green"
    assert (await client.get(f"{DRAFTS}/{draft['id']}", headers=AUTH)).status_code == 404

    version = (await client.get(f"{BASE}/versions/2", headers=AUTH)).json()
    summary = {
        "routes": {"added": ["extra"], "removed": [], "changed": ["svc"]},
        "upstreams": {"added": ["green"], "removed": [], "changed": []},
    }
    assert version["comment"] == "move svc to green"
    assert version["diff_summary"] == summary
    [change] = version["changes"]
    assert change.pop("at").endswith(("Z", "+00:00"))
    assert change == {
        "action": "publish",
        "previous": 1,
        "actor": "admin-token",
        "comment": "move svc to green",
        "draft": 1,
        "diff_summary": summary,
        "protected": None,
        "approved_by": None,
    }
    # The seeded version is audited too: everything in it was added.
    seeded = (await client.get(f"{BASE}/versions/1", headers=AUTH)).json()
    assert seeded["diff_summary"] == {
        "routes": {"added": ["svc"], "removed": [], "changed": []},
        "upstreams": {"added": ["blue"], "removed": [], "changed": []},
    }
    assert seeded["changes"][0]["actor"] == "seed:policies"

    # A rollback is audited with its reason and what it undid.
    rollback = await client.post(
        f"{BASE}/versions/1/activate",
        json={"based_on": 2, "comment": "green is down"},
        headers=AUTH,
    )
    assert rollback.status_code == 200, rollback.text
    undo = (await client.get(f"{BASE}/versions/1", headers=AUTH)).json()["changes"][-1]
    assert (undo["action"], undo["previous"], undo["comment"]) == ("activate", 2, "green is down")
    assert undo["diff_summary"] == {
        "routes": {"added": [], "removed": ["extra"], "changed": ["svc"]},
        "upstreams": {"added": [], "removed": ["green"], "changed": []},
    }


async def test_a_stale_draft_is_refused_naming_both_versions(
    client: httpx.AsyncClient, upstreams: tuple[UpstreamServer, UpstreamServer]
) -> None:
    first = await new_draft(client, {"document": green_document(*upstreams)})
    second = await new_draft(client)
    done = await client.post(
        f"{DRAFTS}/{first['id']}/publish", json={"comment": "first"}, headers=AUTH
    )
    assert done.status_code == 201, done.text
    response = await client.post(
        f"{DRAFTS}/{second['id']}/publish", json={"comment": "second"}, headers=AUTH
    )
    body = problem(response, 409, "conflict")
    assert body["detail"] == (
        "draft 2 is based on version 1, but version 2 is active now:"
        " start a new draft from the active version"
    )
    assert (body["active_version"], body["based_on"]) == (2, 1)
    # Nothing changed, and the stale draft is kept for its author to redo.
    assert await served_by(client) == "green"
    assert (await client.get(f"{DRAFTS}/{second['id']}", headers=AUTH)).status_code == 200


async def test_a_platform_admin_is_recorded_as_the_person_who_published(sso_hub: SsoHub) -> None:
    hub = sso_hub
    make_admin(hub)
    headers = {**cookie_of(hub), **SAME_ORIGIN}
    draft = await hub.client.post(DRAFTS, json={}, headers=headers)
    assert draft.status_code == 201, draft.text
    assert draft.json()["created_by"] == f"person:{hub.person.id}"
    published = await hub.client.post(
        f"{DRAFTS}/{draft.json()['id']}/publish", json={"comment": "same again"}, headers=headers
    )
    assert published.status_code == 201, published.text
    version = published.json()["version"]
    detail = (await hub.client.get(f"{BASE}/versions/{version}", headers=headers)).json()
    [change] = detail["changes"]
    assert (change["actor"], change["comment"], change["diff_summary"]) == (
        f"person:{hub.person.id}",
        "same again",
        {},
    )


# --- safety checks ------------------------------------------------------------------------------

EMPTY = (
    "$.routes: the document has no routes: publishing it would remove all 1 route(s) of the"
    " active version 1; send allow_empty: true to publish it anyway"
)


async def test_a_document_that_removes_every_route_needs_allow_empty(
    client: httpx.AsyncClient, upstreams: tuple[UpstreamServer, UpstreamServer]
) -> None:
    empty = {"upstreams": blue_document(upstreams[0])["upstreams"], "routes": []}
    for response in (
        await client.post(f"{BASE}/validate", json=empty, headers=AUTH),
        await client.post(f"{BASE}/versions", json={"document": empty}, headers=AUTH),
        await client.post(f"{BASE}/versions", json={"document": {}}, headers=AUTH),
    ):
        body = problem(response, 422, "empty_configuration")
        assert body["errors"] == [EMPTY]
        assert body["detail"] == EMPTY
    draft = await new_draft(client, {"document": empty})
    for response in (
        await client.post(f"{DRAFTS}/{draft['id']}/validate", headers=AUTH),
        await client.post(f"{DRAFTS}/{draft['id']}/publish", json={"comment": "x"}, headers=AUTH),
    ):
        assert problem(response, 422, "empty_configuration")["errors"] == [EMPTY]
    assert await served_by(client) == "blue"

    ok = await client.post(f"{BASE}/validate?allow_empty=true", json=empty, headers=AUTH)
    assert ok.status_code == 200, ok.text
    response = await client.post(
        f"{DRAFTS}/{draft['id']}/publish",
        json={"comment": "maintenance: everything off", "allow_empty": True},
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    assert (await client.get("/svc/probe")).status_code == 404
    # From an empty version, another empty one needs no flag: there is nothing left to remove.
    again = await client.post(f"{BASE}/versions", json={"document": empty}, headers=AUTH)
    assert again.status_code == 201, again.text


def _with_permission(document: dict[str, Any], rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {**document, "permissions": [{"id": "svc.use", "routes": ["svc"], "rules": rules}]}


async def test_a_policy_that_denies_everything_is_refused_with_its_path(
    client: httpx.AsyncClient, upstreams: tuple[UpstreamServer, UpstreamServer]
) -> None:
    base = blue_document(upstreams[0])
    only_deny = _with_permission(
        base, [{"id": "no-keys", "effect": "deny", "subjects": {"kinds": ["api_key"]}}]
    )
    response = await client.post(f"{BASE}/validate", json=only_deny, headers=AUTH)
    assert problem(response, 422, "invalid_configuration")["errors"] == [
        "$.permissions[0].rules: permission 'svc.use' has no allow rule, so it denies every"
        " request to svc: a policy that denies everything is refused (remove the routes to"
        " close them)"
    ]
    blanket = _with_permission(
        base,
        [
            {"id": "people", "effect": "allow", "subjects": {"kinds": ["person"]}},
            {"id": "nobody", "effect": "deny", "resources": {"routes": ["svc"]}},
        ],
    )
    draft = await new_draft(client, {"document": blanket})
    for response in (
        await client.post(f"{BASE}/versions", json={"document": blanket}, headers=AUTH),
        await client.post(f"{DRAFTS}/{draft['id']}/validate", headers=AUTH),
        await client.post(f"{DRAFTS}/{draft['id']}/publish", json={"comment": "x"}, headers=AUTH),
    ):
        assert problem(response, 422, "invalid_configuration")["errors"] == [
            "$.permissions[0].rules[1]: deny rule 'nobody' matches every request, so permission"
            " 'svc.use' denies everything on svc: a policy that denies everything is refused"
            " (remove the routes to close them)"
        ]
    # A narrower deny is an ordinary policy.
    narrow = _with_permission(
        base,
        [
            {"id": "people", "effect": "allow", "subjects": {"kinds": ["person"]}},
            {"id": "no-deletes", "effect": "deny", "resources": {"methods": ["DELETE"]}},
        ],
    )
    response = await client.post(f"{BASE}/validate", json=narrow, headers=AUTH)
    assert response.status_code == 200, response.text
    assert await served_by(client) == "blue"
