"""People sign in to applications through a running hub: OIDC, MFA, consent, SSO, step-up, logout.

Real processes on loopback: the hub, an upstream, the ``hub`` command registering clients, and
the demo citizen portal. The relying party is authlib's OAuth client, the person's browser a
small form-filling one (:mod:`tests.browser`). Redirect URIs point at a loopback port nobody
serves: the browser stops at them and hands the URL to authlib, as a real one would to the app.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.auth.assurance import step_up_url
from hub.identity.acr import ACR_MFA, ACR_PASSWORD
from hub.identity.totp import code_at, new_secret
from tests.browser import Browser
from tests.fixtures_services import free_port
from tests.hubproc import HubProcess, hub_command, run_hub, write_policies
from tests.sso_e2e_support import (
    APP_CB,
    PASSWORD,
    TIMEOUT,
    AuthorizeRequest,
    OAuth2Client,
    add_person,
    first_party_app,
    id_token_claims,
    principal_of,
    public_client,
    query_of,
    set_totp,
    sign_in,
    start_process,
)
from tests.upstreams import UpstreamServer, sent

pytestmark = pytest.mark.integration

VENDOR_CB = "http://127.0.0.1:1/vendor/cb"
VENDOR_BYE = "http://127.0.0.1:1/vendor/signed-out"
COOKIE = "hub_session"  # a plain-http issuer: no Secure, no __Host- prefix
AMAL, BADR, DANA, EWA = "1000000001", "1000000002", "1000000003", "1000000004"


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    server = UpstreamServer("svc").start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sso-e2e")


@pytest.fixture(scope="module")
def hub(tmp: Path, upstream: UpstreamServer, backends: dict[str, str]) -> Iterator[HubProcess]:
    def route(name: str, prefix: str, **auth: Any) -> dict[str, Any]:
        methods = {"methods": ["jwt", "session"], **auth}
        return {
            "id": name,
            "prefix": prefix,
            "upstream": "svc",
            "strip_prefix": True,
            "auth": methods,
        }

    policies = write_policies(
        tmp / "policies",
        upstreams=[{"id": "svc", "targets": [{"url": upstream.url}]}],
        routes=[
            route("me", "/api/me/"),
            route("sensitive", "/api/sensitive/", acr=ACR_MFA),
            route("echo", "/api/echo/v1/me/"),  # what the demo portal calls
        ],
    )
    with run_hub(tmp, policies, env={"HUB_ACCESS_LOG": "false", **backends}) as process:
        yield process


@pytest.fixture(scope="module")
def people(tmp: Path, hub: HubProcess, backends: dict[str, str]) -> dict[str, str]:
    """Person ids by national ID; Amal has TOTP (the secret under ``"totp"``)."""
    ids = {
        identifier: add_person(tmp, hub, backends, identifier, name)
        for identifier, name in [(AMAL, "Amal"), (BADR, "Badr"), (DANA, "Dana"), (EWA, "Ewa")]
    }
    ids["totp"] = new_secret()
    set_totp(tmp, hub, backends, AMAL, ids["totp"])
    return ids


@pytest.fixture(scope="module")
def vendor(tmp: Path, hub: HubProcess, backends: dict[str, str]) -> dict[str, str]:
    """A third-party confidential client: consent asked, refresh tokens, a post-logout URI."""
    return hub_command(
        tmp, hub, backends, "clients", "create", "--name", "HR suite", "--owner", "acme",
        "--scopes", "svc.read", "--grant-types", "authorization_code,refresh_token",
        "--redirect-uri", VENDOR_CB, "--post-logout-redirect-uri", VENDOR_BYE,
    )  # fmt: skip


@pytest.fixture(scope="module")
def app(tmp: Path, hub: HubProcess, backends: dict[str, str]) -> dict[str, str]:
    return first_party_app(tmp, hub, backends)


def redeem(oauth: OAuth2Client, hub: HubProcess, request: AuthorizeRequest, location: str) -> Any:
    """The code in ``location`` exchanged by authlib, after checking state and iss."""
    query = query_of(location)
    assert query["state"] == request.state
    assert query["iss"] == hub.url  # RFC 9207
    return oauth.fetch_token(
        f"{hub.url}/oauth2/token",
        authorization_response=location,
        state=request.state,
        code_verifier=request.verifier,
    )


def cookie_of(browser: Browser, name: str = COOKIE) -> str | None:
    return next((c.value for c in browser.client.cookies.jar if c.name == name), None)


def with_cookie(hub: HubProcess, value: str, path: str = "/api/me/x") -> httpx.Response:
    """A request to ``path`` carrying only the session cookie ``value``."""
    return httpx.get(f"{hub.url}{path}", headers={"Cookie": f"{COOKIE}={value}"}, timeout=TIMEOUT)


def bearer(hub: HubProcess, token: str, path: str = "/api/me/x") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{hub.url}{path}", headers=headers, timeout=TIMEOUT)


def test_a_third_party_app_signs_a_person_in_with_totp_and_consent_then_out(
    hub: HubProcess, vendor: dict[str, str], people: dict[str, str]
) -> None:
    oauth = OAuth2Client(
        vendor["client_id"],
        vendor["client_secret"],
        token_endpoint_auth_method="client_secret_basic",
        redirect_uri=VENDOR_CB,
        scope="openid profile email svc.read",
        code_challenge_method="S256",
        timeout=TIMEOUT,
    )
    token_url = f"{hub.url}/oauth2/token"
    with oauth, Browser() as browser:
        request = AuthorizeRequest(oauth, hub)
        first = browser.get(request.url)
        assert first.status_code == 303
        assert first.headers["location"].startswith("/account/login?rid=")
        password_step = sign_in(browser, browser.follow(first), AMAL)
        assert password_step.headers["location"] == "/account/login/totp"
        totp_page = browser.follow(password_step)
        code = code_at(people["totp"], time.time())
        consent = browser.follow(browser.submit(browser.form_with(totp_page, "code"), code=code))
        assert str(consent.url).startswith(f"{hub.url}/account/consent?rid=")
        assert "HR suite" in consent.text
        for scope in ("profile", "email", "svc.read"):
            assert f'data-scope="{scope}"' in consent.text
        allowed = browser.submit(browser.form_with(consent, "rid"), button=("decision", "approve"))
        answer = browser.follow(allowed, stop_at=VENDOR_CB)
        token = redeem(oauth, hub, request, answer.headers["location"])

        claims = id_token_claims(hub, token["id_token"], vendor["client_id"])
        assert claims["sub"] == people[AMAL]
        assert claims["nonce"] == request.nonce
        assert claims["acr"] == ACR_MFA
        assert claims["amr"] == ["pwd", "otp"]
        assert claims["name"] == "Amal Tester"
        assert set(token["scope"].split()) == {"openid", "profile", "email", "svc.read"}

        # The access token opens a route (and one that asks for MFA); the upstream learns who.
        for path in ("/api/me/profile", "/api/sensitive/x"):
            response = bearer(hub, token["access_token"], path)
            assert response.status_code == 200, response.text
            assert sent(response.json(), "authorization") == []
            principal = principal_of(hub, response.json())
            assert (principal.kind, principal.subject) == ("person", people[AMAL])
            assert principal.acr == ACR_MFA
            assert principal.client_id == vendor["client_id"]

        userinfo = httpx.get(
            f"{hub.url}/oauth2/userinfo",
            headers={"Authorization": f"Bearer {token['access_token']}"},
            timeout=TIMEOUT,
        ).json()
        assert userinfo["sub"] == people[AMAL]
        assert userinfo["name"] == "Amal Tester"
        assert userinfo["email"] == f"{AMAL}@example.org"

        # Refresh tokens rotate; a spent one coming back revokes the whole family.
        second = oauth.refresh_token(token_url, refresh_token=token["refresh_token"])
        assert second["refresh_token"] != token["refresh_token"]
        third = oauth.refresh_token(token_url, refresh_token=second["refresh_token"])
        auth = (vendor["client_id"], vendor["client_secret"])
        for spent in (token["refresh_token"], third["refresh_token"]):
            form = {"grant_type": "refresh_token", "refresh_token": spent}
            refused = httpx.post(token_url, data=form, auth=auth, timeout=TIMEOUT)
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"] == "invalid_grant"

        introspect = f"{hub.url}/oauth2/introspect"
        form = {"token": third["access_token"]}
        active = httpx.post(introspect, data=form, auth=auth, timeout=TIMEOUT).json()
        assert active["active"] is True
        assert active["sub"] == people[AMAL]
        revoked = httpx.post(f"{hub.url}/oauth2/revoke", data=form, auth=auth, timeout=TIMEOUT)
        assert revoked.status_code == 200
        assert bearer(hub, third["access_token"]).status_code == 401
        assert httpx.post(introspect, data=form, auth=auth, timeout=TIMEOUT).json() == {
            "active": False
        }

        # RP-initiated logout: the hub session ends and the browser goes back with state.
        session = cookie_of(browser)
        assert session is not None
        assert with_cookie(hub, session).status_code == 200
        query = httpx.QueryParams(
            id_token_hint=token["id_token"], post_logout_redirect_uri=VENDOR_BYE, state="bye-1"
        )
        out = browser.get(f"{hub.url}/oauth2/logout?{query}")
        assert out.status_code == 303, out.text
        assert out.headers["location"] == f"{VENDOR_BYE}?state=bye-1"
        assert cookie_of(browser) is None
        assert with_cookie(hub, session).status_code == 401


def test_a_first_party_public_app_gets_sso_and_prompt_login_asks_again(
    hub: HubProcess, app: dict[str, str], people: dict[str, str]
) -> None:
    with public_client(app) as oauth, Browser() as browser:
        request = AuthorizeRequest(oauth, hub)
        answer = browser.follow(
            sign_in(browser, browser.follow(browser.get(request.url)), BADR), stop_at=APP_CB
        )
        assert not [r for r in browser.history if "/account/consent" in str(r.url)]
        token = redeem(oauth, hub, request, answer.headers["location"])
        first = id_token_claims(hub, token["id_token"], app["client_id"])
        assert (first["sub"], first["acr"], first["amr"]) == (people[BADR], ACR_PASSWORD, ["pwd"])

        # Signed in at the hub: the next authorization is answered at once, no page.
        again = AuthorizeRequest(oauth, hub)
        direct = browser.get(again.url)
        assert direct.status_code == 303
        assert direct.headers["location"].startswith(APP_CB)
        claims = id_token_claims(
            hub, redeem(oauth, hub, again, direct.headers["location"])["id_token"], app["client_id"]
        )
        assert claims["sub"] == people[BADR]
        assert claims["auth_time"] == first["auth_time"]
        assert claims["nonce"] == again.nonce

        # prompt=login: the form again, whatever the session.
        time.sleep(1.0)  # auth_time has a one-second resolution
        forced = AuthorizeRequest(oauth, hub, prompt="login")
        page = browser.follow(browser.get(forced.url))
        assert str(page.url).startswith(f"{hub.url}/account/login?rid=")
        answer = browser.follow(sign_in(browser, page, BADR), stop_at=APP_CB)
        token = redeem(oauth, hub, forced, answer.headers["location"])
        claims = id_token_claims(hub, token["id_token"], app["client_id"])
        assert claims["auth_time"] > first["auth_time"]


def test_a_route_asking_for_mfa_steps_a_password_session_up(
    tmp: Path, hub: HubProcess, backends: dict[str, str], people: dict[str, str]
) -> None:
    target = "/api/sensitive/x"
    with Browser(headers={"Accept": "text/html,application/xhtml+xml"}) as browser:
        page = browser.get(f"{hub.url}/account/login?return_to={target}")
        signed_in = sign_in(browser, page, DANA)
        assert signed_in.headers["location"] == target

        api = browser.client.get(f"{hub.url}{target}", headers={"Accept": "application/json"})
        assert api.status_code == 401
        problem = api.json()
        assert problem["code"] == "insufficient_user_authentication"
        assert problem["acr_values"] == ACR_MFA
        assert f'acr_values="{ACR_MFA}"' in api.headers["www-authenticate"]

        secret = new_secret()
        set_totp(tmp, hub, backends, DANA, secret)  # Dana sets up an authenticator app
        challenged = browser.get(f"{hub.url}{target}")
        assert challenged.status_code == 303
        assert challenged.headers["location"] == step_up_url(ACR_MFA, target)
        totp_page = browser.follow(challenged)
        assert str(totp_page.url) == f"{hub.url}/account/login/totp"
        done = browser.submit(
            browser.form_with(totp_page, "code"), code=code_at(secret, time.time())
        )
        assert done.headers["location"] == target
        landed = browser.follow(done)
        assert landed.status_code == 200, landed.text
        principal = principal_of(hub, landed.json())
        assert (principal.subject, principal.acr) == (people[DANA], ACR_MFA)


def test_a_session_value_planted_before_sign_in_is_worthless_afterwards(
    hub: HubProcess, people: dict[str, str]
) -> None:
    with Browser() as attacker, Browser() as victim:
        login = f"{hub.url}/account/login"
        assert sign_in(attacker, attacker.get(login), BADR).status_code == 303
        planted = cookie_of(attacker)
        assert planted is not None
        form = victim.get(login)
        # Planted while the victim's form is open (a sibling site, an injected header...).
        victim.client.cookies.set(COOKIE, planted, domain="127.0.0.1", path="/")
        answer = sign_in(victim, form, EWA)
        assert answer.status_code == 303
        assert f"{COOKIE}={planted}" in answer.request.headers["cookie"]
        fresh = cookie_of(victim)
        assert fresh is not None
        assert fresh != planted
        assert with_cookie(hub, planted).status_code == 401
        mine = with_cookie(hub, fresh)
        assert mine.status_code == 200, mine.text
        assert principal_of(hub, mine.json()).subject == people[EWA]


def test_the_login_form_refuses_a_post_without_its_token_or_from_another_site(
    hub: HubProcess, people: dict[str, str]
) -> None:
    with Browser() as browser:
        form = browser.form_with(browser.get(f"{hub.url}/account/login"), "identifier")
        fields = {**form.fields, "identifier": BADR, "password": PASSWORD}
        no_token = {k: v for k, v in fields.items() if k != "csrf"}
        foreign = {"Origin": "http://evil.example"}
        for data, headers in [
            (no_token, {}),
            (fields, foreign),
            ({**fields, "csrf": "x" * 43}, {}),
        ]:
            response = browser.client.post(form.action, data=data, headers=headers)
            assert response.status_code == 403, response.text
            assert 'data-problem="csrf_failed"' in response.text
            assert cookie_of(browser) is None


@pytest.mark.parametrize(
    "redirect_uri",
    [
        VENDOR_CB + "/extra",
        VENDOR_CB.replace("vendor", "Vendor"),
        VENDOR_CB + "?next=https://evil.example",
        VENDOR_CB + "/",
        "http://127.0.0.1:2/vendor/cb",
    ],
)
def test_a_redirect_uri_not_exactly_registered_gets_a_page_never_a_redirect(
    hub: HubProcess, vendor: dict[str, str], redirect_uri: str
) -> None:
    params = {
        "response_type": "code",
        "client_id": vendor["client_id"],
        "redirect_uri": redirect_uri,
        "scope": "openid",
        "state": "s",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    response = httpx.get(f"{hub.url}/oauth2/authorize", params=params, timeout=TIMEOUT)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


def test_pkce_is_required_and_a_code_is_good_once_with_its_verifier(
    hub: HubProcess, app: dict[str, str], people: dict[str, str]
) -> None:
    verifier = secrets.token_urlsafe(48)
    base = {
        "response_type": "code",
        "client_id": app["client_id"],
        "redirect_uri": APP_CB,
        "scope": "openid",
        "state": "s-1",
    }
    for pkce in [{}, {"code_challenge": verifier, "code_challenge_method": "plain"}]:
        refused = httpx.get(f"{hub.url}/oauth2/authorize", params={**base, **pkce})
        assert refused.status_code == 303
        location = refused.headers["location"]
        assert location.startswith(APP_CB)
        assert query_of(location)["error"] == "invalid_request"
        assert "code" not in query_of(location)

    # A code is worth nothing without its verifier (a stolen code, a public client).
    with public_client(app) as oauth, Browser() as browser:
        request = AuthorizeRequest(oauth, hub)
        answer = browser.follow(
            sign_in(browser, browser.follow(browser.get(request.url)), BADR), stop_at=APP_CB
        )
        code = query_of(answer.headers["location"])["code"]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": APP_CB}
        form["client_id"] = app["client_id"]
        for extra in [{}, {"code_verifier": verifier}]:
            response = httpx.post(f"{hub.url}/oauth2/token", data={**form, **extra})
            assert response.status_code == 400, response.text
            assert response.json()["error"] in ("invalid_request", "invalid_grant")

        # A code used twice: the second use fails and what the first one got is revoked.
        again = AuthorizeRequest(oauth, hub)
        location = browser.get(again.url).headers["location"]
        token = redeem(oauth, hub, again, location)
        assert bearer(hub, token["access_token"]).status_code == 200
        replay = {**form, "code": query_of(location)["code"], "code_verifier": again.verifier}
        response = httpx.post(f"{hub.url}/oauth2/token", data=replay)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_grant"
        assert bearer(hub, token["access_token"]).status_code == 401
        refresh = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
        refused = httpx.post(
            f"{hub.url}/oauth2/token", data={**refresh, "client_id": app["client_id"]}
        )
        assert refused.status_code == 400, refused.text


def test_a_principal_token_sent_by_the_caller_never_reaches_the_upstream(
    hub: HubProcess, people: dict[str, str]
) -> None:
    with Browser() as browser:
        sign_in(browser, browser.get(f"{hub.url}/account/login"), BADR)
        spoof = {"X-Hub-Principal-Token": "forged", "X-Hub-Acr": ACR_MFA}
        response = browser.get(f"{hub.url}/api/me/x", headers=spoof)
    assert response.status_code == 200, response.text
    echo = response.json()
    assert sent(echo, "x-hub-principal-token") != ["forged"]
    assert sent(echo, "x-hub-acr") == []
    assert f"{COOKIE}=" not in " ".join(sent(echo, "cookie"))  # the hub's credential, not theirs
    principal = principal_of(hub, echo)
    assert (principal.subject, principal.acr) == (people[BADR], ACR_PASSWORD)


def test_the_demo_portal_signs_in_calls_an_api_and_signs_out(
    tmp: Path, hub: HubProcess, backends: dict[str, str], people: dict[str, str]
) -> None:
    port = free_port()
    portal = f"http://127.0.0.1:{port}"
    client = hub_command(
        tmp, hub, backends, "clients", "create", "--name", "Citizen portal", "--owner",
        "platform", "--scopes", "svc.read", "--client-type", "public", "--auth-method", "none",
        "--redirect-uri", f"{portal}/callback", "--post-logout-redirect-uri", f"{portal}/",
        "--first-party",
    )  # fmt: skip
    command = ["-m", "services.portal", "--port", str(port), "--hub", hub.url]
    command += ["--client-id", client["client_id"]]
    with start_process(command, portal, "/", tmp / "portal.log"), Browser() as browser:
        page = browser.follow(browser.get(f"{portal}/login"))
        assert str(page.url).startswith(f"{hub.url}/account/login?rid=")
        home = browser.follow(sign_in(browser, page, BADR))
        assert str(home.url) == f"{portal}/", home.text
        assert "Signed in as <b>Badr Tester</b>" in home.text

        api = browser.get(f"{portal}/api")
        assert "GET /api/echo/v1/me/profile → 200" in api.text, api.text

        session = cookie_of(browser)
        assert session is not None
        out = browser.follow(browser.get(f"{portal}/logout"))
        assert [str(r.url).split("?")[0] for r in browser.history[-3:]] == [
            f"{portal}/logout",
            f"{hub.url}/oauth2/logout",
            f"{portal}/",
        ]
        assert "You are not signed in" in out.text
        assert with_cookie(hub, session).status_code == 401
