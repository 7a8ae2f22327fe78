"""The rules of the sandbox national identity provider, without HTTP.

One registered client (``client_id``, ``client_secret``, exact ``redirect_uris``), the
authorization code flow only. Errors come in three kinds, by how the endpoint must answer:

- :class:`PageError`: the authorization request cannot be trusted to redirect (unknown client,
  unregistered ``redirect_uri``, no ``state``): an error page, never a redirect.
- :class:`RedirectError`: the client and redirect are good, the rest is not: redirect back
  with ``error`` (RFC 6749 §4.1.2.1).
- :class:`OAuthError`: token and userinfo endpoints: RFC 6749 §5.2 JSON.

Codes live 60 s and are single use; redeeming one twice also revokes the access token it
bought (RFC 6749 §4.1.2). Everything is in memory: a restart forgets codes and tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from adapters.sandbox.national_idp._keys import ID_TOKEN_ALGORITHM, SigningKey
from adapters.sandbox.national_idp.people import SANDBOX_PASSWORD, Person, load_people

__all__ = [
    "ACR",
    "AuthorizationRequest",
    "Faults",
    "IdpConfig",
    "LoginFailed",
    "NationalIdp",
    "OAuthError",
    "PageError",
    "RedirectError",
    "discovery_document",
]

#: Level of assurance the sandbox asserts for every sign-in.
ACR: Final = "urn:national-idp:loa3"
AUTHORIZE_PATH: Final = "/authorize"
TOKEN_PATH: Final = "/token"  # noqa: S105 - a path
USERINFO_PATH: Final = "/userinfo"
JWKS_PATH: Final = "/jwks.json"
# RFC 7636 §4.1: 43 to 128 unreserved characters (a S256 challenge is always 43).
_PKCE_VALUE: Final = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_MAX_STATE: Final = 512


@dataclass(frozen=True, slots=True, kw_only=True)
class IdpConfig:
    """How one sandbox IdP instance runs."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uris: tuple[str, ...]
    people: tuple[Person, ...] = field(default_factory=load_people)
    latency_ms: int = 0
    code_seconds: int = 60
    token_seconds: int = 600
    # Salt of the pairwise subjects: stable across restarts so a relying party's links hold.
    subject_salt: str = field(default="national-idp-sandbox", repr=False)
    clock: Callable[[], float] = time.time


class PageError(Exception):
    """An authorization request that must not redirect: shown as an error page."""


class RedirectError(Exception):
    """An authorization request refused by redirecting back with ``error``."""

    def __init__(self, error: str, description: str, request: AuthorizationRequest) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.request = request


class OAuthError(Exception):
    """An RFC 6749 §5.2 error of the token or userinfo endpoint."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


class LoginFailed(Exception):
    """The national ID or the password is wrong (never says which)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizationRequest:
    """A checked authorization request, as carried through the sign-in form."""

    client_id: str
    redirect_uri: str
    scope: str
    state: str
    nonce: str | None
    code_challenge: str | None

    def form_fields(self) -> dict[str, str]:
        """The parameters that recreate this request (hidden fields of the sign-in form)."""
        fields = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "state": self.state,
        }
        if self.nonce is not None:
            fields["nonce"] = self.nonce
        if self.code_challenge is not None:
            fields["code_challenge"] = self.code_challenge
            fields["code_challenge_method"] = "S256"
        return fields


@dataclass(slots=True, kw_only=True)
class Faults:
    """Injected misbehaviour, set through ``POST /_sandbox/faults``."""

    token_status: int | None = None
    latency_ms: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of the faults endpoint."""
        return {"token_status": self.token_status, "latency_ms": self.latency_ms}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Grant:
    request: AuthorizationRequest
    person: Person
    auth_time: int
    expires_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class _AccessToken:
    person: Person
    client_id: str
    expires_at: float


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def s256(verifier: str) -> str:
    """The RFC 7636 S256 challenge of ``verifier``."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def discovery_document(issuer: str) -> dict[str, Any]:
    """OpenID Provider metadata of the sandbox."""
    return {
        "issuer": issuer,
        "authorization_endpoint": issuer + AUTHORIZE_PATH,
        "token_endpoint": issuer + TOKEN_PATH,
        "userinfo_endpoint": issuer + USERINFO_PATH,
        "jwks_uri": issuer + JWKS_PATH,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": [ID_TOKEN_ALGORITHM],
        "scopes_supported": ["openid", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "acr_values_supported": [ACR],
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "acr",
            "amr",
            "national_id",
            "given_name",
            "family_name",
            "birthdate",
        ],
        "authorization_response_iss_parameter_supported": True,
    }


class NationalIdp:
    """The provider's state: its key, people, live codes and access tokens, injected faults."""

    def __init__(self, config: IdpConfig) -> None:
        self.config = config
        self.key = SigningKey.generate()
        self.people = {person.national_id: person for person in config.people}
        self.faults = Faults(latency_ms=config.latency_ms)
        self._codes: dict[str, _Grant] = {}
        self._spent: dict[str, tuple[float, str | None]] = {}  # code -> (expiry, token bought)
        self._tokens: dict[str, _AccessToken] = {}

    # -- authorization endpoint ------------------------------------------------------------

    def check_request(self, params: Mapping[str, str]) -> AuthorizationRequest:
        """The authorization request in ``params``, or PageError / RedirectError."""
        config = self.config
        client_id = params.get("client_id")
        if client_id is None or not hmac.compare_digest(client_id, config.client_id):
            raise PageError("unknown client_id")
        redirect_uri = params.get("redirect_uri")
        if redirect_uri is None or redirect_uri not in config.redirect_uris:
            raise PageError("redirect_uri is not registered for this client")
        state = params.get("state")
        # The sandbox insists on state: a callback it cannot correlate is a CSRF risk.
        if not state or len(state) > _MAX_STATE:
            raise PageError("state is required (at most 512 characters)")
        nonce = params.get("nonce") or None
        partial = AuthorizationRequest(
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=params.get("scope", ""),
            state=state,
            nonce=nonce,
            code_challenge=None,
        )
        if params.get("response_type") != "code":
            raise RedirectError("unsupported_response_type", "only response_type=code", partial)
        if "openid" not in partial.scope.split():
            raise RedirectError("invalid_scope", "scope must include openid", partial)
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method")
        if challenge is None:
            if method is not None:
                raise RedirectError("invalid_request", "code_challenge_method alone", partial)
            return partial
        if method != "S256":
            # A missing method means plain (RFC 7636 §4.3), which gives no protection.
            raise RedirectError("invalid_request", "code_challenge_method must be S256", partial)
        if not _PKCE_VALUE.fullmatch(challenge):
            raise RedirectError("invalid_request", "malformed code_challenge", partial)
        return AuthorizationRequest(
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=partial.scope,
            state=state,
            nonce=nonce,
            code_challenge=challenge,
        )

    def sign_in(self, national_id: str, password: str) -> Person:
        """The person whose credentials these are, or LoginFailed."""
        person = self.people.get(national_id)
        good_password = hmac.compare_digest(password.encode(), SANDBOX_PASSWORD.encode())
        if person is None or not good_password:
            raise LoginFailed("the national ID or the password is wrong")
        return person

    def issue_code(self, request: AuthorizationRequest, person: Person) -> str:
        """A single-use code for ``person``, redeemable for ``code_seconds``."""
        now = self.config.clock()
        self._forget_expired(now)
        code = secrets.token_urlsafe(32)
        self._codes[code] = _Grant(
            request=request,
            person=person,
            auth_time=int(now),
            expires_at=now + self.config.code_seconds,
        )
        return code

    # -- token endpoint ----------------------------------------------------------------------

    def authenticate_client(self, client_id: str, client_secret: str) -> None:
        """OAuthError invalid_client (401) unless these are the registered credentials."""
        config = self.config
        good_id = hmac.compare_digest(client_id.encode(), config.client_id.encode())
        good_secret = hmac.compare_digest(client_secret.encode(), config.client_secret.encode())
        if not (good_id and good_secret):
            raise OAuthError("invalid_client", "client authentication failed", 401)

    def redeem(
        self, *, client_id: str, code: str, redirect_uri: str | None, code_verifier: str | None
    ) -> dict[str, Any]:
        """The token response for an authorization code; OAuthError invalid_grant otherwise."""
        now = self.config.clock()
        self._forget_expired(now)
        grant = self._codes.pop(code, None)
        if grant is None:
            spent = self._spent.get(code)
            if spent is not None and spent[1] is not None:
                self._tokens.pop(spent[1], None)
            raise OAuthError("invalid_grant", "the code is unknown, expired or already used")
        # Spent whatever follows: a code gets one attempt.
        self._spent[code] = (grant.expires_at, None)
        request = grant.request
        if grant.expires_at <= now:
            raise OAuthError("invalid_grant", "the code has expired")
        if request.client_id != client_id:
            raise OAuthError("invalid_grant", "the code was issued to another client")
        if redirect_uri != request.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request")
        if request.code_challenge is None:
            if code_verifier is not None:
                raise OAuthError("invalid_grant", "code_verifier without a code_challenge")
        elif code_verifier is None or not _PKCE_VALUE.fullmatch(code_verifier):
            raise OAuthError("invalid_grant", "a valid code_verifier is required")
        elif not hmac.compare_digest(s256(code_verifier), request.code_challenge):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        access_token = secrets.token_urlsafe(32)
        self._tokens[access_token] = _AccessToken(
            person=grant.person, client_id=client_id, expires_at=now + self.config.token_seconds
        )
        self._spent[code] = (grant.expires_at, access_token)
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.config.token_seconds,
            "scope": request.scope,
            "id_token": self._id_token(grant, access_token, now),
        }

    def subject(self, person: Person, client_id: str) -> str:
        """The pairwise subject of ``person`` for ``client_id``: opaque, stable, unlinkable."""
        message = f"{client_id}\x00{person.national_id}".encode()
        digest = hmac.new(self.config.subject_salt.encode(), message, hashlib.sha256).digest()
        return _b64url(digest)

    def _id_token(self, grant: _Grant, access_token: str, now: float) -> str:
        request = grant.request
        at_digest = hashlib.sha256(access_token.encode("ascii")).digest()
        claims: dict[str, Any] = {
            "iss": self.config.issuer,
            "sub": self.subject(grant.person, request.client_id),
            "aud": request.client_id,
            "iat": int(now),
            "exp": int(now) + self.config.token_seconds,
            "auth_time": grant.auth_time,
            "acr": ACR,
            "amr": ["pwd"],
            "at_hash": _b64url(at_digest[:16]),
            **grant.person.claims(),
        }
        if request.nonce is not None:
            claims["nonce"] = request.nonce
        return self.key.sign(claims)

    # -- userinfo endpoint -------------------------------------------------------------------

    def userinfo(self, access_token: str) -> dict[str, str]:
        """The claims of the person behind ``access_token``; OAuthError invalid_token (401)."""
        token = self._tokens.get(access_token)
        if token is None or token.expires_at <= self.config.clock():
            raise OAuthError("invalid_token", "the access token is unknown or expired", 401)
        return {"sub": self.subject(token.person, token.client_id), **token.person.claims()}

    def _forget_expired(self, now: float) -> None:
        for code in [c for c, grant in self._codes.items() if grant.expires_at <= now]:
            # Kept as spent until swept below, so a late replay still says "already used".
            self._spent[code] = (self._codes.pop(code).expires_at, None)
        for code in [c for c, (expiry, _) in self._spent.items() if expiry + 600 <= now]:
            del self._spent[code]
        for token in [t for t, info in self._tokens.items() if info.expires_at <= now]:
            del self._tokens[token]
