"""The principal as upstream services see it: a short-lived EdDSA token signed by the hub.

The gateway strips every ``x-hub-*`` header a client sent, then adds ``X-Hub-Principal-Token``;
services verify it against the hub's JWKS and trust nothing else about the caller. The token is
explicitly typed (``typ``) and signed with the hub's ``internal`` key and algorithm, so it can
never pass as an access token at the gateway, nor an access token as an internal one.

Besides who called (``sub``, ``kind``, ``client_id``, ``scope``, ``acr``), it says for which
establishments: ``establishment`` and ``delegation`` (a client acting for an establishment),
``roles``, ``memberships``, ``delegated_scopes`` and ``delegations``
(:mod:`hub.auth.affiliations`), so a service can check that the establishment in a request
is one the caller may act for.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

import jwt

from hub.auth.affiliations import Affiliations
from hub.auth.principal import Kind, Principal, claim_scopes, claim_str, invalid_token
from hub.auth.verify import peek, translate_jwt_error

__all__ = [
    "INTERNAL_TYP",
    "InternalTokenSigner",
    "InternalTokenVerifier",
]

INTERNAL_TYP: Final = "hub-principal+jwt"
_ALGORITHM: Final = "EdDSA"
_KINDS: Final[dict[str, Kind]] = {
    "client": "client",
    "person": "person",
    "api_key": "api_key",
    "anonymous": "anonymous",
}


class InternalTokenSigner:
    """Mints internal tokens, reusing one per (principal, audience) for half its lifetime."""

    def __init__(
        self,
        signing_key: Callable[[], tuple[str, Any]],
        *,
        issuer: str,
        lifetime: int = 60,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lifetime < 2:
            raise ValueError("lifetime must be at least 2 seconds")
        self._signing_key = signing_key
        self._issuer = issuer
        self._lifetime = int(lifetime)
        self._max_entries = max_entries
        self._clock = clock
        # (principal, audience) -> (token, time after which a fresh one is minted)
        self._cache: OrderedDict[tuple[Principal, str], tuple[str, float]] = OrderedDict()

    def mint(self, principal: Principal, audience: str) -> str:
        """An internal token carrying ``principal`` for the upstream ``audience``."""
        now = self._clock()
        entry = (principal, audience)
        hit = self._cache.get(entry)
        if hit is not None and now < hit[1]:
            return hit[0]
        token = self._sign(principal, audience, now)
        if self._max_entries:
            if hit is not None:
                del self._cache[entry]
            elif len(self._cache) >= self._max_entries:
                self._cache.popitem(last=False)
            self._cache[entry] = (token, now + self._lifetime / 2)
        return token

    def _sign(self, principal: Principal, audience: str, now: float) -> str:
        kid, key = self._signing_key()
        issued = int(now)
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "aud": audience,
            "sub": principal.subject,
            "kind": principal.kind,
            "scope": " ".join(sorted(principal.scopes)),
            "iat": issued,
            "exp": issued + self._lifetime,
            "jti": uuid.uuid4().hex,
            # who authenticated the subject: a subject is unique only within its issuer
            "idp": principal.issuer,
        }
        for name, value in (("client_id", principal.client_id), ("acr", principal.acr)):
            if value is not None:
                claims[name] = value
        claims.update(
            Affiliations(
                establishment=principal.establishment,
                delegation=principal.delegation,
                roles=principal.roles,
                memberships=principal.memberships,
                delegated_scopes=principal.delegated_scopes,
                delegations=principal.delegations,
                registrations=principal.registrations,
                national_id=principal.national_id,
            ).claims()
        )
        return jwt.encode(
            claims, key, algorithm=_ALGORITHM, headers={"kid": kid, "typ": INTERNAL_TYP}
        )


class InternalTokenVerifier:
    """What an upstream service uses to read the caller from ``X-Hub-Principal-Token``."""

    def __init__(
        self,
        keys: Callable[[str], Any | None],
        *,
        issuer: str,
        audience: str,
        leeway: float = 5,
        cache_size: int = 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._cache_size = cache_size
        self._clock = clock
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._jwt = jwt.PyJWT()

    def verify(self, token: str) -> Principal:
        """The principal the hub vouches for in ``token``; raises InvalidToken otherwise."""
        hit = self._cache.get(token)
        if hit is not None:
            if self._clock() < hit[1]:
                return hit[0]
            del self._cache[token]
        principal, until = self._verify(token)
        if self._cache_size:
            if len(self._cache) >= self._cache_size:
                self._cache.popitem(last=False)
            self._cache[token] = (principal, until)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        header, _ = peek(token)
        if header.get("typ") != INTERNAL_TYP:
            raise invalid_token("not an internal token")
        if header.get("alg") != _ALGORITHM:
            raise invalid_token("algorithm not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise invalid_token("missing key id")
        key = self._keys(kid)
        if key is None:
            raise invalid_token("unknown key")
        try:
            claims = self._jwt.decode(
                token,
                key,
                algorithms=[_ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
        except jwt.PyJWTError as exc:
            raise translate_jwt_error(exc) from exc
        except (ValueError, TypeError) as exc:  # the key the service holds is of the wrong type
            raise invalid_token("unusable key") from exc
        exp = claims["exp"]
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise invalid_token("malformed claim: exp")
        claimed = claims.get("kind")
        kind = _KINDS.get(claimed) if isinstance(claimed, str) else None
        if kind is None:
            raise invalid_token("malformed claim: kind")
        principal = Principal(
            subject=claims["sub"],
            kind=kind,
            issuer=claim_str(claims, "idp") or self._issuer,
            client_id=claim_str(claims, "client_id"),
            scopes=claim_scopes(claims),
            acr=claim_str(claims, "acr"),
            token_id=claim_str(claims, "jti"),
            expires_at=float(exp),
            **Affiliations.from_claims(claims).principal_fields(),
        )
        return principal, float(exp) + self._leeway
