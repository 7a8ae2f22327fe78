"""The token endpoint's person grants, as authlib grants: authorization code and refresh token.

- :class:`AuthorizationCodeGrant`: authlib's, with :class:`PkceS256` (authlib's
  ``CodeChallenge``, S256 only and required of every client, a missing verifier an
  ``invalid_grant``) and :class:`IdTokenExtension` (authlib's ``OpenIDCode`` hook, minting with
  :class:`~hub.identity.id_tokens.IdTokens`). A code is redeemed atomically; a replayed code
  revokes the refresh-token family and the access token issued from it.
- :class:`RefreshTokenGrant`: authlib's, rotating on every use through the refresh-token store;
  a spent token presented again revokes its whole family. The scope may narrow, never widen.

Public clients authenticate with ``none`` (``client_id`` in the form, no secret); confidential
ones as for every grant. The authorization endpoint itself is :mod:`hub.identity.authorize`.
These classes run in authlib's worker thread; ``self.server`` is the
:class:`~hub.identity.oauth.HubAuthorizationServer`, whose methods reach the stores.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import structlog
from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped]
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
)
from authlib.oauth2.rfc6749.grants import (  # type: ignore[import-untyped]
    AuthorizationCodeGrant as _AuthlibCodeGrant,
)
from authlib.oauth2.rfc6749.grants import (
    RefreshTokenGrant as _AuthlibRefreshGrant,
)
from authlib.oauth2.rfc7636.challenge import (  # type: ignore[import-untyped]
    CODE_VERIFIER_PATTERN,
    CodeChallenge,
    create_s256_code_challenge,
)
from authlib.oidc.core.grants import OpenIDCode  # type: ignore[import-untyped]

from hub.db.person_store import Person
from hub.identity.client_auth import CLIENT_AUTH_METHODS, parse_scope
from hub.identity.codes import AuthorizationCode
from hub.identity.tokens import IssuedToken

if TYPE_CHECKING:
    from hub.identity.oauth import HubAuthorizationServer

__all__ = [
    "PKCE_METHOD",
    "AuthorizationCodeGrant",
    "IdTokenExtension",
    "PersonTokens",
    "PkceS256",
    "RefreshTokenGrant",
    "SignIn",
]

log = structlog.get_logger("hub.identity")

#: The one PKCE method the hub accepts (RFC 7636 §4.2; ``plain`` protects nothing).
PKCE_METHOD: Final = "S256"
#: Public clients add ``none``: they send their ``client_id`` and no secret.
PERSON_GRANT_AUTH_METHODS: Final = [*CLIENT_AUTH_METHODS, "none"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SignIn:
    """The sign-in a code or refresh token stands for: the person, and how and when."""

    person: Person
    sid: str | None
    acr: str
    amr: tuple[str, ...]
    auth_time: int
    #: The refresh-token family to continue, ``None`` to start one.
    family_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonTokens:
    """The tokens one grant issued to a person's client."""

    access: IssuedToken
    refresh_token: str | None = field(repr=False)
    family_id: str | None

    def response(self) -> dict[str, Any]:
        """The token response (RFC 6749 §5.1), before any ``id_token``."""
        body: dict[str, Any] = {
            "access_token": self.access.token,
            "token_type": "Bearer",
            "expires_in": self.access.expires_in,
            "scope": self.access.claims.scope,
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        return body


class _CodeRecord:
    """A redeemed code as authlib's ``AuthorizationCodeMixin`` sees it."""

    def __init__(self, code: AuthorizationCode) -> None:
        self.code = code
        self.code_challenge = code.code_challenge
        self.code_challenge_method = code.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.code.redirect_uri

    def get_scope(self) -> str:
        return " ".join(self.code.scopes)

    def get_nonce(self) -> str | None:
        return self.code.nonce

    def get_auth_time(self) -> int:
        return self.code.auth_time

    def get_acr(self) -> str:
        return self.code.acr

    def get_amr(self) -> list[str]:
        return list(self.code.amr)


class _IssuingGrant:
    """Mints the person's tokens for authlib's ``generate_token`` (one grant object per request)."""

    server: HubAuthorizationServer
    request: Any
    GRANT_TYPE: str
    issued: PersonTokens | None = None

    def _person_tokens(
        self, user: SignIn, scope: str | None, *, refresh: bool, refresh_scopes: tuple[str, ...]
    ) -> dict[str, Any]:
        self.issued = self.server.issue_person_tokens(
            client=self.request.client,
            grant_type=self.GRANT_TYPE,
            sign_in=user,
            scopes=parse_scope(scope),
            refresh_scopes=refresh_scopes if refresh else None,
        )
        return self.issued.response()


class PkceS256(CodeChallenge):  # type: ignore[misc]
    """authlib's PKCE extension at the token endpoint: S256 only, and never optional.

    The authorization endpoint (ours) has already refused any request without an S256
    challenge, so every code carries one; a token request without a verifier is refused.
    """

    SUPPORTED_CODE_CHALLENGE_METHOD = [PKCE_METHOD]
    CODE_CHALLENGE_METHODS = {PKCE_METHOD: create_s256_code_challenge}

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_validate_token_request", self.validate_code_verifier)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        verifier = grant.request.form.get("code_verifier")
        record: _CodeRecord = grant.request.authorization_code
        if not verifier:
            raise InvalidGrantError("code_verifier is required (PKCE)")
        if not CODE_VERIFIER_PATTERN.match(verifier):
            raise InvalidGrantError("code_verifier must be 43 to 128 unreserved characters")
        if record.code_challenge_method != PKCE_METHOD:
            raise InvalidGrantError("the code was not issued with an S256 challenge")
        expected = create_s256_code_challenge(verifier)
        if not hmac.compare_digest(expected.encode(), record.code_challenge.encode()):
            raise InvalidGrantError("code_verifier does not match the code_challenge")


class IdTokenExtension(OpenIDCode):  # type: ignore[misc]
    """authlib's OpenID Connect hook: an ``id_token`` whenever the granted scope has ``openid``.

    authlib decides when (``process_token``, after the token response is made); the hub mints
    the token (:class:`~hub.identity.id_tokens.IdTokens`, pyjwt, the access key), not joserfc.
    """

    def process_token(self, grant: Any, response: Any) -> Any:
        _, token, _ = response
        scopes = parse_scope(token.get("scope"))
        if "openid" not in scopes:
            return token
        sign_in: SignIn = grant.request.user
        record = getattr(grant.request, "authorization_code", None)
        server: HubAuthorizationServer = grant.server
        token["id_token"] = server.id_tokens.mint(
            client_id=grant.request.client.client_id,
            person=sign_in.person,
            scopes=scopes,
            auth_time=sign_in.auth_time,
            acr=sign_in.acr,
            amr=sign_in.amr,
            sid=sign_in.sid,
            nonce=record.get_nonce() if isinstance(record, _CodeRecord) else None,
            access_token=token["access_token"],
        )
        return token


class AuthorizationCodeGrant(_IssuingGrant, _AuthlibCodeGrant):  # type: ignore[misc]
    """``grant_type=authorization_code`` (RFC 6749 §4.1.3), codes from :mod:`.authorize`."""

    TOKEN_ENDPOINT_AUTH_METHODS = PERSON_GRANT_AUTH_METHODS

    def validate_token_request(self) -> None:
        code = self.request.form.get("code")
        if not code:
            raise InvalidRequestError("the code parameter is required")
        super().validate_token_request()

    def query_authorization_code(self, code: str, client: Any) -> _CodeRecord:
        redeemed = self.server.redeem_code(code)
        if redeemed is None:
            if self.server.replayed_code(code, client.client_id):
                raise InvalidGrantError("the authorization code was already used")
            raise InvalidGrantError("the authorization code is unknown or has expired")
        if redeemed.client_id != client.client_id:
            # Used up all the same: a code shown to another client has leaked.
            log.warning(
                "authorization code presented by another client",
                client_id=client.client_id,
                issued_to=redeemed.client_id,
            )
            raise InvalidGrantError("the authorization code was issued to another client")
        return _CodeRecord(redeemed)

    def authenticate_user(self, authorization_code: _CodeRecord) -> SignIn:
        code = authorization_code.code
        person = self.server.live_person(code.person_id)
        if person is None:
            raise InvalidGrantError("the person is unknown or disabled")
        return SignIn(
            person=person, sid=code.sid, acr=code.acr, amr=code.amr, auth_time=code.auth_time
        )

    def generate_token(
        self,
        user: SignIn | None = None,
        scope: str | None = None,
        grant_type: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        assert user is not None
        scopes = parse_scope(scope)
        return self._person_tokens(
            user, scope, refresh=include_refresh_token, refresh_scopes=scopes
        )

    def save_token(self, token: dict[str, Any]) -> None:
        assert self.issued is not None
        record: _CodeRecord = self.request.authorization_code
        self.server.record_code_tokens(record.code, self.issued)

    def delete_authorization_code(self, authorization_code: _CodeRecord) -> None:
        """Nothing to delete: redeeming the code used it up."""


class RefreshTokenGrant(_IssuingGrant, _AuthlibRefreshGrant):  # type: ignore[misc]
    """``grant_type=refresh_token`` (RFC 6749 §6) with rotation and reuse detection."""

    TOKEN_ENDPOINT_AUTH_METHODS = PERSON_GRANT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def validate_token_request(self) -> None:
        client = self._validate_request_client()
        self.request.client = client
        raw = self.request.form.get("refresh_token")
        if not raw:
            raise InvalidRequestError("the refresh_token parameter is required")
        requested = parse_scope(self.request.payload.scope)
        # Checked before the token is spent, so a refused request leaves it usable.
        current = self.server.peek_refresh_token(raw, client.client_id)
        if current is not None and not set(requested) <= set(current.scopes):
            raise InvalidScopeError("the scope may only narrow what was granted")
        spent = self.server.rotate_refresh_token(raw, client.client_id)
        if not set(requested) <= set(spent.scopes):
            raise InvalidScopeError("the scope may only narrow what was granted")
        self.request.refresh_token = spent

    def authenticate_user(self, refresh_token: Any) -> SignIn:
        person = self.server.live_person(refresh_token.person_id)
        if person is None:
            self.server.revoke_refresh_family(refresh_token.family_id)
            raise InvalidGrantError("the person is unknown or disabled")
        return SignIn(
            person=person,
            sid=refresh_token.sid,
            acr=refresh_token.acr,
            amr=tuple(refresh_token.amr),
            auth_time=refresh_token.auth_time,
            family_id=refresh_token.family_id,
        )

    def issue_token(self, user: SignIn, refresh_token: Any) -> dict[str, Any]:
        scope = self.request.payload.scope or " ".join(refresh_token.scopes)
        # RFC 6749 §6: the new refresh token keeps the scope of the one it replaces.
        return self._person_tokens(user, scope, refresh=True, refresh_scopes=refresh_token.scopes)

    def save_token(self, token: dict[str, Any]) -> None:
        """Nothing to store: the refresh-token store recorded the new token when it was issued."""

    def revoke_old_credential(self, refresh_token: Any) -> None:
        """Nothing to do: rotating spent the old token."""
