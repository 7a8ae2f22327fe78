"""Session-cookie callers at the gateway (hub.auth.session, hub.auth.authenticator).

Unit tests run the Authenticator over real login sessions (SessionManager on the in-process
ephemeral store) beside real bearer tokens and API keys. The end-to-end part starts a hub that
shares a Redis ephemeral store with the test (:mod:`tests.session_support`).
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from hub.auth import ApiKeyVerifier, IssuerConfig, Principal, TokenVerifier
from hub.auth.authenticator import Authenticator
from hub.auth.session import (
    SESSION_COOKIE_NAMES,
    check_same_origin,
    origin_of,
    session_cookie,
    without_session_cookies,
)
from hub.backends.ephemeral.memory import MemoryEphemeralStore
from hub.config.model import AuthSpec
from hub.errors import CsrfOriginMismatch, InsufficientScope, InvalidToken, Unauthorized
from hub.identity.acr import ACR_MFA, ACR_PASSWORD
from hub.identity.sessions import COOKIE_NAME, INSECURE_COOKIE_NAME, SessionManager
from tests.hubproc import HubProcess
from tests.session_support import NAME, TIMEOUT, Browser, client_token, route, session_hub
from tests.sso_e2e_support import principal_of
from tests.upstreams import sent

ISSUER = "https://hub.example.gov"

# --- the pieces a unit test needs: a session store, a token signer, an API key ----------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@functools.cache
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Keys:
    def public_key(self, kid: str) -> Any | None:
        return signing_key().public_key() if kid == "k1" else None


def bearer(**claims: Any) -> str:
    """A valid access token of the hub (a person's unless overridden)."""
    now = int(time.time())
    payload = {
        "iss": ISSUER,
        "aud": "hub",
        "sub": "person-7",
        "client_id": "portal-app",
        "kind": "person",
        "scope": "svc.read",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        **claims,
    }
    return jwt.encode(payload, signing_key(), algorithm="RS256", headers={"kid": "k1"})


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRecord:
    """The shape of hub.db.identity_store.ApiKeyRecord."""

    id: str
    prefix: str
    secret_hash: str
    client_id: str | None
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


def api_key() -> tuple[ApiKeyVerifier, str]:
    prefix = secrets.token_hex(5)
    plaintext = f"hub_{prefix}_{secrets.token_urlsafe(32)}"
    record = KeyRecord(
        id=f"key-{prefix}",
        prefix=prefix,
        secret_hash=hashlib.sha256(plaintext.encode()).hexdigest(),
        client_id="batch",
        name="batch",
        scopes=("svc.read",),
        created_at=datetime(2030, 1, 1, tzinfo=UTC),
    )

    async def lookup(wanted: str) -> KeyRecord | None:
        return record if wanted == prefix else None

    return ApiKeyVerifier(lookup, issuer=ISSUER), plaintext


@dataclass
class Kit:
    clock: Clock
    sessions: SessionManager
    tokens: TokenVerifier
    keys: ApiKeyVerifier
    api_key: str
    auth: Authenticator

    async def sign_in(self, acr: str = ACR_PASSWORD) -> str:
        raw, _ = await self.sessions.create(person_id="person-7", acr=acr, amr=["pwd"])
        return raw


def make_kit(cookie: str = COOKIE_NAME) -> Kit:
    clock = Clock()
    sessions = SessionManager(
        MemoryEphemeralStore(clock=clock), idle_seconds=1800, max_seconds=43200, clock=clock
    )
    tokens = TokenVerifier(
        [IssuerConfig(issuer=ISSUER, audiences=("hub",), algorithms=("RS256",))],
        local_issuer=ISSUER,
        local_keys=Keys(),
        jwks=None,
    )
    keys, plaintext = api_key()
    auth = Authenticator(
        tokens=tokens, api_keys=keys, sessions=sessions, session_cookie=cookie, issuer=ISSUER
    )
    return Kit(
        clock=clock, sessions=sessions, tokens=tokens, keys=keys, api_key=plaintext, auth=auth
    )


@pytest.fixture
def kit() -> Kit:
    return make_kit()


def cookie(*pairs: str) -> tuple[bytes, bytes]:
    return (b"cookie", "; ".join(pairs).encode())


PORTAL = AuthSpec(methods=("session",))
MIXED = AuthSpec(methods=("jwt", "api_key", "session"))


# --- the session as a credential -----------------------------------------------------------------


async def test_a_live_session_is_a_person_without_scopes(kit: Kit) -> None:
    raw, session = await kit.sessions.create(person_id="person-7", acr=ACR_MFA, amr=["pwd", "otp"])
    principal = await kit.auth.authenticate(PORTAL, [cookie(f"{COOKIE_NAME}={raw}")])
    assert principal == Principal(
        subject="person-7",
        kind="person",
        issuer=ISSUER,
        acr=ACR_MFA,
        scopes=frozenset(),
        token_id=session.sid,
        expires_at=session.expires_at,
        via_session=True,
    )


async def test_the_session_cookie_is_found_among_others_and_across_headers(kit: Kit) -> None:
    raw = await kit.sign_in()
    for headers in (
        [cookie("theme=dark", f"{COOKIE_NAME}={raw}", "lang=en")],
        [cookie("theme=dark"), cookie(f" {COOKIE_NAME}={raw} ")],  # split (HTTP/2)
        [(b"accept", b"*/*"), cookie(f"{COOKIE_NAME}={raw}")],
    ):
        principal = await kit.auth.authenticate(PORTAL, headers)
        assert principal.subject == "person-7"


async def refused(kit: Kit, spec: AuthSpec, headers: list[tuple[bytes, bytes]]) -> Unauthorized:
    with pytest.raises(Unauthorized) as caught:
        await kit.auth.authenticate(spec, headers)
    error = caught.value
    assert error.status == 401
    assert error.headers["WWW-Authenticate"].startswith('Bearer realm="hub"')
    return error


async def test_a_session_that_is_not_live_is_a_401(kit: Kit) -> None:
    ended = await kit.sign_in()
    await kit.sessions.end(ended)
    expired = await kit.sign_in()
    kit.clock.now += 1801  # idle beyond its lifetime
    for value in (ended, expired, secrets.token_urlsafe(32)):
        error = await refused(kit, PORTAL, [cookie(f"{COOKIE_NAME}={value}")])
        assert error.code == "unauthorized"
        assert error.detail == "the session has expired, ended or is unknown; sign in again"


@pytest.mark.parametrize(
    "value", ["", "short", '"' + "a" * 43 + '"', "a" * 129, "a" * 40 + "!!!", "a" * 40 + "%41"]
)
async def test_a_malformed_session_cookie_is_a_401(kit: Kit, value: str) -> None:
    error = await refused(kit, PORTAL, [cookie(f"{COOKIE_NAME}={value}")])
    assert error.detail == "the session cookie is malformed; sign in again"


async def test_two_session_cookies_are_ambiguous(kit: Kit) -> None:
    raw = await kit.sign_in()
    other = await kit.sign_in()
    for headers in (
        [cookie(f"{COOKIE_NAME}={raw}", f"{COOKIE_NAME}={other}")],
        [cookie(f"{COOKIE_NAME}={raw}"), cookie(f"{COOKIE_NAME}={raw}")],
    ):
        error = await refused(kit, PORTAL, headers)
        assert error.detail == "the request carries more than one session cookie"


async def test_only_the_configured_cookie_name_is_read() -> None:
    secure = make_kit(COOKIE_NAME)
    raw = await secure.sign_in()
    # hub_session is the name on a plain-http hub; a secure hub reads only __Host-hub_session
    error = await refused(secure, PORTAL, [cookie(f"{INSECURE_COOKIE_NAME}={raw}")])
    assert error.detail == "this route needs a signed-in session"


async def test_a_route_not_accepting_sessions_ignores_the_cookie(kit: Kit) -> None:
    raw = await kit.sign_in()
    headers = [cookie(f"{COOKIE_NAME}={raw}")]
    error = await refused(kit, AuthSpec(methods=("jwt",)), headers)
    assert error.detail == "this route needs a bearer token"
    # even a malformed or doubled cookie is not looked at
    await refused(kit, AuthSpec(methods=("jwt",)), [cookie(f"{COOKIE_NAME}=x", f"{COOKIE_NAME}=y")])


async def test_without_a_session_reader_no_session_is_accepted(kit: Kit) -> None:
    raw = await kit.sign_in()
    plain = Authenticator(tokens=kit.tokens, api_keys=kit.keys)
    with pytest.raises(Unauthorized):
        await plain.authenticate(PORTAL, [cookie(f"{INSECURE_COOKIE_NAME}={raw}")])


def test_a_session_reader_needs_the_issuer(kit: Kit) -> None:
    with pytest.raises(ValueError, match="issuer"):
        Authenticator(tokens=kit.tokens, api_keys=None, sessions=kit.sessions)


async def test_a_session_never_passes_a_route_that_requires_scopes(kit: Kit) -> None:
    raw = await kit.sign_in(ACR_MFA)
    spec = AuthSpec(methods=("jwt", "session"), scopes=("svc.read",))
    with pytest.raises(InsufficientScope) as caught:
        await kit.auth.authenticate(spec, [cookie(f"{COOKIE_NAME}={raw}")])
    assert caught.value.status == 403
    assert caught.value.extra == {"missing_scopes": ["svc.read"]}
    assert "a session carries no scopes" in caught.value.detail


# --- precedence: an explicit header credential wins over the cookie -----------------------------


async def test_a_bearer_token_wins_over_the_cookie(kit: Kit) -> None:
    raw = await kit.sign_in()
    headers = [cookie(f"{COOKIE_NAME}={raw}"), (b"authorization", f"Bearer {bearer()}".encode())]
    principal = await kit.auth.authenticate(MIXED, headers)
    assert principal.client_id == "portal-app"
    assert principal.scopes == frozenset({"svc.read"})
    assert not principal.via_session


async def test_an_api_key_wins_over_the_cookie(kit: Kit) -> None:
    raw = await kit.sign_in()
    headers = [cookie(f"{COOKIE_NAME}={raw}"), (b"x-api-key", kit.api_key.encode())]
    principal = await kit.auth.authenticate(MIXED, headers)
    assert principal.kind == "api_key"


async def test_a_bad_bearer_token_does_not_fall_back_to_the_cookie(kit: Kit) -> None:
    raw = await kit.sign_in()
    headers = [cookie(f"{COOKIE_NAME}={raw}"), (b"authorization", b"Bearer not.a.token")]
    with pytest.raises(InvalidToken):
        await kit.auth.authenticate(MIXED, headers)


async def test_a_header_credential_the_route_does_not_accept_leaves_the_cookie(kit: Kit) -> None:
    raw = await kit.sign_in()
    headers = [cookie(f"{COOKIE_NAME}={raw}"), (b"authorization", f"Bearer {bearer()}".encode())]
    principal = await kit.auth.authenticate(PORTAL, headers)
    assert principal.via_session


# --- the cookie never goes upstream -------------------------------------------------------------


def test_the_session_cookie_is_cut_and_the_others_kept() -> None:
    headers = [
        (b"accept", b"*/*"),
        cookie("a=1", f"{COOKIE_NAME}=secret", "b=2"),
        cookie(f"{INSECURE_COOKIE_NAME}=secret"),
        cookie("c=3"),
    ]
    assert without_session_cookies(headers) == [
        (b"accept", b"*/*"),
        (b"cookie", b"a=1; b=2"),
        (b"cookie", b"c=3"),
    ]


def test_headers_without_the_session_cookie_are_left_alone() -> None:
    assert without_session_cookies([cookie("a=1", "my_hub_session_pref=1")]) is None
    assert without_session_cookies([(b"accept", b"*/*")]) is None


_names = st.sampled_from(["a", "b", "theme", "hub_session_x", *SESSION_COOKIE_NAMES])
_values = st.text(alphabet="abcXYZ019-_=", max_size=12)


@given(st.lists(st.lists(st.tuples(_names, _values), min_size=1, max_size=5), max_size=4))
def test_no_mix_of_cookies_lets_the_session_cookie_through(
    headers: list[list[tuple[str, str]]],
) -> None:
    raw = [cookie(*(f"{name}={value}" for name, value in pairs)) for pairs in headers]
    out = without_session_cookies(raw)
    out = raw if out is None else out
    sent = [
        pair.strip().partition(b"=")
        for name, value in out
        if name == b"cookie"
        for pair in value.split(b";")
    ]
    assert not [key for key, _, _ in sent if key.decode() in SESSION_COOKIE_NAMES]
    kept = [(k, v) for pairs in headers for k, v in pairs if k not in SESSION_COOKIE_NAMES]
    assert [(key.decode(), value.decode()) for key, _, value in sent] == kept


# --- the same-origin check of cookie callers -----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://hub.example.gov", "https://hub.example.gov"),
        ("https://HUB.example.gov:443/portal/x?y=1", "https://hub.example.gov"),
        ("http://127.0.0.1:8080/a", "http://127.0.0.1:8080"),
        ("http://[::1]:80/", "http://[::1]"),
        ("null", None),
        ("ftp://hub.example.gov", None),
        ("https://", None),
        ("https://hub.example.gov:99999", None),
    ],
)
def test_origin_of(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin


@pytest.mark.parametrize(
    "headers",
    [
        [(b"origin", b"https://hub.example.gov")],
        [(b"origin", b"https://hub.example.gov:443")],
        [(b"referer", b"https://hub.example.gov/portal/page?x=1")],
    ],
)
def test_the_hubs_own_pages_pass(headers: list[tuple[bytes, bytes]]) -> None:
    check_same_origin(headers, ISSUER)


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"origin", b"https://evil.example")],
        [(b"origin", b"null")],
        [(b"origin", b"https://hub.example.gov.evil.example")],
        [(b"origin", b"http://hub.example.gov")],  # another scheme is another origin
        [(b"origin", b"https://hub.example.gov"), (b"origin", b"https://hub.example.gov")],
        # Origin is what counts when present: a matching Referer does not rescue a foreign one
        [(b"origin", b"https://evil.example"), (b"referer", b"https://hub.example.gov/")],
        [(b"referer", b"https://evil.example/https://hub.example.gov")],
        [(b"referer", b"/relative")],
    ],
)
def test_anything_else_is_a_csrf_refusal(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(CsrfOriginMismatch) as caught:
        check_same_origin(headers, ISSUER)
    assert caught.value.status == 403
    assert caught.value.code == "csrf_origin_mismatch"


def test_session_cookie_reads_no_other_name() -> None:
    value = "v" * 43
    assert session_cookie([cookie(f"x{COOKIE_NAME}={value}")], COOKIE_NAME) is None
    assert session_cookie([cookie(f"{COOKIE_NAME}={value}")], COOKIE_NAME) == value


# --- end to end: a hub sharing a Redis ephemeral store with the test ----------------------------


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("auth-session")


@pytest.fixture(scope="module")
def hub(tmp: Path, redis_url: str) -> Iterator[HubProcess]:
    routes = [
        route("portal", auth={"methods": ["session", "jwt"]}),
        route("scoped", auth={"methods": ["session", "jwt"], "scopes": ["svc.read"]}),
        route("tokens", auth={"methods": ["jwt"]}),
        route("open"),
    ]
    with session_hub(tmp, redis_url, routes) as process:
        yield process


@pytest.fixture(scope="module")
def browser(redis_url: str) -> Iterator[Browser]:
    with Browser(redis_url) as person:
        yield person


@pytest.mark.integration
@pytest.mark.backends
def test_a_signed_in_person_reaches_the_portal_and_upstream_sees_no_cookie(
    hub: HubProcess, browser: Browser
) -> None:
    raw = browser.sign_in(ACR_MFA)
    response = httpx.get(
        f"{hub.url}/portal/echo",
        headers={"Cookie": f"theme=dark; {NAME}={raw}; lang=en"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    echo = response.json()
    assert sent(echo, "cookie") == ["theme=dark; lang=en"]
    assert raw not in response.text

    principal = principal_of(hub, echo)
    assert principal.kind == "person"
    assert principal.subject == "person-42"
    assert principal.acr == ACR_MFA
    assert principal.issuer == hub.url
    assert principal.scopes == frozenset()


@pytest.mark.integration
@pytest.mark.backends
def test_the_session_cookie_never_reaches_any_upstream(hub: HubProcess, browser: Browser) -> None:
    raw = browser.sign_in()
    response = httpx.get(
        f"{hub.url}/open/echo", headers={"Cookie": f"{NAME}={raw}; a=1"}, timeout=TIMEOUT
    )
    assert response.status_code == 200
    assert sent(response.json(), "cookie") == ["a=1"]
    only = httpx.get(f"{hub.url}/open/echo", headers={"Cookie": f"{NAME}={raw}"}, timeout=TIMEOUT)
    assert sent(only.json(), "cookie") == []
    assert raw not in only.text


@pytest.mark.integration
@pytest.mark.backends
@pytest.mark.parametrize("state", ["expired", "ended", "unknown", "garbage", "twice"])
def test_a_cookie_that_proves_nothing_is_a_401_challenge(
    hub: HubProcess, browser: Browser, state: str
) -> None:
    raw = browser.sign_in(max_seconds=1 if state == "expired" else None)
    if state == "expired":
        time.sleep(1.2)
    elif state == "ended":
        browser.sign_out(raw)
    value = {
        "expired": f"{NAME}={raw}",
        "ended": f"{NAME}={raw}",
        "unknown": f"{NAME}={secrets.token_urlsafe(32)}",
        "garbage": f"{NAME}=<script>",
        "twice": f"{NAME}={raw}; {NAME}={raw}",
    }[state]
    response = httpx.get(f"{hub.url}/portal/echo", headers={"Cookie": value}, timeout=TIMEOUT)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="hub"'
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "unauthorized"


@pytest.mark.integration
@pytest.mark.backends
def test_a_route_without_session_ignores_the_cookie(hub: HubProcess, browser: Browser) -> None:
    raw = browser.sign_in(ACR_MFA)
    response = httpx.get(
        f"{hub.url}/tokens/echo", headers={"Cookie": f"{NAME}={raw}"}, timeout=TIMEOUT
    )
    assert response.status_code == 401
    assert response.json()["detail"] == "this route needs a bearer token"


@pytest.mark.integration
@pytest.mark.backends
def test_a_route_requiring_scopes_refuses_a_session(hub: HubProcess, browser: Browser) -> None:
    raw = browser.sign_in(ACR_MFA)
    response = httpx.get(
        f"{hub.url}/scoped/echo", headers={"Cookie": f"{NAME}={raw}"}, timeout=TIMEOUT
    )
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"


@pytest.mark.integration
@pytest.mark.backends
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_cookie_caller_changing_state_must_come_from_the_hubs_origin(
    hub: HubProcess, browser: Browser, method: str
) -> None:
    raw = browser.sign_in()

    def call(**headers: str) -> httpx.Response:
        return httpx.request(
            method,
            f"{hub.url}/portal/echo",
            headers={"Cookie": f"{NAME}={raw}", **headers},
            timeout=TIMEOUT,
        )

    for refused_call in (
        call(),
        call(Origin="https://evil.example"),
        call(Origin="null"),
        call(Referer="https://evil.example/page"),
    ):
        assert refused_call.status_code == 403
        assert refused_call.json()["code"] == "csrf_origin_mismatch"
    assert call(Origin=hub.url).status_code == 200
    assert call(Referer=f"{hub.url}/portal/page").status_code == 200


@pytest.mark.integration
@pytest.mark.backends
def test_bearer_callers_are_not_held_to_the_origin_check(
    tmp: Path, hub: HubProcess, browser: Browser, redis_url: str
) -> None:
    token = client_token(tmp, hub, redis_url)
    raw = browser.sign_in()
    # The app sent a token beside the cookie: the token is the credential, no Origin needed.
    response = httpx.post(
        f"{hub.url}/portal/echo",
        headers={
            "Authorization": f"Bearer {token}",
            "Cookie": f"{NAME}={raw}",
            "Origin": "https://partner.example",
        },
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    echo = response.json()
    assert sent(echo, "authorization") == []
    assert sent(echo, "cookie") == []
