"""Access tokens: JWTs the hub signs with its active ``access`` key, and reads back.

An access token is an RS256 JWT whose header names the signing key (``kid``) and whose claims
are ``iss``, ``sub``, ``aud``, ``iat``, ``nbf``, ``exp``, ``jti``, ``scope`` (space separated),
``client_id`` and ``kind``; a token a person's sign-in produced (``kind`` ``person``) adds ``acr``,
``auth_time`` and ``sid``, and the person's staff roles, memberships and delegations; a vendor's
token acting for an establishment adds ``establishment``, ``delegation`` and
``delegated_scopes`` (:mod:`hub.auth.affiliations`). Nothing is stored when a token is minted:
it carries everything a verifier needs, and revocation is recorded by ``jti``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import jwt

from hub.auth.affiliations import NO_AFFILIATIONS, Affiliations
from hub.errors import InvalidToken
from hub.identity.keys import KeyRing
from hub.settings import Settings

__all__ = ["ACCESS_TOKEN_ALGORITHM", "AccessClaims", "IssuedToken", "TokenIssuer"]

#: How access tokens are signed; verification accepts nothing else.
ACCESS_TOKEN_ALGORITHM: Final = "RS256"  # noqa: S105 - an algorithm name
# Replicas' clocks differ a little: a token minted by one is not "from the future" to another.
_LEEWAY_SECONDS: Final = 5
# Far above any token the hub mints; bounds the work spent on input an attacker controls.
_MAX_TOKEN_LENGTH: Final = 8192
_REQUIRED: Final = ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"]
# pyjwt raises these besides its own errors on some malformed input.
_FOREIGN: Final = (jwt.PyJWTError, ValueError, TypeError, RecursionError)


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessClaims:
    """The claims of an access token the hub issued."""

    iss: str
    sub: str
    aud: str
    iat: int
    nbf: int
    exp: int
    jti: str
    scopes: tuple[str, ...]
    client_id: str
    kind: str
    #: How strongly the person signed in, when and in which login session (person tokens only).
    acr: str | None = None
    auth_time: int | None = None
    sid: str | None = None
    #: Establishment, delegation, staff roles, memberships, delegated scopes.
    affiliations: Affiliations = NO_AFFILIATIONS

    @property
    def scope(self) -> str:
        """The scopes as the space-separated string of the ``scope`` claim."""
        return " ".join(self.scopes)

    def as_claims(self) -> dict[str, Any]:
        """The JWT claims set."""
        claims: dict[str, Any] = {
            "iss": self.iss,
            "sub": self.sub,
            "aud": self.aud,
            "iat": self.iat,
            "nbf": self.nbf,
            "exp": self.exp,
            "jti": self.jti,
            "scope": self.scope,
            "client_id": self.client_id,
            "kind": self.kind,
        }
        optional = {"acr": self.acr, "auth_time": self.auth_time, "sid": self.sid}
        claims.update({name: value for name, value in optional.items() if value is not None})
        claims.update(self.affiliations.claims())
        return claims


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuedToken:
    """A freshly minted access token and what it says."""

    # A bearer credential: kept out of reprs, logs and tracebacks.
    token: str = field(repr=False)
    claims: AccessClaims

    @property
    def expires_in(self) -> int:
        """Lifetime in seconds, for the token response."""
        return self.claims.exp - self.claims.iat


def _str_claim(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidToken(f"claim {name} must be a non-empty string")
    return value


def _optional_str(payload: dict[str, Any], name: str) -> str | None:
    return None if name not in payload else _str_claim(payload, name)


def _int_claim(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidToken(f"claim {name} must be an integer")
    return value


class TokenIssuer:
    """Mints access tokens with the key ring's active ``access`` key, and verifies them."""

    def __init__(
        self, keyring: KeyRing, settings: Settings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._keyring = keyring
        self._settings = settings
        self._clock = clock

    @property
    def keyring(self) -> KeyRing:
        """The key ring tokens are signed and verified with."""
        return self._keyring

    def issue(
        self,
        *,
        subject: str,
        client_id: str,
        scopes: Sequence[str],
        kind: str = "client",
        acr: str | None = None,
        auth_time: int | None = None,
        sid: str | None = None,
        affiliations: Affiliations = NO_AFFILIATIONS,
    ) -> IssuedToken:
        """Sign an access token for ``subject``, valid ``settings.access_token_seconds``."""
        kid, private_key, alg = self._keyring.signing_key("access")
        now = int(self._clock())
        claims = AccessClaims(
            iss=self._settings.issuer,
            sub=subject,
            aud=self._settings.audience,
            iat=now,
            nbf=now,
            exp=now + self._settings.access_token_seconds,
            jti=uuid.uuid4().hex,
            scopes=tuple(dict.fromkeys(scopes)),
            client_id=client_id,
            kind=kind,
            acr=acr,
            auth_time=auth_time,
            sid=sid,
            affiliations=affiliations,
        )
        token = jwt.encode(claims.as_claims(), private_key, algorithm=alg, headers={"kid": kid})
        return IssuedToken(token=token, claims=claims)

    def verify(self, token: str) -> AccessClaims:
        """The claims of an unexpired access token of this hub; :class:`InvalidToken` otherwise."""
        if len(token) > _MAX_TOKEN_LENGTH:
            raise InvalidToken("token too long")
        try:
            header = jwt.get_unverified_header(token)
        except _FOREIGN as exc:
            raise InvalidToken("malformed token") from exc
        kid = header.get("kid")
        if not isinstance(kid, str) or header.get("alg") != ACCESS_TOKEN_ALGORITHM:
            raise InvalidToken("not an access token of this hub")
        # Only an access key verifies an access token: an internal token is not one.
        if not any(key.kid == kid and key.use == "access" for key in self._keyring.keys):
            raise InvalidToken("unknown signing key")
        public_key = self._keyring.public_key(kid)
        if public_key is None:
            raise InvalidToken("unknown signing key")
        try:
            payload = jwt.decode(
                token,
                public_key,
                algorithms=[ACCESS_TOKEN_ALGORITHM],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=_LEEWAY_SECONDS,
                options={"require": _REQUIRED},
            )
        except _FOREIGN as exc:
            raise InvalidToken("invalid token") from exc
        claims = self._claims(payload)
        # The leeway is for clock skew on nbf/iat; an expired token is expired.
        if claims.exp <= self._clock():
            raise InvalidToken("token expired")
        return claims

    @staticmethod
    def _claims(payload: dict[str, Any]) -> AccessClaims:
        scope = payload.get("scope", "")
        if not isinstance(scope, str):
            raise InvalidToken("claim scope must be a string")
        affiliations = Affiliations.from_claims(payload)  # InvalidToken when malformed
        return AccessClaims(
            iss=_str_claim(payload, "iss"),
            sub=_str_claim(payload, "sub"),
            aud=_str_claim(payload, "aud"),
            iat=_int_claim(payload, "iat"),
            nbf=_int_claim(payload, "nbf"),
            exp=_int_claim(payload, "exp"),
            jti=_str_claim(payload, "jti"),
            scopes=tuple(scope.split()),
            client_id=_str_claim(payload, "client_id"),
            kind=_str_claim(payload, "kind"),
            acr=_optional_str(payload, "acr"),
            auth_time=None if "auth_time" not in payload else _int_claim(payload, "auth_time"),
            sid=_optional_str(payload, "sid"),
            affiliations=affiliations,
        )
