"""A vendor platform calls a managed API through a running hub: client credentials, then the route.

Real processes on loopback: the hub (with its OAuth endpoints and gateway), an upstream, and the
``hub`` command to register credentials. The OAuth client is authlib's, not ours.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.deprecate import AuthlibDeprecationWarning

with warnings.catch_warnings():
    # authlib names its httpx integration deprecated in favour of one for a future httpx.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client

from hub.auth.internal import InternalTokenVerifier
from hub.auth.jwks import load_jwks
from tests.hubproc import HubProcess, hub_command, run_hub, write_policies
from tests.upstreams import UpstreamServer, sent

pytestmark = pytest.mark.integration

TIMEOUT = 10.0


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    server = UpstreamServer("svc").start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("identity-e2e")


@pytest.fixture(scope="module")
def hub(tmp: Path, upstream: UpstreamServer, backends: dict[str, str]) -> Iterator[HubProcess]:
    def route(name: str, **extra: Any) -> dict[str, Any]:
        base = {"id": name, "prefix": f"/api/{name}/", "upstream": "svc", "strip_prefix": True}
        return {**base, **extra}

    policies = write_policies(
        tmp / "policies",
        upstreams=[{"id": "svc", "targets": [{"url": upstream.url}]}],
        routes=[
            route("read", auth={"methods": ["jwt", "api_key"], "scopes": ["svc.read"]}),
            route("write", auth={"methods": ["jwt"], "scopes": ["svc.read", "svc.write"]}),
            route("open"),
            route(
                "limited",
                auth={"methods": ["jwt", "api_key"], "scopes": ["svc.read"]},
                rate_limit={"rate": 1, "period": 60, "burst": 1, "key": "consumer"},
            ),
        ],
    )
    with run_hub(tmp, policies, env={"HUB_ACCESS_LOG": "false", **backends}) as process:
        yield process


@pytest.fixture(scope="module")
def vendor(tmp: Path, hub: HubProcess, backends: dict[str, str]) -> dict[str, str]:
    arguments = ["create", "--name", "HR suite", "--owner", "acme", "--scopes", "svc.read"]
    return hub_command(tmp, hub, backends, "clients", *arguments)


def fetch_token(hub: HubProcess, vendor: dict[str, str], **extra: str) -> dict[str, Any]:
    with OAuth2Client(
        vendor["client_id"],
        vendor["client_secret"],
        token_endpoint_auth_method="client_secret_basic",
        timeout=TIMEOUT,
    ) as oauth:
        token: dict[str, Any] = oauth.fetch_token(
            f"{hub.url}/oauth2/token", grant_type="client_credentials", **extra
        )
    return token


def test_a_vendor_token_opens_the_route_and_the_upstream_learns_who_called(
    hub: HubProcess, vendor: dict[str, str]
) -> None:
    token = fetch_token(hub, vendor)
    assert token["token_type"].lower() == "bearer"
    assert token["scope"] == "svc.read"

    response = httpx.get(
        f"{hub.url}/api/read/echo",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    echo = response.json()
    assert sent(echo, "authorization") == []  # consumed by the hub, never forwarded

    (internal,) = sent(echo, "x-hub-principal-token")
    jwks = httpx.get(f"{hub.url}/.well-known/jwks.json", timeout=TIMEOUT).json()
    keys = load_jwks(jwks)
    issuer = httpx.get(f"{hub.url}/.well-known/openid-configuration", timeout=TIMEOUT).json()[
        "issuer"
    ]
    principal = InternalTokenVerifier(keys.get, issuer=issuer, audience="svc").verify(internal)
    assert principal.subject == vendor["client_id"]
    assert principal.client_id == vendor["client_id"]
    assert principal.kind == "client"
    assert principal.scopes == frozenset({"svc.read"})


def test_no_credential_is_a_401_challenge(hub: HubProcess) -> None:
    response = httpx.get(f"{hub.url}/api/read/echo", timeout=TIMEOUT)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="hub"')
    problem = response.json()
    assert problem["code"] == "unauthorized"
    assert problem["request_id"] == response.headers["x-request-id"]


def test_a_forged_token_is_refused(hub: HubProcess, vendor: dict[str, str]) -> None:
    token = fetch_token(hub, vendor)["access_token"]
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    response = httpx.get(
        f"{hub.url}/api/read/echo", headers={"Authorization": f"Bearer {forged}"}, timeout=TIMEOUT
    )
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_a_missing_scope_is_a_403_naming_it(hub: HubProcess, vendor: dict[str, str]) -> None:
    token = fetch_token(hub, vendor)["access_token"]
    response = httpx.get(
        f"{hub.url}/api/write/echo", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
    )
    assert response.status_code == 403
    problem = response.json()
    assert problem["code"] == "insufficient_scope"
    assert problem["detail"] == "missing scope: svc.write"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_a_client_cannot_ask_for_scopes_it_was_not_given(
    hub: HubProcess, vendor: dict[str, str]
) -> None:
    response = httpx.post(
        f"{hub.url}/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "svc.read svc.write"},
        auth=(vendor["client_id"], vendor["client_secret"]),
        timeout=TIMEOUT,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


def test_a_wrong_client_secret_gets_no_token(hub: HubProcess, vendor: dict[str, str]) -> None:
    response = httpx.post(
        f"{hub.url}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(vendor["client_id"], "not-the-secret"),
        timeout=TIMEOUT,
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_a_revoked_token_is_refused_at_once(hub: HubProcess, vendor: dict[str, str]) -> None:
    token = fetch_token(hub, vendor)["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{hub.url}/api/read/echo", headers=headers, timeout=TIMEOUT).status_code == (
        200
    )
    revoked = httpx.post(
        f"{hub.url}/oauth2/revoke",
        data={"token": token},
        auth=(vendor["client_id"], vendor["client_secret"]),
        timeout=TIMEOUT,
    )
    assert revoked.status_code == 200
    response = httpx.get(f"{hub.url}/api/read/echo", headers=headers, timeout=TIMEOUT)
    assert response.status_code == 401
    assert response.json()["detail"] == "token revoked"


def test_an_api_key_opens_a_route_that_accepts_keys(
    tmp: Path, hub: HubProcess, backends: dict[str, str]
) -> None:
    created = hub_command(
        tmp, hub, backends, "apikeys", "create", "--name", "batch", "--scopes", "svc.read"
    )
    key = created["api_key"]
    assert key.startswith("hub_")

    ok = httpx.get(f"{hub.url}/api/read/echo", headers={"X-API-Key": key}, timeout=TIMEOUT)
    assert ok.status_code == 200
    assert sent(ok.json(), "x-api-key") == []

    wrong = key[:-3] + ("aaa" if not key.endswith("aaa") else "bbb")
    refused = httpx.get(f"{hub.url}/api/read/echo", headers={"X-API-Key": wrong}, timeout=TIMEOUT)
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_token"

    # The write route accepts bearer tokens only: a key there is no credential at all.
    other = httpx.get(f"{hub.url}/api/write/echo", headers={"X-API-Key": key}, timeout=TIMEOUT)
    assert other.status_code == 401
    assert other.json()["code"] == "unauthorized"


def test_a_client_cannot_speak_in_the_hubs_name(hub: HubProcess) -> None:
    response = httpx.get(
        f"{hub.url}/api/open/echo",
        headers={"X-Hub-Principal-Token": "forged", "X-Hub-Anything": "forged"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    headers = [(key.lower(), value) for key, value in response.json()["headers"]]
    # Only the hub's own: the configuration version that served the call, never the forgeries.
    assert [name for name, _ in headers if name.startswith("x-hub-")] == ["x-hub-config-version"]
    assert "forged" not in {value for _, value in headers}


def test_discovery_names_the_endpoints(hub: HubProcess) -> None:
    document = httpx.get(f"{hub.url}/.well-known/openid-configuration", timeout=TIMEOUT).json()
    assert document["token_endpoint"] == f"{document['issuer']}/oauth2/token"
    assert "client_credentials" in document["grant_types_supported"]
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "private_key_jwt",
        "none",  # public clients, for the authorization code grant with PKCE
    }
    assert document["authorization_endpoint"] == f"{document['issuer']}/oauth2/authorize"
    assert document["code_challenge_methods_supported"] == ["S256"]


def test_a_consumer_limit_counts_each_consumer_apart(
    tmp: Path, hub: HubProcess, backends: dict[str, str], vendor: dict[str, str]
) -> None:
    token = fetch_token(hub, vendor)["access_token"]
    key = hub_command(
        tmp, hub, backends, "apikeys", "create", "--name", "other", "--scopes", "svc.read"
    )["api_key"]

    def statuses(headers: dict[str, str]) -> list[int]:
        url = f"{hub.url}/api/limited/echo"
        return [httpx.get(url, headers=headers, timeout=TIMEOUT).status_code for _ in range(3)]

    # burst 1: two at once, then the third waits a minute; from one address, two consumers.
    assert statuses({"Authorization": f"Bearer {token}"}) == [200, 200, 429]
    assert statuses({"X-API-Key": key}) == [200, 200, 429]
