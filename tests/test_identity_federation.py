"""Sign-in through the national identity provider, end to end against the sandbox IdP process.

The sandbox (``python -m adapters.sandbox.national_idp``) runs as a real process on a free
loopback port; the hub runs in-process and talks to it over real HTTP (metadata, token, JWKS).
The browser is played by hand: the hub's test client for the hub, an httpx client for the IdP's
sign-in page, carrying the redirects between them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from html import unescape
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from adapters.sandbox.national_idp import SANDBOX_PASSWORD
from hub.identity.acr import ACR_NATIONAL_IDP
from tests.fixtures_services import free_port
from tests.hubproc import ROOT, wait_http
from tests.login_support import Hub, problem_of, running_hub

pytestmark = pytest.mark.integration

CLIENT_ID = "hub-sandbox"
CLIENT_SECRET = "sandbox-client-secret-for-tests"
HUB_ORIGIN = "http://testserver.local"
CALLBACK = HUB_ORIGIN + "/account/federation/national/callback"
LINKED = "1000000001"  # known to the sandbox IdP and created in the hub by the tests
UNLINKED = "1000000099"  # known to the sandbox IdP only
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("national-idp") / "idp.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adapters.sandbox.national_idp",
            "--port",
            str(port),
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            CLIENT_SECRET,
            "--redirect-uri",
            CALLBACK,
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_http(url + "/_sandbox/health", process=process), "the sandbox IdP did not start"
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def federation_env(issuer: str) -> dict[str, str]:
    return {
        "HUB_NATIONAL_IDP_ISSUER": issuer,
        "HUB_NATIONAL_IDP_CLIENT_ID": CLIENT_ID,
        "HUB_NATIONAL_IDP_CLIENT_SECRET": CLIENT_SECRET,
    }


@pytest.fixture
async def hub(tmp_path: Path, idp: str) -> AsyncIterator[Hub]:
    async with running_hub(tmp_path, env=federation_env(idp)) as running:
        await running.person(LINKED)
        yield running


@pytest.fixture
def faults(idp: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=idp, timeout=5.0) as client:
        yield client
        client.post("/_sandbox/faults", json={"token_status": None, "latency_ms": 0})


async def through_idp(
    hub: Hub, idp: str, national_id: str, *, start: str, action: str = "sign_in"
) -> tuple[httpx.Response, str]:
    """Start at the hub, sign in (or cancel) at the IdP; the hub's callback answer and its URL."""
    started = await hub.page(start)
    assert started.status_code == 303, started.text
    location = started.headers["location"]
    assert location.startswith(idp + "/authorize?")
    async with httpx.AsyncClient(timeout=5.0) as browser:
        page = await browser.get(location)
        assert page.status_code == 200, page.text
        fields = {name: unescape(value) for name, value in _HIDDEN.findall(page.text)}
        assert fields["code_challenge_method"] == "S256"
        assert fields["nonce"]
        answer = await browser.post(
            idp + "/authorize",
            data={
                **fields,
                "national_id": national_id,
                "password": SANDBOX_PASSWORD,
                "action": action,
            },
        )
    assert answer.status_code == 303, answer.text
    back = urlsplit(answer.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == CALLBACK
    callback = f"{back.path}?{back.query}"
    return await hub.page(callback), callback


async def test_the_login_page_offers_the_national_idp(hub: Hub) -> None:
    page = await hub.page("/account/login?return_to=/svc/z")
    assert 'id="national-idp"' in page.text
    assert 'href="/account/federation/national/start?return_to=%2Fsvc%2Fz"' in page.text
    assert 'name="password"' in page.text
    only = await hub.page("/account/login?acr_values=urn:hub:acr:national-idp")
    assert only.status_code == 200
    assert 'id="national-idp"' in only.text
    assert 'name="password"' not in only.text


async def test_a_person_signs_in_through_the_national_idp(hub: Hub, idp: str) -> None:
    planted = "planted-before-federation-" + "y" * 17
    hub.set_cookie(hub.session_cookie, planted)
    response, _ = await through_idp(
        hub, idp, LINKED, start="/account/federation/national/start?return_to=/svc/z"
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/svc/z"
    raw = hub.cookie(hub.session_cookie)
    assert raw not in (None, planted)
    session = await hub.runtime.sessions.get(raw)
    assert session is not None
    assert (session.acr, session.amr) == (ACR_NATIONAL_IDP, ("fed",))
    person = await hub.persons.by_identifier(LINKED)
    assert person is not None
    assert session.person_id == person.id
    assert hub.cookie("hub_fed") is None
    assert await hub.signed_in_as() == LINKED


async def test_an_authorization_request_resumes_after_federation(hub: Hub, idp: str) -> None:
    request = await hub.authz_request(acr="urn:hub:acr:national-idp")
    page = await hub.page(f"/account/login?rid={request.rid}")
    assert 'name="password"' not in page.text  # only the national IdP meets this request
    response, _ = await through_idp(
        hub, idp, LINKED, start=f"/account/federation/national/start?rid={request.rid}"
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/oauth2/authorize?rid={request.rid}"
    # Back at the login page, the session now meets the bar.
    again = await hub.page(f"/account/login?rid={request.rid}")
    assert again.status_code == 303


async def test_a_national_id_without_a_hub_record_is_told_plainly(hub: Hub, idp: str) -> None:
    response, _ = await through_idp(hub, idp, UNLINKED, start="/account/federation/national/start")
    assert response.status_code == 403
    assert problem_of(response) == "no_linked_person"
    assert "No record for this national ID" in response.text
    assert await hub.signed_in_as() is None


async def test_a_token_endpoint_fault_is_a_page_not_a_crash(
    hub: Hub, idp: str, faults: httpx.Client
) -> None:
    faults.post("/_sandbox/faults", json={"token_status": 500}).raise_for_status()
    response, _ = await through_idp(hub, idp, LINKED, start="/account/federation/national/start")
    assert response.status_code == 502
    assert problem_of(response) == "federation_failed"
    assert await hub.signed_in_as() is None


async def test_a_callback_only_completes_once_and_only_in_its_browser(hub: Hub, idp: str) -> None:
    started = await hub.page("/account/federation/national/start")
    location = started.headers["location"]
    binding = hub.cookie("hub_fed")
    assert binding is not None
    # The callback URL lifted into another browser (no hub_fed cookie) does not sign in.
    async with httpx.AsyncClient(timeout=5.0) as browser:
        page = await browser.get(location)
        fields = {name: unescape(value) for name, value in _HIDDEN.findall(page.text)}
        answer = await browser.post(
            idp + "/authorize",
            data={
                **fields,
                "national_id": LINKED,
                "password": SANDBOX_PASSWORD,
                "action": "sign_in",
            },
        )
    back = urlsplit(answer.headers["location"])
    callback = f"{back.path}?{back.query}"
    hub.client.cookies.delete("hub_fed")
    stolen = await hub.page(callback)
    assert stolen.status_code == 400
    assert problem_of(stolen) == "federation_state_invalid"
    # The state is used up: even the right browser cannot replay it.
    hub.set_cookie("hub_fed", binding)
    replayed = await hub.page(callback)
    assert problem_of(replayed) == "federation_state_invalid"
    assert await hub.signed_in_as() is None


async def test_a_forged_state_is_refused(hub: Hub) -> None:
    response = await hub.page("/account/federation/national/callback?code=abc&state=forged")
    assert response.status_code == 400
    assert problem_of(response) == "federation_state_invalid"


async def test_cancelling_at_the_idp_is_a_clear_page(hub: Hub, idp: str) -> None:
    response, _ = await through_idp(
        hub, idp, LINKED, start="/account/federation/national/start", action="cancel"
    )
    assert response.status_code == 403
    assert problem_of(response) == "federation_denied"


async def test_an_idp_that_does_not_answer_is_a_page_not_a_crash(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    async with running_hub(tmp_path, env=federation_env(closed)) as hub:
        response = await hub.page("/account/federation/national/start")
        assert response.status_code == 502
        assert problem_of(response) == "federation_failed"
