"""Repositories of people and organisations, gathered: persons, establishments, staff, vendors.

Each store lives in its own module (:mod:`hub.db.person_store`,
:mod:`hub.db.establishment_store`, :mod:`hub.db.staff_store`, :mod:`hub.db.vendor_store`,
:mod:`hub.db.delegation_store`), takes the engine (and, for tests, a clock) in its constructor
and hands out frozen dataclasses. Bad input raises InvalidRequest, unknown ids NotFound, and a
state that forbids the change Conflict (or Forbidden, for a grant by someone not entitled).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from hub.db._identity_common import Clock, utcnow
from hub.db._people_common import MAX_PAGE
from hub.db.delegation_store import MAX_DELEGATION, Delegation, DelegationEvent, DelegationStore
from hub.db.establishment_store import (
    Establishment,
    EstablishmentSize,
    EstablishmentStore,
    Membership,
    MembershipRole,
)
from hub.db.person_store import Person, PersonKind, PersonStore, check_identifier
from hub.db.staff_store import StaffRole, StaffRoleName, StaffStore
from hub.db.vendor_store import Vendor, VendorStore

__all__ = [
    "MAX_DELEGATION",
    "MAX_PAGE",
    "AsyncEngine",
    "Delegation",
    "DelegationEvent",
    "DelegationStore",
    "Establishment",
    "EstablishmentSize",
    "EstablishmentStore",
    "Membership",
    "MembershipRole",
    "PeopleStores",
    "Person",
    "PersonKind",
    "PersonStore",
    "StaffRole",
    "StaffRoleName",
    "StaffStore",
    "Vendor",
    "VendorStore",
    "check_identifier",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class PeopleStores:
    """Every people store on one engine: what the admin API and the CLI work with."""

    persons: PersonStore
    establishments: EstablishmentStore
    staff: StaffStore
    vendors: VendorStore
    delegations: DelegationStore

    @classmethod
    def on(cls, engine: AsyncEngine, *, clock: Clock = utcnow) -> PeopleStores:
        """The stores on ``engine``; cheap, so built wherever they are needed."""
        return cls(
            persons=PersonStore(engine, clock=clock),
            establishments=EstablishmentStore(engine, clock=clock),
            staff=StaffStore(engine, clock=clock),
            vendors=VendorStore(engine, clock=clock),
            delegations=DelegationStore(engine, clock=clock),
        )
