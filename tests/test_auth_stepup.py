"""A route's minimum acr and the step-up challenge (hub.auth.assurance, issue 3).

A person below the route's level is challenged rather than refused: a browser page load with the
session cookie is sent to sign in again (303), every other person caller gets a 401 problem with
the RFC 9470 challenge. Callers with no person behind them get a 403. The end-to-end part runs a
hub that shares its Redis ephemeral store with the test, as in tests/test_auth_session.py.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hub.auth import Principal
from hub.auth.assurance import is_navigation, require_acr, step_up_url
from hub.config.loader import default_schema_path, load_directory
from hub.errors import ConfigError, InsufficientUserAuthentication, UserAuthenticationRequired
from hub.identity.acr import ACR_LEVELS, ACR_MFA, ACR_NATIONAL_IDP, ACR_PASSWORD
from hub.identity.sessions import COOKIE_NAME
from tests.hubproc import HubProcess, hub_command
from tests.session_support import NAME, TIMEOUT, Browser, client_token, route, session_hub
from tests.test_auth_session import MIXED, bearer, cookie, make_kit
from tests.upstreams import sent

CHALLENGE = (
    'Bearer realm="hub", error="insufficient_user_authentication",'
    ' error_description="A different authentication level is required", acr_values="{acr}"'
)
MFA_STEP_UP = "/account/login?acr_values=urn%3Ahub%3Aacr%3Amfa&return_to="


def person(acr: str | None, *, via_session: bool = False) -> Principal:
    return Principal(subject="p", kind="person", issuer="hub", acr=acr, via_session=via_session)


# --- the rule ------------------------------------------------------------------------------------


def test_the_step_up_url_carries_the_level_and_the_way_back() -> None:
    assert step_up_url(ACR_MFA, "/portal/a/b?x=1&y=%20z") == (
        MFA_STEP_UP + "/portal/a/b%3Fx%3D1%26y%3D%2520z"
    )


@pytest.mark.parametrize(
    ("acr", "required"),
    [
        (None, None),
        (ACR_PASSWORD, None),
        (ACR_PASSWORD, ACR_PASSWORD),
        (ACR_MFA, ACR_PASSWORD),
        (ACR_MFA, ACR_MFA),
        (ACR_NATIONAL_IDP, ACR_MFA),
    ],
)
def test_equal_or_stronger_passes(acr: str | None, required: str | None) -> None:
    require_acr(required, person(acr, via_session=True), target="/x")
    require_acr(required, person(acr), target="/x")


def test_a_session_below_the_level_gets_the_challenge_and_the_way_to_sign_in() -> None:
    with pytest.raises(InsufficientUserAuthentication) as caught:
        require_acr(ACR_MFA, person(ACR_PASSWORD, via_session=True), target="/portal/x?a=1")
    error = caught.value
    assert (error.status, error.code) == (401, "insufficient_user_authentication")
    assert error.extra == {"acr_values": ACR_MFA, "step_up": MFA_STEP_UP + "/portal/x%3Fa%3D1"}
    assert error.headers == {"WWW-Authenticate": CHALLENGE.format(acr=ACR_MFA)}


@pytest.mark.parametrize("acr", [None, ACR_PASSWORD, "urn:elsewhere:loa:4"])
def test_a_token_below_the_level_gets_the_rfc_9470_challenge(acr: str | None) -> None:
    with pytest.raises(InsufficientUserAuthentication) as caught:
        require_acr(ACR_MFA, person(acr), target="/x")
    error = caught.value
    assert error.status == 401
    assert error.extra == {"acr_values": ACR_MFA}  # a token client re-runs authorization
    assert error.headers["WWW-Authenticate"] == CHALLENGE.format(acr=ACR_MFA)


@pytest.mark.parametrize(("kind", "what"), [("api_key", "an API key"), ("client", "a client")])
def test_a_caller_without_a_person_cannot_step_up(kind: str, what: str) -> None:
    caller = Principal(subject="c", kind=kind, issuer="hub")  # type: ignore[arg-type]
    with pytest.raises(UserAuthenticationRequired) as caught:
        require_acr(ACR_PASSWORD, caller, target="/x")
    error = caught.value
    assert (error.status, error.code) == (403, "user_authentication_required")
    assert what in error.detail
    assert "WWW-Authenticate" not in error.headers


@pytest.mark.parametrize(
    ("method", "accept", "navigation"),
    [
        ("GET", b"text/html,application/xhtml+xml,*/*;q=0.8", True),
        ("HEAD", b"TEXT/HTML", True),
        ("GET", b"application/json", False),
        ("GET", b"*/*", False),
        ("POST", b"text/html", False),
        ("GET", None, False),
    ],
)
def test_is_navigation(method: str, accept: bytes | None, navigation: bool) -> None:
    headers = [(b"accept", accept)] if accept is not None else []
    assert is_navigation(method, headers) is navigation


async def test_a_real_token_below_the_level_is_challenged() -> None:
    kit = make_kit()
    token = bearer(acr=ACR_PASSWORD)
    principal = await kit.auth.authenticate(MIXED, [(b"authorization", f"Bearer {token}".encode())])
    with pytest.raises(InsufficientUserAuthentication):
        require_acr(ACR_MFA, principal, target="/x")
    strong = await kit.auth.authenticate(
        MIXED, [(b"authorization", f"Bearer {bearer(acr=ACR_MFA)}".encode())]
    )
    require_acr(ACR_MFA, strong, target="/x")


async def test_a_session_principal_carries_its_acr_to_the_rule() -> None:
    kit = make_kit()
    raw = await kit.sign_in(ACR_PASSWORD)
    principal = await kit.auth.authenticate(MIXED, [cookie(f"{COOKIE_NAME}={raw}")])
    with pytest.raises(InsufficientUserAuthentication) as caught:
        require_acr(ACR_NATIONAL_IDP, principal, target="/p")
    assert "step_up" in caught.value.extra


# --- configuration -------------------------------------------------------------------------------


def test_the_schema_knows_exactly_the_hubs_levels() -> None:
    schema = json.loads(default_schema_path().read_text())
    auth = schema["$defs"]["auth"]["properties"]
    assert tuple(auth["acr"]["enum"]) == ACR_LEVELS
    assert auth["methods"]["items"]["enum"] == ["jwt", "api_key", "session"]


def write(folder: Path, auth: str) -> Path:
    folder.mkdir()
    (folder / "upstreams.yaml").write_text(
        "upstreams:\n  - id: echo\n    targets: [{url: 'http://127.0.0.1:9101'}]\n"
    )
    (folder / "routes.yaml").write_text(
        f"routes:\n  - {{id: portal, upstream: echo, prefix: /portal/, auth: {auth}}}\n"
    )
    return folder


def test_a_route_loads_its_level_and_the_session_method(tmp_path: Path) -> None:
    document = load_directory(write(tmp_path / "p", f"{{methods: [session, jwt], acr: {ACR_MFA}}}"))
    (portal,) = document.routes
    assert portal.auth is not None
    assert (portal.auth.methods, portal.auth.acr) == (("session", "jwt"), ACR_MFA)


def test_an_unknown_level_is_refused_naming_file_and_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_directory(write(tmp_path / "p", "{methods: [session], acr: 'urn:hub:acr:otp'}"))
    assert caught.value.issues == [
        "p/routes.yaml: $.routes[0].auth.acr: 'urn:hub:acr:otp' is not one of"
        " ['urn:hub:acr:pwd', 'urn:hub:acr:mfa', 'urn:hub:acr:national-idp']"
    ]


# --- end to end ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("auth-stepup")


@pytest.fixture(scope="module")
def hub(tmp: Path, redis_url: str) -> Iterator[HubProcess]:
    every = ["session", "jwt", "api_key"]
    routes = [
        route("mfa", auth={"methods": every, "acr": ACR_MFA}),
        route("national", auth={"methods": every, "acr": ACR_NATIONAL_IDP}),
    ]
    with session_hub(tmp, redis_url, routes) as process:
        yield process


@pytest.fixture(scope="module")
def browser(redis_url: str) -> Iterator[Browser]:
    with Browser(redis_url) as person:
        yield person


HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.integration
@pytest.mark.backends
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_browser_below_the_level_is_sent_to_sign_in_again(
    hub: HubProcess, browser: Browser, method: str
) -> None:
    raw = browser.sign_in(ACR_PASSWORD)
    response = httpx.request(
        method,
        f"{hub.url}/mfa/pay/slips?year=2030&sort=desc",
        headers={"Cookie": f"{NAME}={raw}", "Accept": HTML},
        timeout=TIMEOUT,
    )
    assert response.status_code == 303
    assert response.headers["location"] == (
        MFA_STEP_UP + "/mfa/pay/slips%3Fyear%3D2030%26sort%3Ddesc"
    )
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.integration
@pytest.mark.backends
def test_a_script_below_the_level_gets_the_problem_and_the_challenge(
    hub: HubProcess, browser: Browser
) -> None:
    raw = browser.sign_in(ACR_PASSWORD)
    response = httpx.get(
        f"{hub.url}/national/data",
        headers={"Cookie": f"{NAME}={raw}", "Accept": "application/json"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == CHALLENGE.format(acr=ACR_NATIONAL_IDP)
    problem = response.json()
    assert problem["code"] == "insufficient_user_authentication"
    assert problem["acr_values"] == ACR_NATIONAL_IDP
    assert problem["step_up"] == (
        "/account/login?acr_values=urn%3Ahub%3Aacr%3Anational-idp&return_to=/national/data"
    )


@pytest.mark.integration
@pytest.mark.backends
def test_a_form_post_below_the_level_is_not_redirected(hub: HubProcess, browser: Browser) -> None:
    raw = browser.sign_in(ACR_PASSWORD)
    response = httpx.post(
        f"{hub.url}/mfa/form",
        headers={"Cookie": f"{NAME}={raw}", "Accept": HTML, "Origin": hub.url},
        timeout=TIMEOUT,
    )
    assert response.status_code == 401
    assert response.json()["code"] == "insufficient_user_authentication"


@pytest.mark.integration
@pytest.mark.backends
@pytest.mark.parametrize("acr", [ACR_MFA, ACR_NATIONAL_IDP])
def test_a_session_at_or_above_the_level_passes(
    hub: HubProcess, browser: Browser, acr: str
) -> None:
    raw = browser.sign_in(acr)
    response = httpx.get(
        f"{hub.url}/mfa/echo", headers={"Cookie": f"{NAME}={raw}", "Accept": HTML}, timeout=TIMEOUT
    )
    assert response.status_code == 200, response.text
    assert sent(response.json(), "cookie") == []


@pytest.mark.integration
@pytest.mark.backends
def test_a_client_token_cannot_step_up(
    tmp: Path, hub: HubProcess, browser: Browser, redis_url: str
) -> None:
    token = client_token(tmp, hub, redis_url)
    response = httpx.get(
        f"{hub.url}/mfa/echo", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
    )
    assert response.status_code == 403
    assert response.json()["code"] == "user_authentication_required"


@pytest.mark.integration
@pytest.mark.backends
def test_an_api_key_cannot_step_up(tmp: Path, hub: HubProcess, redis_url: str) -> None:
    key = hub_command(
        tmp, hub, {"HUB_REDIS_URL": redis_url}, "apikeys", "create", "--name", "k", "--scopes", "x"
    )
    response = httpx.get(
        f"{hub.url}/mfa/echo", headers={"X-API-Key": key["api_key"]}, timeout=TIMEOUT
    )
    assert response.status_code == 403
    problem = response.json()
    assert problem["code"] == "user_authentication_required"
    assert problem["acr_values"] == ACR_MFA
    assert "www-authenticate" not in response.headers


@pytest.mark.integration
@pytest.mark.backends
def test_no_credential_on_a_level_route_is_a_plain_401(hub: HubProcess) -> None:
    response = httpx.get(
        f"{hub.url}/mfa/echo",
        headers={"Cookie": f"{NAME}={secrets.token_urlsafe(32)}", "Accept": HTML},
        timeout=TIMEOUT,
    )
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
