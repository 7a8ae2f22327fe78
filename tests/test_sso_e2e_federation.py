"""Signing in through the national identity provider, with every party a real process.

The sandbox national IdP (:mod:`adapters.sandbox.national_idp`) runs on a loopback port, the hub
is its client, and an application (authlib) is the hub's. The person exists in the hub (made with
the ``hub people`` command) and has no password there: the IdP vouches for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.identity.acr import ACR_NATIONAL_IDP
from tests.browser import Browser
from tests.fixtures_services import free_port
from tests.hubproc import HubProcess, hub_command, run_hub, write_policies
from tests.sso_e2e_support import (
    APP_CB,
    AuthorizeRequest,
    Process,
    first_party_app,
    id_token_claims,
    national_idp_link,
    public_client,
    query_of,
    start_process,
)

pytestmark = pytest.mark.integration

IDP_CLIENT_ID = "hub-e2e"
IDP_SECRET = "idp-client-secret-for-tests"
SANDBOX_PASSWORD = "sandbox-pass"
LINKED, UNKNOWN = "1000000001", "1000000099"  # both at the IdP; only the first in the hub


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sso-e2e-federation")


@pytest.fixture(scope="module")
def idp_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def hub(tmp: Path, backends: dict[str, str], idp_url: str) -> Iterator[HubProcess]:
    policies = write_policies(
        tmp / "policies",
        upstreams=[{"id": "svc", "targets": [{"url": "http://127.0.0.1:9"}]}],
        routes=[{"id": "svc", "prefix": "/svc/", "upstream": "svc"}],
    )
    env = {
        "HUB_ACCESS_LOG": "false",
        "HUB_NATIONAL_IDP_ISSUER": idp_url,
        "HUB_NATIONAL_IDP_CLIENT_ID": IDP_CLIENT_ID,
        "HUB_NATIONAL_IDP_CLIENT_SECRET": IDP_SECRET,
        **backends,
    }
    with run_hub(tmp, policies, env=env) as process:
        yield process


@pytest.fixture(scope="module")
def idp(tmp: Path, hub: HubProcess, idp_url: str) -> Iterator[Process]:
    """The sandbox IdP, started once the hub's callback address is known."""
    port = idp_url.rsplit(":", 1)[1]
    command = ["-m", "adapters.sandbox.national_idp", "--port", port]
    command += ["--client-id", IDP_CLIENT_ID, "--client-secret", IDP_SECRET]
    command += ["--redirect-uri", f"{hub.url}/account/federation/national/callback"]
    with start_process(command, idp_url, "/_sandbox/health", tmp / "idp.log") as process:
        yield process


@pytest.fixture(scope="module")
def app(tmp: Path, hub: HubProcess, backends: dict[str, str]) -> dict[str, str]:
    return first_party_app(tmp, hub, backends)


@pytest.fixture(scope="module")
def person_id(tmp: Path, hub: HubProcess, backends: dict[str, str]) -> str:
    created = hub_command(
        tmp, hub, backends, "people", "create", "--kind", "citizen", "--identifier", LINKED,
        "--given-name", "Aisha", "--family-name", "Al-Harbi",
    )  # fmt: skip
    return created["person_id"]


def at_the_idp(browser: Browser, hub: HubProcess, idp: Process, url: str, national_id: str) -> str:
    """From the hub's sign-in page through the IdP's form; where the hub's callback sends us."""
    page = browser.follow(browser.get(url))
    assert str(page.url).startswith(f"{hub.url}/account/login")
    at_idp = browser.follow(browser.get(national_idp_link(page)))
    assert str(at_idp.url).startswith(f"{idp.url}/authorize")
    form = browser.form_with(at_idp, "national_id")
    back = browser.submit(
        form, national_id=national_id, password=SANDBOX_PASSWORD, button=("action", "sign_in")
    )
    assert back.status_code in (302, 303), back.text
    assert back.headers["location"].startswith(f"{hub.url}/account/federation/national/callback")
    return str(back.headers["location"])


def test_a_person_signs_in_to_an_app_through_the_national_idp(
    hub: HubProcess, idp: Process, app: dict[str, str], person_id: str
) -> None:
    oauth = public_client(app, scope="openid profile national_id")
    with oauth, Browser() as browser:
        request = AuthorizeRequest(oauth, hub)
        callback = at_the_idp(browser, hub, idp, request.url, LINKED)
        answer = browser.follow(browser.get(callback), stop_at=APP_CB)
        assert answer.status_code == 303, answer.text
        location = answer.headers["location"]
        assert query_of(location)["state"] == request.state
        token = oauth.fetch_token(
            f"{hub.url}/oauth2/token",
            authorization_response=location,
            state=request.state,
            code_verifier=request.verifier,
        )
    claims = id_token_claims(hub, token["id_token"], app["client_id"])
    assert claims["sub"] == person_id
    assert claims["acr"] == ACR_NATIONAL_IDP
    assert claims["amr"] == ["fed"]
    assert claims["nonce"] == request.nonce
    assert claims["national_id"] == LINKED
    assert claims["name"] == "Aisha Al-Harbi"


def test_a_national_id_the_hub_does_not_hold_is_told_so(
    hub: HubProcess, idp: Process, app: dict[str, str]
) -> None:
    with Browser() as browser:
        callback = at_the_idp(browser, hub, idp, f"{hub.url}/account/login", UNKNOWN)
        page = browser.get(callback)
        assert page.status_code == 403
        assert 'data-problem="no_linked_person"' in page.text
        assert "session" not in " ".join(c.name for c in browser.client.cookies.jar)
