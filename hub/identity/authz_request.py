"""A pending authorization request: what a relying party asked for, kept while the person signs in.

``GET /oauth2/authorize`` checks the request, saves it here under a random id, and sends the
browser to the login or consent page with ``?rid=<id>``. Those pages send the browser back to
``/oauth2/authorize?rid=<id>`` when they are done, and the authorization endpoint carries on
from the saved request. A request lives :data:`REQUEST_SECONDS` and is used up when a code is
issued or the person refuses.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

from hub.backends.ephemeral.base import EphemeralStore

__all__ = [
    "REQUEST_SECONDS",
    "AuthorizationRequest",
    "AuthorizationRequests",
    "redirect_with",
]

#: Time a person has to sign in, pass the second factor and consent.
REQUEST_SECONDS: Final = 15 * 60
_KEY_PREFIX: Final = "authz:"
_MAX_RID_LENGTH: Final = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizationRequest:
    """A checked authorization request (the client and redirect URI are known to be valid)."""

    rid: str
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str
    code_challenge_method: str
    #: The minimum ``acr`` asked for (``acr_values``), ``None`` for any.
    acr: str | None
    #: ``prompt`` values: ``login`` forces a new sign-in, ``consent`` a new consent screen.
    prompt: tuple[str, ...]
    max_age: int | None
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "rid": self.rid,
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scopes": list(self.scopes),
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": self.code_challenge,
            "code_challenge_method": self.code_challenge_method,
            "acr": self.acr,
            "prompt": list(self.prompt),
            "max_age": self.max_age,
            "created_at": self.created_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AuthorizationRequest:
        max_age = data.get("max_age")
        return cls(
            rid=str(data["rid"]),
            client_id=str(data["client_id"]),
            redirect_uri=str(data["redirect_uri"]),
            scopes=tuple(str(s) for s in data["scopes"]),
            state=data.get("state"),
            nonce=data.get("nonce"),
            code_challenge=str(data["code_challenge"]),
            code_challenge_method=str(data["code_challenge_method"]),
            acr=data.get("acr"),
            prompt=tuple(str(p) for p in data.get("prompt", ())),
            max_age=None if max_age is None else int(max_age),
            created_at=float(data["created_at"]),
        )


def redirect_with(request: AuthorizationRequest, issuer: str, **params: str) -> str:
    """The client's redirect URI with ``params``, its ``state`` and the ``iss`` (RFC 9207)."""
    values = dict(params)
    if request.state is not None:
        values["state"] = request.state
    values["iss"] = issuer
    separator = "&" if urlsplit(request.redirect_uri).query else "?"
    return request.redirect_uri + separator + urlencode(values)


class AuthorizationRequests:
    """Pending authorization requests in the ephemeral store."""

    def __init__(self, store: EphemeralStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    def new_rid(self) -> str:
        """A fresh, unguessable request id."""
        return secrets.token_urlsafe(24)

    async def save(self, request: AuthorizationRequest) -> None:
        """Keep ``request`` for :data:`REQUEST_SECONDS` from its creation."""
        remaining = request.created_at + REQUEST_SECONDS - self._clock()
        if remaining > 0:
            await self._store.put(_KEY_PREFIX + request.rid, request.to_json(), remaining)

    async def load(self, rid: str | None) -> AuthorizationRequest | None:
        """The pending request ``rid``, ``None`` if unknown, used up or expired."""
        return await self._read(rid, self._store.get)

    async def finish(self, rid: str) -> AuthorizationRequest | None:
        """Use up the request ``rid``: only one caller gets it back."""
        return await self._read(rid, self._store.take)

    async def _read(
        self, rid: str | None, fetch: Callable[[str], Awaitable[dict[str, Any] | None]]
    ) -> AuthorizationRequest | None:
        if not rid or len(rid) > _MAX_RID_LENGTH:
            return None
        data = await fetch(_KEY_PREFIX + rid)
        if data is None:
            return None
        try:
            return AuthorizationRequest.from_json(data)
        except (KeyError, TypeError, ValueError):
            return None
