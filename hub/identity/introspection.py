"""Introspection (RFC 7662) and revocation (RFC 7009) of the hub's tokens, as authlib endpoints.

Two kinds of token are looked up: access tokens (JWTs the hub signed; revoked by ``jti``) and
refresh tokens (opaque; kept by SHA-256 in the refresh-token store). Any ``token_type_hint`` is
accepted and ignored: RFC 7009 §2.1 and RFC 7662 §2.1 say to search every kind anyway.

A client learns about, and revokes, only its own tokens; a client holding the introspection
scope may introspect any access token (a resource server). Revoking a refresh token revokes its
whole family. A public client (``none``) may revoke its own tokens, but not introspect.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped]
    InvalidGrantError,
    InvalidRequestError,
    TokenMixin,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint  # type: ignore[import-untyped]
from authlib.oauth2.rfc7662 import IntrospectionEndpoint  # type: ignore[import-untyped]

from hub.db.refresh_store import RefreshToken
from hub.identity.client_auth import CLIENT_AUTH_METHODS, HubClient
from hub.identity.tokens import AccessClaims

if TYPE_CHECKING:
    from hub.identity.oauth import HubAuthorizationServer

__all__ = ["AccessTokenRecord", "Introspection", "RefreshTokenRecord", "Revocation"]


class AccessTokenRecord(TokenMixin):  # type: ignore[misc]
    """An access token of this hub, as authlib's endpoints see it."""

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
        claims = self.claims
        if self._server.is_revoked(claims.jti):
            return True
        # A token resting on a delegation revoked since it was issued is no longer active.
        return self._server.delegation_revoked_since(claims.affiliations.delegations, claims.iat)

    def get_user(self) -> None:
        return None

    def introspection(self) -> dict[str, Any]:
        claims = self.claims
        body: dict[str, Any] = {
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
        if claims.acr is not None:
            body["acr"] = claims.acr
        if claims.auth_time is not None:
            body["auth_time"] = claims.auth_time
        body.update(claims.affiliations.claims())  # establishment, delegation, roles, …
        return body


class RefreshTokenRecord(TokenMixin):  # type: ignore[misc]
    """A refresh token (spent, revoked or live), with the value it was presented as."""

    def __init__(self, raw: str, record: RefreshToken, server: HubAuthorizationServer) -> None:
        self.raw = raw
        self.record = record
        self._server = server

    def check_client(self, client: HubClient) -> bool:
        return client.client_id == self.record.client_id

    def get_scope(self) -> str:
        return " ".join(self.record.scopes)

    def get_expires_in(self) -> int:
        return int((self.record.expires_at - self.record.created_at).total_seconds())

    def is_expired(self) -> bool:
        return self.record.expires_at.timestamp() <= time.time()

    def is_revoked(self) -> bool:
        # A spent token is as dead as a revoked one: its successor is the live one.
        return self.record.revoked_at is not None or self.record.used_at is not None

    def get_user(self) -> None:
        return None

    def introspection(self) -> dict[str, Any]:
        record = self.record
        return {
            "active": True,
            "scope": self.get_scope(),
            "client_id": record.client_id,
            "sub": record.person_id,
            "exp": int(record.expires_at.timestamp()),
            "iat": int(record.created_at.timestamp()),
            "iss": self._server.settings.issuer,
            "acr": record.acr,
            "auth_time": record.auth_time,
        }


TokenRecord = AccessTokenRecord | RefreshTokenRecord


def _check_token_param(request: Any) -> None:
    if not request.form.get("token"):
        raise InvalidRequestError("the token parameter is required")


def _query(server: HubAuthorizationServer, token: str) -> TokenRecord | None:
    access = server.read_token(token)
    if access is not None:
        return access
    # Access tokens are JWTs (they hold dots); a refresh token is URL-safe base64.
    if "." in token:
        return None
    return server.read_refresh_token(token)


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    """``POST /oauth2/introspect`` (RFC 7662)."""

    CLIENT_AUTH_METHODS = list(CLIENT_AUTH_METHODS)

    def check_params(self, request: Any, client: HubClient) -> None:
        _check_token_param(request)

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRecord | None:
        return _query(self.server, token_string)

    def check_permission(self, token: TokenRecord, client: HubClient, request: Any) -> bool:
        # Another client's token looks inactive, so a vendor cannot scan for valid tokens.
        if token.check_client(client):
            return True
        is_access = isinstance(token, AccessTokenRecord)
        return is_access and self.server.introspection_scope in client.record.scopes

    def introspect_token(self, token: TokenRecord) -> dict[str, Any]:
        return token.introspection()


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    """``POST /oauth2/revoke`` (RFC 7009)."""

    CLIENT_AUTH_METHODS = [*CLIENT_AUTH_METHODS, "none"]

    def check_params(self, request: Any, client: HubClient) -> None:
        _check_token_param(request)

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRecord | None:
        return _query(self.server, token_string)

    def authenticate_token(self, request: Any, client: HubClient) -> TokenRecord | None:
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        if token is not None and not token.check_client(client):
            raise InvalidGrantError("the token was not issued to this client")
        return token

    def revoke_token(self, token: TokenRecord, request: Any) -> None:
        if isinstance(token, AccessTokenRecord):
            self.server.revoke(token.claims)
        else:
            self.server.revoke_refresh_token(token.raw, token.record.client_id)
