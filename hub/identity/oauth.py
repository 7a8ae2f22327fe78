"""The hub's OAuth 2.0 authorization server: authlib's, served by Litestar, over our stores.

authlib runs the protocol: grant selection, client authentication, the client credentials grant,
introspection (RFC 7662) and revocation (RFC 7009). authlib is synchronous and the identity
stores are async, so each request runs authlib in a worker thread (``anyio.to_thread``) and the
hooks below reach the stores on the event loop with ``anyio.from_thread.run``. authlib's flow
stays as its authors designed it, and RSA signing does not block the event loop meanwhile.

Clients authenticate with ``client_secret_basic`` or ``private_key_jwt`` (RFC 7523), nothing
else. Access tokens are JWTs (:mod:`hub.identity.tokens`): nothing is stored when one is issued,
and a revoked one is remembered by its ``jti`` until it would have expired.
"""

from __future__ import annotations

import time
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
    ClientCredentialsGrant,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    OAuth2Request,
    TokenMixin,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload  # type: ignore[import-untyped]
from authlib.oauth2.rfc7009 import RevocationEndpoint  # type: ignore[import-untyped]
from authlib.oauth2.rfc7662 import IntrospectionEndpoint  # type: ignore[import-untyped]
from litestar import Response
from litestar.enums import MediaType

from hub.db.identity_store import AssertionLedger, ClientStore, RevocationStore
from hub.errors import ConfigError, InvalidToken
from hub.identity.client_auth import (
    CLIENT_AUTH_METHODS,
    HubClient,
    PrivateKeyJWT,
    client_secret_basic,
    parse_scope,
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
GRANT_TYPES: Final = ("client_credentials",)
#: A client holding this scope may introspect any token; others only their own.
INTROSPECTION_SCOPE: Final = "hub:introspect"

_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_BASIC_CHALLENGE: Final = 'Basic realm="hub"'
# For errors authlib raises without a description.
_DESCRIPTIONS: Final = {
    "unsupported_grant_type": "only the client_credentials grant is supported",
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


class _ClientCredentialsGrant(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = list(CLIENT_AUTH_METHODS)

    def validate_requested_scope(self) -> None:
        requested = parse_scope(self.request.payload.scope)
        allowed = self.request.client.record.scopes
        refused = [name for name in requested if name not in allowed]
        if refused:
            # Scope names were checked to hold no quote or backslash: safe to name them.
            raise InvalidScopeError(f"the client may not request: {' '.join(refused)}")


class _AccessToken(TokenMixin):  # type: ignore[misc]
    def __init__(self, claims: AccessClaims, server: HubAuthorizationServer) -> None:
        self.claims = claims
        self._server = server

    def check_client(self, client: HubClient) -> bool:
        return client.client_id == self.claims.client_id

    def get_scope(self) -> str:
        return self.claims.scope

    def get_expires_in(self) -> int:
        return self.claims.exp - self.claims.iat

    def is_expired(self) -> bool:
        return self.claims.exp <= time.time()

    def is_revoked(self) -> bool:
        return self._server.is_revoked(self.claims.jti)

    def get_user(self) -> None:
        return None


def _check_token_param(request: _Request) -> None:
    # Any token_type_hint is accepted and ignored: the hub only has one kind of token to look
    # for, and RFC 7009 §2.1 / RFC 7662 §2.1 say to search every kind anyway.
    if not request.form.get("token"):
        raise InvalidRequestError("the token parameter is required")


class _Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = list(CLIENT_AUTH_METHODS)

    def check_params(self, request: _Request, client: HubClient) -> None:
        _check_token_param(request)

    def query_token(self, token_string: str, token_type_hint: str | None) -> _AccessToken | None:
        token: _AccessToken | None = self.server.read_token(token_string)
        return token

    def check_permission(self, token: _AccessToken, client: HubClient, request: _Request) -> bool:
        # Another client's token looks inactive, so a vendor cannot scan for valid tokens.
        return token.check_client(client) or self.server.introspection_scope in client.record.scopes

    def introspect_token(self, token: _AccessToken) -> dict[str, Any]:
        claims = token.claims
        return {
            "active": True,
            "scope": claims.scope,
            "client_id": claims.client_id,
            "sub": claims.sub,
            "exp": claims.exp,
            "iat": claims.iat,
            "iss": claims.iss,
            "aud": claims.aud,
            "jti": claims.jti,
            "token_type": "Bearer",
        }


class _Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = list(CLIENT_AUTH_METHODS)

    def check_params(self, request: _Request, client: HubClient) -> None:
        _check_token_param(request)

    def query_token(self, token_string: str, token_type_hint: str | None) -> _AccessToken | None:
        token: _AccessToken | None = self.server.read_token(token_string)
        return token

    def authenticate_token(self, request: _Request, client: HubClient) -> _AccessToken | None:
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        if token is not None and not token.check_client(client):
            raise InvalidGrantError("the token was not issued to this client")
        return token

    def revoke_token(self, token: _AccessToken, request: _Request) -> None:
        self.server.revoke(token.claims)


class HubAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """authlib's authorization server for the client credentials grant, on Litestar.

    Use the async methods (:meth:`token_response`, :meth:`introspection_response`,
    :meth:`revocation_response`) from the event loop; authlib's own synchronous methods run in
    a worker thread, where the hooks reach the stores through ``anyio.from_thread``.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        stores: IdentityStores,
        tokens: TokenIssuer,
        introspection_scope: str = INTROSPECTION_SCOPE,
    ) -> None:
        if not is_secure_transport(settings.issuer + TOKEN_PATH):
            # authlib refuses plain http except on loopback; say so at start-up, not per request.
            raise ConfigError([f"HUB_ISSUER: {settings.issuer!r} must be https (or loopback)"])
        super().__init__()
        self.settings = settings
        self.stores = stores
        self.tokens = tokens
        self.introspection_scope = introspection_scope
        self.token_endpoint = settings.issuer + TOKEN_PATH
        self.register_client_auth_method("client_secret_basic", client_secret_basic)
        self.register_client_auth_method(
            "private_key_jwt",
            PrivateKeyJWT(
                audiences=(self.token_endpoint, settings.issuer), use_once=self.use_assertion_once
            ),
        )
        self.register_grant(_ClientCredentialsGrant)
        self.register_token_generator("default", self._generate_token)
        self.register_endpoint(_Introspection)
        self.register_endpoint(_Revocation)

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

    def read_token(self, token: str) -> _AccessToken | None:
        """The access token ``token`` if this hub issued it and it has not expired."""
        try:
            return _AccessToken(self.tokens.verify(token), self)
        except InvalidToken:
            return None

    def is_revoked(self, jti: str) -> bool:
        revoked: bool = anyio.from_thread.run(self.stores.revocations.is_revoked, jti)
        return revoked

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
        scopes = parse_scope(scope) or client.record.scopes
        issued = self.tokens.issue(
            subject=client.client_id, client_id=client.client_id, scopes=scopes
        )
        log.info(
            "access token issued",
            client_id=client.client_id,
            grant_type=grant_type,
            jti=issued.claims.jti,
            scope=issued.claims.scope,
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
