"""What an operator does to a person's account: set a password, reset MFA, unlock, sign out.

The admin API and the CLI both act through :class:`AccountAdmin`. Every change that takes a
credential away or replaces it (disable, a new password, a reset second factor) also signs the
person out everywhere: their login sessions end (:meth:`SessionManager.end_all`, a cut-off
every replica sees) and their refresh tokens are revoked. Access tokens already issued live out
their few minutes. A password passes :func:`check_policy` and is hashed here; it is never
stored, logged or answered as given.

The CLI runs beside the hub, not in it: it reaches the sessions only when they are in Redis
(``HUB_REDIS_URL``), and never the lock-out counters a hub process keeps in memory; it is
built without them and reports what it could not do.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.db.person_store import Person, PersonStore
from hub.db.refresh_store import RefreshTokenStore
from hub.errors import Conflict, NotFound, WeakPassword
from hub.identity.lockout import LoginThrottle
from hub.identity.passwords import PasswordHasher, check_policy
from hub.identity.sessions import SessionManager

__all__ = ["AccountAdmin", "SignOut", "WeakPassword"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SignOut:
    """What signing a person out everywhere did."""

    person_id: str
    #: ``False`` when the sessions live in a process this one cannot reach (the CLI, embedded).
    sessions_ended: bool
    refresh_tokens_revoked: int


class AccountAdmin:
    """Operator actions on one person's account at a time; unknown persons are NotFound."""

    def __init__(
        self,
        *,
        persons: PersonStore,
        refresh_tokens: RefreshTokenStore,
        passwords: PasswordHasher,
        sessions: SessionManager | None,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self._persons = persons
        self._refresh_tokens = refresh_tokens
        self._passwords = passwords
        self._sessions = sessions
        self._throttle = throttle

    async def person(self, person_id: str) -> Person:
        """The person ``person_id``, disabled or not; NotFound otherwise."""
        person = await self._persons.get(person_id)
        if person is None:
            raise NotFound(f"person {person_id!r} does not exist")
        return person

    async def sign_out_everywhere(self, person_id: str) -> SignOut:
        """End every session the person has now and revoke all their refresh tokens."""
        await self.person(person_id)
        return await self._sign_out(person_id)

    async def disable(self, person_id: str) -> tuple[Person, SignOut]:
        """Disable the person for good (idempotent) and sign them out everywhere."""
        person = await self._persons.disable(person_id)
        return person, await self._sign_out(person_id)

    async def set_password(self, person_id: str, password: str) -> SignOut:
        """Give the person a new password (policy-checked, argon2id) and sign them out.

        Raises :class:`WeakPassword` listing the reasons, Conflict for a disabled person.
        """
        person = await self.person(person_id)
        if person.disabled_at is not None:
            raise Conflict("the person is disabled")
        reasons = check_policy(
            password,
            identifier=person.identifier,
            names=(person.given_name, person.family_name),
        )
        if reasons:
            raise WeakPassword(
                "the password does not meet the policy: " + " ".join(reasons),
                extra={"reasons": reasons},
            )
        await self._persons.set_password_hash(person_id, await self._passwords.ahash(password))
        return await self._sign_out(person_id)

    async def reset_mfa(self, person_id: str) -> SignOut:
        """Remove the second factor and recovery codes and sign out; Conflict when none."""
        await self._persons.reset_mfa(person_id)
        return await self._sign_out(person_id)

    async def unlock(self, person_id: str) -> Person:
        """Clear failed sign-ins and any lock, in the database and this process's throttle."""
        person = await self._persons.unlock(person_id)
        if self._throttle is not None:
            self._throttle.forget(person.identifier)
        return person

    async def _sign_out(self, person_id: str) -> SignOut:
        # The tokens first: they are in the database, which every caller reaches.
        revoked = await self._refresh_tokens.revoke_person(person_id)
        if self._sessions is not None:
            await self._sessions.end_all(person_id)
        return SignOut(
            person_id=person_id,
            sessions_ended=self._sessions is not None,
            refresh_tokens_revoked=revoked,
        )
