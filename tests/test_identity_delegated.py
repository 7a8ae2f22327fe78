"""Delegated vendor tokens at the token endpoint, and people's affiliations, on both databases.

A vendor application asks ``client_credentials`` with ``establishment=<CR number | est_ id>``;
the hub answers with a token carrying the establishment, the delegation and the delegated
scopes only when an active delegation from that establishment to that client exists.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.auth.affiliations import Affiliations
from hub.db.delegation_store import Delegation
from hub.db.engine import create_engine
from hub.db.identity_store import AssertionLedger, ClientStore, RevocationStore, StoredKey
from hub.db.people_store import Establishment, PeopleStores, Person
from hub.db.person_store import PersonStore
from hub.db.refresh_store import RefreshTokenStore
from hub.identity.delegated import choose_delegation
from hub.identity.directory import Directory
from hub.identity.endpoints import identity_router
from hub.identity.keys import KeyRing, generate_key
from hub.problems import problem_details_plugin
from hub.settings import Settings

ISSUER = "https://hub.test"
CR, OTHER_CR = "4030000001", "4030000002"
REGISTERED = ("records.read", "records.write", "catalog.read")


@dataclass(frozen=True, slots=True)
class Identity:
    clients: ClientStore
    ledger: AssertionLedger
    revocations: RevocationStore
    persons: PersonStore
    refresh_tokens: RefreshTokenStore


@pytest.fixture(scope="module")
def access_key() -> StoredKey:
    epoch = datetime(2020, 1, 1, tzinfo=UTC)
    return generate_key("access", created_at=epoch, activates_at=epoch)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(issuer=ISSUER, database_url=database_url)


@pytest.fixture
def keyring(access_key: StoredKey, settings: Settings) -> KeyRing:
    return KeyRing([access_key], settings)


@pytest.fixture
async def client(
    db_engine: AsyncEngine, settings: Settings, keyring: KeyRing
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    del db_engine  # requested for the migration

    @asynccontextmanager
    async def own_stores(app: Litestar) -> AsyncIterator[None]:
        # asyncpg connections belong to one event loop: the loop that serves the app.
        engine = create_engine(settings.database_url)
        app.state.identity = Identity(
            clients=ClientStore(engine),
            ledger=AssertionLedger(engine),
            revocations=RevocationStore(engine),
            persons=PersonStore(engine),
            refresh_tokens=RefreshTokenStore(engine),
        )
        app.state.directory = Directory(PeopleStores.on(engine))
        try:
            yield
        finally:
            await engine.dispose()

    app = Litestar(
        route_handlers=[identity_router()],
        plugins=[problem_details_plugin()],
        lifespan=[own_stores],
        logging_config=None,
    )
    app.state.settings = settings
    app.state.keyring = keyring
    async with AsyncTestClient(app, base_url=ISSUER) as test_client:
        yield test_client


@dataclass(frozen=True, slots=True)
class World:
    people: PeopleStores
    owner: Person
    officer: Person
    establishment: Establishment
    other: Establishment
    vendor: str
    secret: str
    stranger: str
    stranger_secret: str


async def _person(people: PeopleStores, identifier: str, name: str) -> Person:
    return await people.persons.create(
        kind="citizen",
        identifier=identifier,
        given_name=name,
        family_name="Tester",
        email=f"{identifier}@example.org",
    )


@pytest.fixture
async def world(db_engine: AsyncEngine) -> World:
    people = PeopleStores.on(db_engine)
    clients = ClientStore(db_engine)
    owner = await _person(people, "1000000001", "Owner")
    officer = await _person(people, "1000000002", "Officer")
    establishment = await people.establishments.create(
        cr_number=CR, name="Trading Co", sector="retail", size="small"
    )
    other = await people.establishments.create(
        cr_number=OTHER_CR, name="Other Co", sector="retail", size="small"
    )
    await people.establishments.add_member(establishment.id, owner.id, "owner")
    await people.establishments.add_member(other.id, owner.id, "owner")
    await people.establishments.add_member(establishment.id, officer.id, "hr_officer")
    vendor, secret = await clients.create("HR suite", "acme", "client_secret_basic", REGISTERED)
    stranger, stranger_secret = await clients.create(
        "Other suite", "other", "client_secret_basic", REGISTERED
    )
    assert secret is not None
    assert stranger_secret is not None
    return World(
        people=people,
        owner=owner,
        officer=officer,
        establishment=establishment,
        other=other,
        vendor=vendor.client_id,
        secret=secret,
        stranger=stranger.client_id,
        stranger_secret=stranger_secret,
    )


async def _delegate(
    world: World,
    scopes: tuple[str, ...] = ("records.read", "records.write"),
    *,
    to: str | None = None,
    days: int = 30,
    establishment: Establishment | None = None,
) -> Delegation:
    return await world.people.delegations.grant(
        (establishment or world.establishment).id,
        grantor=world.owner.id,
        scopes=scopes,
        valid_until=datetime.now(UTC) + timedelta(days=days),
        grantee_client=to or world.vendor,
    )


async def _token(
    client: AsyncTestClient[Litestar], world: World, *, vendor: bool = True, **form: str
) -> Any:
    auth = (world.vendor, world.secret) if vendor else (world.stranger, world.stranger_secret)
    return await client.post(
        "/oauth2/token", data={"grant_type": "client_credentials", **form}, auth=auth
    )


def _claims(body: dict[str, Any]) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(body["access_token"], options={"verify_signature": False})
    return claims


def _error(response: Any, error: str) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == error
    assert "access_token" not in body
    description: str = body["error_description"]
    return description


async def test_an_active_delegation_gives_a_token_acting_for_the_establishment(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    delegation = await _delegate(world)

    for reference in (CR, world.establishment.id):
        response = await _token(client, world, establishment=reference)
        assert response.status_code == 200, response.text
        body = response.json()
        # no scope asked: the client's registered scopes the delegation grants, no more
        assert body["scope"] == "records.read records.write"
        claims = _claims(body)
        assert claims["sub"] == world.vendor
        assert claims["kind"] == "client"
        assert claims["establishment"] == world.establishment.id
        assert claims["delegation"] == delegation.id
        assert claims["delegations"] == [delegation.id]
        assert claims["delegated_scopes"] == [
            f"{world.establishment.id}:records.read",
            f"{world.establishment.id}:records.write",
        ]
        # which commercial registration it acts for, by the hub's register (CR is that number)
        assert claims["registrations"] == [f"{world.establishment.id}:{CR}"]
        assert claims["exp"] - claims["iat"] == 300


async def test_the_scope_is_the_intersection_and_beyond_it_is_invalid_scope(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    await _delegate(world, ("records.read",))

    narrowed = await _token(client, world, establishment=CR, scope="records.read")
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["scope"] == "records.read"

    # registered for the client, but not delegated
    beyond = await _token(client, world, establishment=CR, scope="records.read records.write")
    assert _error(beyond, "invalid_scope") == "the delegation does not grant: records.write"
    # not even registered for the client
    unregistered = await _token(client, world, establishment=CR, scope="visas.apply")
    assert _error(unregistered, "invalid_scope") == "the client may not request: visas.apply"

    # without an establishment the client keeps its own scopes and acts for nobody
    own = await _token(client, world, scope="catalog.read")
    assert own.status_code == 200
    assert not {"establishment", "delegation", "delegated_scopes"} & set(_claims(own.json()))


async def test_no_delegation_no_token_worded_alike(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    await _delegate(world)
    refusals = [
        await _token(client, world, establishment=OTHER_CR),  # not delegated
        await _token(client, world, establishment="4039999999"),  # no such establishment
        await _token(client, world, establishment="est_doesnotexist"),
        await _token(client, world, establishment="not a reference"),
        await _token(client, world, vendor=False, establishment=CR),  # delegated to another
    ]
    descriptions = {_error(response, "invalid_grant") for response in refusals}
    assert descriptions == {"no active delegation from that establishment to this client"}
    empty = await _token(client, world, establishment="")
    assert _error(empty, "invalid_request").startswith("establishment must be")


async def test_a_revoked_delegation_stops_new_tokens_at_once(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    delegation = await _delegate(world)
    assert (await _token(client, world, establishment=CR)).status_code == 200
    await world.people.delegations.revoke(delegation.id, by=world.owner.id, reason="ended")
    refused = await _token(client, world, establishment=CR)
    assert _error(refused, "invalid_grant").startswith("no active delegation")


async def test_an_expired_delegation_gives_no_token(
    client: AsyncTestClient[Litestar], world: World, db_engine: AsyncEngine
) -> None:
    # Granted in the past (the store's clock), so its window is over by now.
    past = datetime.now(UTC) - timedelta(days=40)
    earlier = PeopleStores.on(db_engine, clock=lambda: past)
    await earlier.delegations.grant(
        world.establishment.id,
        grantor=world.owner.id,
        scopes=["records.read"],
        valid_until=past + timedelta(days=30),
        grantee_client=world.vendor,
    )
    refused = await _token(client, world, establishment=CR)
    assert _error(refused, "invalid_grant").startswith("no active delegation")
    # a fresh one alongside the expired one works again
    fresh = await _delegate(world, ("records.read",))
    answer = await _token(client, world, establishment=CR)
    assert answer.status_code == 200
    assert _claims(answer.json())["delegation"] == fresh.id


async def test_a_disabled_grantor_ends_the_delegation(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    await _delegate(world)
    await world.people.persons.disable(world.owner.id)
    refused = await _token(client, world, establishment=CR)
    assert _error(refused, "invalid_grant").startswith("no active delegation")


async def test_a_persons_affiliations_as_the_directory_reads_them(world: World) -> None:
    officer_delegation = await world.people.delegations.grant(
        world.establishment.id,
        grantor=world.owner.id,
        scopes=["records.read"],
        valid_until=datetime.now(UTC) + timedelta(days=30),
        grantee_person=world.officer.id,
    )
    await world.people.staff.grant(world.owner.id, "platform_admin")
    directory = Directory(world.people, cache_seconds=60)

    owner = await directory.person(world.owner.id)
    assert owner.roles == {"platform_admin"}
    assert owner.memberships == {
        f"{world.establishment.id}:owner",
        f"{world.other.id}:owner",
    }
    assert not owner.delegated_scopes
    assert owner.national_id == world.owner.identifier
    # The CR number of every establishment they belong to, from the hub's register.
    assert owner.registrations == {
        f"{world.establishment.id}:{world.establishment.cr_number}",
        f"{world.other.id}:{world.other.cr_number}",
    }

    officer = await directory.cached_person(world.officer.id)
    assert officer == Affiliations(
        memberships=frozenset({f"{world.establishment.id}:hr_officer"}),
        delegated_scopes=frozenset({f"{world.establishment.id}:records.read"}),
        delegations=frozenset({officer_delegation.id}),
        registrations=frozenset({f"{world.establishment.id}:{world.establishment.cr_number}"}),
        national_id=world.officer.identifier,
    )
    # Cached for sessions: a revocation shows after forget() (or the cache time), not before.
    await world.people.delegations.revoke(officer_delegation.id, by=world.owner.id, reason="x")
    assert await directory.cached_person(world.officer.id) == officer
    directory.forget(world.officer.id)
    assert not (await directory.cached_person(world.officer.id)).delegated_scopes
    assert await directory.revoked_delegations(datetime.now(UTC) - timedelta(minutes=1)) == [
        officer_delegation.id
    ]


def _delegation(ident: str, scopes: tuple[str, ...], days: int) -> Delegation:
    now = datetime.now(UTC)
    return Delegation(
        id=ident,
        establishment_id="est_1",
        grantor="per_1",
        grantee_person=None,
        grantee_client="c",
        scopes=scopes,
        valid_from=now,
        valid_until=now + timedelta(days=days),
        created_at=now,
        revoked_at=None,
        revoked_by=None,
    )


def test_the_longest_lasting_delegation_granting_every_asked_scope_is_chosen() -> None:
    short = _delegation("del_short", ("a", "b"), 10)
    long = _delegation("del_long", ("a",), 100)
    assert choose_delegation([short, long], ["a"], ["a", "b"]).delegation.id == "del_long"
    assert choose_delegation([short, long], ["a", "b"], ["a", "b"]).delegation.id == "del_short"
    # nothing asked: the longest one, with the registered scopes it grants
    chosen = choose_delegation([short, long], [], ["a", "b"])
    assert (chosen.delegation.id, chosen.scopes) == ("del_long", ("a",))
    split = [_delegation("del_1", ("a",), 10), _delegation("del_2", ("b",), 10)]
    with pytest.raises(Exception, match="no single delegation"):
        choose_delegation(split, ["a", "b"], ["a", "b"])


async def test_introspection_says_for_whom_and_a_revoked_delegation_makes_it_inactive(
    client: AsyncTestClient[Litestar], world: World
) -> None:
    delegation = await _delegate(world)
    token = (await _token(client, world, establishment=CR)).json()["access_token"]
    auth = (world.vendor, world.secret)

    live = await client.post("/oauth2/introspect", data={"token": token}, auth=auth)
    assert live.status_code == 200, live.text
    body = live.json()
    assert body["active"] is True
    assert (body["establishment"], body["delegation"]) == (world.establishment.id, delegation.id)

    await world.people.delegations.revoke(delegation.id, by=world.owner.id, reason="ended")
    dead = await client.post("/oauth2/introspect", data={"token": token}, auth=auth)
    assert dead.json() == {"active": False}
