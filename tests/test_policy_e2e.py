"""Permission policies through a running hub: a vendor allowed, masked and refused; explain.

Real processes on loopback: the hub (embedded back-ends) and an upstream that echoes requests
as JSON. Credentials come from the ``hub`` command, tokens from the hub's OAuth endpoint.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.hubproc import ADMIN_TOKEN, ROOT, HubProcess, hub_env, run_hub, write_policies
from tests.upstreams import UpstreamServer

pytestmark = pytest.mark.integration

TIMEOUT = 10.0
AUTH = {"methods": ["jwt", "api_key"], "scopes": ["svc.read"]}
PERMISSION = {
    "id": "est.records.read",
    "routes": ["records", "files"],
    "rules": [
        {"id": "api-keys-never", "effect": "deny", "subjects": {"kinds": ["api_key"]}},
        {
            "id": "vendor-records",
            "effect": "allow",
            "subjects": {"kinds": ["client"], "scopes": ["svc.read"]},
            "resources": {"routes": ["records"], "methods": ["GET"]},
            "conditions": [{"attr": "path.establishment_id", "op": "eq", "value": "e-1"}],
            "obligations": {
                "mask": [{"field": "$.query_string", "keep_last": 4}],
                "drop": ["$.headers", "$.raw_path"],
            },
        },
        {
            "id": "vendor-files",
            "effect": "allow",
            "subjects": {"kinds": ["client"]},
            "resources": {"routes": ["files"]},
            "obligations": {"drop": ["$.secret"]},
        },
    ],
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    server = UpstreamServer("svc").start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("policy-e2e")


@pytest.fixture(scope="module")
def hub(tmp: Path, upstream: UpstreamServer) -> Iterator[HubProcess]:
    policies = write_policies(
        tmp / "policies",
        upstreams=[{"id": "svc", "targets": [{"url": upstream.url}]}],
        routes=[
            {
                "id": "records",
                "path": "/api/est/{establishment_id}/records",
                "upstream": "svc",
                "auth": AUTH,
            },
            {
                "id": "files",
                "prefix": "/api/files/",
                "upstream": "svc",
                "strip_prefix": True,
                "auth": AUTH,
            },
            {
                "id": "open",
                "prefix": "/api/open/",
                "upstream": "svc",
                "strip_prefix": True,
                "auth": AUTH,
            },
        ],
    )
    (policies / "permissions.yaml").write_text(yaml.safe_dump({"permissions": [PERMISSION]}))
    with run_hub(tmp, policies, env={"HUB_ACCESS_LOG": "false"}) as process:
        yield process


def hub_command(tmp: Path, hub: HubProcess, *args: str) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "hub", *args],
        env=hub_env(tmp, tmp / "policies", hub.port),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    fields = {}
    for line in done.stdout.splitlines():
        name, sep, value = line.partition(":")
        if sep and value.strip():
            fields[name.strip()] = value.strip()
    return fields


@pytest.fixture(scope="module")
def token(tmp: Path, hub: HubProcess) -> str:
    vendor = hub_command(
        tmp,
        hub,
        "clients",
        "create",
        "--name",
        "HR suite",
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


@pytest.fixture(scope="module")
def api_key(tmp: Path, hub: HubProcess) -> str:
    return hub_command(tmp, hub, "apikeys", "create", "--name", "batch", "--scopes", "svc.read")[
        "api_key"
    ]


def get(hub: HubProcess, path: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{hub.url}{path}", headers=headers, timeout=TIMEOUT)


def test_a_vendor_reads_its_establishment_with_the_identifier_masked(
    hub: HubProcess, token: str
) -> None:
    response = get(
        hub,
        "/api/est/e-1/records?national_id=1234567890",
        Authorization=f"Bearer {token}",
        **{"Accept-Encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    echo = response.json()
    assert echo["query_string"] == "*" * 18 + "7890"
    assert "1234567890" not in response.text
    assert "headers" not in echo  # dropped
    assert int(response.headers["content-length"]) == len(response.content)


def test_another_establishment_is_refused_naming_only_the_permission(
    hub: HubProcess, token: str
) -> None:
    response = get(hub, "/api/est/e-2/records", Authorization=f"Bearer {token}")
    assert response.status_code == 403
    problem = response.json()
    assert problem["code"] == "permission_denied"
    assert problem["detail"] == "missing permission: est.records.read"
    assert problem["permission"] == "est.records.read"
    for secret in ("vendor-records", "api-keys-never", "e-1", "establishment_id", "rule"):
        assert secret not in response.text


def test_a_deny_rule_overrides_for_api_keys(hub: HubProcess, api_key: str) -> None:
    response = get(hub, "/api/est/e-1/records", **{"X-API-Key": api_key})
    assert response.status_code == 403
    assert response.json()["detail"] == "missing permission: est.records.read"


def test_routes_no_permission_covers_work_as_before(hub: HubProcess, api_key: str) -> None:
    response = get(hub, "/api/open/echo", **{"X-API-Key": api_key})
    assert response.status_code == 200
    assert "headers" in response.json()


def test_an_answer_obligations_cannot_apply_to_fails_closed(hub: HubProcess, token: str) -> None:
    response = get(hub, "/api/files/bytes?n=100", Authorization=f"Bearer {token}")
    assert response.status_code == 502
    assert response.json()["code"] == "obligation_failed"


# --- explain ---------------------------------------------------------------------------------

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
VENDOR = {"kind": "client", "subject": "c-1", "client_id": "c-1", "scopes": ["svc.read"]}


def explain(hub: HubProcess, body: Any, headers: dict[str, str] = ADMIN) -> httpx.Response:
    return httpx.post(
        f"{hub.url}/admin/api/policies/explain", json=body, headers=headers, timeout=TIMEOUT
    )


def test_explain_names_the_rule_that_allowed_and_its_obligations(hub: HubProcess) -> None:
    response = explain(
        hub, {"principal": VENDOR, "request": {"method": "GET", "path": "/api/est/e-1/records"}}
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["route"] == "records"
    assert (result["decision"], result["rule"]) == ("allow", "vendor-records")
    assert result["obligations"] == {
        "mask": ["$.query_string (keep last 4)"],
        "drop": ["$.headers", "$.raw_path"],
    }
    assert result["config_version"] == 1


def test_explain_says_why_a_request_is_denied(hub: HubProcess) -> None:
    response = explain(
        hub, {"principal": VENDOR, "request": {"method": "GET", "path": "/api/est/e-2/records"}}
    )
    result = response.json()
    assert (result["decision"], result["rule"]) == ("deny", None)
    assert result["permission"] == "est.records.read"
    assert "default deny" in result["reason"]
    by_rule = {t["rule"]: t for t in result["trace"]}
    assert by_rule["vendor-records"]["failed"] == "path.establishment_id eq e-1"
    assert by_rule["api-keys-never"]["failed"] == "principal.kind in [api_key]"

    keyed = explain(
        hub,
        {
            "principal": {"kind": "api_key", "subject": "k", "scopes": ["svc.read"]},
            "request": {"method": "GET", "path": "/api/est/e-1/records"},
        },
    ).json()
    assert (keyed["decision"], keyed["rule"]) == ("deny", "api-keys-never")


def test_explain_of_an_uncovered_route(hub: HubProcess) -> None:
    result = explain(
        hub, {"principal": VENDOR, "request": {"method": "GET", "path": "/api/open/x"}}
    ).json()
    assert (result["route"], result["decision"]) == ("open", "not_enforced")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"principal": VENDOR}, 400),
        ({"principal": {"kind": "robot"}, "request": {"method": "GET", "path": "/"}}, 400),
        ({"principal": VENDOR, "request": {"method": "GET", "path": "relative"}}, 400),
        ({"principal": VENDOR, "request": {"method": "GET", "path": "/api/x/../../.."}}, 400),
        ({"principal": VENDOR, "request": {"method": "GET", "path": "/nowhere"}}, 404),
    ],
)
def test_explain_refuses_bad_questions(hub: HubProcess, body: Any, status: int) -> None:
    response = explain(hub, body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_explain_needs_the_admin_token(hub: HubProcess) -> None:
    body = {"principal": VENDOR, "request": {"method": "GET", "path": "/api/open/x"}}
    assert explain(hub, body, headers={}).status_code == 401
    assert explain(hub, body, headers={"Authorization": "Bearer nope"}).status_code == 401
