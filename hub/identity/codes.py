"""Authorization codes: single-use, short-lived, kept in the ephemeral store by SHA-256 only.

``GET /oauth2/authorize`` issues a code once the person has signed in and consented; the token
endpoint redeems it. Redeeming takes the code in one atomic step, so two racing requests cannot
both get it, and leaves a *spent* marker behind. When the same code comes back, the marker
names the refresh-token family and the access token issued from it, and the caller revokes
them (RFC 6749 §4.1.2: a replayed code means someone else holds it).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Final

from hub.backends.ephemeral.base import EphemeralStore

__all__ = [
    "SPENT_CODE_SECONDS",
    "AuthorizationCode",
    "AuthorizationCodes",
    "SpentCode",
]

#: How long a redeemed code is remembered, to detect it being replayed.
SPENT_CODE_SECONDS: Final = 3600
_CODE_PREFIX: Final = "code:"
_SPENT_PREFIX: Final = "code-spent:"
# A code is 43 URL-safe characters; anything much longer is not one of ours.
_MAX_CODE_LENGTH: Final = 128


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizationCode:
    """What a code stands for: the request it answers and the sign-in behind it."""

    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    nonce: str | None
    code_challenge: str
    code_challenge_method: str
    person_id: str
    sid: str
    acr: str
    amr: tuple[str, ...]
    auth_time: int
    #: SHA-256 of the code, set once it is redeemed (to record what was issued from it).
    digest: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scopes": list(self.scopes),
            "nonce": self.nonce,
            "code_challenge": self.code_challenge,
            "code_challenge_method": self.code_challenge_method,
            "person_id": self.person_id,
            "sid": self.sid,
            "acr": self.acr,
            "amr": list(self.amr),
            "auth_time": self.auth_time,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], digest: str) -> AuthorizationCode:
        nonce = data.get("nonce")
        return cls(
            client_id=str(data["client_id"]),
            redirect_uri=str(data["redirect_uri"]),
            scopes=tuple(str(s) for s in data["scopes"]),
            nonce=None if nonce is None else str(nonce),
            code_challenge=str(data["code_challenge"]),
            code_challenge_method=str(data["code_challenge_method"]),
            person_id=str(data["person_id"]),
            sid=str(data["sid"]),
            acr=str(data["acr"]),
            amr=tuple(str(v) for v in data.get("amr", ())),
            auth_time=int(data["auth_time"]),
            digest=digest,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SpentCode:
    """A code redeemed before, and what was issued from it."""

    client_id: str
    family_id: str | None
    access_jti: str | None
    access_exp: int | None


class AuthorizationCodes:
    """Issue and redeem authorization codes."""

    def __init__(self, store: EphemeralStore, *, lifetime: float) -> None:
        self._store = store
        self.lifetime = lifetime

    @property
    def store(self) -> EphemeralStore:
        """Where the codes are kept."""
        return self._store

    async def issue(self, code: AuthorizationCode) -> str:
        """Store ``code`` for :attr:`lifetime` seconds; the raw code (256 random bits)."""
        raw = secrets.token_urlsafe(32)
        await self._store.put(_CODE_PREFIX + _digest(raw), code.to_json(), self.lifetime)
        return raw

    async def redeem(self, raw: str) -> AuthorizationCode | None:
        """Use up a code: only one caller gets it; ``None`` if unknown, spent or expired."""
        if not raw or len(raw) > _MAX_CODE_LENGTH:
            return None
        digest = _digest(raw)
        data = await self._store.take(_CODE_PREFIX + digest)
        if data is None:
            return None
        try:
            code = AuthorizationCode.from_json(data, digest)
        except (KeyError, TypeError, ValueError):
            return None
        await self._store.put(
            _SPENT_PREFIX + digest, {"client_id": code.client_id}, SPENT_CODE_SECONDS
        )
        return code

    async def spent(self, raw: str) -> SpentCode | None:
        """The record of a code redeemed within :data:`SPENT_CODE_SECONDS`, if it was."""
        if not raw or len(raw) > _MAX_CODE_LENGTH:
            return None
        data = await self._store.get(_SPENT_PREFIX + _digest(raw))
        if data is None:
            return None
        family_id, jti, exp = data.get("family_id"), data.get("access_jti"), data.get("access_exp")
        return SpentCode(
            client_id=str(data.get("client_id")),
            family_id=family_id if isinstance(family_id, str) else None,
            access_jti=jti if isinstance(jti, str) else None,
            access_exp=exp if isinstance(exp, int) else None,
        )

    async def record_issued(
        self,
        code: AuthorizationCode,
        *,
        family_id: str | None,
        access_jti: str,
        access_exp: int,
    ) -> None:
        """Remember what a redeemed code produced, to revoke it if the code is replayed."""
        value = {
            "client_id": code.client_id,
            "family_id": family_id,
            "access_jti": access_jti,
            "access_exp": access_exp,
        }
        await self._store.put(_SPENT_PREFIX + code.digest, value, SPENT_CODE_SECONDS)
