"""ID tokens (OpenID Connect Core §2): who signed in, for one relying party, signed by the hub.

An ID token is an RS256 JWT signed with the hub's active ``access`` key (its ``kid`` in the
header, published at ``/.well-known/jwks.json``). It is addressed to the client (``aud`` is the
client id, never the hub's API audience), so the gateway and the userinfo endpoint, which want
``aud`` to be the hub, refuse it as an access token. It lives :data:`ID_TOKEN_SECONDS`: a relying
party reads it once, at sign-in.

Besides the sign-in (``auth_time``, ``acr``, ``amr``, ``sid``, ``nonce``, ``at_hash``), it
carries the person's claims the granted scopes allow (:data:`SCOPE_CLAIMS`); the userinfo
endpoint answers with the same claims.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import jwt

from hub.db.person_store import Person
from hub.identity.keys import KeyRing
from hub.identity.tokens import ACCESS_TOKEN_ALGORITHM
from hub.settings import Settings

__all__ = [
    "CLAIMS_SUPPORTED",
    "ID_TOKEN_SECONDS",
    "OIDC_SCOPES",
    "SCOPE_CLAIMS",
    "IdTokenHint",
    "IdTokens",
    "at_hash",
    "person_claims",
]

#: Lifetime of an ID token.
ID_TOKEN_SECONDS: Final = 300
#: The person claims each scope releases.
SCOPE_CLAIMS: Final[dict[str, tuple[str, ...]]] = {
    "profile": ("given_name", "family_name", "name"),
    "email": ("email",),
    "phone": ("phone_number",),
    "national_id": ("national_id", "person_kind"),
}
#: The OpenID Connect scopes every client with the authorization code grant may ask for.
OIDC_SCOPES: Final = ("openid", *SCOPE_CLAIMS)
#: Every claim an ID token or the userinfo endpoint may carry, for the discovery document.
CLAIMS_SUPPORTED: Final = (
    "iss",
    "sub",
    "aud",
    "azp",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "sid",
    "at_hash",
    *(claim for claims in SCOPE_CLAIMS.values() for claim in claims),
)
# Replicas' clocks differ a little.
_LEEWAY_SECONDS: Final = 5
_MAX_TOKEN_LENGTH: Final = 8192
# pyjwt raises these besides its own errors on some malformed input.
_FOREIGN: Final = (jwt.PyJWTError, ValueError, TypeError, RecursionError)


def at_hash(access_token: str) -> str:
    """``at_hash`` for an RS256 ID token: the left half of SHA-256 of the token, base64url."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def person_claims(person: Person, scopes: Iterable[str]) -> dict[str, Any]:
    """The claims about ``person`` the ``scopes`` release (``sub`` not included)."""
    granted = set(scopes)
    values: dict[str, Any] = {
        "given_name": person.given_name,
        "family_name": person.family_name,
        "name": f"{person.given_name} {person.family_name}",
        "email": person.email,
        "phone_number": person.phone,
        "national_id": person.identifier,
        "person_kind": person.kind,
    }
    claims: dict[str, Any] = {}
    for scope, names in SCOPE_CLAIMS.items():
        if scope in granted:
            claims.update({name: values[name] for name in names if values[name] is not None})
    return claims


@dataclass(frozen=True, slots=True, kw_only=True)
class IdTokenHint:
    """What an ``id_token_hint`` says, once its signature and issuer are checked."""

    sub: str
    client_id: str
    sid: str | None


class IdTokens:
    """Mints ID tokens with the key ring's active ``access`` key, and reads them back as hints."""

    def __init__(
        self,
        keyring: KeyRing,
        settings: Settings,
        *,
        lifetime: int = ID_TOKEN_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keyring = keyring
        self._settings = settings
        self._lifetime = lifetime
        self._clock = clock

    def mint(
        self,
        *,
        client_id: str,
        person: Person,
        scopes: Iterable[str],
        auth_time: int,
        acr: str,
        amr: Iterable[str],
        sid: str | None,
        nonce: str | None = None,
        access_token: str | None = None,
    ) -> str:
        """A signed ID token for ``person``, addressed to ``client_id``."""
        kid, private_key, alg = self._keyring.signing_key("access")
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self._settings.issuer,
            "sub": person.id,
            "aud": client_id,
            "azp": client_id,
            "iat": now,
            "exp": now + self._lifetime,
            "auth_time": auth_time,
            "acr": acr,
            "amr": list(amr),
        }
        if sid is not None:
            claims["sid"] = sid
        if nonce is not None:
            claims["nonce"] = nonce
        if access_token is not None:
            claims["at_hash"] = at_hash(access_token)
        claims.update(person_claims(person, scopes))
        return jwt.encode(claims, private_key, algorithm=alg, headers={"kid": kid, "typ": "JWT"})

    def read_hint(self, token: str) -> IdTokenHint | None:
        """An ID token this hub signed (expired or not), as a logout hint; ``None`` otherwise.

        RP-initiated logout accepts an expired ID token: a relying party keeps the one it got
        at sign-in. The signature and issuer must hold, and the audience must be a client.
        """
        if len(token) > _MAX_TOKEN_LENGTH:
            return None
        try:
            header = jwt.get_unverified_header(token)
        except _FOREIGN:
            return None
        kid = header.get("kid")
        if not isinstance(kid, str) or header.get("alg") != ACCESS_TOKEN_ALGORITHM:
            return None
        if not any(key.kid == kid and key.use == "access" for key in self._keyring.keys):
            return None
        public_key = self._keyring.public_key(kid)
        if public_key is None:
            return None
        try:
            payload = jwt.decode(
                token,
                public_key,
                algorithms=[ACCESS_TOKEN_ALGORITHM],
                issuer=self._settings.issuer,
                leeway=_LEEWAY_SECONDS,
                options={"verify_exp": False, "verify_aud": False, "require": ["sub", "aud"]},
            )
        except _FOREIGN:
            return None
        sub, aud, sid = payload.get("sub"), payload.get("aud"), payload.get("sid")
        # An access token (aud: the hub's API, kind: its own claim) is no ID token.
        if "kind" in payload or not isinstance(sub, str) or not isinstance(aud, str):
            return None
        if aud == self._settings.audience:
            return None
        return IdTokenHint(sub=sub, client_id=aud, sid=sid if isinstance(sid, str) else None)
