"""The hub's OAuth 2.0 endpoints for vendor platforms, on SQLite and PostgreSQL.

Client credentials with ``client_secret_basic`` and ``private_key_jwt``, introspection (RFC 7662),
revocation (RFC 7009), discovery and JWKS: driven through Litestar's test client, and end to end
by a real OAuth client (authlib's ``AsyncOAuth2Client`` over an ASGI transport). Attack cases
follow RFC 7523 and the hub's rules: asymmetric algorithms only, ``aud`` naming the hub, short
``exp``, single-use ``jti``.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
from anyio.from_thread import BlockingPortal
from authlib.deprecate import AuthlibDeprecationWarning  # type: ignore[import-untyped]
from authlib.oauth2.rfc7523 import PrivateKeyJWT  # type: ignore[import-untyped]
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc.jwk import ECKey, RSAKey
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.db.engine import create_engine
from hub.db.identity_store import (
    AssertionLedger,
    ClientStore,
    OAuthClient,
    RevocationStore,
    StoredKey,
)
from hub.db.person_store import PersonStore
from hub.db.refresh_store import RefreshTokenStore
from hub.errors import ConfigError
from hub.identity.endpoints import identity_router
from hub.identity.keys import KeyRing, generate_key
from hub.identity.oauth import HubAuthorizationServer
from hub.identity.tokens import TokenIssuer
from hub.problems import REQUEST_ID_STATE_KEY, problem_details_plugin
from hub.settings import Settings

with warnings.catch_warnings():
    # authlib 1.9 prefers the httpx2 package, and warns when it falls back to httpx.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client  # type: ignore[import-untyped]

ISSUER = "https://hub.test"
TOKEN_URL = ISSUER + "/oauth2/token"
INTROSPECT_URL = ISSUER + "/oauth2/introspect"
REVOKE_URL = ISSUER + "/oauth2/revoke"
REQUEST_ID = "req-4f2a"
SCOPES = ("echo.read", "echo.write")
ACCESS_CLAIMS = {"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "scope", "client_id", "kind"}
CREDENTIALS = "client_credentials"


@dataclass(frozen=True, slots=True)
class Identity:
    clients: ClientStore
    ledger: AssertionLedger
    revocations: RevocationStore
    persons: PersonStore | None = None
    refresh_tokens: RefreshTokenStore | None = None


@dataclass(frozen=True, slots=True)
class VendorKey:
    """A vendor's signing key: the private half for assertions, the public JWK it registers."""

    alg: str
    private: Any
    jwk: dict[str, Any]

    @property
    def kid(self) -> str:
        return str(self.jwk["kid"])

    def pem(self) -> bytes:
        return bytes(
            self.private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


def _vendor_key(alg: str, private: Any, to_jwk: Callable[[Any], Any]) -> VendorKey:
    public_jwk = dict(to_jwk(private.public_key()))
    return VendorKey(
        alg=alg, private=private, jwk={**public_jwk, "kid": f"vendor-{alg}", "use": "sig"}
    )


@pytest.fixture(scope="module")
def access_key() -> StoredKey:
    # One RSA key per module: generating it costs more than most tests here.
    epoch = datetime(2020, 1, 1, tzinfo=UTC)
    return generate_key("access", created_at=epoch, activates_at=epoch)


@pytest.fixture(scope="module")
def vendor_keys() -> dict[str, VendorKey]:
    algorithms = jwt.algorithms
    return {
        "RS256": _vendor_key(
            "RS256",
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
            lambda k: algorithms.RSAAlgorithm.to_jwk(k, as_dict=True),
        ),
        "ES256": _vendor_key(
            "ES256",
            ec.generate_private_key(ec.SECP256R1()),
            lambda k: algorithms.ECAlgorithm.to_jwk(k, as_dict=True),
        ),
        "EdDSA": _vendor_key(
            "EdDSA",
            ed25519.Ed25519PrivateKey.generate(),
            lambda k: algorithms.OKPAlgorithm.to_jwk(k, as_dict=True),
        ),
        # Never registered: an attacker's key.
        "impostor": _vendor_key(
            "RS256",
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
            lambda k: algorithms.RSAAlgorithm.to_jwk(k, as_dict=True),
        ),
    }


def _registered(keys: dict[str, VendorKey]) -> list[dict[str, Any]]:
    return [keys[alg].jwk for alg in ("RS256", "ES256", "EdDSA")]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(issuer=ISSUER, database_url=database_url)


@pytest.fixture
def keyring(access_key: StoredKey, settings: Settings) -> KeyRing:
    return KeyRing([access_key], settings)


@pytest.fixture
def stores(db_engine: AsyncEngine) -> Identity:
    """The identity stores on the test's own event loop (for apps served in that loop)."""
    return _stores(db_engine)


def _stores(engine: AsyncEngine) -> Identity:
    return Identity(
        clients=ClientStore(engine),
        ledger=AssertionLedger(engine),
        revocations=RevocationStore(engine),
        persons=PersonStore(engine),
        refresh_tokens=RefreshTokenStore(engine),
    )


def _with_request_id(app: ASGIApp) -> ASGIApp:
    # Stands in for the hub's request-id middleware, which sits outside Litestar.
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {})[REQUEST_ID_STATE_KEY] = REQUEST_ID
        await app(scope, receive, send)

    return middleware


def _build_app(settings: Settings, keyring: KeyRing, identity: Identity | None) -> Litestar:
    """The identity router alone; without ``identity``, the app opens its stores itself."""

    @asynccontextmanager
    async def own_stores(app: Litestar) -> AsyncIterator[None]:
        # asyncpg connections belong to one event loop: the loop that serves the app.
        engine = create_engine(settings.database_url)
        app.state.identity = _stores(engine)
        try:
            yield
        finally:
            await engine.dispose()

    app = Litestar(
        route_handlers=[identity_router()],
        middleware=[_with_request_id],
        plugins=[problem_details_plugin()],
        lifespan=[own_stores] if identity is None else [],
        logging_config=None,
    )
    app.state.settings = settings
    app.state.keyring = keyring
    if identity is not None:
        app.state.identity = identity
    return app


@pytest.fixture
async def client(
    db_engine: AsyncEngine, settings: Settings, keyring: KeyRing
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """Litestar's test client; it serves the app on an event loop of its own."""
    del db_engine  # requested for the migration
    app = _build_app(settings, keyring, None)
    async with AsyncTestClient(app, base_url=ISSUER) as test_client:
        yield test_client


class _OnAppLoop:
    """One of the app's stores as the test sees it: each call runs on the app's event loop."""

    def __init__(self, portal: BlockingPortal, target: object) -> None:
        self._portal = portal
        self._target = target

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self._target, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return self._portal.call(functools.partial(method, *args, **kwargs))

        return call


@pytest.fixture
def identity(client: AsyncTestClient[Litestar]) -> Identity:
    """The stores of the app behind ``client``."""
    app_stores: Identity = client.app.state.identity
    portal = client.blocking_portal
    return Identity(
        clients=_OnAppLoop(portal, app_stores.clients),  # type: ignore[arg-type]
        ledger=_OnAppLoop(portal, app_stores.ledger),  # type: ignore[arg-type]
        revocations=_OnAppLoop(portal, app_stores.revocations),  # type: ignore[arg-type]
    )


@pytest.fixture
async def offline(access_key: StoredKey) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """A test client for what is decided before any store is read: no database behind it."""
    settings = Settings(issuer=ISSUER, database_url="")
    unreachable = Identity(clients=None, ledger=None, revocations=None)  # type: ignore[arg-type]
    app = _build_app(settings, KeyRing([access_key], settings), unreachable)
    async with AsyncTestClient(app, base_url=ISSUER) as test_client:
        yield test_client


@pytest.fixture
def asgi_app(settings: Settings, keyring: KeyRing, stores: Identity) -> Litestar:
    """The app for httpx's ASGITransport, which serves it on the test's own loop."""
    return _build_app(settings, keyring, stores)


async def _secret_client(
    identity: Identity, scopes: tuple[str, ...] = SCOPES
) -> tuple[OAuthClient, str]:
    registered, secret = await identity.clients.create(
        "Payroll Co", "vendor:payroll", "client_secret_basic", scopes
    )
    assert secret is not None
    return registered, secret


async def _jwt_client(identity: Identity, keys: dict[str, VendorKey]) -> OAuthClient:
    registered, _ = await identity.clients.create(
        "HR Cloud",
        "vendor:hrcloud",
        "private_key_jwt",
        SCOPES,
        jwks={"keys": _registered(keys)},
    )
    return registered


def _assertion(key: VendorKey, client_id: str, **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_URL,
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, key.private, algorithm=key.alg, headers={"kid": key.kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forged(header: dict[str, Any], claims: dict[str, Any], hmac_key: bytes | None) -> str:
    """A JWT built by hand, as an attacker would: unsigned, or HMAC'd with a public key."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if hmac_key is None:
        return signing_input + "."
    signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _assertion_form(assertion: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": CREDENTIALS,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
        **extra,
    }


async def _token(
    client: AsyncTestClient[Litestar], client_id: str, secret: str, scope: str | None = None
) -> str:
    form = {"grant_type": CREDENTIALS} | ({"scope": scope} if scope is not None else {})
    response = await client.post("/oauth2/token", data=form, auth=(client_id, secret))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _assert_oauth_error(
    response: httpx.Response, status: int, error: str, case: str = ""
) -> dict[str, Any]:
    """An RFC 6749 §5.2 error with the hub's members; ``case`` names the case that failed."""
    assert response.status_code == status, (case, response.text)
    assert response.headers["content-type"] == "application/json", case
    assert response.headers["cache-control"] == "no-store", case
    body: dict[str, Any] = response.json()
    assert body["error"] == body["code"] == error, (case, body)
    assert body["request_id"] == REQUEST_ID, case
    assert isinstance(body["error_description"], str), case
    assert body["error_description"], case
    if status == 401:
        assert response.headers["www-authenticate"] == 'Basic realm="hub"', case
    return body


# -- decided before any store is read -------------------------------------------------------


async def test_discovery_document(offline: AsyncTestClient[Litestar]) -> None:
    response = await offline.get("/.well-known/openid-configuration")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=60"
    document = response.json()
    methods = ["client_secret_basic", "private_key_jwt"]
    algorithms = ["RS256", "ES256", "EdDSA"]
    assert document == {
        "issuer": ISSUER,
        "authorization_endpoint": ISSUER + "/oauth2/authorize",
        "token_endpoint": TOKEN_URL,
        "userinfo_endpoint": ISSUER + "/oauth2/userinfo",
        "end_session_endpoint": ISSUER + "/oauth2/logout",
        "jwks_uri": ISSUER + "/.well-known/jwks.json",
        "introspection_endpoint": INTROSPECT_URL,
        "revocation_endpoint": REVOKE_URL,
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "email", "phone", "national_id"],
        "claims_supported": document["claims_supported"],
        "acr_values_supported": [
            "urn:hub:acr:pwd",
            "urn:hub:acr:mfa",
            "urn:hub:acr:national-idp",
        ],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": [*methods, "none"],
        "token_endpoint_auth_signing_alg_values_supported": algorithms,
        "introspection_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_signing_alg_values_supported": algorithms,
        "revocation_endpoint_auth_methods_supported": [*methods, "none"],
        "revocation_endpoint_auth_signing_alg_values_supported": algorithms,
        "authorization_response_iss_parameter_supported": True,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
    }
    assert {"sub", "acr", "auth_time", "nonce", "at_hash", "national_id"} <= set(
        document["claims_supported"]
    )
    # authlib's RFC 8414 validators accept every member this release publishes.
    metadata = AuthorizationServerMetadata(document)
    for member in document:
        validate = getattr(metadata, f"validate_{member}", None)
        if validate is not None:
            validate()


async def test_jwks_publishes_the_access_key_and_nothing_private(
    offline: AsyncTestClient[Litestar], access_key: StoredKey
) -> None:
    response = await offline.get("/.well-known/jwks.json")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=60"
    assert response.json() == {"keys": [access_key.public_jwk]}
    (published,) = response.json()["keys"]
    assert published["kid"] == access_key.kid
    assert published["alg"] == "RS256"
    assert published["use"] == "sig"
    assert {"d", "p", "q", "dp", "dq", "qi"}.isdisjoint(published)


MALFORMED_BODIES = {
    "json": (b'{"grant_type": "client_credentials"}', "application/json"),
    "text": (b"grant_type=client_credentials", "text/plain"),
    "latin-1": (
        b"grant_type=client_credentials",
        "application/x-www-form-urlencoded; charset=latin-1",
    ),
    "repeated": (b"grant_type=client_credentials&grant_type=client_credentials", None),
    "bad-utf8": (b"grant_type=client_credentials&scope=%ff%fe", None),
    "raw-non-ascii": (b"grant_type=client_credentials&scope=caf\xc3\xa9", None),
    "nul": (b"grant_type=client_credentials&scope=a%00b", None),
    "too-large": (b"grant_type=client_credentials&scope=" + b"a" * 70_000, None),
    "too-many-fields": (b"&".join(b"p%d=1" % n for n in range(100)), None),
}


async def test_malformed_bodies_are_invalid_request_never_a_crash(
    offline: AsyncTestClient[Litestar],
) -> None:
    for case, (content, content_type) in MALFORMED_BODIES.items():
        headers = {"Content-Type": content_type or "application/x-www-form-urlencoded"}
        for path in ("/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"):
            response = await offline.post(
                path, content=content, headers=headers, auth=("cli_x", "secret")
            )
            _assert_oauth_error(response, 400, "invalid_request", f"{case} {path}")

    # Litestar's test client folds repeated headers into one; httpx's ASGI transport does not.
    transport = httpx.ASGITransport(app=offline.app)
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as raw:
        twice = await raw.post(
            "/oauth2/token",
            data={"grant_type": CREDENTIALS},
            headers=[("Authorization", "Basic YTpi"), ("Authorization", "Basic Yzpk")],
        )
    _assert_oauth_error(twice, 400, "invalid_request", "two Authorization headers")


async def test_only_the_hub_s_grants_are_supported(
    offline: AsyncTestClient[Litestar],
) -> None:
    # The grant type is checked before the client is looked up: no store behind this client.
    for grant in ("password", "implicit", "urn:ietf:params:oauth:grant-type:jwt-bearer", 'x"y\\z'):
        response = await offline.post(
            "/oauth2/token", data={"grant_type": grant}, auth=("cli_x", "secret")
        )
        body = _assert_oauth_error(response, 400, "unsupported_grant_type", grant)
        assert body["error_description"] == (
            "the supported grants are authorization_code, refresh_token and client_credentials"
        )

    missing = await offline.post("/oauth2/token", data={"scope": "a"}, auth=("cli_x", "secret"))
    _assert_oauth_error(missing, 400, "invalid_request", "no grant_type")


async def test_malformed_basic_credentials_are_a_401_not_a_crash(
    offline: AsyncTestClient[Litestar],
) -> None:
    for authorization in (
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b":no-id").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:secret").decode(),
        # Never reach the database: PostgreSQL refuses NUL, and no client id is non-ASCII.
        "Basic " + base64.b64encode(b"cli\x00nul:secret").decode(),
        "Basic " + base64.b64encode("cl\u00efent:secret".encode()).decode(),
        "Basic " + base64.b64encode(b"c" * 300 + b":secret").decode(),
        "Bearer some-token",
    ):
        response = await offline.post(
            "/oauth2/token",
            data={"grant_type": CREDENTIALS},
            headers={"Authorization": authorization},
        )
        _assert_oauth_error(response, 401, "invalid_client", authorization)


async def test_the_endpoints_say_when_the_app_state_is_missing() -> None:
    bare = Litestar(
        route_handlers=[identity_router()], plugins=[problem_details_plugin()], logging_config=None
    )
    async with AsyncTestClient(bare, base_url=ISSUER) as test_client:
        response = await test_client.get("/.well-known/openid-configuration")

    assert response.status_code == 503
    assert "app.state.settings" in response.json()["detail"]


@pytest.mark.parametrize(
    ("issuer", "accepted"),
    [
        ("https://hub.example.gov", True),
        ("http://127.0.0.1:8080", True),
        ("http://localhost:8080", True),
        ("http://hub.example.gov", False),
        ("http://0.0.0.0:8080", False),
    ],
)
def test_the_issuer_must_be_https_or_loopback(
    issuer: str, accepted: bool, access_key: StoredKey
) -> None:
    settings = Settings(issuer=issuer, database_url="")
    tokens = TokenIssuer(KeyRing([access_key], settings), settings)
    stores = Identity(clients=None, ledger=None, revocations=None)  # type: ignore[arg-type]

    if accepted:
        HubAuthorizationServer(settings=settings, stores=stores, tokens=tokens)
    else:
        with pytest.raises(ConfigError, match="HUB_ISSUER"):
            HubAuthorizationServer(settings=settings, stores=stores, tokens=tokens)


# -- client_secret_basic and the access token ------------------------------------------------


async def test_client_secret_basic_issues_a_token_with_exactly_the_agreed_claims(
    client: AsyncTestClient[Litestar], identity: Identity, keyring: KeyRing
) -> None:
    registered, secret = await _secret_client(identity)

    response = await client.post(
        "/oauth2/token", data={"grant_type": CREDENTIALS}, auth=(registered.client_id, secret)
    )

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == "echo.read echo.write"  # no scope asked: all of the client's

    jwks = (await client.get("/.well-known/jwks.json")).json()
    kid, _, _ = keyring.signing_key("access")
    assert jwt.get_unverified_header(body["access_token"]) == {
        "alg": "RS256",
        "kid": kid,
        "typ": "JWT",
    }
    claims = jwt.decode(
        body["access_token"],
        jwt.PyJWKSet.from_dict(jwks)[kid],
        algorithms=["RS256"],
        audience="hub",
        issuer=ISSUER,
    )
    assert set(claims) == ACCESS_CLAIMS
    assert claims["sub"] == claims["client_id"] == registered.client_id
    assert claims["kind"] == "client"
    assert claims["scope"] == "echo.read echo.write"
    assert claims["nbf"] == claims["iat"]
    assert claims["exp"] - claims["iat"] == 300
    assert abs(claims["iat"] - time.time()) < 5
    assert len(claims["jti"]) == 32


async def test_requested_scopes_must_be_the_clients(
    client: AsyncTestClient[Litestar], identity: Identity
) -> None:
    registered, secret = await _secret_client(identity)
    auth = (registered.client_id, secret)

    subset = await client.post(
        "/oauth2/token", data={"grant_type": CREDENTIALS, "scope": "echo.read"}, auth=auth
    )
    assert subset.status_code == 200, subset.text
    assert subset.json()["scope"] == "echo.read"
    claims = jwt.decode(subset.json()["access_token"], options={"verify_signature": False})
    assert claims["scope"] == "echo.read"

    for scope in ("echo.read echo.admin", "visas.read", 'echo.read "x"', "echo\\read"):
        response = await client.post(
            "/oauth2/token", data={"grant_type": CREDENTIALS, "scope": scope}, auth=auth
        )
        _assert_oauth_error(response, 400, "invalid_scope", scope)


async def test_client_authentication_failures(
    client: AsyncTestClient[Litestar], identity: Identity, vendor_keys: dict[str, VendorKey]
) -> None:
    registered, secret = await _secret_client(identity)
    other, _ = await _secret_client(identity)
    disabled, disabled_secret = await _secret_client(identity)
    await identity.clients.disable(disabled.client_id)
    grant = {"grant_type": CREDENTIALS}
    rs256 = vendor_keys["RS256"]

    wrong = await client.post("/oauth2/token", data=grant, auth=(registered.client_id, "x"))
    unknown = await client.post("/oauth2/token", data=grant, auth=("cli_0000000000000000", secret))
    for case, response in (("wrong secret", wrong), ("unknown client", unknown)):
        body = _assert_oauth_error(response, 401, "invalid_client", case)
        # One answer for both: probing client ids teaches nothing.
        assert body["error_description"] == "client authentication failed", case

    cases = {
        "disabled": await client.post(
            "/oauth2/token", data=grant, auth=(disabled.client_id, disabled_secret)
        ),
        "no credentials": await client.post("/oauth2/token", data=grant),
        "client_secret_post": await client.post(
            "/oauth2/token",
            data={**grant, "client_id": registered.client_id, "client_secret": secret},
        ),
        # A client_secret_basic client presenting a validly signed assertion is still refused.
        "other method": await client.post(
            "/oauth2/token", data=_assertion_form(_assertion(rs256, registered.client_id))
        ),
        "client_id mismatch": await client.post(
            "/oauth2/token",
            data={**grant, "client_id": other.client_id},
            auth=(registered.client_id, secret),
        ),
    }
    for case, response in cases.items():
        _assert_oauth_error(response, 401, "invalid_client", case)

    both = await client.post(
        "/oauth2/token",
        data=_assertion_form(_assertion(rs256, registered.client_id)),
        auth=(registered.client_id, secret),
    )
    _assert_oauth_error(both, 400, "invalid_request", "two methods at once")

    no_grant, no_grant_secret = await identity.clients.create(
        "Read-only", "vendor:ro", "client_secret_basic", SCOPES, grant_types=()
    )
    assert no_grant_secret is not None
    response = await client.post(
        "/oauth2/token", data=grant, auth=(no_grant.client_id, no_grant_secret)
    )
    _assert_oauth_error(response, 400, "unauthorized_client", "grant not allowed")


# -- private_key_jwt -------------------------------------------------------------------------


async def test_private_key_jwt_with_each_allowed_algorithm_and_audience(
    client: AsyncTestClient[Litestar], identity: Identity, vendor_keys: dict[str, VendorKey]
) -> None:
    registered = await _jwt_client(identity, vendor_keys)

    for alg in ("RS256", "ES256", "EdDSA"):
        for aud in (TOKEN_URL, ISSUER, [TOKEN_URL, "https://elsewhere.test"]):
            assertion = _assertion(vendor_keys[alg], registered.client_id, aud=aud)
            response = await client.post(
                "/oauth2/token", data=_assertion_form(assertion, scope="echo.write")
            )
            assert response.status_code == 200, (alg, aud, response.text)
            token = response.json()["access_token"]
            claims = jwt.decode(token, options={"verify_signature": False})
            assert claims["sub"] == claims["client_id"] == registered.client_id
            assert claims["scope"] == "echo.write"

    # Without a kid, the one registered key of the algorithm's type is used.
    now = int(time.time())
    claims = {"iss": registered.client_id, "sub": registered.client_id, "aud": TOKEN_URL}
    claims |= {"exp": now + 60, "jti": uuid.uuid4().hex}
    unnamed = jwt.encode(claims, vendor_keys["ES256"].private, algorithm="ES256")
    response = await client.post("/oauth2/token", data=_assertion_form(unnamed))
    assert response.status_code == 200, response.text


def _attacks(keys: dict[str, VendorKey], client_id: str) -> dict[str, str]:
    key, impostor = keys["RS256"], keys["impostor"]
    now = int(time.time())
    claims: dict[str, Any] = {"iss": client_id, "sub": client_id, "aud": TOKEN_URL}
    claims |= {"iat": now, "exp": now + 60, "jti": uuid.uuid4().hex}
    public_pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    named = {"kid": key.kid}
    return {
        "alg none": _forged({"alg": "none", **named}, claims, None),
        "alg none, no kid": _forged({"alg": "none"}, claims, None),
        "alg None": _forged({"alg": "None", **named}, claims, None),
        "HS256 keyed with the public PEM": _forged({"alg": "HS256", **named}, claims, public_pem),
        "HS256 keyed with the JWK n": _forged(
            {"alg": "HS256", **named}, claims, str(key.jwk["n"]).encode()
        ),
        "PS256 with the right key": jwt.encode(claims, key.private, "PS256", headers=named),
        "signed by an unregistered key": jwt.encode(
            claims, impostor.private, "RS256", headers=named
        ),
        "unknown kid": jwt.encode(claims, key.private, "RS256", headers={"kid": "nope"}),
        "kid of a key of another type": jwt.encode(
            claims, key.private, "RS256", headers={"kid": keys["ES256"].kid}
        ),
        "tampered payload": _tamper(_assertion(key, client_id)),
        "wrong aud": _assertion(key, client_id, aud="https://elsewhere.test/oauth2/token"),
        "introspection endpoint as aud": _assertion(key, client_id, aud=INTROSPECT_URL),
        "no aud": _assertion(key, client_id, aud=None),
        "expired": _assertion(key, client_id, iat=now - 600, exp=now - 120),
        "no exp": _assertion(key, client_id, exp=None),
        "exp an hour ahead": _assertion(key, client_id, exp=now + 3600),
        "not valid yet": _assertion(key, client_id, nbf=now + 600),
        "no jti": _assertion(key, client_id, jti=None),
        "numeric jti": _assertion(key, client_id, jti=12345),
        "jti too long": _assertion(key, client_id, jti="j" * 256),
        "iss is not sub": _assertion(key, client_id, iss="cli_someone_else"),
        "no iss": _assertion(key, client_id, iss=None),
        "unknown sub": _assertion(key, "cli_0000000000000000", iss=None),
        "numeric sub": _assertion(key, client_id, sub=42),
        "not a JWT": "not.a.jwt",
        "empty": "",
    }


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] += 30
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


async def test_bad_client_assertions_are_refused(
    client: AsyncTestClient[Litestar], identity: Identity, vendor_keys: dict[str, VendorKey]
) -> None:
    registered = await _jwt_client(identity, vendor_keys)

    for attack, assertion in _attacks(vendor_keys, registered.client_id).items():
        response = await client.post("/oauth2/token", data=_assertion_form(assertion))
        _assert_oauth_error(response, 401, "invalid_client", attack)

    # The same attacks against introspection and revocation.
    token = (
        await client.post(
            "/oauth2/token",
            data=_assertion_form(_assertion(vendor_keys["RS256"], registered.client_id)),
        )
    ).json()["access_token"]
    for path in ("/oauth2/introspect", "/oauth2/revoke"):
        for attack, assertion in _attacks(vendor_keys, registered.client_id).items():
            form = _assertion_form(assertion, token=token)
            del form["grant_type"]
            response = await client.post(path, data=form)
            _assert_oauth_error(response, 401, "invalid_client", f"{attack} at {path}")


async def test_a_replayed_assertion_is_refused(
    client: AsyncTestClient[Litestar], identity: Identity, vendor_keys: dict[str, VendorKey]
) -> None:
    registered = await _jwt_client(identity, vendor_keys)
    other = await _jwt_client(identity, vendor_keys)
    assertion = _assertion(vendor_keys["ES256"], registered.client_id)
    jti = jwt.decode(assertion, options={"verify_signature": False})["jti"]

    first = await client.post("/oauth2/token", data=_assertion_form(assertion))
    replay = await client.post("/oauth2/token", data=_assertion_form(assertion))
    # A new assertion reusing the jti is a replay too, whatever else changed.
    same_jti = await client.post(
        "/oauth2/token",
        data=_assertion_form(_assertion(vendor_keys["RS256"], registered.client_id, jti=jti)),
    )
    # Used jti values are kept per client: one client cannot burn another's in advance.
    other_client = await client.post(
        "/oauth2/token",
        data=_assertion_form(_assertion(vendor_keys["RS256"], other.client_id, jti=jti)),
    )

    assert first.status_code == 200, first.text
    body = _assert_oauth_error(replay, 401, "invalid_client", "replay")
    assert body["error_description"] == "the client assertion was already used"
    _assert_oauth_error(same_jti, 401, "invalid_client", "same jti")
    assert other_client.status_code == 200, other_client.text


async def test_concurrent_replays_of_one_assertion_yield_one_token(
    asgi_app: Litestar, stores: Identity, vendor_keys: dict[str, VendorKey]
) -> None:
    registered = await _jwt_client(stores, vendor_keys)
    form = _assertion_form(_assertion(vendor_keys["EdDSA"], registered.client_id))
    transport = httpx.ASGITransport(app=asgi_app)  # type: ignore[arg-type]

    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as raw:
        responses = await asyncio.gather(*(raw.post("/oauth2/token", data=form) for _ in range(8)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [401] * 7, [response.text for response in responses]


# -- introspection and revocation ------------------------------------------------------------


async def test_introspection(
    client: AsyncTestClient[Litestar], identity: Identity, keyring: KeyRing, settings: Settings
) -> None:
    registered, secret = await _secret_client(identity)
    other, other_secret = await _secret_client(identity)
    gateway, gateway_secret = await _secret_client(identity, scopes=("hub:introspect",))
    auth = (registered.client_id, secret)
    live = await _token(client, registered.client_id, secret, scope="echo.read")

    own = await client.post("/oauth2/introspect", data={"token": live}, auth=auth)
    assert own.status_code == 200, own.text
    assert own.headers["cache-control"] == "no-store"
    claims = jwt.decode(live, options={"verify_signature": False})
    assert own.json() == {
        "active": True,
        "scope": "echo.read",
        "client_id": registered.client_id,
        "sub": registered.client_id,
        "exp": claims["exp"],
        "iat": claims["iat"],
        "iss": ISSUER,
        "aud": "hub",
        "jti": claims["jti"],
        "token_type": "Bearer",
    }

    # A client holding hub:introspect (a resource server, say) may introspect any token.
    privileged = await client.post(
        "/oauth2/introspect", data={"token": live}, auth=(gateway.client_id, gateway_secret)
    )
    assert privileged.json()["active"] is True
    assert privileged.json()["client_id"] == registered.client_id

    def issued(issuer: TokenIssuer) -> str:
        client_id = registered.client_id
        return issuer.issue(subject=client_id, client_id=client_id, scopes=SCOPES).token

    revoked = await _token(client, registered.client_id, secret)
    response = await client.post("/oauth2/revoke", data={"token": revoked}, auth=auth)
    assert response.status_code == 200, response.text
    elsewhere = Settings(issuer="https://other-hub.test", audience="hub", database_url="")
    other_audience = Settings(issuer=ISSUER, audience="not-hub", database_url="")
    inactive = {
        "expired": issued(TokenIssuer(keyring, settings, clock=lambda: time.time() - 3600)),
        "another issuer": issued(TokenIssuer(keyring, elsewhere)),
        "another audience": issued(TokenIssuer(keyring, other_audience)),
        "unsigned": _forged({"alg": "none"}, claims, None),
        "revoked": revoked,
        "another client's": await _token(client, other.client_id, other_secret),
        "garbage": "garbage",
        "truncated signature": live[:-4],
        "huge": "x" * 9000,
    }
    for case, token in inactive.items():
        response = await client.post(
            "/oauth2/introspect",
            data={"token": token, "token_type_hint": "refresh_token"},
            auth=auth,
        )
        assert response.status_code == 200, (case, response.text)
        assert response.json() == {"active": False}, case

    for path in ("/oauth2/introspect", "/oauth2/revoke"):
        anonymous = await client.post(path, data={"token": live})
        _assert_oauth_error(anonymous, 401, "invalid_client", f"anonymous at {path}")
        wrong = await client.post(path, data={"token": live}, auth=(registered.client_id, "x"))
        _assert_oauth_error(wrong, 401, "invalid_client", f"wrong secret at {path}")
        missing = await client.post(path, data={}, auth=auth)
        _assert_oauth_error(missing, 400, "invalid_request", f"no token at {path}")


async def test_revocation(client: AsyncTestClient[Litestar], identity: Identity) -> None:
    owner, owner_secret = await _secret_client(identity)
    intruder, intruder_secret = await _secret_client(identity)
    token = await _token(client, owner.client_id, owner_secret)
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]

    # Another client's token: refused (RFC 7009 §2.1), and it stays valid.
    stolen = await client.post(
        "/oauth2/revoke", data={"token": token}, auth=(intruder.client_id, intruder_secret)
    )
    _assert_oauth_error(stolen, 400, "invalid_grant", "another client's token")
    assert not await identity.revocations.is_revoked(jti)

    # Unknown or invalid tokens: a quiet 200, nothing recorded.
    for unknown in ("unknown-token", "a.b.c", "x" * 9000):
        response = await client.post(
            "/oauth2/revoke", data={"token": unknown}, auth=(owner.client_id, owner_secret)
        )
        assert response.status_code == 200, (unknown, response.text)
    assert await identity.revocations.active() == set()

    # The owner's own token: revoked until it would have expired; again is fine.
    for _ in range(2):
        response = await client.post(
            "/oauth2/revoke",
            data={"token": token, "token_type_hint": "access_token"},
            auth=(owner.client_id, owner_secret),
        )
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
    assert await identity.revocations.active() == {jti}
    after = await client.post(
        "/oauth2/introspect", data={"token": token}, auth=(owner.client_id, owner_secret)
    )
    assert after.json() == {"active": False}


# -- a real OAuth client: authlib's AsyncOAuth2Client over ASGI ------------------------------


class _FreshPrivateKeyJWT(PrivateKeyJWT):  # type: ignore[misc]
    """authlib's PrivateKeyJWT with a short ``exp`` and a new ``jti`` on every assertion.

    By default authlib signs assertions valid for an hour, beyond the hub's five minutes; and
    given ``claims``, it stores the jti it generates in that dict, so every later assertion
    repeats it.
    """

    def sign(self, auth: Any, token_endpoint: str) -> Any:
        self.claims = {"exp": int(time.time()) + 60}
        return super().sign(auth, token_endpoint)


def _oauth_client(app: Litestar, **kwargs: Any) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        base_url=ISSUER,
        timeout=10,
        **kwargs,
    )


async def test_authlib_client_with_client_secret_basic(
    asgi_app: Litestar, stores: Identity
) -> None:
    registered, secret = await _secret_client(stores)

    async with _oauth_client(
        asgi_app,
        client_id=registered.client_id,
        client_secret=secret,
        token_endpoint_auth_method="client_secret_basic",
        revocation_endpoint_auth_method="client_secret_basic",
        scope="echo.read",
    ) as oauth:
        token = await oauth.fetch_token(TOKEN_URL, grant_type=CREDENTIALS)
        active = (await oauth.introspect_token(INTROSPECT_URL, token=token["access_token"])).json()
        revoked = await oauth.revoke_token(REVOKE_URL, token=token["access_token"])
        after = (await oauth.introspect_token(INTROSPECT_URL, token=token["access_token"])).json()

    assert token["token_type"] == "Bearer"
    assert token["scope"] == "echo.read"
    assert active["active"] is True
    assert active["client_id"] == registered.client_id
    assert revoked.status_code == 200
    assert after == {"active": False}


async def test_authlib_client_with_private_key_jwt(
    asgi_app: Litestar, stores: Identity, vendor_keys: dict[str, VendorKey]
) -> None:
    registered = await _jwt_client(stores, vendor_keys)

    for alg, key_class in (("RS256", RSAKey), ("ES256", ECKey)):
        key = vendor_keys[alg]
        async with _oauth_client(
            asgi_app,
            client_id=registered.client_id,
            client_secret=key_class.import_key(key.pem()),
            token_endpoint_auth_method="private_key_jwt",
            revocation_endpoint_auth_method="private_key_jwt",
        ) as oauth:
            oauth.register_client_auth_method(
                _FreshPrivateKeyJWT(TOKEN_URL, headers={"kid": key.kid}, alg=alg)
            )
            first = await oauth.fetch_token(TOKEN_URL, grant_type=CREDENTIALS)
            second = await oauth.fetch_token(TOKEN_URL, grant_type=CREDENTIALS)
            token = first["access_token"]
            active = (await oauth.introspect_token(INTROSPECT_URL, token=token)).json()
            revoked = await oauth.revoke_token(REVOKE_URL, token=token)
            after = (await oauth.introspect_token(INTROSPECT_URL, token=token)).json()

        assert first["scope"] == second["scope"] == "echo.read echo.write", alg
        assert first["access_token"] != second["access_token"], alg
        assert active["active"] is True, alg
        assert active["sub"] == registered.client_id, alg
        assert revoked.status_code == 200, alg
        assert after == {"active": False}, alg

    # authlib's PrivateKeyJWT as it comes signs assertions valid for an hour: refused.
    key = vendor_keys["RS256"]
    async with _oauth_client(
        asgi_app,
        client_id=registered.client_id,
        client_secret=RSAKey.import_key(key.pem()),
        token_endpoint_auth_method="private_key_jwt",
    ) as oauth:
        oauth.register_client_auth_method(PrivateKeyJWT(TOKEN_URL, headers={"kid": key.kid}))
        response = await oauth.post(
            TOKEN_URL, data={"grant_type": CREDENTIALS}, auth=oauth.client_auth("private_key_jwt")
        )
    body = _assert_oauth_error(response, 401, "invalid_client")
    assert "at most 300 seconds" in body["error_description"]
