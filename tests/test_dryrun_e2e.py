"""Dry-run through a running hub: real traffic is sampled, a draft is replayed, counts are exact.

One hub process (embedded back-ends, every request sampled, a cluster pseudonym key) and an
echo upstream on loopback. A vendor client's token comes from the hub's OAuth endpoint. The
tests run in file order: the empty sample first, then traffic, then the dry-runs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.hubproc import ADMIN_TOKEN, HubProcess, hub_command, run_hub, write_policies
from tests.upstreams import UpstreamServer

pytestmark = pytest.mark.integration

TIMEOUT = 10.0
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CONFIG = "/admin/api/config"
ENV = {"HUB_ACCESS_LOG": "false", "HUB_SAMPLE_RATE": "1", "HUB_SAMPLE_KEY": "k" * 32}
PERMISSION = {
    "id": "est.records.read",
    "routes": ["records"],
    "rules": [
        {"id": "api-keys-never", "effect": "deny", "subjects": {"kinds": ["api_key"]}},
        {
            "id": "vendor-e1",
            "effect": "allow",
            "subjects": {"kinds": ["client"], "scopes": ["svc.read"]},
            "conditions": [{"attr": "path.establishment_id", "op": "eq", "value": "e-1"}],
        },
    ],
}


def routes(upstream: str = "svc") -> list[dict[str, Any]]:
    return [
        {
            "id": "records",
            "path": "/api/est/{establishment_id}/records",
            "upstream": upstream,
            "auth": {"methods": ["jwt", "api_key"], "scopes": ["svc.read"]},
        },
        {"id": "open", "prefix": "/api/open/", "upstream": upstream, "strip_prefix": True},
    ]


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    server = UpstreamServer("svc").start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dryrun-e2e")


@pytest.fixture(scope="module")
def hub(tmp: Path, upstream: UpstreamServer) -> Iterator[HubProcess]:
    policies = write_policies(
        tmp / "policies",
        upstreams=[{"id": "svc", "targets": [{"url": upstream.url}]}],
        routes=routes(),
    )
    (policies / "permissions.yaml").write_text(yaml.safe_dump({"permissions": [PERMISSION]}))
    with run_hub(tmp, policies, env=ENV) as process:
        yield process


@pytest.fixture(scope="module")
def token(tmp: Path, hub: HubProcess) -> str:
    vendor = hub_command(
        tmp,
        hub,
        ENV,
        "clients",
        "create",
        "--name",
        "HR",
        "--owner",
        "acme",
        "--scopes",
        "svc.read",
    )
    answer = httpx.post(
        f"{hub.url}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(vendor["client_id"], vendor["client_secret"]),
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200, answer.text
    access: str = answer.json()["access_token"]
    return access


def admin(hub: HubProcess, method: str, path: str, body: Any = None, **kw: Any) -> httpx.Response:
    return httpx.request(method, f"{hub.url}{CONFIG}{path}", json=body, timeout=TIMEOUT, **kw)


def active_document(hub: HubProcess) -> dict[str, Any]:
    response = admin(hub, "GET", "/active", headers=AUTH)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()["document"]
    return document


def draft_of(document: dict[str, Any]) -> dict[str, Any]:
    """The draft: the permission moves from e-1 to e-2; /api/open/special/ gets its own route."""
    draft = copy.deepcopy(document)
    draft["permissions"][0]["rules"][1]["conditions"][0]["value"] = "e-2"
    special = {
        "id": "special",
        "prefix": "/api/open/special/",
        "upstream": "svc",
        "rate_limit": {"rate": 5, "period": 1},
    }
    draft["routes"].insert(1, special)
    return draft


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def test_an_empty_sample_answers_zero_counts_and_a_note(hub: HubProcess) -> None:
    response = admin(hub, "POST", "/dry-run", {"document": active_document(hub)}, headers=AUTH)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["replayed"], report["unchanged"], report["skipped"]) == (0, 0, 0)
    assert report["changed"] == {"route": 0, "auth": 0, "decision": 0, "limit": 0}
    assert report["notes"][0].startswith("the sample is empty")


def test_real_traffic_replayed_through_a_draft_gives_exact_counts(
    hub: HubProcess, token: str
) -> None:
    bearer = {"Authorization": f"Bearer {token}"}
    expected = [
        *[("/api/est/e-1/records", bearer, 200)] * 5,
        *[("/api/est/e-2/records", bearer, 403)] * 3,
        *[("/api/open/special/x", {}, 200)] * 4,
        *[("/api/open/other", {}, 200)] * 2,
        ("/nothing", {}, 404),
    ]
    with httpx.Client(base_url=hub.url, timeout=TIMEOUT) as client:
        for path, headers, status in expected:
            assert client.get(path, headers=headers).status_code == status, path

    created = admin(
        hub, "POST", "/drafts", {"document": draft_of(active_document(hub))}, headers=AUTH
    )
    assert created.status_code == 201, created.text
    draft = created.json()
    response = admin(hub, "POST", f"/drafts/{draft['id']}/dry-run", headers=AUTH)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["active"], report["draft"]) == ("version 1", f"draft {draft['id']} revision 1")
    assert (report["replayed"], report["unchanged"], report["skipped"]) == (15, 3, 0)
    assert report["changed"] == {"route": 4, "auth": 0, "decision": 8, "limit": 4}
    assert report["decisions"] == {
        "allow_to_deny": 5,
        "deny_to_allow": 3,
        "by_permission": {"est.records.read": {"allow_to_deny": 5, "deny_to_allow": 3}},
    }
    kinds = ("replayed", "unchanged", "route", "auth", "decision", "limit")
    assert report["routes"] == {
        "records": dict(zip(kinds, (8, 0, 0, 0, 8, 0), strict=True)),
        "open": dict(zip(kinds, (6, 2, 4, 0, 0, 4), strict=True)),
        "(no route)": dict(zip(kinds, (1, 1, 0, 0, 0, 0), strict=True)),
    }
    assert report["sample"]["versions"] == [1]
    first = report["examples"][0]
    assert first["changes"] == ["decision"]
    assert first["flip"] == "allow_to_deny"
    assert (first["active"]["rule"], first["draft"]["rule"]) == ("vendor-e1", None)
    assert first["draft"]["permission"] == "est.records.read"
    route_change = next(e for e in report["examples"] if "route" in e["changes"])
    assert (route_change["active"]["route"], route_change["draft"]["route"]) == ("open", "special")
    assert route_change["draft"]["limit"] == "5/1s burst 0 per ip"
    # Pseudonymised: no establishment id, path remainder or token in what the admin sees.
    assert first["path"].startswith("/api/est/~")
    assert first["path"].endswith("/records")
    for secret in ("e-1", "e-2", token, "/special/x"):
        assert secret not in response.text
    # The same document through the other endpoint counts the same; the active one, nothing.
    again = admin(
        hub, "POST", "/dry-run", {"document": draft_of(active_document(hub))}, headers=AUTH
    )
    assert again.json()["changed"] == report["changed"]
    same = admin(hub, "POST", "/dry-run", {"document": active_document(hub)}, headers=AUTH).json()
    assert (same["replayed"], same["unchanged"]) == (15, 15)  # admin calls are not sampled


def test_dry_run_failures_are_clear_problems(hub: HubProcess) -> None:
    problem(admin(hub, "POST", "/drafts/999/dry-run", headers=AUTH), 404, "not_found")
    bad = draft_of(active_document(hub))
    bad["routes"][0]["upstream"] = "nope"
    assert problem(
        admin(hub, "POST", "/dry-run", {"document": bad}, headers=AUTH),
        422,
        "invalid_configuration",
    )["errors"] == ["$.routes[0].upstream: 'nope' is not a defined upstream"]
    created = admin(hub, "POST", "/drafts", {"document": bad}, headers=AUTH).json()
    errors = problem(
        admin(hub, "POST", f"/drafts/{created['id']}/dry-run", headers=AUTH),
        422,
        "invalid_configuration",
    )
    assert errors["errors"] == ["$.routes[0].upstream: 'nope' is not a defined upstream"]
    empty = {**active_document(hub), "routes": [], "permissions": []}
    problem(
        admin(hub, "POST", "/dry-run", {"document": empty}, headers=AUTH),
        422,
        "empty_configuration",
    )
    allowed = admin(hub, "POST", "/dry-run?allow_empty=true", {"document": empty}, headers=AUTH)
    assert allowed.status_code == 200
    assert allowed.json()["changed"]["route"] > 0
    problem(admin(hub, "POST", "/dry-run", {"nothing": 1}, headers=AUTH), 400, "invalid_request")
    problem(admin(hub, "POST", "/dry-run", {"document": {}}), 401, "unauthorized")
    problem(
        admin(hub, "POST", "/drafts/1/dry-run", headers={"Authorization": "Bearer wrong"}),
        401,
        "unauthorized",
    )


def test_the_new_endpoints_are_documented(hub: HubProcess) -> None:
    paths = httpx.get(f"{hub.url}/schema/openapi.json", timeout=TIMEOUT).json()["paths"]
    assert "post" in paths[f"{CONFIG}/drafts/{{draft_id}}/dry-run"]
    assert "post" in paths[f"{CONFIG}/dry-run"]
    assert "post" in paths[f"{CONFIG}/drafts/{{draft_id}}/shadow"]
    assert {"get", "delete"} <= set(paths[f"{CONFIG}/shadow"])
    assert "get" in paths[f"{CONFIG}/shadow/{{run_id}}/decisions"]
