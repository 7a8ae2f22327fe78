"""The sandbox national identity provider: the OpenID Connect code flow, driven like a browser.

The relying party is authlib's httpx client; the browser is a plain httpx client that GETs the
sign-in page and POSTs its form. ID tokens are verified with pyjwt against ``/jwks.json``. Most
tests run the app in process through ``httpx.ASGITransport``; the last one starts the real
``python -m adapters.sandbox.national_idp`` process on a loopback port.
"""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import jwt
import pytest
from authlib.common.security import generate_token
from authlib.deprecate import AuthlibDeprecationWarning
from litestar import Litestar

with warnings.catch_warnings():
    # authlib names its httpx integration deprecated in favour of one for a future httpx.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

from adapters.sandbox.national_idp import (
    ACR,
    SANDBOX_PASSWORD,
    IdpConfig,
    create_app,
    load_people,
)
from adapters.sandbox.national_idp.domain import NationalIdp, s256
from tests.fixtures_services import free_port
from tests.hubproc import ROOT

ISSUER = "http://idp.sandbox.test"
CLIENT_ID = "hub-test"
CLIENT_SECRET = "hub-test-secret"
REDIRECT_URI = "http://127.0.0.1:9/account/federation/national/callback"
OTHER_REDIRECT_URI = "http://127.0.0.1:9/other/callback"
AISHA = "1000000001"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class _Form(HTMLParser):
    """The fields and action of the first form of a page, as a browser would submit them."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = attributes.get("action") or ""
            self._inside = True
        elif tag == "input" and self._inside and attributes.get("name"):
            self.fields[str(attributes["name"])] = attributes.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False


async def sign_in(
    browser: httpx.AsyncClient,
    authorize_url: str,
    national_id: str = AISHA,
    password: str = SANDBOX_PASSWORD,
    action: str = "sign_in",
    **tamper: str,
) -> httpx.Response:
    """GET the sign-in page, fill its form in and POST it; the response (not followed)."""
    page = await browser.get(authorize_url)
    assert page.status_code == 200, page.text
    assert "National identity provider (sandbox)" in page.text
    form = _Form()
    form.feed(page.text)
    assert form.action is not None
    fields = {**form.fields, "national_id": national_id, "password": password, "action": action}
    fields.update(tamper)
    return await browser.post(urljoin(str(page.url), form.action), data=fields)


def callback_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


async def verify_id_token(client: httpx.AsyncClient, issuer: str, id_token: str) -> dict[str, Any]:
    keys = jwt.PyJWKSet.from_dict((await client.get(issuer + "/jwks.json")).json())
    kid = jwt.get_unverified_header(id_token)["kid"]
    claims: dict[str, Any] = jwt.decode(
        id_token,
        key=keys[kid].key,
        algorithms=["RS256"],
        audience=CLIENT_ID,
        issuer=issuer,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "auth_time"]},
    )
    return claims


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(clock: FakeClock) -> Litestar:
    return create_app(
        IdpConfig(
            issuer=ISSUER,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            redirect_uris=(REDIRECT_URI, OTHER_REDIRECT_URI),
            clock=clock,
        )
    )


@pytest.fixture
async def browser(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ISSUER) as client:
        yield client


def relying_party(app: Litestar, auth_method: str = "client_secret_basic") -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        CLIENT_ID,
        CLIENT_SECRET,
        token_endpoint_auth_method=auth_method,
        scope="openid profile",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        transport=httpx.ASGITransport(app),
    )


async def authorize(
    browser: httpx.AsyncClient, rp: AsyncOAuth2Client, **extra: str
) -> tuple[dict[str, str], str]:
    """Sign Aisha in with PKCE; the callback parameters and the code_verifier."""
    verifier = generate_token(48)
    url, _ = rp.create_authorization_url(ISSUER + "/authorize", code_verifier=verifier, **extra)
    return callback_params(await sign_in(browser, url)), verifier


async def exchange(browser: httpx.AsyncClient, code: str, **form: str) -> httpx.Response:
    fields = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    return await browser.post("/token", data={**fields, **form}, auth=(CLIENT_ID, CLIENT_SECRET))


# -- metadata ------------------------------------------------------------------------------


async def test_discovery_names_the_endpoints_and_jwks_has_the_signing_key(
    browser: httpx.AsyncClient,
) -> None:
    metadata = (await browser.get("/.well-known/openid-configuration")).json()
    assert metadata["issuer"] == ISSUER
    assert metadata["authorization_endpoint"] == ISSUER + "/authorize"
    assert metadata["token_endpoint"] == ISSUER + "/token"
    assert metadata["userinfo_endpoint"] == ISSUER + "/userinfo"
    assert metadata["jwks_uri"] == ISSUER + "/jwks.json"
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert set(metadata["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    (key,) = (await browser.get("/jwks.json")).json()["keys"]
    assert key["kty"] == "RSA"
    assert key["alg"] == "RS256"
    assert key["kid"]
    assert "d" not in key


def test_demo_people_include_the_documented_identities() -> None:
    people = {person.national_id: person for person in load_people()}
    assert people["1000000001"].name == "Aisha Al-Harbi"
    assert people["1000000002"].kind == "citizen"
    assert people["2000000001"].kind == "resident"
    assert "1000000099" in people  # known to the IdP, deliberately absent from the hub


def test_subjects_are_pairwise_and_stable_across_restarts() -> None:
    aisha = next(p for p in load_people() if p.national_id == AISHA)

    def idp(client_id: str) -> NationalIdp:
        return NationalIdp(
            IdpConfig(issuer=ISSUER, client_id=client_id, client_secret="x", redirect_uris=())
        )

    assert idp("a").subject(aisha, "a") == idp("a").subject(aisha, "a")
    assert idp("a").subject(aisha, "a") != idp("b").subject(aisha, "b")
    assert AISHA not in idp("a").subject(aisha, "a")


# -- the happy path ------------------------------------------------------------------------


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
async def test_code_flow_with_pkce_returns_a_signed_id_token_and_userinfo(
    app: Litestar, browser: httpx.AsyncClient, auth_method: str
) -> None:
    nonce = generate_token(20)
    async with relying_party(app, auth_method) as rp:
        params, verifier = await authorize(browser, rp, nonce=nonce, state="st-1")
        assert params["state"] == "st-1"
        assert params["iss"] == ISSUER  # RFC 9207
        authorization_response = f"{REDIRECT_URI}?code={params['code']}&state=st-1"
        token = await rp.fetch_token(
            ISSUER + "/token",
            authorization_response=authorization_response,
            code_verifier=verifier,
            state="st-1",
        )
        assert token["token_type"] == "Bearer"
        assert token["expires_in"] > 0
        claims = await verify_id_token(browser, ISSUER, token["id_token"])
        info = (await rp.get(ISSUER + "/userinfo")).json()

    assert claims["nonce"] == nonce
    assert claims["acr"] == ACR == "urn:national-idp:loa3"
    assert claims["national_id"] == AISHA
    assert (claims["given_name"], claims["family_name"]) == ("Aisha", "Al-Harbi")
    assert claims["birthdate"] == "1988-04-12"
    assert claims["auth_time"] <= claims["iat"] < claims["exp"]
    assert info == {
        "sub": claims["sub"],
        "national_id": AISHA,
        "given_name": "Aisha",
        "family_name": "Al-Harbi",
        "birthdate": "1988-04-12",
    }


async def test_the_subject_is_the_same_on_every_sign_in(
    app: Litestar, browser: httpx.AsyncClient
) -> None:
    subjects = set()
    async with relying_party(app) as rp:
        for _ in range(2):
            params, verifier = await authorize(browser, rp)
            response = await exchange(browser, params["code"], code_verifier=verifier)
            subjects.add(
                jwt.decode(response.json()["id_token"], options={"verify_signature": False})["sub"]
            )
    assert len(subjects) == 1


async def test_without_nonce_or_pkce_the_flow_still_works(browser: httpx.AsyncClient) -> None:
    url = _authorize_url(code_challenge=None, code_challenge_method=None)
    params = callback_params(await sign_in(browser, url))
    response = await exchange(browser, params["code"])
    assert response.status_code == 200, response.text
    claims = await verify_id_token(browser, ISSUER, response.json()["id_token"])
    assert "nonce" not in claims


async def test_cancel_sends_access_denied_back(app: Litestar, browser: httpx.AsyncClient) -> None:
    async with relying_party(app) as rp:
        url, state = rp.create_authorization_url(ISSUER + "/authorize", code_verifier="v" * 43)
    params = callback_params(await sign_in(browser, url, action="cancel"))
    assert params["error"] == "access_denied"
    assert params["state"] == state


# -- the authorization endpoint refuses ----------------------------------------------------


def _authorize_url(**overrides: str | None) -> str:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid",
        "state": "s1",
        "code_challenge": s256("v" * 43),
        "code_challenge_method": "S256",
        **overrides,
    }
    query = httpx.QueryParams({k: v for k, v in params.items() if v is not None})
    return f"/authorize?{query}"


@pytest.mark.parametrize(
    "overrides",
    [
        {"redirect_uri": "http://127.0.0.1:9/account/federation/national/callback/"},
        {"redirect_uri": "http://evil.example/callback"},
        {"redirect_uri": None},
        {"client_id": "someone-else"},
        {"state": None},
    ],
    ids=["trailing-slash", "foreign", "missing-redirect", "unknown-client", "no-state"],
)
async def test_an_untrusted_request_gets_an_error_page_never_a_redirect(
    browser: httpx.AsyncClient, overrides: dict[str, str | None]
) -> None:
    response = await browser.get(_authorize_url(**overrides))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


async def test_a_tampered_redirect_uri_in_the_form_is_refused_without_a_redirect(
    browser: httpx.AsyncClient,
) -> None:
    response = await sign_in(browser, _authorize_url(), redirect_uri="http://evil.example/cb")
    assert response.status_code == 400
    assert "location" not in response.headers


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge_method": "plain", "code_challenge": "v" * 43}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),  # defaults to plain
        ({"code_challenge": "short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "profile"}, "invalid_scope"),
    ],
    ids=["plain", "plain-by-default", "malformed-challenge", "implicit", "no-openid"],
)
async def test_a_bad_request_from_a_good_client_redirects_with_an_error(
    browser: httpx.AsyncClient, overrides: dict[str, str | None], error: str
) -> None:
    params = callback_params(await browser.get(_authorize_url(**overrides)))
    assert params["error"] == error
    assert params["state"] == "s1"
    assert "code" not in params


@pytest.mark.parametrize(
    ("national_id", "password"),
    [(AISHA, "wrong"), (AISHA, ""), ("1234567890", SANDBOX_PASSWORD)],
    ids=["wrong-password", "no-password", "unknown-person"],
)
async def test_failed_sign_in_shows_the_page_again(
    browser: httpx.AsyncClient, national_id: str, password: str
) -> None:
    response = await sign_in(browser, _authorize_url(), national_id, password)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "the national ID or the password is wrong" in response.text
    form = _Form()
    form.feed(response.text)
    assert form.fields["state"] == "s1"  # the request is carried on for the next attempt


# -- the token endpoint refuses ------------------------------------------------------------


async def test_a_bad_client_secret_is_invalid_client(
    app: Litestar, browser: httpx.AsyncClient
) -> None:
    async with relying_party(app) as rp:
        params, verifier = await authorize(browser, rp)
    fields = {
        "grant_type": "authorization_code",
        "code": params["code"],
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    basic = await browser.post("/token", data=fields, auth=(CLIENT_ID, "wrong"))
    posted = await browser.post(
        "/token", data={**fields, "client_id": CLIENT_ID, "client_secret": "wrong"}
    )
    anonymous = await browser.post("/token", data=fields)
    for response in (basic, posted, anonymous):
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
        assert response.headers["www-authenticate"].startswith("Basic")
    # A failed client authentication does not spend the code.
    good = await exchange(browser, params["code"], code_verifier=verifier)
    assert good.status_code == 200


async def test_a_code_is_single_use_and_a_replay_revokes_its_token(
    app: Litestar, browser: httpx.AsyncClient
) -> None:
    async with relying_party(app) as rp:
        params, verifier = await authorize(browser, rp)
    first = await exchange(browser, params["code"], code_verifier=verifier)
    assert first.status_code == 200
    access_token = first.json()["access_token"]
    bearer = {"Authorization": f"Bearer {access_token}"}
    assert (await browser.get("/userinfo", headers=bearer)).status_code == 200

    replay = await exchange(browser, params["code"], code_verifier=verifier)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    revoked = await browser.get("/userinfo", headers=bearer)
    assert revoked.status_code == 401
    assert 'error="invalid_token"' in revoked.headers["www-authenticate"]


@pytest.mark.parametrize(
    "form",
    [
        {"code_verifier": "w" * 43},
        {"code_verifier": None},
        {"redirect_uri": OTHER_REDIRECT_URI},
        {"redirect_uri": None},
    ],
    ids=["wrong-verifier", "missing-verifier", "other-redirect-uri", "missing-redirect-uri"],
)
async def test_a_mismatched_exchange_is_invalid_grant_and_spends_the_code(
    app: Litestar, browser: httpx.AsyncClient, form: dict[str, str | None]
) -> None:
    async with relying_party(app) as rp:
        params, verifier = await authorize(browser, rp)
    fields = {
        "grant_type": "authorization_code",
        "code": params["code"],
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
        **form,
    }
    sent = {name: value for name, value in fields.items() if value is not None}
    response = await browser.post("/token", data=sent, auth=(CLIENT_ID, CLIENT_SECRET))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert response.headers["cache-control"] == "no-store"
    retry = await exchange(browser, params["code"], code_verifier=verifier)
    assert retry.json()["error"] == "invalid_grant"


async def test_a_verifier_without_a_challenge_is_invalid_grant(browser: httpx.AsyncClient) -> None:
    url = _authorize_url(code_challenge=None, code_challenge_method=None)
    params = callback_params(await sign_in(browser, url))
    response = await exchange(browser, params["code"], code_verifier="v" * 43)
    assert response.json()["error"] == "invalid_grant"


async def test_an_expired_code_is_invalid_grant(
    app: Litestar, browser: httpx.AsyncClient, clock: FakeClock
) -> None:
    async with relying_party(app) as rp:
        params, verifier = await authorize(browser, rp)
    clock.now += 61
    response = await exchange(browser, params["code"], code_verifier=verifier)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_only_the_authorization_code_grant_is_supported(browser: httpx.AsyncClient) -> None:
    response = await browser.post(
        "/token", data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, CLIENT_SECRET)
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


async def test_userinfo_needs_a_bearer_token(browser: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic eDp5"}):
        response = await browser.get("/userinfo", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")


# -- fault injection -----------------------------------------------------------------------


async def test_token_status_fault_fails_the_exchange_without_spending_the_code(
    app: Litestar, browser: httpx.AsyncClient
) -> None:
    async with relying_party(app) as rp:
        params, verifier = await authorize(browser, rp)
    faults = await browser.post("/_sandbox/faults", json={"token_status": 500})
    assert faults.json() == {"token_status": 500, "latency_ms": 0}
    failed = await exchange(browser, params["code"], code_verifier=verifier)
    assert failed.status_code == 500
    assert failed.json()["error"] == "server_error"

    await browser.post("/_sandbox/faults", json={"token_status": None})
    recovered = await exchange(browser, params["code"], code_verifier=verifier)
    assert recovered.status_code == 200


async def test_latency_fault_delays_the_endpoints_but_not_the_sandbox_ones(
    browser: httpx.AsyncClient,
) -> None:
    await browser.post("/_sandbox/faults", json={"latency_ms": 300})
    started = time.monotonic()
    await browser.get("/.well-known/openid-configuration")
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    health = (await browser.get("/_sandbox/health")).json()
    assert time.monotonic() - started < 0.3
    assert health == {
        "status": "ok",
        "issuer": ISSUER,
        "faults": {"token_status": None, "latency_ms": 300},
    }


@pytest.mark.parametrize(
    "body",
    [{"token_status": 200}, {"token_status": "500"}, {"latency_ms": -1}, {"other": 1}, [1]],
)
async def test_malformed_faults_are_refused(browser: httpx.AsyncClient, body: Any) -> None:
    response = await browser.post("/_sandbox/faults", json=body)
    assert response.status_code == 400


# -- the real process ----------------------------------------------------------------------


@pytest.fixture
def idp_process() -> Iterator[str]:
    port = free_port()
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
            OTHER_REDIRECT_URI,
            "--redirect-uri",
            REDIRECT_URI,
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    issuer = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                if httpx.get(issuer + "/_sandbox/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the sandbox IdP did not start"
            time.sleep(0.05)
        yield issuer
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()


@pytest.mark.integration
async def test_the_command_serves_the_code_flow_on_a_loopback_port(idp_process: str) -> None:
    issuer = idp_process
    nonce = generate_token(20)
    async with (
        httpx.AsyncClient() as browser,
        AsyncOAuth2Client(
            CLIENT_ID,
            CLIENT_SECRET,
            scope="openid",
            redirect_uri=REDIRECT_URI,
            code_challenge_method="S256",
        ) as rp,
    ):
        metadata = (await browser.get(issuer + "/.well-known/openid-configuration")).json()
        assert metadata["issuer"] == issuer
        verifier = generate_token(48)
        url, state = rp.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce
        )
        params = callback_params(await sign_in(browser, url, national_id="2000000001"))
        token = await rp.fetch_token(
            metadata["token_endpoint"],
            code=params["code"],
            code_verifier=verifier,
            state=state,
        )
        claims = await verify_id_token(browser, issuer, token["id_token"])
        info = (await rp.get(metadata["userinfo_endpoint"])).json()
    assert claims["nonce"] == nonce
    assert claims["national_id"] == info["national_id"] == "2000000001"
    assert claims["family_name"] == "Santos"
