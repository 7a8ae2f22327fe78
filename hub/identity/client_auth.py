"""How a client proves who it is at the OAuth endpoints: ``client_secret_basic`` or
``private_key_jwt`` (RFC 7523), as authlib client authentication methods. A public client
(a browser or mobile app) cannot keep a secret: it uses authlib's ``none`` method, and only for
the person grants, where PKCE binds the code to the app that asked for it.

:class:`HubClient` is a registered client as authlib sees it. Client secrets are compared by
SHA-256 digest in constant time. A client assertion must be signed with an asymmetric algorithm
by a key of the client's registered JWK set, name the hub as its audience, expire at most
:data:`MAX_ASSERTION_SECONDS` ahead, and carry a ``jti`` that is accepted only once.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import unquote

import jwt
from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped]
    ClientMixin,
    InvalidClientError,
    InvalidScopeError,
)
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion  # type: ignore[import-untyped]

from hub.db.identity_store import OAuthClient, secret_matches
from hub.db.identity_tables import JTI_LENGTH

__all__ = [
    "ASSERTION_ALGORITHMS",
    "ASSERTION_LEEWAY_SECONDS",
    "CLIENT_AUTH_METHODS",
    "MAX_ASSERTION_SECONDS",
    "HubClient",
    "PrivateKeyJWT",
    "UseOnce",
    "client_secret_basic",
    "parse_scope",
]

CLIENT_AUTH_METHODS: Final = ("client_secret_basic", "private_key_jwt")
#: Signatures a client assertion may carry: asymmetric only, so never ``none`` nor HS*.
ASSERTION_ALGORITHMS: Final = ("RS256", "ES256", "EdDSA")
#: A client assertion may not expire later than this after it is presented, so the ledger of
#: used ``jti`` values only has to remember one that long.
MAX_ASSERTION_SECONDS: Final = 300
#: Clock skew allowed between a client and the hub when checking an assertion's times.
ASSERTION_LEEWAY_SECONDS: Final = 30

#: ``use_once(jti, client_id, until) -> bool``: ``False`` when the client used that jti before.
UseOnce = Callable[[str, str, datetime], bool]

# What each assertion algorithm needs of the registered JWK: (kty, crv).
_KEY_TYPES: Final = {"RS256": ("RSA", None), "ES256": ("EC", "P-256"), "EdDSA": ("OKP", "Ed25519")}
# Most specific first: ExpiredSignatureError and InvalidSignatureError are subclasses.
_ASSERTION_ERRORS: Final[tuple[tuple[type[Exception], str], ...]] = (
    (jwt.ExpiredSignatureError, "the client assertion has expired"),
    (jwt.ImmatureSignatureError, "the client assertion is not valid yet"),
    (jwt.InvalidAudienceError, "the client assertion aud must be the token endpoint or issuer"),
    (jwt.InvalidSignatureError, "the client assertion signature does not verify"),
    (jwt.InvalidAlgorithmError, "the client assertion algorithm is not allowed"),
    (jwt.InvalidKeyError, "the registered key cannot verify the client assertion"),
)
# pyjwt raises these besides its own errors on some malformed input.
_FOREIGN: Final = (jwt.PyJWTError, ValueError, TypeError, RecursionError)


def parse_scope(scope: str | None) -> tuple[str, ...]:
    """The scope names of a ``scope`` parameter, deduplicated in order; ``invalid_scope``."""
    # RFC 6749 §3.3: scope-tokens of %x21 / %x23-5B / %x5D-7E, delimited by single spaces.
    names = tuple(name for name in dict.fromkeys((scope or "").split(" ")) if name)
    for name in names:
        if any(not 0x21 <= ord(c) <= 0x7E or c in '"\\' for c in name):
            raise InvalidScopeError("the scope parameter is malformed")
    return names


class HubClient(ClientMixin):  # type: ignore[misc]
    """A registered :class:`OAuthClient` as authlib sees it."""

    def __init__(self, record: OAuthClient) -> None:
        self.record = record

    @property
    def client_id(self) -> str:
        return self.record.client_id

    @property
    def enabled(self) -> bool:
        return self.record.disabled_at is None

    def get_client_id(self) -> str:
        return self.record.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # the authorization endpoint requires redirect_uri

    def get_allowed_scope(self, scope: str) -> str:
        allowed = set(self.record.scopes)
        return " ".join(name for name in parse_scope(scope) if name in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact string comparison (RFC 9700 §4.1.3): no normalisation, no prefix match.
        return redirect_uri in self.record.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        stored = self.record.secret_hash
        return stored is not None and secret_matches(client_secret, stored)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return self.enabled and method == self.record.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and self.check_grant_type("authorization_code")

    def check_grant_type(self, grant_type: str) -> bool:
        return self.enabled and grant_type in self.record.grant_types


def _basic_credentials(authorization: str) -> tuple[str, str] | None:
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClientError(
            status_code=401, description="malformed Basic credentials"
        ) from None
    client_id, colon, secret = decoded.partition(":")
    if not colon or not client_id or not secret:
        raise InvalidClientError(status_code=401, description="malformed Basic credentials")
    # RFC 6749 §2.3.1: both halves are form-urlencoded before they are joined.
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


def client_secret_basic(query_client: Callable[[str], HubClient | None], request: Any) -> Any:
    """authlib method ``client_secret_basic``: the client, or ``None`` without Basic credentials."""
    authorization = request.headers.get("Authorization")
    credentials = _basic_credentials(authorization) if authorization else None
    if credentials is None:
        return None  # another method may apply
    client_id, secret = credentials
    client = query_client(client_id)
    # One answer for an unknown client and a wrong secret: nothing to learn by probing ids.
    if client is None or not client.check_client_secret(secret):
        raise InvalidClientError(status_code=401, description="client authentication failed")
    if not client.check_endpoint_auth_method("client_secret_basic", "token"):
        raise InvalidClientError(status_code=401, description="the client is disabled")
    return client


def _registered_key(jwks: Mapping[str, Any] | None, kid: object, alg: str) -> jwt.PyJWK:
    """The client's registered public key that may verify an ``alg`` assertion naming ``kid``."""
    kty, crv = _KEY_TYPES[alg]
    keys = jwks.get("keys") if jwks is not None else None
    candidates = [
        key
        for key in (keys if isinstance(keys, list) else [])
        if isinstance(key, dict)
        and key.get("kty") == kty
        and (crv is None or key.get("crv") == crv)
        and key.get("alg", alg) == alg
        and key.get("use", "sig") == "sig"
        and (kid is None or key.get("kid") == kid)
    ]
    if not candidates:
        raise InvalidClientError(description="no registered key matches the assertion kid and alg")
    if len(candidates) > 1:
        raise InvalidClientError(description="several registered keys match: name one with kid")
    try:
        return jwt.PyJWK(candidates[0], algorithm=alg)
    except _FOREIGN:
        raise InvalidClientError(description="the registered key cannot be used") from None


class PrivateKeyJWT(JWTBearerClientAssertion):  # type: ignore[misc]
    """authlib method ``private_key_jwt``: its RFC 7523 flow, checked with pyjwt by our rules.

    authlib reads the unverified ``sub`` to find the client; from there on this class decides.
    joserfc (authlib's JOSE library) is not used to verify: it warns on every ``EdDSA`` use.
    """

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, *, audiences: Sequence[str], use_once: UseOnce) -> None:
        super().__init__(validate_jti=True, leeway=ASSERTION_LEEWAY_SECONDS)
        self._audiences = list(audiences)
        self._use_once = use_once

    def get_audiences(self) -> list[str]:
        return list(self._audiences)

    def resolve_client_public_key(self, client: HubClient) -> HubClient:
        # Refuse before the assertion is checked, so a refused client never spends a jti.
        if not client.check_endpoint_auth_method(self.CLIENT_AUTH_METHOD, "token"):
            raise InvalidClientError(description="client authentication failed")
        return client  # process_assertion_claims picks the key the assertion names

    def process_assertion_claims(self, assertion: str, resolve_key: HubClient) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(assertion)
        except _FOREIGN:
            raise InvalidClientError(description="the client assertion is malformed") from None
        alg = header.get("alg")
        if alg not in ASSERTION_ALGORITHMS:
            raise InvalidClientError(
                description="the client assertion must be signed with RS256, ES256 or EdDSA"
            )
        key = _registered_key(resolve_key.record.jwks, header.get("kid"), alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion,
                key,
                algorithms=[alg],
                audience=self._audiences,
                leeway=self.leeway,
                options={
                    "require": ["iss", "sub", "aud", "exp", "jti"],
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidClientError(
                description=f"the client assertion lacks the {exc.claim} claim"
            ) from None
        except _FOREIGN as exc:
            description = next(
                (text for kind, text in _ASSERTION_ERRORS if isinstance(exc, kind)),
                "the client assertion is invalid",
            )
            raise InvalidClientError(description=description) from None
        self.verify_claims(claims)
        return claims

    def verify_claims(self, claims: dict[str, Any]) -> None:
        # pyjwt has checked the signature, aud, exp, and that every required claim is present.
        if claims["iss"] != claims["sub"]:
            raise InvalidClientError(description="the client assertion iss and sub must match")
        if claims["exp"] > time.time() + MAX_ASSERTION_SECONDS + self.leeway:
            raise InvalidClientError(
                description=f"the client assertion may expire at most {MAX_ASSERTION_SECONDS}"
                " seconds ahead"
            )
        jti = claims["jti"]
        if not isinstance(jti, str) or not 0 < len(jti) <= JTI_LENGTH or not jti.isprintable():
            raise InvalidClientError(
                description=f"the client assertion jti must be 1 to {JTI_LENGTH} characters"
            )
        if not self.validate_jti(claims, jti):
            raise InvalidClientError(description="the client assertion was already used")

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        # Remembered as long as this assertion could be accepted: exp plus the leeway.
        until = datetime.fromtimestamp(claims["exp"] + self.leeway, UTC)
        return self._use_once(jti, claims["sub"], until)
