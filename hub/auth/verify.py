"""Strict verification of bearer JWTs at the gateway, with a cache of verified tokens.

The unverified payload is read only to find which configured issuer the token claims, and so
which keys and which algorithm allowlist apply; pyjwt then checks the signature and every claim
against that issuer's configuration. Verified tokens are cached by their exact string until
they expire (revocation is re-checked on every hit), so a repeat caller costs a dict lookup
instead of an RSA verification. A token resting on a delegation (a vendor acting for an
establishment, an HR officer's) is refused as soon as that delegation is known to be revoked.
"""

from __future__ import annotations

import base64
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import jwt

from hub.auth.affiliations import NO_AFFILIATIONS, Affiliations
from hub.auth.jwks import JwksCache
from hub.auth.principal import Kind, Principal, claim_scopes, claim_str, invalid_token
from hub.errors import InvalidToken
from hub.identity.acr import ACR_LEVELS

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "IssuerConfig",
    "LocalKeys",
    "TokenVerifier",
    "peek",
    "translate_jwt_error",
]

# Keys come from JWKS documents, which are public: a symmetric algorithm would verify with
# public material (the HS256-with-the-RSA-key confusion), so none is ever accepted.
ASYMMETRIC_ALGORITHMS: Final = frozenset(
    {
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
        "EdDSA",
    }
)
# Far above any real access token; bounds the work spent on a header an attacker controls.
MAX_TOKEN_LENGTH: Final = 16_384
_REQUIRED: Final = ["exp", "iat", "iss", "aud", "sub"]

# Most specific first: InvalidSignatureError is a DecodeError, Expired/Immature are InvalidToken.
_DESCRIPTIONS: Final[tuple[tuple[type[Exception], str], ...]] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "invalid audience"),
    (jwt.InvalidIssuerError, "invalid issuer"),
    (jwt.InvalidSignatureError, "invalid signature"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.InvalidKeyError, "unusable key"),
    (jwt.DecodeError, "malformed token"),
)


def translate_jwt_error(exc: Exception) -> InvalidToken:
    """The InvalidToken for a pyjwt (or decoding) failure; its text never quotes the token."""
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return invalid_token(f"missing claim: {exc.claim}")
    for error_type, description in _DESCRIPTIONS:
        if isinstance(exc, error_type):
            return invalid_token(description)
    if isinstance(exc, jwt.PyJWTError):
        return invalid_token("invalid token")
    return invalid_token("malformed token")


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload of a compact JWS, unverified: only to choose the issuer and the key.

    Cheaper than pyjwt's own parse (which checks every character in Python), and the signature
    is not decoded at all; pyjwt parses the token strictly when it verifies it afterwards.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise invalid_token("malformed token")
    header_segment, dot, rest = token.partition(".")
    payload_segment, dot2, _ = rest.partition(".")
    if not dot or not dot2:
        raise invalid_token("malformed token")
    try:
        header = json.loads(_b64decode(header_segment))
        payload = json.loads(_b64decode(payload_segment))
    except (ValueError, RecursionError) as exc:  # binascii.Error and UnicodeError are ValueErrors
        raise invalid_token("malformed token") from exc
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise invalid_token("malformed token")
    return header, payload


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuerConfig:
    """A trusted token issuer: who it is, whom its tokens must name, and how they may be signed."""

    issuer: str
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...]
    jwks_uri: str | None = None
    leeway: float = 30.0

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ValueError("an issuer needs a name")
        if not self.audiences:
            raise ValueError(f"issuer {self.issuer!r} needs at least one audience")
        if not self.algorithms:
            raise ValueError(f"issuer {self.issuer!r} needs at least one algorithm")
        refused = [alg for alg in self.algorithms if alg not in ASYMMETRIC_ALGORITHMS]
        if refused:
            raise ValueError(
                f"issuer {self.issuer!r}: algorithms {refused} are not allowed "
                f"(only {sorted(ASYMMETRIC_ALGORITHMS)})"
            )
        if not 0 <= self.leeway <= 300:
            raise ValueError(f"issuer {self.issuer!r}: leeway must be within 0..300 seconds")


class LocalKeys(Protocol):
    """The hub's own verification keys by ``kid`` (its KeyRing satisfies this)."""

    def public_key(self, kid: str) -> Any | None: ...


class TokenVerifier:
    """Turns a bearer JWT from a configured issuer into a Principal, or raises InvalidToken."""

    def __init__(
        self,
        issuers: Sequence[IssuerConfig],
        *,
        local_issuer: str,
        local_keys: LocalKeys,
        jwks: JwksCache | None,
        is_revoked: Callable[[str], bool] = lambda jti: False,
        delegation_revoked: Callable[[str], bool] = lambda delegation_id: False,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuers = {config.issuer: config for config in issuers}
        if len(self._issuers) != len(issuers):
            raise ValueError("an issuer is configured twice")
        if local_issuer not in self._issuers:
            raise ValueError(f"the local issuer {local_issuer!r} is not among the issuers")
        for config in issuers:
            if config.issuer != local_issuer and (config.jwks_uri is None or jwks is None):
                raise ValueError(f"external issuer {config.issuer!r} needs a jwks_uri and a cache")
        if cache_size < 0:
            raise ValueError("cache_size must not be negative")
        self._local_issuer = local_issuer
        self._local_keys = local_keys
        self._jwks = jwks
        self._is_revoked = is_revoked
        self._delegation_revoked = delegation_revoked
        self._cache_size = cache_size
        self._clock = clock
        # token -> (principal, until): ``until`` is exp + leeway, when pyjwt would refuse it
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._jwt = jwt.PyJWT()

    def __len__(self) -> int:
        """How many verified tokens are cached."""
        return len(self._cache)

    async def verify(self, token: str) -> Principal:
        """The principal of ``token``; raises InvalidToken with a short reason otherwise."""
        hit = self._cache.get(token)
        if hit is not None:
            principal, until = hit
            if self._clock() < until:
                jti = principal.token_id
                if jti is not None and self._is_revoked(jti):
                    del self._cache[token]
                    raise invalid_token("token revoked")
                if principal.delegations and self._rests_on_revoked(principal):
                    del self._cache[token]
                    raise invalid_token("delegation revoked")
                self._cache.move_to_end(token)
                return principal
            del self._cache[token]
        principal, until = await self._verify(token)
        if self._cache_size:
            if len(self._cache) >= self._cache_size:
                self._cache.popitem(last=False)
            self._cache[token] = (principal, until)
        return principal

    def clear(self) -> None:
        """Forget every cached token (after a key was withdrawn, say)."""
        self._cache.clear()

    async def _verify(self, token: str) -> tuple[Principal, float]:
        header, payload = peek(token)
        issuer = payload.get("iss")
        config = self._issuers.get(issuer) if isinstance(issuer, str) else None
        if config is None:
            raise invalid_token("untrusted issuer")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in config.algorithms:
            raise invalid_token("algorithm not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise invalid_token("missing key id")
        key = await self._key(config, kid)
        try:
            claims = self._jwt.decode(
                token,
                key,
                algorithms=list(config.algorithms),
                audience=list(config.audiences),
                issuer=config.issuer,
                leeway=config.leeway,
                options={"require": _REQUIRED, "enforce_minimum_key_length": True},
            )
        except jwt.PyJWTError as exc:
            raise translate_jwt_error(exc) from exc
        except (ValueError, TypeError) as exc:
            # the token parsed once already: what is left to fail is a key of the wrong type
            raise invalid_token("unusable key") from exc
        exp = claims["exp"]
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise invalid_token("malformed claim: exp")
        principal = self._principal(claims, config, float(exp))
        if principal.token_id is not None and self._is_revoked(principal.token_id):
            raise invalid_token("token revoked")
        if principal.delegations and self._rests_on_revoked(principal):
            raise invalid_token("delegation revoked")
        return principal, float(exp) + config.leeway

    def _rests_on_revoked(self, principal: Principal) -> bool:
        return any(self._delegation_revoked(d) for d in principal.delegations)

    async def _key(self, config: IssuerConfig, kid: str) -> Any:
        if config.issuer == self._local_issuer:
            key = self._local_keys.public_key(kid)
            if key is None:
                raise invalid_token("unknown key")
            return key
        if self._jwks is None:  # ruled out in __init__
            raise invalid_token("unknown key")
        return await self._jwks.key(config, kid)

    def _principal(self, claims: dict[str, Any], config: IssuerConfig, exp: float) -> Principal:
        subject = claim_str(claims, "sub")
        if not subject:
            raise invalid_token("missing claim: sub")
        client_id = claim_str(claims, "client_id") or claim_str(claims, "azp")
        kind: Kind
        affiliations = NO_AFFILIATIONS
        if config.issuer == self._local_issuer:
            claimed = claim_str(claims, "kind")
            if claimed == "client":
                kind = "client"
            elif claimed == "person":
                kind = "person"
            else:
                raise invalid_token("malformed claim: kind")
            affiliations = Affiliations.from_claims(claims)
            acr = claim_str(claims, "acr")
        else:
            # kind, roles, establishments and delegations are the hub's own claims: an external
            # issuer's word on them is not taken (the hub's records are the authority)
            kind = "client" if subject == client_id else "person"
            # Nor on the hub's own assurance levels: another issuer cannot vouch for a sign-in
            # at the hub, so its acr is kept only when it is not one of ours.
            acr = claim_str(claims, "acr")
            if acr is not None and acr in ACR_LEVELS:
                acr = None
        return Principal(
            subject=subject,
            kind=kind,
            issuer=config.issuer,
            client_id=client_id,
            scopes=claim_scopes(claims),
            acr=acr,
            token_id=claim_str(claims, "jti"),
            expires_at=exp,
            **affiliations.principal_fields(),
        )
