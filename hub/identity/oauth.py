"""The hub's OAuth 2.0 / OpenID Connect authorization server: authlib's, served by Litestar.

authlib runs the token endpoint's protocol: grant selection, client authentication, the client
credentials grant, the authorization code grant with PKCE and the refresh token grant
(:mod:`hub.identity.grants`), introspection (RFC 7662) and revocation (RFC 7009)
(:mod:`hub.identity.introspection`). The authorization endpoint is the hub's own
(:mod:`hub.identity.authorize`): it lives across the login and consent pages, which authlib's
request-bound authorization flow does not model. authlib is synchronous and the stores are
async, so each request runs authlib in a worker thread (``anyio.to_thread``) and the methods
below reach the stores on the event loop with ``anyio.from_thread.run``. RSA signing does not
block the event loop meanwhile.

Confidential clients authenticate with ``client_secret_basic`` or ``private_key_jwt`` (RFC 7523);
public clients with ``none``, for the person grants only. Access tokens are JWTs
(:mod:`hub.identity.tokens`): nothing is stored when one is issued, and a revoked one is
remembered by its ``jti`` until it would have expired. Refresh tokens are opaque and stored by
digest (:mod:`hub.db.refresh_store`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import anyio.from_thread
import anyio.to_thread
import structlog
from authlib.common.security import is_secure_transport  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped]
    AuthorizationServer,
    InvalidClientError,
    InvalidRequestError,
    OAuth2Error,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload  # type: ignore[import-untyped]
from litestar import Response
from litestar.enums import MediaType

from hub.auth.affiliations import NO_AFFILIATIONS, Affiliations
from hub.db.consent_store import ConsentStore
from hub.db.identity_store import AssertionLedger, ClientStore, RevocationStore
from hub.db.person_store import PersonStore
from hub.db.refresh_store import RefreshTokenStore
from hub.errors import ConfigError, InvalidToken
from hub.identity._grant_stores import PersonGrantStores
from hub.identity.client_auth import (
    HubClient,
    PrivateKeyJWT,
    client_secret_basic,
    parse_scope,
)
from hub.identity.codes import AuthorizationCodes
from hub.identity.delegated import ClientCredentialsGrant
from hub.identity.directory import Directory
from hub.identity.grants import (
    AuthorizationCodeGrant,
    IdTokenExtension,
    PkceS256,
    RefreshTokenGrant,
)
from hub.identity.id_tokens import IdTokens
from hub.identity.introspection import (
    AccessTokenRecord,
    Introspection,
    RefreshTokenRecord,
    Revocation,
)
from hub.identity.tokens import AccessClaims, TokenIssuer
from hub.settings import Settings

__all__ = [
    "GRANT_TYPES",
    "INTROSPECTION_PATH",
    "INTROSPECTION_SCOPE",
    "REVOCATION_PATH",
    "TOKEN_PATH",
    "FormRequest",
    "HubAuthorizationServer",
    "IdentityStores",
    "oauth_error_response",
]

log = structlog.get_logger("hub.identity")

TOKEN_PATH: Final = "/oauth2/token"  # noqa: S105 - a path
INTROSPECTION_PATH: Final = "/oauth2/introspect"
REVOCATION_PATH: Final = "/oauth2/revoke"
GRANT_TYPES: Final = ("authorization_code", "refresh_token", "client_credentials")
#: A client holding this scope may introspect any access token; others only their own.
INTROSPECTION_SCOPE: Final = "hub:introspect"

_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_BASIC_CHALLENGE: Final = 'Basic realm="hub"'
# For errors authlib raises without a description.
_DESCRIPTIONS: Final = {
    "unsupported_grant_type": "the supported grants are authorization_code, refresh_token and"
    " client_credentials",
    "invalid_scope": "the requested scope is invalid",
    "invalid_grant": "the grant is invalid",
    "unauthorized_client": "the client may not use this grant type",
    "invalid_client": "client authentication failed",
    "invalid_request": "the request is malformed",
}


class IdentityStores(Protocol):
    """The stores the authorization server reads and writes."""

    @property
    def clients(self) -> ClientStore: ...

    @property
    def ledger(self) -> AssertionLedger: ...

    @property
    def revocations(self) -> RevocationStore: ...

    @property
    def persons(self) -> PersonStore: ...

    @property
    def refresh_tokens(self) -> RefreshTokenStore: ...

    @property
    def consents(self) -> ConsentStore: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class FormRequest:
    """One POST to an OAuth endpoint, its form already read and checked."""

    uri: str
    form: Mapping[str, str]
    authorization: str | None = None
    request_id: str | None = None


def oauth_error_response(
    error: str,
    description: str,
    *,
    status: int = 400,
    request_id: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response[dict[str, Any]]:
    """An RFC 6749 §5.2 error, plus the hub's ``code`` and ``request_id`` members."""
    body: dict[str, Any] = {"error": error, "error_description": description, "code": error}
    if request_id:
        body["request_id"] = request_id
    return Response(
        body,
        status_code=status,
        headers={**_NO_STORE, **(headers or {})},
        media_type=MediaType.JSON,
    )


class _Request(OAuth2Request):  # type: ignore[misc]
    """An authlib request over a :class:`FormRequest`."""

    def __init__(self, source: FormRequest) -> None:
        headers = {"Authorization": source.authorization} if source.authorization else {}
        super().__init__("POST", source.uri, headers=headers)
        self._form = dict(source.form)
        self.payload = BasicOAuth2Payload(self._form)
        self.request_id = source.request_id

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return {}


class HubAuthorizationServer(PersonGrantStores, AuthorizationServer):  # type: ignore[misc]
    """authlib's authorization server for the hub's grants, on Litestar.

    Use the async methods (:meth:`token_response`, :meth:`introspection_response`,
    :meth:`revocation_response`) from the event loop; authlib's own synchronous methods run in
    a worker thread, where the hooks reach the stores through ``anyio.from_thread``.
    ``codes`` is where the authorization endpoint keeps its codes; without it the
    authorization code grant answers 503. ``directory`` reads people's roles and clients'
    delegations; without it person tokens carry none and no client can act for an
    establishment.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        stores: IdentityStores,
        tokens: TokenIssuer,
        codes: AuthorizationCodes | None = None,
        directory: Directory | None = None,
        introspection_scope: str = INTROSPECTION_SCOPE,
    ) -> None:
        if not is_secure_transport(settings.issuer + TOKEN_PATH):
            # authlib refuses plain http except on loopback; say so at start-up, not per request.
            raise ConfigError([f"HUB_ISSUER: {settings.issuer!r} must be https (or loopback)"])
        super().__init__()
        self.settings = settings
        self.stores = stores
        self.tokens = tokens
        self.codes = codes
        self.directory = directory
        self.id_tokens = IdTokens(tokens.keyring, settings)
        self.introspection_scope = introspection_scope
        self.token_endpoint = settings.issuer + TOKEN_PATH
        self.register_client_auth_method("client_secret_basic", client_secret_basic)
        self.register_client_auth_method(
            "private_key_jwt",
            PrivateKeyJWT(
                audiences=(self.token_endpoint, settings.issuer), use_once=self.use_assertion_once
            ),
        )
        self.register_grant(AuthorizationCodeGrant, [PkceS256(required=True), IdTokenExtension()])
        self.register_grant(RefreshTokenGrant, [IdTokenExtension()])
        self.register_grant(ClientCredentialsGrant)
        self.register_token_generator("default", self._generate_token)
        self.register_endpoint(Introspection)
        self.register_endpoint(Revocation)

    # -- the face the Litestar endpoints use (event loop) --

    async def token_response(self, request: FormRequest) -> Response[Any]:
        """Answer a POST to the token endpoint."""
        response: Response[Any] = await anyio.to_thread.run_sync(
            self.create_token_response, request
        )
        return response

    async def introspection_response(self, request: FormRequest) -> Response[Any]:
        """Answer a POST to the introspection endpoint (RFC 7662)."""
        response: Response[Any] = await anyio.to_thread.run_sync(
            self.create_endpoint_response, "introspection", request
        )
        return response

    async def revocation_response(self, request: FormRequest) -> Response[Any]:
        """Answer a POST to the revocation endpoint (RFC 7009)."""
        response: Response[Any] = await anyio.to_thread.run_sync(
            self.create_endpoint_response, "revocation", request
        )
        return response

    # -- store access from the worker thread --

    def query_client(self, client_id: object) -> HubClient | None:
        # Client ids are printable ASCII (RFC 6749 A.1); anything else is no client of ours,
        # and must not reach the database (PostgreSQL refuses NUL characters, for one).
        if not isinstance(client_id, str) or not 0 < len(client_id) <= 255:
            return None
        if any(not (0x20 <= ord(c) <= 0x7E) for c in client_id):
            return None
        record = anyio.from_thread.run(self.stores.clients.get, client_id)
        return None if record is None else HubClient(record)

    def use_assertion_once(self, jti: str, client_id: str, until: datetime) -> bool:
        """Record a client assertion's jti; ``False`` if that client used it before."""
        used: bool = anyio.from_thread.run(self.stores.ledger.use_once, jti, client_id, until)
        return used

    def read_token(self, token: str) -> AccessTokenRecord | None:
        """The access token ``token`` if this hub issued it and it has not expired."""
        try:
            return AccessTokenRecord(self.tokens.verify(token), self)
        except InvalidToken:
            return None

    def read_refresh_token(self, raw: str) -> RefreshTokenRecord | None:
        """The refresh token ``raw``, whatever its state, if this hub issued it."""
        record = anyio.from_thread.run(self.stores.refresh_tokens.get, raw)
        return None if record is None else RefreshTokenRecord(raw, record, self)

    def revoke_refresh_token(self, raw: str, client_id: str) -> None:
        """Revoke the family of the refresh token ``raw`` of ``client_id``."""
        if anyio.from_thread.run(self.stores.refresh_tokens.revoke, raw, client_id):
            log.info("refresh token family revoked", client_id=client_id, reason="revocation")

    def is_revoked(self, jti: str) -> bool:
        revoked: bool = anyio.from_thread.run(self.stores.revocations.is_revoked, jti)
        return revoked

    def delegation_revoked_since(self, delegations: frozenset[str], issued_at: int) -> bool:
        """Whether one of ``delegations`` was revoked at or after ``issued_at`` (epoch)."""
        if not delegations or self.directory is None:
            return False
        since = datetime.fromtimestamp(issued_at, UTC)
        revoked: list[str] = anyio.from_thread.run(self.directory.revoked_delegations, since)
        return not delegations.isdisjoint(revoked)

    def revoke(self, claims: AccessClaims) -> None:
        until = datetime.fromtimestamp(claims.exp, UTC)
        anyio.from_thread.run(self.stores.revocations.revoke, claims.jti, until)
        log.info("access token revoked", client_id=claims.client_id, jti=claims.jti)

    # -- authlib hooks --

    def authenticate_client(
        self, request: _Request, methods: Sequence[str], endpoint: str = "token"
    ) -> HubClient:
        if request.headers.get("Authorization") and "client_assertion" in request.form:
            raise InvalidRequestError("use one client authentication method, not two")
        client: HubClient = super().authenticate_client(request, methods, endpoint)
        claimed = request.form.get("client_id")
        if claimed is not None and claimed != client.client_id:
            raise InvalidClientError(
                status_code=401, description="client_id does not match the authenticated client"
            )
        return client

    def _generate_token(
        self,
        *,
        grant_type: str,
        client: HubClient,
        user: object = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        # authlib's default generator: every grant of the hub mints its own tokens instead.
        return self.client_token(client=client, scopes=parse_scope(scope) or client.record.scopes)

    def client_token(
        self,
        *,
        client: HubClient,
        scopes: Sequence[str],
        affiliations: Affiliations = NO_AFFILIATIONS,
    ) -> dict[str, Any]:
        """A client credentials token response; ``affiliations`` when it acts for someone."""
        issued = self.tokens.issue(
            subject=client.client_id,
            client_id=client.client_id,
            scopes=scopes,
            affiliations=affiliations,
        )
        log.info(
            "access token issued",
            client_id=client.client_id,
            grant_type="client_credentials",
            jti=issued.claims.jti,
            scope=issued.claims.scope,
            establishment=affiliations.establishment,
            delegation=affiliations.delegation,
        )
        return {
            "access_token": issued.token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "scope": issued.claims.scope,
        }

    def save_token(self, token: dict[str, Any], request: _Request) -> None:
        """Nothing to store: an access token is a self-contained JWT."""

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """authlib's signals have no subscriber in the hub."""

    def create_oauth2_request(self, request: FormRequest | _Request) -> _Request:
        return request if isinstance(request, _Request) else _Request(request)

    def handle_response(
        self, status: int, body: Any, headers: Sequence[tuple[str, str]]
    ) -> Response[Any]:
        extra = {k: v for k, v in headers if k.lower() != "content-type"}
        return Response(
            body, status_code=status, headers={**extra, **_NO_STORE}, media_type=MediaType.JSON
        )

    def handle_error_response(self, request: _Request | None, error: OAuth2Error) -> Response[Any]:
        code: str = error.error
        description = error.description if error.description else _DESCRIPTIONS.get(code, code)
        status = 400
        headers: dict[str, str] = {}
        if code == "invalid_client":
            # RFC 6749 §5.2: 401 with a challenge for the scheme the client may use.
            status = 401
            headers["WWW-Authenticate"] = _BASIC_CHALLENGE
        request_id = request.request_id if isinstance(request, _Request) else None
        return oauth_error_response(
            code, description, status=status, request_id=request_id, headers=headers
        )
