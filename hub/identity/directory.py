"""Reads, from the people tables, what a person or a client may do for establishments.

Used where a credential is made: the token endpoint (a person's tokens carry their staff roles,
memberships and HR-officer delegations; a vendor's delegated token the one delegation it acts
under) and the gateway's session callers. A token's affiliations are as fresh as the token
(``HUB_ACCESS_TOKEN_SECONDS``); a session caller's are re-read at most every
``HUB_AFFILIATION_CACHE_SECONDS`` per person and replica.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Final

from hub.auth.affiliations import Affiliations, qualified
from hub.db.delegation_store import Delegation
from hub.db.establishment_store import Establishment
from hub.db.people_store import PeopleStores

__all__ = ["Directory"]

_CR_NUMBER: Final = re.compile(r"[0-9]{10}")
_ESTABLISHMENT_ID: Final = re.compile(r"est_[A-Za-z0-9_-]{1,64}")
_MAX_CACHED: Final = 10_000


class Directory:
    """People's affiliations and clients' delegations, with a short cache for sessions."""

    def __init__(
        self,
        people: PeopleStores,
        *,
        cache_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._people = people
        self._cache_seconds = cache_seconds
        self._clock = clock
        # person id -> (read until, affiliations)
        self._cache: OrderedDict[str, tuple[float, Affiliations]] = OrderedDict()

    async def person(self, person_id: str) -> Affiliations:
        """The person's staff roles, memberships and delegations held now, read afresh."""
        people = self._people
        person = await people.persons.get(person_id)
        staff = await people.staff.list(person_id=person_id, active_only=True)
        memberships = await people.establishments.memberships_of(person_id)
        held = await people.delegations.held_by(person_id)
        scopes: set[str] = set()
        for delegation in held:
            scopes |= qualified(delegation.establishment_id, delegation.scopes)
        ids = {m.establishment_id for m in memberships} | {d.establishment_id for d in held}
        registered = await people.establishments.cr_numbers(ids)
        return Affiliations(
            roles=frozenset(role.role for role in staff),
            memberships=frozenset(f"{m.establishment_id}:{m.role}" for m in memberships),
            delegated_scopes=frozenset(scopes),
            delegations=frozenset(delegation.id for delegation in held),
            registrations=frozenset(f"{e}:{cr}" for e, cr in registered.items()),
            national_id=None if person is None else person.identifier,
        )

    async def cached_person(self, person_id: str) -> Affiliations:
        """:meth:`person`, read at most every ``cache_seconds`` (for session callers)."""
        now = self._clock()
        hit = self._cache.get(person_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        found = await self.person(person_id)
        if self._cache_seconds > 0:
            self._cache.pop(person_id, None)
            if len(self._cache) >= _MAX_CACHED:
                self._cache.popitem(last=False)
            self._cache[person_id] = (now + self._cache_seconds, found)
        return found

    def forget(self, person_id: str) -> None:
        """Drop this replica's cached affiliations of a person (their roles just changed)."""
        self._cache.pop(person_id, None)

    async def establishment(self, reference: str) -> Establishment | None:
        """The establishment a CR number (10 digits) or an ``est_`` id names."""
        if _CR_NUMBER.fullmatch(reference):
            found = await self._people.establishments.list(cr_number=reference, limit=1)
            return found[0] if found else None
        if _ESTABLISHMENT_ID.fullmatch(reference):
            return await self._people.establishments.get(reference)
        return None

    async def revoked_delegations(self, since: datetime) -> list[str]:
        """Ids of the delegations revoked at or after ``since``."""
        return await self._people.delegations.revoked_since(since)

    async def client_delegations(self, establishment_id: str, client_id: str) -> list[Delegation]:
        """The delegations active now from the establishment to the client."""
        return await self._people.delegations.active_for(establishment_id, client_id)
