"""Admin API for people and organisations: persons, establishments, staff, vendors, delegations.

A person's credential columns (password hash, TOTP secret, recovery codes, lock-out state) never
leave this module: answers carry :class:`PersonView`, which has no such field. The audit log
names ids only, never national IDs or names. Inputs are checked by the stores, which answer bad
values with 400, unknown ids with 404, and states that forbid a change with 409 (403 for a
delegation granted by someone who is not an owner).

An operator also manages a person's account (:mod:`hub.identity.account_admin`): a new password
(never answered or logged), a reset second factor, an unlock, and "sign out everywhere". Each of
these but the unlock, and disabling, ends the person's login sessions on every replica and
revokes their refresh tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias, cast

import structlog
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from hub.admin.guard import ActorDep, actor_dependency, admin_guard
from hub.db.people_store import (
    Delegation,
    DelegationEvent,
    Establishment,
    EstablishmentSize,
    Membership,
    MembershipRole,
    PeopleStores,
    Person,
    PersonKind,
    StaffRole,
    StaffRoleName,
    Vendor,
)
from hub.errors import NotFound, ServiceUnavailable
from hub.identity.account_admin import AccountAdmin, SignOut
from hub.runtime import Runtime

__all__ = [
    "AdminPeopleController",
    "CredentialSet",
    "DelegationGrant",
    "DelegationRevoke",
    "EstablishmentCreate",
    "MemberAdd",
    "MemberEnd",
    "PersonCreate",
    "PersonView",
    "SignOutView",
    "StaffGrant",
    "VendorCreate",
]

log = structlog.get_logger("hub.admin")

PeopleDep: TypeAlias = NamedDependency[PeopleStores]
AccountsDep: TypeAlias = NamedDependency[AccountAdmin]


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonCreate:
    """A citizen (national ID starting with 1) or resident (resident ID starting with 2)."""

    kind: str
    identifier: str
    given_name: str
    family_name: str
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonView:
    """A person as the admin API shows them: never any credential."""

    id: str
    kind: PersonKind
    identifier: str
    given_name: str
    family_name: str
    email: str | None
    phone: str | None
    created_at: datetime
    disabled_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialSet:
    """A new password for a person, checked against the password policy."""

    password: str = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class SignOutView:
    """What an account change did to the person's sign-ins: never any credential."""

    person_id: str
    #: Login sessions made before now no longer open anything, on any replica.
    sessions_ended: bool
    refresh_tokens_revoked: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EstablishmentCreate:
    """An establishment: commercial-registration number, name, sector code and size."""

    cr_number: str
    name: str
    sector: str
    size: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberAdd:
    """A person to give a role in the establishment: owner, hr_officer or employee."""

    person_id: str
    role: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberEnd:
    """Which role to end (all the person's roles there when absent), and why."""

    role: str | None = None
    reason: str = "membership ended"


@dataclass(frozen=True, slots=True, kw_only=True)
class StaffGrant:
    """A staff role: an agency_officer names an agency, a platform_admin none."""

    person_id: str
    role: str
    agency: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VendorCreate:
    """A vendor organisation."""

    name: str
    contact_email: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DelegationGrant:
    """An owner's delegation to an HR officer (``grantee_person``) or an application."""

    grantor: str
    scopes: tuple[str, ...]
    valid_until: datetime
    grantee_person: str | None = None
    grantee_client: str | None = None
    valid_from: datetime | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DelegationRevoke:
    """Who revokes a delegation (a person id or an operator's name; the admin acting when
    absent), and why."""

    by: str | None = None
    reason: str


def _view(person: Person) -> PersonView:
    return PersonView(
        id=person.id,
        kind=person.kind,
        identifier=person.identifier,
        given_name=person.given_name,
        family_name=person.family_name,
        email=person.email,
        phone=person.phone,
        created_at=person.created_at,
        disabled_at=person.disabled_at,
    )


def _signed_out(event: str, actor: str, result: SignOut) -> SignOutView:
    """Log an account action that signed the person out everywhere; its answer."""
    log.info(
        event,
        person_id=result.person_id,
        actor=actor,
        refresh_tokens_revoked=result.refresh_tokens_revoked,
    )
    return SignOutView(
        person_id=result.person_id,
        sessions_ended=result.sessions_ended,
        refresh_tokens_revoked=result.refresh_tokens_revoked,
    )


def _people(request: Request[Any, Any, Any]) -> PeopleStores:
    runtime: Runtime = request.app.state.runtime
    if runtime.engine is None:
        raise ServiceUnavailable("the database is not started")
    return PeopleStores.on(runtime.engine)


def _accounts(request: Request[Any, Any, Any]) -> AccountAdmin:
    runtime: Runtime = request.app.state.runtime
    if runtime.identity is None:
        raise ServiceUnavailable("the database is not started")
    return AccountAdmin(
        persons=runtime.identity.persons,
        refresh_tokens=runtime.identity.refresh_tokens,
        passwords=runtime.passwords,
        sessions=runtime.sessions,
        throttle=runtime.login_throttle,
    )


class AdminPeopleController(Controller):
    """Persons, establishments and memberships, staff roles, vendors and delegations."""

    path = "/admin/api"
    guards = [admin_guard]
    tags = ["admin"]
    dependencies = {
        "people": Provide(_people, sync_to_thread=False),
        "accounts": Provide(_accounts, sync_to_thread=False),
        "actor": actor_dependency,
    }

    # --- persons ---------------------------------------------------------------------------

    @post("/persons", status_code=HTTP_201_CREATED)
    async def create_person(self, people: PeopleDep, data: JSONBody[PersonCreate]) -> PersonView:
        """Record a person; 409 when the identifier is already someone's."""
        person = await people.persons.create(
            kind=cast(PersonKind, data.kind),  # checked by the store
            identifier=data.identifier,
            given_name=data.given_name,
            family_name=data.family_name,
            email=data.email,
            phone=data.phone,
        )
        log.info("admin.person_created", person_id=person.id, kind=person.kind)
        return _view(person)

    @get("/persons")
    async def list_persons(
        self,
        people: PeopleDep,
        identifier: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        offset: FromQuery[int] = 0,
    ) -> list[PersonView]:
        """A page of persons, oldest first; ``identifier`` finds the one holding that ID."""
        persons = await people.persons.list(identifier=identifier, limit=limit, offset=offset)
        return [_view(person) for person in persons]

    @get("/persons/{person_id:str}")
    async def get_person(self, people: PeopleDep, person_id: FromPath[str]) -> PersonView:
        """One person."""
        person = await people.persons.get(person_id)
        if person is None:
            raise NotFound(f"person {person_id!r} does not exist")
        return _view(person)

    @post("/persons/{person_id:str}/disable", status_code=HTTP_200_OK)
    async def disable_person(
        self, accounts: AccountsDep, actor: ActorDep, person_id: FromPath[str]
    ) -> PersonView:
        """Disable a person for good (idempotent): signed out everywhere, delegations void."""
        person, signed_out = await accounts.disable(person_id)
        _signed_out("admin.person_disabled", actor, signed_out)
        return _view(person)

    # --- a person's account ----------------------------------------------------------------

    @post("/persons/{person_id:str}/password", status_code=HTTP_200_OK)
    async def set_password(
        self,
        accounts: AccountsDep,
        actor: ActorDep,
        person_id: FromPath[str],
        data: JSONBody[CredentialSet],
    ) -> SignOutView:
        """Give the person a new password and sign them out everywhere.

        400 ``weak_password`` with ``reasons`` when the policy refuses it; 409 when disabled.
        """
        signed_out = await accounts.set_password(person_id, data.password)
        return _signed_out("admin.person_password_set", actor, signed_out)

    @post("/persons/{person_id:str}/mfa/reset", status_code=HTTP_200_OK)
    async def reset_mfa(
        self, accounts: AccountsDep, actor: ActorDep, person_id: FromPath[str]
    ) -> SignOutView:
        """Remove the second factor and recovery codes, sign out; 409 when none is enrolled."""
        signed_out = await accounts.reset_mfa(person_id)
        return _signed_out("admin.person_mfa_reset", actor, signed_out)

    @post("/persons/{person_id:str}/unlock", status_code=HTTP_200_OK)
    async def unlock_person(
        self, accounts: AccountsDep, actor: ActorDep, person_id: FromPath[str]
    ) -> PersonView:
        """Clear failed sign-ins and any lock (idempotent); this replica's throttle too."""
        person = await accounts.unlock(person_id)
        log.info("admin.person_unlocked", person_id=person_id, actor=actor)
        return _view(person)

    @post("/persons/{person_id:str}/sessions/end", status_code=HTTP_200_OK)
    async def end_sessions(
        self, accounts: AccountsDep, actor: ActorDep, person_id: FromPath[str]
    ) -> SignOutView:
        """Sign the person out everywhere: every session and refresh token (idempotent)."""
        signed_out = await accounts.sign_out_everywhere(person_id)
        return _signed_out("admin.person_signed_out", actor, signed_out)

    # --- establishments and memberships ----------------------------------------------------

    @post("/establishments", status_code=HTTP_201_CREATED)
    async def create_establishment(
        self, people: PeopleDep, data: JSONBody[EstablishmentCreate]
    ) -> Establishment:
        """Record an establishment; 409 when its CR number is already registered."""
        establishment = await people.establishments.create(
            cr_number=data.cr_number,
            name=data.name,
            sector=data.sector,
            size=cast(EstablishmentSize, data.size),  # checked by the store
        )
        log.info("admin.establishment_created", establishment_id=establishment.id)
        return establishment

    @get("/establishments")
    async def list_establishments(
        self,
        people: PeopleDep,
        cr_number: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        offset: FromQuery[int] = 0,
    ) -> list[Establishment]:
        """A page of establishments, oldest first; ``cr_number`` finds one."""
        return await people.establishments.list(cr_number=cr_number, limit=limit, offset=offset)

    @get("/establishments/{establishment_id:str}")
    async def get_establishment(
        self, people: PeopleDep, establishment_id: FromPath[str]
    ) -> Establishment:
        """One establishment."""
        establishment = await people.establishments.get(establishment_id)
        if establishment is None:
            raise NotFound(f"establishment {establishment_id!r} does not exist")
        return establishment

    @get("/establishments/{establishment_id:str}/members")
    async def list_members(
        self,
        people: PeopleDep,
        establishment_id: FromPath[str],
        include_ended: FromQuery[bool] = False,
    ) -> list[Membership]:
        """The establishment's active memberships (and ended ones with ``include_ended``)."""
        return await people.establishments.members(establishment_id, include_ended=include_ended)

    @post("/establishments/{establishment_id:str}/members", status_code=HTTP_201_CREATED)
    async def add_member(
        self, people: PeopleDep, establishment_id: FromPath[str], data: JSONBody[MemberAdd]
    ) -> Membership:
        """Give a person a role there; 409 when they already hold it."""
        membership = await people.establishments.add_member(
            establishment_id,
            data.person_id,
            cast(MembershipRole, data.role),  # checked by the store
        )
        log.info(
            "admin.member_added",
            establishment_id=establishment_id,
            person_id=data.person_id,
            role=membership.role,
        )
        return membership

    @post(
        "/establishments/{establishment_id:str}/members/{person_id:str}/end",
        status_code=HTTP_200_OK,
    )
    async def end_membership(
        self,
        people: PeopleDep,
        actor: ActorDep,
        establishment_id: FromPath[str],
        person_id: FromPath[str],
        data: JSONBody[MemberEnd | None] = None,
    ) -> list[Membership]:
        """End the person's roles there (or one role); delegations resting on them are revoked."""
        body = data or MemberEnd()
        ended = await people.establishments.end_membership(
            establishment_id,
            person_id,
            None if body.role is None else cast(MembershipRole, body.role),
            actor=actor,
            reason=body.reason,
        )
        log.info(
            "admin.membership_ended",
            establishment_id=establishment_id,
            person_id=person_id,
            roles=[membership.role for membership in ended],
        )
        return ended

    # --- delegations -----------------------------------------------------------------------

    @post("/establishments/{establishment_id:str}/delegations", status_code=HTTP_201_CREATED)
    async def grant_delegation(
        self,
        people: PeopleDep,
        establishment_id: FromPath[str],
        data: JSONBody[DelegationGrant],
    ) -> Delegation:
        """Record an owner's delegation: 403 unless the grantor owns the establishment."""
        delegation = await people.delegations.grant(
            establishment_id,
            grantor=data.grantor,
            grantee_person=data.grantee_person,
            grantee_client=data.grantee_client,
            scopes=data.scopes,
            valid_from=data.valid_from,
            valid_until=data.valid_until,
            reason=data.reason,
        )
        log.info(
            "admin.delegation_granted",
            delegation_id=delegation.id,
            establishment_id=establishment_id,
            grantor=delegation.grantor,
            grantee=delegation.grantee,
        )
        return delegation

    @get("/establishments/{establishment_id:str}/delegations")
    async def list_delegations(
        self, people: PeopleDep, establishment_id: FromPath[str]
    ) -> list[Delegation]:
        """Every delegation of the establishment, revoked and expired ones included."""
        return await people.delegations.list(establishment_id)

    @get("/delegations/{delegation_id:str}")
    async def get_delegation(self, people: PeopleDep, delegation_id: FromPath[str]) -> Delegation:
        """One delegation."""
        delegation = await people.delegations.get(delegation_id)
        if delegation is None:
            raise NotFound(f"delegation {delegation_id!r} does not exist")
        return delegation

    @post("/delegations/{delegation_id:str}/revoke", status_code=HTTP_200_OK)
    async def revoke_delegation(
        self,
        request: Request[Any, Any, Any],
        people: PeopleDep,
        actor: ActorDep,
        delegation_id: FromPath[str],
        data: JSONBody[DelegationRevoke],
    ) -> Delegation:
        """Revoke a delegation (idempotent: a second call keeps the first revocation)."""
        by = actor if data.by is None else data.by
        delegation = await people.delegations.revoke(delegation_id, by=by, reason=data.reason)
        # Tokens resting on it stop at once here (other replicas: at their next poll).
        runtime: Runtime = request.app.state.runtime
        runtime.delegation_revoked(delegation.id)
        if runtime.directory is not None and delegation.grantee_person is not None:
            runtime.directory.forget(delegation.grantee_person)
        log.info(
            "admin.delegation_revoked",
            delegation_id=delegation_id,
            by=delegation.revoked_by,
            actor=actor,
        )
        return delegation

    @get("/delegations/{delegation_id:str}/events")
    async def delegation_events(
        self, people: PeopleDep, delegation_id: FromPath[str]
    ) -> list[DelegationEvent]:
        """The delegation's audit trail: each grant and revocation, oldest first."""
        return await people.delegations.events(delegation_id)

    # --- staff roles -----------------------------------------------------------------------

    @post("/staff", status_code=HTTP_201_CREATED)
    async def grant_staff_role(
        self, people: PeopleDep, actor: ActorDep, data: JSONBody[StaffGrant]
    ) -> StaffRole:
        """Grant an agency officer or platform admin role; 409 when already held."""
        role = await people.staff.grant(
            data.person_id,
            cast(StaffRoleName, data.role),  # checked by the store
            data.agency,
        )
        log.info(
            "admin.staff_granted", staff_role_id=role.id, person_id=role.person_id, actor=actor
        )
        return role

    @get("/staff")
    async def list_staff_roles(
        self,
        people: PeopleDep,
        person_id: FromQuery[str | None] = None,
        active_only: FromQuery[bool] = False,
    ) -> list[StaffRole]:
        """Staff roles, oldest first: everyone's or one person's, revoked ones unless told."""
        return await people.staff.list(person_id=person_id, active_only=active_only)

    @post("/staff/{staff_role_id:str}/revoke", status_code=HTTP_200_OK)
    async def revoke_staff_role(
        self, people: PeopleDep, actor: ActorDep, staff_role_id: FromPath[str]
    ) -> StaffRole:
        """Revoke a staff role for good (idempotent)."""
        role = await people.staff.revoke(staff_role_id)
        log.info("admin.staff_revoked", staff_role_id=staff_role_id, actor=actor)
        return role

    # --- vendors ---------------------------------------------------------------------------

    @post("/vendors", status_code=HTTP_201_CREATED)
    async def create_vendor(self, people: PeopleDep, data: JSONBody[VendorCreate]) -> Vendor:
        """Record a vendor organisation."""
        vendor = await people.vendors.create(name=data.name, contact_email=data.contact_email)
        log.info("admin.vendor_created", vendor_id=vendor.id)
        return vendor

    @get("/vendors")
    async def list_vendors(self, people: PeopleDep) -> list[Vendor]:
        """Every vendor organisation, oldest first."""
        return await people.vendors.list()

    @get("/vendors/{vendor_id:str}")
    async def get_vendor(self, people: PeopleDep, vendor_id: FromPath[str]) -> Vendor:
        """One vendor organisation."""
        vendor = await people.vendors.get(vendor_id)
        if vendor is None:
            raise NotFound(f"vendor {vendor_id!r} does not exist")
        return vendor
