"""Shared set-up of the SSO tests: a whole hub app in-process, people, clients and sign-ins.

The app is :class:`hub.asgi.HubApp` (Litestar and the gateway) served by Litestar's
``AsyncTestClient`` on an event loop of its own; the stores are reached on that loop through
the client's blocking portal. A login session is made with the real session manager
(``runtime.sessions.create``) and its cookie sent by the test, as the login page would set it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from litestar.testing import AsyncTestClient

from hub.asgi import HubApp
from hub.db.client_store import OAuthClient
from hub.db.migrate import migrate
from hub.db.person_store import Person
from hub.identity.acr import ACR_PASSWORD
from hub.identity.sessions import LoginSession
from hub.runtime import Runtime
from hub.settings import Settings
from tests.hubproc import hub_env, write_policies

__all__ = [
    "COOKIE",
    "ISSUER",
    "LOGOUT_URI",
    "PORTAL_URI",
    "VENDOR_URI",
    "Pkce",
    "SsoHub",
    "backend_env",
    "query_of",
    "sso_hub",
]

_T = TypeVar("_T")

PORT = 8080
ISSUER = f"http://127.0.0.1:{PORT}"
COOKIE = "hub_session"  # the issuer is plain http on loopback: no Secure, no __Host- prefix
PORTAL_URI = "https://portal.example.gov/callback"
VENDOR_URI = "https://vendor.example.com/oauth/callback"
LOGOUT_URI = "https://portal.example.gov/signed-out"


@dataclass(frozen=True, slots=True)
class Pkce:
    """A PKCE pair (RFC 7636)."""

    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode()).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode())


def query_of(location: str) -> dict[str, str]:
    """The query parameters of a redirect, one value each."""
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query, keep_blank_values=True).items()}


@dataclass
class SsoHub:
    """The app, its test client, and shortcuts to its stores."""

    app: HubApp
    client: AsyncTestClient[Any]
    portal_client: OAuthClient = field(init=False)
    vendor: OAuthClient = field(init=False)
    vendor_secret: str = field(init=False)
    person: Person = field(init=False)

    @property
    def runtime(self) -> Runtime:
        return self.app.runtime

    def call(self, fn: Callable[..., Coroutine[Any, Any, _T]], *args: Any, **kwargs: Any) -> _T:
        """Run ``fn`` on the app's event loop (where its connections live)."""
        return self.client.blocking_portal.call(functools.partial(fn, *args, **kwargs))

    @property
    def identity(self) -> Any:
        return self.runtime.identity

    def create_client(self, **kwargs: Any) -> tuple[OAuthClient, str | None]:
        defaults: dict[str, Any] = {"name": "app", "owner": "tests", "scopes": ()}
        return self.call(self.identity.clients.create, **{**defaults, **kwargs})

    def create_person(self, identifier: str, **kwargs: Any) -> Person:
        defaults: dict[str, Any] = {
            "kind": "citizen",
            "given_name": "Amal",
            "family_name": "Haddad",
            "email": "amal@example.gov",
            "phone": "+966500000001",
        }
        return self.call(
            self.identity.persons.create, identifier=identifier, **{**defaults, **kwargs}
        )

    def sign_in(
        self,
        person: Person | None = None,
        *,
        acr: str = ACR_PASSWORD,
        amr: tuple[str, ...] = ("pwd",),
        auth_time: int | None = None,
    ) -> tuple[str, LoginSession]:
        """A login session for ``person`` (the test's person by default) and its cookie value."""
        who = person or self.person
        return self.call(
            self.runtime.sessions.create, person_id=who.id, acr=acr, amr=amr, auth_time=auth_time
        )

    async def authorize(self, params: dict[str, str], cookie: str | None = None) -> httpx.Response:
        headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
        return await self.client.get("/oauth2/authorize", params=params, headers=headers)

    def params(
        self, client: OAuthClient, pkce: Pkce, *, redirect_uri: str | None = None, **extra: str
    ) -> dict[str, str]:
        """A complete, valid authorization request of ``client``."""
        base = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": redirect_uri or client.redirect_uris[0],
            "scope": "openid profile",
            "state": "st-" + secrets.token_hex(4),
            "nonce": "n-" + secrets.token_hex(4),
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
        }
        return {**base, **extra}

    async def code_for(
        self, client: OAuthClient, pkce: Pkce, cookie: str, **extra: str
    ) -> tuple[str, dict[str, str]]:
        """Run the authorization request to the code; the code and the request's parameters."""
        params = self.params(client, pkce, **extra)
        response = await self.authorize(params, cookie)
        assert response.status_code == 303, response.text
        query = query_of(response.headers["location"])
        assert "code" in query, response.headers["location"]
        return query["code"], params

    async def token(
        self, form: dict[str, str], *, auth: tuple[str, str] | None = None
    ) -> httpx.Response:
        return await self.client.post("/oauth2/token", data=form, auth=auth)

    async def exchange(
        self,
        client: OAuthClient,
        code: str,
        pkce: Pkce,
        *,
        secret: str | None = None,
        redirect_uri: str | None = None,
    ) -> httpx.Response:
        """The token request for ``code``: public clients send client_id, confidential Basic."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri or client.redirect_uris[0],
            "code_verifier": pkce.verifier,
        }
        if secret is None:
            form["client_id"] = client.client_id
            return await self.token(form)
        return await self.token(form, auth=(client.client_id, secret))

    async def jwks(self) -> jwt.PyJWKSet:
        response = await self.client.get("/.well-known/jwks.json")
        return jwt.PyJWKSet.from_dict(response.json())

    async def verify_id_token(self, token: str, client: OAuthClient) -> dict[str, Any]:
        """An ID token checked as a relying party would: JWKS key by kid, RS256, iss, aud."""
        header = jwt.get_unverified_header(token)
        key = (await self.jwks())[header["kid"]]
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            audience=client.client_id,
            issuer=ISSUER,
            options={"require": ["iss", "sub", "aud", "exp", "iat", "auth_time"]},
        )
        return claims


@pytest.fixture(params=[pytest.param("embedded"), pytest.param("real", marks=pytest.mark.backends)])
def backend_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """``HUB_*`` overrides of one back-end set: SQLite + in-process, or PostgreSQL/Redis/AMQP."""
    if request.param == "embedded":
        return {"HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'data' / 'hub.db'}"}
    return {
        "HUB_DATABASE_URL": request.getfixturevalue("postgres_url"),
        "HUB_REDIS_URL": request.getfixturevalue("redis_url"),
        "HUB_AMQP_URL": request.getfixturevalue("amqp_url"),
    }


@pytest.fixture
async def sso_hub(tmp_path: Path, backend_env: dict[str, str]) -> AsyncIterator[SsoHub]:
    """A started hub with a first-party public client (the portal), a third-party
    confidential one (a vendor), and a person."""
    policies = write_policies(
        tmp_path / "policies",
        upstreams=[{"id": "svc", "targets": [{"url": "http://127.0.0.1:9"}]}],
        routes=[
            {"id": "svc", "prefix": "/svc/", "upstream": "svc"},
            {"id": "me", "prefix": "/me/", "upstream": "svc", "auth": {"methods": ["jwt"]}},
        ],
    )
    settings = Settings.from_env(hub_env(tmp_path, policies, PORT, extra=backend_env))
    assert settings.issuer == ISSUER
    if not settings.embedded_database:
        await migrate(settings.database_url)
    app = HubApp(settings)
    async with AsyncTestClient(app=app, base_url=ISSUER) as test_client:  # type: ignore[arg-type]
        test_client.follow_redirects = False  # every redirect is asserted, not followed
        hub = SsoHub(app, test_client)
        hub.portal_client, _ = hub.create_client(
            name="Citizen portal",
            auth_method="none",
            client_type="public",
            redirect_uris=[PORTAL_URI],
            post_logout_redirect_uris=[LOGOUT_URI],
            first_party=True,
        )
        hub.vendor, secret = hub.create_client(
            name="Vendor HR",
            auth_method="client_secret_basic",
            scopes=["svc.read"],
            grant_types=["authorization_code", "refresh_token"],
            redirect_uris=[VENDOR_URI],
        )
        assert secret is not None
        hub.vendor_secret = secret
        hub.person = hub.create_person("1000000001")
        yield hub
