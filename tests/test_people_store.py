"""People storage on SQLite and PostgreSQL: persons, establishments, staff, vendors, delegations."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.db.client_store import ClientStore
from hub.db.people_store import MAX_DELEGATION, PeopleStores, Person
from hub.errors import Conflict, Forbidden, InvalidRequest, InvalidScope, NotFound

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
ARGON2 = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"


class Clock:
    """A settable clock for the stores."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stores(db_engine: AsyncEngine, clock: Clock) -> PeopleStores:
    return PeopleStores.on(db_engine, clock=clock)


async def citizen(stores: PeopleStores, identifier: str = "1000000001", **fields: Any) -> Person:
    values: dict[str, Any] = {
        "kind": "citizen",
        "identifier": identifier,
        "given_name": "Sara",
        "family_name": "Alharbi",
        **fields,
    }
    return await stores.persons.create(**values)


async def _rows(engine: AsyncEngine, sql: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(row) for row in (await conn.execute(text(sql))).mappings()]


# --- persons ---------------------------------------------------------------------------------


async def test_a_person_is_created_read_listed_and_disabled(
    stores: PeopleStores, clock: Clock
) -> None:
    person = await citizen(stores, email="sara@example.sa", phone="+966501234567")
    assert re.fullmatch(r"per_[0-9a-f]{16}", person.id)
    assert (person.kind, person.identifier) == ("citizen", "1000000001")
    assert (person.email, person.phone) == ("sara@example.sa", "+966501234567")
    assert person.created_at == T0
    assert person.disabled_at is None
    assert person.password_hash is None
    assert person.totp_secret is None
    assert person.recovery_code_hashes == ()
    assert (person.failed_logins, person.locked_until) == (0, None)
    clock.advance(SECOND)  # lists are oldest first; equal times would fall back to the id
    resident = await stores.persons.create(
        kind="resident", identifier="2000000002", given_name="Ravi", family_name="Kumar"
    )
    assert resident.email is None

    assert await stores.persons.get(person.id) == person
    assert await stores.persons.get("per_0000000000000000") is None
    assert await stores.persons.by_identifier("2000000002") == resident
    assert await stores.persons.by_identifier("2999999999") is None
    assert await stores.persons.list() == [person, resident]
    assert await stores.persons.list(identifier="2000000002") == [resident]
    assert await stores.persons.list(identifier="1999999999") == []
    assert await stores.persons.list(limit=1) == [person]
    assert await stores.persons.list(limit=1, offset=1) == [resident]
    assert await stores.persons.list(offset=2) == []

    clock.advance(DAY)
    disabled = await stores.persons.disable(person.id)
    assert disabled.disabled_at == clock.now
    clock.advance(DAY)
    assert await stores.persons.disable(person.id) == disabled  # keeps the first date
    with pytest.raises(NotFound, match="person 'per_x' does not exist"):
        await stores.persons.disable("per_x")


BAD_PERSONS: list[tuple[dict[str, Any], str]] = [
    ({"kind": "visitor"}, "kind must be one of 'citizen', 'resident', not 'visitor'"),
    ({"identifier": "100000000"}, "identifier must be exactly 10 digits"),
    ({"identifier": "10000000011"}, "identifier must be exactly 10 digits"),
    ({"identifier": "100000000a"}, "identifier must be exactly 10 digits"),
    ({"identifier": "1000000001\n"}, "identifier must be exactly 10 digits"),
    # Arabic-Indic digits are digits to str.isdigit(), not to the registers.
    ({"identifier": "\u0661" + "\u0660" * 8 + "\u0661"}, "identifier must be exactly 10 digits"),
    ({"identifier": "2000000001"}, "a citizen's identifier starts with 1 (national ID)"),
    (
        {"kind": "resident", "identifier": "1000000001"},
        "a resident's identifier starts with 2 (resident ID)",
    ),
    ({"identifier": "3000000001"}, "a citizen's identifier starts with 1 (national ID)"),
    ({"given_name": " "}, "given_name must be 1 to 200 characters"),
    ({"family_name": "x" * 201}, "family_name must be 1 to 200 characters"),
    ({"email": "sara"}, "email is not a valid e-mail address"),
    ({"email": "sara@example"}, "email is not a valid e-mail address"),
    ({"email": "sa ra@example.sa"}, "email is not a valid e-mail address"),
    ({"phone": "0501234567"}, "phone must be in E.164 form, such as +966501234567"),
    ({"phone": "+0501234567"}, "phone must be in E.164 form, such as +966501234567"),
    ({"phone": "+9665012345678901"}, "phone must be in E.164 form, such as +966501234567"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_PERSONS)
def test_bad_person_fields_are_refused_before_any_database_work(
    fields: dict[str, Any], message: str
) -> None:
    # No engine at all: validation happens before a connection is opened.
    stores = PeopleStores.on(None)  # type: ignore[arg-type]
    values = {
        "kind": "citizen",
        "identifier": "1000000001",
        "given_name": "Sara",
        "family_name": "Alharbi",
        **fields,
    }
    with pytest.raises(InvalidRequest) as caught:
        asyncio.run(stores.persons.create(**values))
    assert caught.value.detail == message


async def test_an_identifier_belongs_to_one_person_even_under_a_race(
    stores: PeopleStores,
) -> None:
    results = await asyncio.gather(
        *(citizen(stores, given_name=f"N{i}") for i in range(4)), return_exceptions=True
    )
    created = [r for r in results if isinstance(r, Person)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(created) == 1
    assert len(refused) == 3
    assert refused[0].detail == "a person with this identifier already exists"
    assert await stores.persons.list() == created


async def test_credential_columns_are_stored_for_the_login_step_and_kept_out_of_repr(
    stores: PeopleStores, clock: Clock
) -> None:
    person = await citizen(stores)
    await stores.persons.set_password_hash(person.id, ARGON2)
    await stores.persons.set_totp(person.id, "JBSWY3DPEHPK3PXP", ["h1", "h2"])
    assert await stores.persons.record_login_failure(person.id) == 1
    lock = T0 + timedelta(minutes=15)
    assert await stores.persons.record_login_failure(person.id, lock_until=lock) == 2
    stored = await stores.persons.get(person.id)
    assert stored is not None
    assert stored.password_hash == ARGON2
    assert stored.totp_secret == "JBSWY3DPEHPK3PXP"
    assert stored.recovery_code_hashes == ("h1", "h2")
    assert (stored.failed_logins, stored.locked_until) == (2, lock)
    for secret in (ARGON2, "JBSWY3DPEHPK3PXP", "h1"):
        assert secret not in repr(stored)

    await stores.persons.set_recovery_code_hashes(person.id, ["h2"])
    await stores.persons.record_login_success(person.id)
    after = await stores.persons.get(person.id)
    assert after is not None
    assert after.recovery_code_hashes == ("h2",)
    assert (after.failed_logins, after.locked_until) == (0, None)
    await stores.persons.set_totp(person.id, None)
    await stores.persons.set_password_hash(person.id, None)
    cleared = await stores.persons.get(person.id)
    assert cleared is not None
    assert (cleared.totp_secret, cleared.password_hash, cleared.recovery_code_hashes) == (
        None,
        None,
        (),
    )

    with pytest.raises(InvalidRequest, match="argon2 hash string, never a password"):
        await stores.persons.set_password_hash(person.id, "hunter2")
    with pytest.raises(InvalidRequest, match="must be a list"):
        await stores.persons.set_recovery_code_hashes(person.id, "h1")
    with pytest.raises(InvalidRequest, match="lock_until must be a timezone-aware"):
        await stores.persons.record_login_failure(person.id, lock_until=datetime(2030, 1, 1))
    with pytest.raises(NotFound):
        await stores.persons.set_password_hash("per_missing", ARGON2)


# --- establishments and memberships ----------------------------------------------------------


async def test_establishments_are_created_listed_and_unique_by_cr_number(
    stores: PeopleStores, clock: Clock
) -> None:
    shop = await stores.establishments.create(
        cr_number="1010000001", name="Alharbi Trading", sector="retail", size="small"
    )
    assert re.fullmatch(r"est_[0-9a-f]{16}", shop.id)
    assert (shop.cr_number, shop.sector, shop.size, shop.created_at) == (
        "1010000001",
        "retail",
        "small",
        T0,
    )
    clock.advance(SECOND)
    works = await stores.establishments.create(
        cr_number="4030000002", name="Red Sea Works", sector="F41", size="large"
    )
    assert await stores.establishments.get(shop.id) == shop
    assert await stores.establishments.get("est_missing") is None
    assert await stores.establishments.list() == [shop, works]
    assert await stores.establishments.list(cr_number="4030000002") == [works]
    assert await stores.establishments.list(limit=1, offset=1) == [works]
    with pytest.raises(Conflict, match="CR number 1010000001 already exists"):
        await stores.establishments.create(
            cr_number="1010000001", name="Copy", sector="retail", size="micro"
        )
    for fields, message in [
        ({"cr_number": "101000000"}, "cr_number must be exactly 10 digits"),
        ({"cr_number": "10100000O1"}, "cr_number must be exactly 10 digits"),
        ({"size": "huge"}, "size must be one of 'micro', 'small', 'medium', 'large', not 'huge'"),
        ({"sector": "retail trade"}, "sector must be a short code"),
        ({"sector": ""}, "sector must be a short code"),
        ({"name": ""}, "name must be 1 to 200 characters"),
    ]:
        values = {"cr_number": "1010000009", "name": "X", "sector": "retail", "size": "small"}
        with pytest.raises(InvalidRequest) as caught:
            await stores.establishments.create(**{**values, **fields})
        assert caught.value.detail.startswith(message)
    for limit, offset in [(0, 0), (501, 0), (10, -1)]:
        with pytest.raises(InvalidRequest):
            await stores.establishments.list(limit=limit, offset=offset)
    assert len(await stores.establishments.list()) == 2


async def test_memberships_are_unique_while_active_and_kept_as_history(
    stores: PeopleStores, clock: Clock
) -> None:
    shop = await stores.establishments.create(
        cr_number="1010000001", name="Shop", sector="retail", size="micro"
    )
    sara = await citizen(stores)
    owner = await stores.establishments.add_member(shop.id, sara.id, "owner")
    assert (owner.person_id, owner.establishment_id, owner.role) == (sara.id, shop.id, "owner")
    assert (owner.since, owner.until) == (T0, None)
    employee = await stores.establishments.add_member(shop.id, sara.id, "employee")
    with pytest.raises(Conflict, match=f"person '{sara.id}' already is owner of establishment"):
        await stores.establishments.add_member(shop.id, sara.id, "owner")
    with pytest.raises(InvalidRequest, match="role must be one of 'owner', 'hr_officer'"):
        await stores.establishments.add_member(shop.id, sara.id, "manager")  # type: ignore[arg-type]
    with pytest.raises(NotFound, match="person 'per_missing' does not exist"):
        await stores.establishments.add_member(shop.id, "per_missing", "employee")
    with pytest.raises(NotFound, match="establishment 'est_missing' does not exist"):
        await stores.establishments.add_member("est_missing", sara.id, "employee")
    assert await stores.establishments.members(shop.id) == [owner, employee]
    assert await stores.establishments.memberships_of(sara.id) == [owner, employee]

    clock.advance(DAY)
    [ended] = await stores.establishments.end_membership(
        shop.id, sara.id, "employee", actor="admin-token"
    )
    assert ended.until == T0 + DAY
    assert await stores.establishments.members(shop.id) == [owner]
    assert await stores.establishments.members(shop.id, include_ended=True) == [owner, ended]
    with pytest.raises(NotFound, match="has no active employee membership"):
        await stores.establishments.end_membership(
            shop.id, sara.id, "employee", actor="admin-token"
        )
    again = await stores.establishments.add_member(shop.id, sara.id, "employee")
    assert again.since == T0 + DAY
    clock.advance(DAY)
    both = await stores.establishments.end_membership(shop.id, sara.id, actor="admin-token")
    assert {m.role for m in both} == {"owner", "employee"}
    assert await stores.establishments.members(shop.id) == []
    with pytest.raises(NotFound, match="has no active membership"):
        await stores.establishments.end_membership(shop.id, sara.id, actor="admin-token")
    with pytest.raises(NotFound, match="establishment 'est_missing' does not exist"):
        await stores.establishments.members("est_missing")
    with pytest.raises(InvalidRequest, match="reason must be 1 to 1000 characters"):
        await stores.establishments.end_membership(shop.id, sara.id, actor="x", reason="")

    await stores.persons.disable(sara.id)
    with pytest.raises(Conflict, match="is disabled"):
        await stores.establishments.add_member(shop.id, sara.id, "employee")


async def test_one_membership_wins_a_race(stores: PeopleStores) -> None:
    shop = await stores.establishments.create(
        cr_number="1010000001", name="Shop", sector="retail", size="micro"
    )
    sara = await citizen(stores)
    results = await asyncio.gather(
        *(stores.establishments.add_member(shop.id, sara.id, "owner") for _ in range(4)),
        return_exceptions=True,
    )
    assert sorted(type(result).__name__ for result in results) == [
        "Conflict",
        "Conflict",
        "Conflict",
        "Membership",
    ]
    assert len(await stores.establishments.members(shop.id)) == 1


# --- staff roles and vendors -----------------------------------------------------------------


async def test_staff_roles_are_granted_listed_and_revoked(
    stores: PeopleStores, clock: Clock
) -> None:
    sara = await citizen(stores)
    officer = await stores.staff.grant(sara.id, "agency_officer", "moi")
    assert re.fullmatch(r"stf_[0-9a-f]{16}", officer.id)
    assert (officer.role, officer.agency, officer.granted_at, officer.revoked_at) == (
        "agency_officer",
        "moi",
        T0,
        None,
    )
    clock.advance(SECOND)
    other_agency = await stores.staff.grant(sara.id, "agency_officer", "mol")
    clock.advance(SECOND)
    admin = await stores.staff.grant(sara.id, "platform_admin")
    with pytest.raises(Conflict, match="already is agency_officer of agency 'moi'"):
        await stores.staff.grant(sara.id, "agency_officer", "moi")
    with pytest.raises(Conflict, match="already is platform_admin"):
        await stores.staff.grant(sara.id, "platform_admin")
    for args, message in [
        (("agency_officer",), "an agency_officer role names its agency"),
        (("platform_admin", "moi"), "a platform_admin role belongs to no agency"),
        (("agency_officer", "m o i"), "agency must be a short code"),
        (("auditor",), "role must be one of 'agency_officer', 'platform_admin'"),
    ]:
        with pytest.raises(InvalidRequest, match=message):
            await stores.staff.grant(sara.id, *args)  # type: ignore[arg-type]
    with pytest.raises(NotFound, match="person 'per_missing' does not exist"):
        await stores.staff.grant("per_missing", "platform_admin")

    clock.advance(DAY)
    revoked = await stores.staff.revoke(admin.id)
    assert revoked.revoked_at == clock.now
    clock.advance(DAY)
    assert await stores.staff.revoke(admin.id) == revoked
    assert await stores.staff.get(admin.id) == revoked
    with pytest.raises(NotFound, match="staff role 'stf_missing' does not exist"):
        await stores.staff.revoke("stf_missing")
    assert await stores.staff.list() == [officer, other_agency, revoked]
    assert await stores.staff.list(person_id=sara.id, active_only=True) == [
        officer,
        other_agency,
    ]
    assert await stores.staff.list(person_id="per_other") == []
    # Revoked, the role can be granted again; a disabled person gets none.
    await stores.staff.grant(sara.id, "platform_admin")
    await stores.persons.disable(sara.id)
    with pytest.raises(Conflict, match="is disabled"):
        await stores.staff.grant(sara.id, "agency_officer", "mhrsd")


async def test_vendor_organisations_are_kept(stores: PeopleStores) -> None:
    acme = await stores.vendors.create(name="Acme Payroll", contact_email="ops@acme.example")
    assert re.fullmatch(r"ven_[0-9a-f]{16}", acme.id)
    assert (acme.name, acme.contact_email, acme.created_at) == (
        "Acme Payroll",
        "ops@acme.example",
        T0,
    )
    assert await stores.vendors.get(acme.id) == acme
    assert await stores.vendors.get("ven_missing") is None
    assert await stores.vendors.list() == [acme]
    with pytest.raises(InvalidRequest, match="contact_email is not a valid e-mail address"):
        await stores.vendors.create(name="Bad", contact_email="nobody")


# --- delegations -----------------------------------------------------------------------------


class World:
    """An establishment with an owner, an HR officer, an employee and a vendor client."""

    def __init__(
        self, establishment: str, owner: str, officer: str, employee: str, client: str
    ) -> None:
        self.establishment = establishment
        self.owner = owner
        self.officer = officer
        self.employee = employee
        self.client = client


@pytest.fixture
async def world(stores: PeopleStores, db_engine: AsyncEngine, clock: Clock) -> World:
    shop = await stores.establishments.create(
        cr_number="1010000001", name="Shop", sector="retail", size="small"
    )
    owner = await citizen(stores, "1000000001")
    officer = await citizen(stores, "1000000002")
    employee = await stores.persons.create(
        kind="resident", identifier="2000000003", given_name="Ravi", family_name="Kumar"
    )
    await stores.establishments.add_member(shop.id, owner.id, "owner")
    await stores.establishments.add_member(shop.id, officer.id, "hr_officer")
    await stores.establishments.add_member(shop.id, employee.id, "employee")
    client, _secret = await ClientStore(db_engine, clock=clock).create(
        "Payroll", "ven_acme", "client_secret_basic", ["payroll.read", "payroll.write"]
    )
    return World(shop.id, owner.id, officer.id, employee.id, client.client_id)


async def test_a_delegation_lifecycle_is_audited_and_active_for_answers_at_any_time(
    stores: PeopleStores, world: World, clock: Clock
) -> None:
    delegations = stores.delegations
    start = T0 + DAY
    granted = await delegations.grant(
        world.establishment,
        grantor=world.owner,
        grantee_person=world.officer,
        scopes=["payroll.read", "contracts.sign", "payroll.read"],
        valid_from=start,
        valid_until=start + 30 * DAY,
        reason="quarterly payroll",
    )
    assert re.fullmatch(r"del_[0-9a-f]{16}", granted.id)
    assert granted.grantor == world.owner
    assert (granted.grantee_person, granted.grantee_client) == (world.officer, None)
    assert granted.grantee == world.officer
    assert granted.scopes == ("payroll.read", "contracts.sign")
    assert (granted.valid_from, granted.valid_until) == (start, start + 30 * DAY)
    assert (granted.created_at, granted.revoked_at, granted.revoked_by) == (T0, None, None)
    assert await delegations.get(granted.id) == granted
    assert await delegations.list(world.establishment) == [granted]

    active = delegations.active_for
    assert await active(world.establishment, world.officer) == []  # not yet valid
    assert await active(world.establishment, world.officer, at=start) == [granted]
    assert await active(world.establishment, world.officer, at=start + 30 * DAY) == []
    assert await active(world.establishment, world.employee, at=start) == []
    assert await active("est_other", world.officer, at=start) == []

    clock.advance(2 * DAY)
    revoked = await delegations.revoke(granted.id, by=world.owner, reason="officer on leave")
    assert (revoked.revoked_at, revoked.revoked_by) == (T0 + 2 * DAY, world.owner)
    # Revoking again changes nothing and writes no event.
    clock.advance(DAY)
    assert await delegations.revoke(granted.id, by="admin-token", reason="again") == revoked
    assert await active(world.establishment, world.officer) == []
    # History: between its start and its revocation it was active.
    assert await active(world.establishment, world.officer, at=start + DAY / 2) == [revoked]

    events = await delegations.events(granted.id)
    assert [(e.action, e.actor, e.at, e.reason) for e in events] == [
        ("granted", world.owner, T0, "quarterly payroll"),
        ("revoked", world.owner, T0 + 2 * DAY, "officer on leave"),
    ]
    assert events[0].details == {
        "grantee_person": world.officer,
        "grantee_client": None,
        "scopes": ["payroll.read", "contracts.sign"],
        "valid_from": start.isoformat(),
        "valid_until": (start + 30 * DAY).isoformat(),
    }
    assert events[0].id < events[1].id
    with pytest.raises(NotFound, match="delegation 'del_missing' does not exist"):
        await delegations.events("del_missing")
    with pytest.raises(NotFound, match="delegation 'del_missing' does not exist"):
        await delegations.revoke("del_missing", by="admin-token", reason="x")
    with pytest.raises(InvalidRequest, match="reason must be 1 to 1000 characters"):
        await delegations.revoke(granted.id, by="admin-token", reason=" ")
    with pytest.raises(InvalidRequest, match="by must be 1 to 200 characters"):
        await delegations.revoke(granted.id, by="", reason="x")


async def test_a_vendor_application_is_delegated_only_scopes_it_is_allowed(
    stores: PeopleStores, world: World, db_engine: AsyncEngine, clock: Clock
) -> None:
    delegations = stores.delegations
    granted = await delegations.grant(
        world.establishment,
        grantor=world.owner,
        grantee_client=world.client,
        scopes=["payroll.read"],
        valid_until=T0 + 365 * DAY,
    )
    assert (granted.grantee_client, granted.valid_from) == (world.client, T0)
    assert await delegations.active_for(world.establishment, world.client) == [granted]
    with pytest.raises(InvalidScope, match=f"client '{world.client}' is not allowed the scope"):
        await delegations.grant(
            world.establishment,
            grantor=world.owner,
            grantee_client=world.client,
            scopes=["payroll.read", "visas.write"],
            valid_until=T0 + DAY,
        )
    with pytest.raises(NotFound, match="client 'cli_missing' does not exist"):
        await delegations.grant(
            world.establishment,
            grantor=world.owner,
            grantee_client="cli_missing",
            scopes=["payroll.read"],
            valid_until=T0 + DAY,
        )
    # A disabled client holds nothing from then on, and can be granted nothing new.
    clock.advance(DAY)
    await ClientStore(db_engine, clock=clock).disable(world.client)
    assert await delegations.active_for(world.establishment, world.client) == []
    assert await delegations.active_for(world.establishment, world.client, at=T0) == [granted]
    with pytest.raises(Conflict, match="is disabled"):
        await delegations.grant(
            world.establishment,
            grantor=world.owner,
            grantee_client=world.client,
            scopes=["payroll.read"],
            valid_until=T0 + 2 * DAY,
        )


async def test_only_an_active_owner_grants_and_only_to_an_hr_officer(
    stores: PeopleStores, world: World
) -> None:
    def grant(**fields: Any) -> Any:
        values: dict[str, Any] = {
            "grantor": world.owner,
            "grantee_person": world.officer,
            "scopes": ["payroll.read"],
            "valid_until": T0 + DAY,
            **fields,
        }
        return stores.delegations.grant(values.pop("establishment", world.establishment), **values)

    est = world.establishment
    with pytest.raises(Forbidden) as caught:
        await grant(grantor=world.officer, grantee_person=world.employee)
    assert caught.value.detail == (
        f"person {world.officer!r} is not an owner of establishment {est!r}"
    )
    with pytest.raises(Conflict) as conflict:
        await grant(grantee_person=world.employee)
    assert conflict.value.detail == (
        f"person {world.employee!r} is not an HR officer of establishment {est!r}"
    )
    with pytest.raises(NotFound, match="person 'per_missing' does not exist"):
        await grant(grantor="per_missing")
    with pytest.raises(NotFound, match="person 'per_missing' does not exist"):
        await grant(grantee_person="per_missing")
    with pytest.raises(NotFound, match="establishment 'est_missing' does not exist"):
        await grant(establishment="est_missing")
    # The owner of another establishment is no owner here.
    other = await stores.establishments.create(
        cr_number="2050000001", name="Other", sector="retail", size="micro"
    )
    await stores.establishments.add_member(other.id, world.officer, "owner")
    with pytest.raises(Forbidden):
        await grant(grantor=world.officer, grantee_person=world.employee)
    await stores.persons.disable(world.officer)
    with pytest.raises(Conflict, match=f"person {world.officer!r} is disabled"):
        await grant()
    assert await stores.delegations.list(est) == []


BAD_GRANTS: list[tuple[dict[str, Any], str]] = [
    ({"grantee_person": None}, "name exactly one grantee: grantee_person or grantee_client"),
    ({"grantee_client": "cli_x"}, "name exactly one grantee: grantee_person or grantee_client"),
    ({"scopes": []}, "a delegation names at least one scope"),
    ({"scopes": "payroll.read"}, "scopes must be a list of scope names, not one string"),
    ({"scopes": ["pay roll"]}, "invalid scope name: 'pay roll'"),
    ({"valid_until": T0 - DAY}, "valid_until must be in the future"),
    ({"valid_until": T0}, "valid_until must be in the future"),
    ({"valid_until": T0 + MAX_DELEGATION + timedelta(seconds=1)}, "at most 365 days"),
    (
        {"valid_from": T0 + 10 * DAY, "valid_until": T0 + 10 * DAY + MAX_DELEGATION + DAY},
        "a delegation lasts at most 365 days",
    ),
    ({"valid_from": T0 + 2 * DAY}, "valid_until must be after valid_from"),
    ({"valid_from": T0 - timedelta(minutes=6)}, "valid_from must not be in the past"),
    ({"valid_until": datetime(2030, 1, 1)}, "valid_until must be a timezone-aware datetime"),
    ({"valid_from": datetime(2030, 1, 1)}, "valid_from must be a timezone-aware datetime"),
    ({"reason": "x" * 1001}, "reason must be 0 to 1000 characters"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_GRANTS)
def test_bad_delegation_requests_are_refused_before_any_database_work(
    fields: dict[str, Any], message: str
) -> None:
    stores = PeopleStores.on(None, clock=Clock())  # type: ignore[arg-type]
    values: dict[str, Any] = {
        "grantor": "per_owner",
        "grantee_person": "per_officer",
        "scopes": ["payroll.read"],
        "valid_until": T0 + DAY,
        **fields,
    }
    with pytest.raises(InvalidRequest) as caught:
        asyncio.run(stores.delegations.grant("est_x", **values))
    assert message in caught.value.detail


async def test_self_delegation_and_the_exact_year_limit(stores: PeopleStores, world: World) -> None:
    with pytest.raises(InvalidRequest, match="an owner cannot delegate to themselves"):
        await stores.delegations.grant(
            world.establishment,
            grantor=world.owner,
            grantee_person=world.owner,
            scopes=["payroll.read"],
            valid_until=T0 + DAY,
        )
    # A valid_from a moment in the past (a caller's clock behind ours) is accepted as given.
    year = await stores.delegations.grant(
        world.establishment,
        grantor=world.owner,
        grantee_person=world.officer,
        scopes=["payroll.read"],
        valid_from=T0 - timedelta(minutes=1),
        valid_until=T0 - timedelta(minutes=1) + MAX_DELEGATION,
    )
    assert year.valid_until - year.valid_from == MAX_DELEGATION


async def test_ending_a_membership_revokes_the_delegations_resting_on_it(
    stores: PeopleStores, world: World, clock: Clock
) -> None:
    delegations = stores.delegations

    async def grant(**fields: Any) -> Any:
        return await delegations.grant(
            world.establishment,
            grantor=world.owner,
            scopes=["payroll.read"],
            valid_until=clock.now + 30 * DAY,
            **fields,
        )

    to_officer = await grant(grantee_person=world.officer)
    to_client = await grant(grantee_client=world.client)
    clock.advance(DAY)
    await stores.establishments.end_membership(
        world.establishment, world.officer, "hr_officer", actor="admin-token"
    )
    assert await delegations.active_for(world.establishment, world.officer) == []
    assert await delegations.active_for(world.establishment, world.client) == [to_client]
    revoked = await delegations.get(to_officer.id)
    assert revoked is not None
    assert (revoked.revoked_at, revoked.revoked_by) == (T0 + DAY, "admin-token")
    [_, event] = await delegations.events(to_officer.id)
    assert (event.action, event.actor, event.reason) == (
        "revoked",
        "admin-token",
        "membership ended",
    )
    # Back in office, the officer does not get the old delegation back.
    await stores.establishments.add_member(world.establishment, world.officer, "hr_officer")
    assert await delegations.active_for(world.establishment, world.officer) == []

    # The owner leaves: what they granted lapses with them.
    clock.advance(DAY)
    await stores.establishments.end_membership(
        world.establishment, world.owner, actor="admin-token", reason="shares sold"
    )
    assert await delegations.active_for(world.establishment, world.client) == []
    [_, lapsed] = await delegations.events(to_client.id)
    assert (lapsed.action, lapsed.reason, lapsed.at) == ("revoked", "shares sold", T0 + 2 * DAY)
    with pytest.raises(Forbidden):
        await grant(grantee_client=world.client)


async def test_a_disabled_person_holds_no_delegation_from_then_on(
    stores: PeopleStores, world: World, clock: Clock
) -> None:
    granted = await stores.delegations.grant(
        world.establishment,
        grantor=world.owner,
        grantee_person=world.officer,
        scopes=["payroll.read"],
        valid_until=T0 + 10 * DAY,
    )
    clock.advance(DAY)
    await stores.persons.disable(world.owner)
    assert await stores.delegations.active_for(world.establishment, world.officer) == []
    assert await stores.delegations.active_for(
        world.establishment, world.officer, at=T0 + DAY / 2
    ) == [granted]
    with pytest.raises(Forbidden, match="is disabled"):
        await stores.delegations.grant(
            world.establishment,
            grantor=world.owner,
            grantee_person=world.officer,
            scopes=["payroll.read"],
            valid_until=T0 + 5 * DAY,
        )


async def test_the_delegation_audit_trail_cannot_be_rewritten(
    stores: PeopleStores, world: World, db_engine: AsyncEngine
) -> None:
    granted = await stores.delegations.grant(
        world.establishment,
        grantor=world.owner,
        grantee_person=world.officer,
        scopes=["payroll.read"],
        valid_until=T0 + DAY,
    )
    for statement in (
        "UPDATE delegation_events SET actor = 'someone else'",
        "DELETE FROM delegation_events",
    ):
        with pytest.raises(DBAPIError, match="delegation_events is append-only"):
            async with db_engine.begin() as conn:
                await conn.execute(text(statement))
    rows = await _rows(db_engine, "SELECT delegation_id, actor FROM delegation_events")
    assert rows == [{"delegation_id": granted.id, "actor": world.owner}]
