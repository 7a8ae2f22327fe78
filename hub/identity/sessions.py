"""Login sessions of people signed in to the hub's SSO, kept in the ephemeral store.

The browser holds a random 256-bit value in a cookie; the store holds the session under the
SHA-256 of that value, so a dump of the store (Redis, say) gives no usable cookie. A session
has an idle lifetime, renewed as it is used, and an absolute one it never outlives. Signing in
always makes a new session and ends the one the browser brought (session fixation), and so
does every step up in assurance (a TOTP code after the password).

Sessions are found by cookie, never by person, so "sign out everywhere" does not hunt for them:
it records a per-person cut-off (``session-cutoff:<person id>``, kept as long as a session can
live) and :meth:`SessionManager.get` refuses, and deletes, any session of that person made
before it. A sign-in after the cut-off makes a session that works.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from hub.backends.ephemeral.base import EphemeralStore

__all__ = [
    "COOKIE_NAME",
    "INSECURE_COOKIE_NAME",
    "LoginSession",
    "SessionManager",
    "cookie_name",
]

#: With ``Secure``: the ``__Host-`` prefix makes browsers refuse it from subdomains or plain http.
COOKIE_NAME: Final = "__Host-hub_session"
#: For a local http issuer (``HUB_SESSION_COOKIE_SECURE=false``), where ``__Host-`` cannot work.
INSECURE_COOKIE_NAME: Final = "hub_session"
_KEY_PREFIX: Final = "session:"
_CUTOFF_PREFIX: Final = "session-cutoff:"
# A cookie value is 43 URL-safe characters; anything much longer is not ours.
_MAX_COOKIE_LENGTH: Final = 128
# Bounds the per-process cache of recently read sessions.
_MAX_CACHED: Final = 10_000


def cookie_name(secure: bool) -> str:
    """The session cookie's name for the configured ``Secure`` setting."""
    return COOKIE_NAME if secure else INSECURE_COOKIE_NAME


def _key(raw: str) -> str:
    return _KEY_PREFIX + hashlib.sha256(raw.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginSession:
    """A signed-in person's session.

    ``sid`` is a public identifier (it goes into ID tokens and logs); it is not the cookie.
    """

    sid: str
    person_id: str
    acr: str
    amr: tuple[str, ...]
    auth_time: int
    created_at: float
    expires_at: float
    # Data kept with the session by its users (e.g. the clients signed in through it).
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "person_id": self.person_id,
            "acr": self.acr,
            "amr": list(self.amr),
            "auth_time": self.auth_time,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoginSession:
        return cls(
            sid=str(data["sid"]),
            person_id=str(data["person_id"]),
            acr=str(data["acr"]),
            amr=tuple(str(v) for v in data.get("amr", ())),
            auth_time=int(data["auth_time"]),
            created_at=float(data["created_at"]),
            expires_at=float(data["expires_at"]),
            extra=dict(data.get("extra") or {}),
        )


class SessionManager:
    """Creates, reads, rotates and ends login sessions."""

    def __init__(
        self,
        store: EphemeralStore,
        *,
        idle_seconds: float,
        max_seconds: float,
        cache_seconds: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.idle_seconds = idle_seconds
        self.max_seconds = max_seconds
        self.cache_seconds = cache_seconds
        self._clock = clock
        # key -> (trusted until, session): sessions this process read in the last
        # ``cache_seconds``. A session ended here leaves it at once; one ended on another
        # replica is refused here within ``cache_seconds``.
        self._cache: dict[str, tuple[float, LoginSession]] = {}

    async def create(
        self,
        *,
        person_id: str,
        acr: str,
        amr: Sequence[str],
        auth_time: int | None = None,
        replaces: str | None = None,
    ) -> tuple[str, LoginSession]:
        """A new session and its cookie value; the session ``replaces`` names ends first."""
        if replaces:
            await self.end(replaces)
        now = self._clock()
        session = LoginSession(
            sid=secrets.token_urlsafe(16),
            person_id=person_id,
            acr=acr,
            amr=tuple(dict.fromkeys(amr)),
            auth_time=int(now) if auth_time is None else auth_time,
            created_at=now,
            expires_at=now + self.max_seconds,
        )
        raw = secrets.token_urlsafe(32)
        await self._store.put(_key(raw), session.to_json(), self._ttl(session, now))
        return raw, session

    async def get(self, raw: str | None) -> LoginSession | None:
        """The live session for a cookie value, its idle lifetime renewed; ``None`` otherwise."""
        if not raw or len(raw) > _MAX_COOKIE_LENGTH:
            return None
        key = _key(raw)
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None:
            if cached[0] > now and cached[1].expires_at > now:
                return cached[1]
            del self._cache[key]
        # Read and renew in one step; a session past its absolute end is refused below anyway.
        data = await self._store.get_touch(key, self.idle_seconds)
        if data is None:
            return None
        try:
            session = LoginSession.from_json(data)
        except (KeyError, TypeError, ValueError):
            await self._store.delete(key)
            return None
        if session.expires_at <= now or await self._cut_off(session):
            await self._store.delete(key)
            return None
        if self.cache_seconds > 0:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.pop(next(iter(self._cache)))  # the oldest entry
            self._cache[key] = (now + self.cache_seconds, session)
        return session

    async def update(self, raw: str, session: LoginSession) -> None:
        """Store changed ``extra`` data of a live session (its identity fields stay)."""
        now = self._clock()
        self._cache.pop(_key(raw), None)
        if session.expires_at > now:
            await self._store.put(_key(raw), session.to_json(), self._ttl(session, now))

    async def end(self, raw: str) -> LoginSession | None:
        """End the session behind a cookie value (logout); the session it was, if any."""
        if not raw or len(raw) > _MAX_COOKIE_LENGTH:
            return None
        self._cache.pop(_key(raw), None)
        data = await self._store.take(_key(raw))
        if data is None:
            return None
        try:
            return LoginSession.from_json(data)
        except (KeyError, TypeError, ValueError):
            return None

    async def end_all(self, person_id: str) -> None:
        """End every session ``person_id`` has now, on every replica ("sign out everywhere").

        Sessions made afterwards (a new sign-in) are not affected.
        """
        for key in [k for k, (_, s) in self._cache.items() if s.person_id == person_id]:
            del self._cache[key]
        # A later cut-off only moves the line forward; the record outlives every session it cuts.
        await self._store.put(
            _CUTOFF_PREFIX + person_id, {"at": self._clock()}, max(1.0, self.max_seconds)
        )

    async def _cut_off(self, session: LoginSession) -> bool:
        """Whether the session was made before its person was signed out everywhere."""
        # The one extra read per session lookup; cheaper than indexing sessions by person.
        cutoff = await self._store.get(_CUTOFF_PREFIX + session.person_id)
        if cutoff is None:
            return False
        try:
            at = float(cutoff["at"])
        except (KeyError, TypeError, ValueError):
            return True  # unreadable: refusing is the safe reading
        return session.created_at < at

    def _ttl(self, session: LoginSession, now: float) -> float:
        return max(1.0, min(self.idle_seconds, session.expires_at - now))
