"""The SSO tables on SQLite and PostgreSQL: refresh tokens, consents, and public clients."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.db.client_store import MAX_REDIRECT_URIS, ClientStore, OAuthClient, check_redirect_uris
from hub.db.consent_store import ConsentStore
from hub.db.identity_store import hash_secret
from hub.db.person_store import PersonStore
from hub.db.refresh_store import RefreshToken, RefreshTokenStore
from hub.errors import InvalidGrant, InvalidRequest, NotFound, ReuseDetected
from hub.identity.acr import ACR_MFA

T0 = datetime(2025, 4, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
APP = "https://app.example/cb"


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
def clients(db_engine: AsyncEngine, clock: Clock) -> ClientStore:
    return ClientStore(db_engine, clock=clock)


@pytest.fixture
def tokens(db_engine: AsyncEngine, clock: Clock) -> RefreshTokenStore:
    return RefreshTokenStore(db_engine, clock=clock)


@pytest.fixture
def consents(db_engine: AsyncEngine, clock: Clock) -> ConsentStore:
    return ConsentStore(db_engine, clock=clock)


@pytest.fixture
async def person_id(db_engine: AsyncEngine) -> str:
    person = await PersonStore(db_engine).create(
        kind="citizen", identifier="1000000001", given_name="Sara", family_name="Alharbi"
    )
    return person.id


@pytest.fixture
async def app(clients: ClientStore) -> OAuthClient:
    client, secret = await clients.create(
        "Portal", "hub", "none", ["openid", "profile"], client_type="public", redirect_uris=[APP]
    )
    assert secret is None
    return client


async def _issue(
    tokens: RefreshTokenStore,
    client: OAuthClient,
    person_id: str,
    *,
    family_id: str | None = None,
    sid: str = "sid-1",
    lifetime: timedelta = DAY,
    now: datetime = T0,
) -> tuple[str, RefreshToken]:
    return await tokens.issue(
        client_id=client.client_id,
        person_id=person_id,
        scopes=["openid", "profile"],
        acr=ACR_MFA,
        amr=["pwd", "otp"],
        auth_time=int(now.timestamp()),
        sid=sid,
        family_id=family_id,
        expires_at=now + lifetime,
    )


async def _rows(engine: AsyncEngine, sql: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(row) for row in (await conn.execute(text(sql))).mappings()]


# ---- refresh tokens -------------------------------------------------------------------------


async def test_a_token_is_stored_only_as_its_hash(
    db_engine: AsyncEngine, tokens: RefreshTokenStore, app: OAuthClient, person_id: str
) -> None:
    raw, token = await _issue(tokens, app, person_id)

    assert token.id == hash_secret(raw)
    assert token.scopes == ("openid", "profile")
    assert token.amr == ("pwd", "otp")
    assert token.used_at is None
    assert token.revoked_at is None
    rows = await _rows(db_engine, "SELECT * FROM refresh_tokens")
    assert len(rows) == 1
    assert raw not in repr(rows)
    assert await tokens.get(raw) == token


async def test_rotation_spends_the_token_and_the_successor_continues_the_family(
    tokens: RefreshTokenStore, app: OAuthClient, person_id: str, clock: Clock
) -> None:
    raw, first = await _issue(tokens, app, person_id)
    clock.advance(timedelta(minutes=5))

    spent = await tokens.rotate(raw, app.client_id)
    next_raw, second = await _issue(tokens, app, person_id, family_id=spent.family_id)

    assert spent.id == first.id
    assert spent.used_at == clock.now
    assert second.family_id == first.family_id
    assert (await tokens.rotate(next_raw, app.client_id)).id == second.id


async def test_reuse_of_a_spent_token_revokes_the_whole_family(
    tokens: RefreshTokenStore, app: OAuthClient, person_id: str
) -> None:
    raw, first = await _issue(tokens, app, person_id)
    await tokens.rotate(raw, app.client_id)
    newest_raw, _ = await _issue(tokens, app, person_id, family_id=first.family_id)
    other_raw, _ = await _issue(tokens, app, person_id, sid="sid-2")  # another family

    with pytest.raises(ReuseDetected) as caught:
        await tokens.rotate(raw, app.client_id)
    assert caught.value.code == "refresh_token_reused"
    assert caught.value.status == 400
    assert isinstance(caught.value, InvalidGrant)

    # The newest token of the family stops working too; another family does not.
    with pytest.raises(InvalidGrant, match="revoked"):
        await tokens.rotate(newest_raw, app.client_id)
    newest = await tokens.get(newest_raw)
    assert newest is not None
    assert newest.revoked_at is not None
    await tokens.rotate(other_raw, app.client_id)
    # A further reuse still reads as reuse.
    with pytest.raises(ReuseDetected):
        await tokens.rotate(raw, app.client_id)


async def test_concurrent_rotations_of_one_token_have_exactly_one_winner(
    tokens: RefreshTokenStore, app: OAuthClient, person_id: str
) -> None:
    raw, token = await _issue(tokens, app, person_id)

    results = await asyncio.gather(
        *(tokens.rotate(raw, app.client_id) for _ in range(10)), return_exceptions=True
    )

    winners = [result for result in results if isinstance(result, RefreshToken)]
    assert len(winners) == 1
    assert winners[0].id == token.id
    losers = [result for result in results if not isinstance(result, RefreshToken)]
    assert losers
    assert all(isinstance(loser, ReuseDetected) for loser in losers)


async def test_unknown_expired_and_foreign_tokens_are_invalid_grants(
    tokens: RefreshTokenStore, clients: ClientStore, app: OAuthClient, person_id: str, clock: Clock
) -> None:
    other, _ = await clients.create(
        "Other", "hub", "none", ["openid"], client_type="public", redirect_uris=[APP]
    )
    raw, _ = await _issue(tokens, app, person_id, lifetime=timedelta(hours=1))

    for bad in ("", "nope", "x" * 500):
        with pytest.raises(InvalidGrant, match="unknown"):
            await tokens.rotate(bad, app.client_id)
    with pytest.raises(InvalidGrant, match="unknown"):
        await tokens.rotate(raw, other.client_id)
    # ...and the owner's token is unharmed by another client's attempt.
    clock.advance(timedelta(hours=1))
    with pytest.raises(InvalidGrant, match="expired") as caught:
        await tokens.rotate(raw, app.client_id)
    assert type(caught.value) is InvalidGrant


async def test_issue_refuses_a_past_or_naive_expiry(
    tokens: RefreshTokenStore, app: OAuthClient, person_id: str
) -> None:
    with pytest.raises(InvalidRequest):
        await _issue(tokens, app, person_id, lifetime=timedelta(0))
    with pytest.raises(InvalidRequest):
        await tokens.issue(
            client_id=app.client_id,
            person_id=person_id,
            scopes=["openid"],
            acr=ACR_MFA,
            amr=["pwd"],
            auth_time=0,
            sid=None,
            expires_at=datetime(2030, 1, 1),  # naive: the point of the test
        )


async def test_revoke_ends_the_family_for_its_own_client_only(
    tokens: RefreshTokenStore, clients: ClientStore, app: OAuthClient, person_id: str
) -> None:
    other, _ = await clients.create(
        "Other", "hub", "none", ["openid"], client_type="public", redirect_uris=[APP]
    )
    raw, _ = await _issue(tokens, app, person_id)

    assert await tokens.revoke(raw, other.client_id) is False
    assert await tokens.revoke("nope", app.client_id) is False
    assert await tokens.revoke(raw, app.client_id) is True
    with pytest.raises(InvalidGrant, match="revoked"):
        await tokens.rotate(raw, app.client_id)


async def test_revoke_family_and_revoke_session(
    tokens: RefreshTokenStore, app: OAuthClient, person_id: str
) -> None:
    a_raw, a = await _issue(tokens, app, person_id, sid="sid-a")
    b1_raw, _ = await _issue(tokens, app, person_id, sid="sid-b")
    b2_raw, _ = await _issue(tokens, app, person_id, sid="sid-b")

    assert await tokens.revoke_session("sid-b") == 2
    assert await tokens.revoke_session("sid-b") == 0
    for raw in (b1_raw, b2_raw):
        with pytest.raises(InvalidGrant):
            await tokens.rotate(raw, app.client_id)

    assert await tokens.revoke_family(a.family_id) == 1
    with pytest.raises(InvalidGrant):
        await tokens.rotate(a_raw, app.client_id)


# ---- consents -------------------------------------------------------------------------------


async def test_consents_accumulate_and_are_revoked(
    consents: ConsentStore, app: OAuthClient, person_id: str, clock: Clock
) -> None:
    assert await consents.granted(person_id, app.client_id) == frozenset()

    assert await consents.grant(person_id, app.client_id, ["profile"]) == {"profile"}
    clock.advance(timedelta(minutes=1))
    assert await consents.grant(person_id, app.client_id, ["email", "profile"]) == {
        "profile",
        "email",
    }
    assert await consents.granted(person_id, app.client_id) == {"profile", "email"}

    [consent] = await consents.list_for(person_id)
    assert consent.client_id == app.client_id
    assert consent.granted_at == T0
    assert consent.updated_at == clock.now

    assert await consents.revoke(person_id, app.client_id) is True
    assert await consents.revoke(person_id, app.client_id) is False
    assert await consents.granted(person_id, app.client_id) == frozenset()
    assert await consents.list_for(person_id) == []


async def test_concurrent_grants_keep_every_scope(
    consents: ConsentStore, app: OAuthClient, person_id: str
) -> None:
    scopes = [f"s{n}" for n in range(8)]
    await asyncio.gather(*(consents.grant(person_id, app.client_id, [s]) for s in scopes))
    assert await consents.granted(person_id, app.client_id) == frozenset(scopes)


async def test_a_consent_names_existing_scopes_only(
    consents: ConsentStore, app: OAuthClient, person_id: str
) -> None:
    with pytest.raises(InvalidRequest):
        await consents.grant(person_id, app.client_id, "profile email")
    with pytest.raises(InvalidRequest):
        await consents.grant(person_id, app.client_id, ["pro file"])


# ---- clients: SSO fields and their checks ---------------------------------------------------


async def test_existing_callers_get_todays_confidential_client(clients: ClientStore) -> None:
    client, secret = await clients.create("Payroll", "vendor:p", "client_secret_basic", ["a"])

    assert secret is not None
    assert client.client_type == "confidential"
    assert client.grant_types == ("client_credentials",)
    assert client.redirect_uris == ()
    assert client.post_logout_redirect_uris == ()
    assert client.first_party is False


async def test_a_public_client_is_registered_with_its_uris(clients: ClientStore) -> None:
    client, secret = await clients.create(
        "Portal",
        "hub",
        "none",
        ["openid"],
        client_type="public",
        redirect_uris=[APP, "http://127.0.0.1:8123/cb", "http://[::1]/cb", APP],
        post_logout_redirect_uris=["https://app.example/bye"],
        first_party=True,
    )

    assert secret is None
    assert client.auth_method == "none"
    assert client.grant_types == ("authorization_code", "refresh_token")
    assert client.redirect_uris == (APP, "http://127.0.0.1:8123/cb", "http://[::1]/cb")
    assert client.post_logout_redirect_uris == ("https://app.example/bye",)
    assert client.first_party is True
    assert await clients.get(client.client_id) == client


async def test_a_confidential_client_may_use_the_code_flow(clients: ClientStore) -> None:
    client, secret = await clients.create(
        "Web",
        "vendor:w",
        "client_secret_basic",
        ["openid"],
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
        redirect_uris=["http://localhost:3000/cb"],
    )
    assert secret is not None
    assert client.grant_types == ("authorization_code", "refresh_token", "client_credentials")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"auth_method": "client_secret_basic"}, "public client authenticates with"),
        ({"redirect_uris": []}, "at least one redirect URI"),
        ({"grant_types": ["client_credentials"]}, "client_credentials"),
        ({"grant_types": ["implicit"]}, "unsupported grant types"),
        ({"grant_types": "authorization_code"}, "not one string"),
        ({"client_type": "hybrid"}, "confidential or public"),
        ({"jwks": {"keys": [{"kty": "RSA"}]}}, "no jwks"),
        ({"first_party": "yes"}, "first_party must be true or false"),
    ],
)
async def test_public_client_refusals(
    clients: ClientStore, changes: dict[str, Any], message: str
) -> None:
    values: dict[str, Any] = {
        "name": "Portal",
        "owner": "hub",
        "auth_method": "none",
        "scopes": ["openid"],
        "client_type": "public",
        "redirect_uris": [APP],
        **changes,
    }
    with pytest.raises(InvalidRequest, match=message) as caught:
        await clients.create(**values)
    assert caught.value.status == 400
    assert await clients.list() == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"auth_method": "none"}, "confidential client must authenticate"),
        ({"grant_types": ["authorization_code"]}, "needs at least one redirect URI"),
        ({"grant_types": ["password"]}, "unsupported grant types"),
    ],
)
async def test_confidential_client_refusals(
    clients: ClientStore, changes: dict[str, Any], message: str
) -> None:
    values: dict[str, Any] = {
        "name": "Web",
        "owner": "vendor:w",
        "auth_method": "client_secret_basic",
        "scopes": ["openid"],
        **changes,
    }
    with pytest.raises(InvalidRequest, match=message):
        await clients.create(**values)
    assert await clients.list() == []


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("http://app.example/cb", "http is allowed only for loopback"),
        ("http://127.0.0.2/cb", "http is allowed only for loopback"),
        ("https://app.example/cb#frag", "fragment"),
        ("https://app.example/cb#", "fragment"),
        ("https://*.example/cb", "wildcards"),
        ("https://app.example/*", "wildcards"),
        ("/cb", "absolute"),
        ("app.example/cb", "absolute"),
        ("custom-scheme:/cb", "absolute"),
        ("javascript://app.example/%0aalert(1)", "absolute"),
        ("https://user:pw@app.example/cb", "credentials"),
        ("https://app.example/c b", "whitespace"),
        ("https://app.example:99999/cb", "not a valid URI"),
        ("https://app.example/" + "a" * 500, "longer than 512"),
        ("", "non-empty"),
    ],
)
def test_redirect_uri_refusals(uri: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        check_redirect_uris([uri])


def test_redirect_uri_limits() -> None:
    many = [f"https://app.example/cb{n}" for n in range(MAX_REDIRECT_URIS + 1)]
    with pytest.raises(InvalidRequest, match="at most 10"):
        check_redirect_uris(many)
    with pytest.raises(InvalidRequest, match="not one string"):
        check_redirect_uris(APP)
    assert check_redirect_uris(many[:MAX_REDIRECT_URIS]) == many[:MAX_REDIRECT_URIS]
    exactly = "https://app.example/" + "a" * (512 - len("https://app.example/"))
    assert check_redirect_uris([exactly]) == [exactly]


async def test_post_logout_uris_are_checked_the_same_way(clients: ClientStore) -> None:
    with pytest.raises(InvalidRequest, match="post_logout_redirect_uris"):
        await clients.create(
            "Portal",
            "hub",
            "none",
            ["openid"],
            client_type="public",
            redirect_uris=[APP],
            post_logout_redirect_uris=["http://app.example/bye"],
        )


async def test_redirect_uris_are_updated_and_checked(
    clients: ClientStore, app: OAuthClient
) -> None:
    updated = await clients.update_redirect_uris(
        app.client_id, ["https://app.example/new"], ["https://app.example/bye"]
    )
    assert updated.redirect_uris == ("https://app.example/new",)
    assert updated.post_logout_redirect_uris == ("https://app.example/bye",)

    kept = await clients.update_redirect_uris(app.client_id, post_logout_redirect_uris=[])
    assert kept.redirect_uris == ("https://app.example/new",)
    assert kept.post_logout_redirect_uris == ()
    assert await clients.get(app.client_id) == kept

    with pytest.raises(InvalidRequest, match="at least one redirect URI"):
        await clients.update_redirect_uris(app.client_id, [])
    with pytest.raises(InvalidRequest, match="fragment"):
        await clients.update_redirect_uris(app.client_id, ["https://app.example/#x"])
    with pytest.raises(NotFound):
        await clients.update_redirect_uris("cli_0000000000000000", [APP])
    assert await clients.get(app.client_id) == kept


async def test_a_code_flow_client_keeps_a_redirect_uri(clients: ClientStore) -> None:
    web, _ = await clients.create(
        "Web",
        "vendor:w",
        "client_secret_basic",
        ["openid"],
        grant_types=["authorization_code"],
        redirect_uris=[APP],
    )
    with pytest.raises(InvalidRequest, match="needs at least one redirect URI"):
        await clients.update_redirect_uris(web.client_id, [])
    machine, _ = await clients.create("M2M", "vendor:m", "client_secret_basic", ["a"])
    assert (await clients.update_redirect_uris(machine.client_id, [])).redirect_uris == ()


async def test_the_database_refuses_a_confidential_client_without_authentication(
    db_engine: AsyncEngine, clients: ClientStore, app: OAuthClient
) -> None:
    # The store checks this first; the CHECK constraint is the last line of defence.
    with pytest.raises(IntegrityError):
        async with db_engine.begin() as conn:
            await conn.execute(
                text("UPDATE oauth_clients SET client_type = 'confidential' WHERE client_id = :c"),
                {"c": app.client_id},
            )
