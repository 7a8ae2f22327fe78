"""Identity storage on SQLite and PostgreSQL: clients, API keys, assertion ledger, revocations."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.db.engine import create_engine
from hub.db.identity_store import (
    ApiKeyStore,
    AssertionLedger,
    ClientStore,
    RevocationStore,
    api_key_prefix,
    hash_secret,
    secret_matches,
)
from hub.errors import Conflict, HubError, InvalidClient, InvalidRequest, NotFound

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
PUBLIC_JWKS = {
    "keys": [
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
            "kid": "vendor-1",
        }
    ]
}


class Clock:
    """A settable clock for the stores."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def _raw_rows(engine: AsyncEngine, table: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(text(f"SELECT * FROM {table}"))
        return [dict(row) for row in result.mappings()]


async def _count(engine: AsyncEngine, table: str) -> int:
    return len(await _raw_rows(engine, table))


# --- OAuth clients -----------------------------------------------------------------------------


async def test_a_secret_client_gets_its_secret_once_and_only_the_hash_is_stored(
    db_engine: AsyncEngine, clock: Clock
) -> None:
    store = ClientStore(db_engine, clock=clock)

    client, secret = await store.create(
        "Payroll Co", "vendor:payroll", "client_secret_basic", ["payroll.read", "payroll.write"]
    )

    assert secret is not None
    assert len(secret) >= 43  # 32 random bytes, base64url
    assert re.fullmatch(r"cli_[0-9a-f]{16}", client.client_id)
    assert client.auth_method == "client_secret_basic"
    assert client.scopes == ("payroll.read", "payroll.write")
    assert client.grant_types == ("client_credentials",)
    assert client.created_at == T0
    assert client.disabled_at is None
    assert client.jwks is None
    assert client.secret_hash == hash_secret(secret)
    assert secret_matches(secret, client.secret_hash)
    assert not secret_matches(secret + "x", client.secret_hash)
    assert await store.get(client.client_id) == client

    (row,) = await _raw_rows(db_engine, "oauth_clients")
    assert secret not in repr(row)
    assert row["secret_hash"] == hash_secret(secret)


async def test_a_private_key_jwt_client_registers_public_keys_and_has_no_secret(
    db_engine: AsyncEngine,
) -> None:
    store = ClientStore(db_engine)

    client, secret = await store.create(
        "Clinic", "vendor:clinic", "private_key_jwt", ["health.read"], jwks=PUBLIC_JWKS
    )

    assert secret is None
    assert client.secret_hash is None
    assert client.jwks == PUBLIC_JWKS
    assert await store.get(client.client_id) == client
    with pytest.raises(Conflict):
        await store.rotate_secret(client.client_id)


@pytest.mark.parametrize(
    ("method", "jwks", "message"),
    [
        ("private_key_jwt", None, "must register its public jwks"),
        ("private_key_jwt", {"keys": []}, "at least one key"),
        ("private_key_jwt", {"keys": [{"kid": "no-kty"}]}, "with a kty"),
        (
            "private_key_jwt",
            {"keys": [{**PUBLIC_JWKS["keys"][0], "d": "c2VjcmV0"}]},
            "private or symmetric",
        ),
        ("private_key_jwt", {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, "private or symmetric"),
        ("client_secret_basic", PUBLIC_JWKS, "registers no jwks"),
        ("client_secret_jwt", None, "unsupported client authentication method"),
    ],
)
async def test_a_client_with_unusable_credentials_is_refused(
    db_engine: AsyncEngine, method: Any, jwks: dict[str, Any] | None, message: str
) -> None:
    store = ClientStore(db_engine)
    with pytest.raises(InvalidRequest, match=message):
        await store.create("x", "vendor:x", method, ["a"], jwks=jwks)
    assert await store.list() == []


async def test_a_scope_list_and_labels_are_checked(db_engine: AsyncEngine) -> None:
    store = ClientStore(db_engine)
    with pytest.raises(InvalidRequest, match="name must be 1 to 200"):
        await store.create("x" * 201, "vendor:x", "client_secret_basic", ["a"])
    with pytest.raises(InvalidRequest, match="owner must be 1 to 200"):
        await store.create("x", " ", "client_secret_basic", ["a"])
    with pytest.raises(InvalidRequest, match="name must be 1 to 200"):
        await ApiKeyStore(db_engine).create("", ["a"])
    with pytest.raises(InvalidRequest, match="list of scope names"):
        await store.create("x", "vendor:x", "client_secret_basic", "a b")
    with pytest.raises(InvalidRequest, match="invalid scope name"):
        await store.create("x", "vendor:x", "client_secret_basic", ["a b"])


async def test_rotating_a_secret_replaces_it_and_stores_only_the_new_hash(
    db_engine: AsyncEngine,
) -> None:
    store = ClientStore(db_engine)
    client, old = await store.create("Payroll", "vendor:payroll", "client_secret_basic", ["a"])
    assert old is not None

    new = await store.rotate_secret(client.client_id)

    rotated = await store.get(client.client_id)
    assert rotated is not None
    assert rotated.secret_hash is not None
    assert new != old
    assert secret_matches(new, rotated.secret_hash)
    assert not secret_matches(old, rotated.secret_hash)
    (row,) = await _raw_rows(db_engine, "oauth_clients")
    assert new not in repr(row)
    assert old not in repr(row)


async def test_disabling_a_client_is_dated_once_and_stops_secret_rotation(
    db_engine: AsyncEngine, clock: Clock
) -> None:
    store = ClientStore(db_engine, clock=clock)
    client, _ = await store.create("Payroll", "vendor:payroll", "client_secret_basic", ["a"])

    clock.advance(60)
    await store.disable(client.client_id)
    clock.advance(60)
    await store.disable(client.client_id)

    disabled = await store.get(client.client_id)
    assert disabled is not None
    assert disabled.disabled_at == T0 + timedelta(seconds=60)
    with pytest.raises(Conflict, match="disabled"):
        await store.rotate_secret(client.client_id)


async def test_unknown_clients(db_engine: AsyncEngine) -> None:
    store = ClientStore(db_engine)
    assert await store.get("cli_0000000000000000") is None
    with pytest.raises(NotFound):
        await store.disable("cli_0000000000000000")
    with pytest.raises(NotFound):
        await store.rotate_secret("cli_0000000000000000")


async def test_clients_are_listed_oldest_first(db_engine: AsyncEngine, clock: Clock) -> None:
    store = ClientStore(db_engine, clock=clock)
    first, _ = await store.create("A", "vendor:a", "client_secret_basic", ["a"])
    clock.advance(1)
    second, _ = await store.create(
        "B", "vendor:b", "private_key_jwt", ["b"], jwks=PUBLIC_JWKS, grant_types=["refresh_token"]
    )

    assert await store.list() == [first, second]
    assert second.grant_types == ("refresh_token",)


# --- API keys ----------------------------------------------------------------------------------


async def test_an_api_key_is_shown_once_and_stored_as_prefix_and_hash(
    db_engine: AsyncEngine, clock: Clock
) -> None:
    store = ApiKeyStore(db_engine, clock=clock)
    expires = T0 + timedelta(days=90)

    record, plaintext = await store.create("reporting", ["reports.read"], expires_at=expires)

    match = re.fullmatch(r"hub_([0-9a-f]{10})_([A-Za-z0-9_-]{43})", plaintext)
    assert match is not None
    assert record.prefix == match[1] == api_key_prefix(plaintext)
    assert re.fullmatch(r"[0-9a-f]{32}", record.id)
    assert record.secret_hash == hash_secret(plaintext)
    assert record.scopes == ("reports.read",)
    assert record.client_id is None
    assert record.created_at == T0
    assert record.expires_at == expires
    assert record.revoked_at is None
    assert await store.by_prefix(record.prefix) == record

    (row,) = await _raw_rows(db_engine, "api_keys")
    assert plaintext not in repr(row)
    assert match[2] not in repr(row)


def test_api_key_prefix_recognises_only_the_hub_format() -> None:
    assert api_key_prefix("hub_0123456789_" + "a" * 43) == "0123456789"
    assert api_key_prefix("hub_0123456789_short") is None
    assert api_key_prefix("hub_012345678Z_" + "a" * 43) is None
    assert api_key_prefix("sk_0123456789_" + "a" * 43) is None
    assert api_key_prefix("hub_0123456789_" + "a" * 43 + "\n") is None


async def test_an_api_key_may_belong_to_an_existing_client(db_engine: AsyncEngine) -> None:
    clients = ClientStore(db_engine)
    keys = ApiKeyStore(db_engine)
    client, _ = await clients.create("Payroll", "vendor:payroll", "client_secret_basic", ["a"])

    record, _ = await keys.create("payroll key", ["a"], client_id=client.client_id)

    assert record.client_id == client.client_id
    with pytest.raises(NotFound, match="client"):
        await keys.create("stray", ["a"], client_id="cli_0000000000000000")
    assert await keys.list() == [record]


async def test_revoking_an_api_key_is_dated_once(db_engine: AsyncEngine, clock: Clock) -> None:
    store = ApiKeyStore(db_engine, clock=clock)
    record, _ = await store.create("k", ["a"])

    clock.advance(5)
    await store.revoke(record.id)
    clock.advance(5)
    await store.revoke(record.id)

    revoked = await store.by_prefix(record.prefix)
    assert revoked is not None
    assert revoked.revoked_at == T0 + timedelta(seconds=5)
    with pytest.raises(Conflict, match="revoked"):
        await store.rotate(record.id)
    with pytest.raises(NotFound):
        await store.revoke("0" * 32)


async def test_rotating_an_api_key_keeps_its_id_and_retires_the_old_key(
    db_engine: AsyncEngine,
) -> None:
    store = ApiKeyStore(db_engine)
    record, old = await store.create("k", ["a", "b"])

    rotated, new = await store.rotate(record.id)

    assert rotated.id == record.id
    assert rotated.scopes == record.scopes
    assert rotated.prefix != record.prefix
    assert rotated.prefix == api_key_prefix(new)
    assert secret_matches(new, rotated.secret_hash)
    assert not secret_matches(old, rotated.secret_hash)
    assert await store.by_prefix(record.prefix) is None
    assert await store.by_prefix(rotated.prefix) == rotated
    (row,) = await _raw_rows(db_engine, "api_keys")
    assert new not in repr(row)
    with pytest.raises(NotFound):
        await store.rotate("0" * 32)


def _prefixes(*values: str) -> Iterator[str]:
    yield from values


async def test_a_prefix_collision_draws_a_new_prefix(db_engine: AsyncEngine) -> None:
    prefixes = _prefixes("aaaaaaaaaa", "aaaaaaaaaa", "bbbbbbbbbb", "aaaaaaaaaa", "cccccccccc")
    store = ApiKeyStore(db_engine, new_prefix=lambda: next(prefixes))

    first, _ = await store.create("one", ["a"])
    second, _ = await store.create("two", ["a"])
    rotated, _ = await store.rotate(second.id)

    assert (first.prefix, second.prefix, rotated.prefix) == (
        "aaaaaaaaaa",
        "bbbbbbbbbb",
        "cccccccccc",
    )


async def test_a_prefix_that_always_collides_gives_up(db_engine: AsyncEngine) -> None:
    store = ApiKeyStore(db_engine, new_prefix=lambda: "aaaaaaaaaa")
    await store.create("one", ["a"])
    with pytest.raises(HubError, match="unique API key prefix"):
        await store.create("two", ["a"])
    assert await _count(db_engine, "api_keys") == 1


# --- assertion ledger --------------------------------------------------------------------------


async def test_an_assertion_jti_is_accepted_once_per_client(
    db_engine: AsyncEngine, clock: Clock
) -> None:
    ledger = AssertionLedger(db_engine, clock=clock)
    expires = T0 + timedelta(seconds=60)

    assert await ledger.use_once("jti-1", "cli_a", expires) is True
    assert await ledger.use_once("jti-1", "cli_a", expires) is False
    # Another client's jti space is its own: it cannot burn cli_a's values in advance.
    assert await ledger.use_once("jti-1", "cli_b", expires) is True


async def test_concurrent_replays_let_exactly_one_through(db_engine: AsyncEngine) -> None:
    ledger = AssertionLedger(db_engine)
    expires = datetime.now(UTC) + timedelta(seconds=60)

    results = await asyncio.gather(*(ledger.use_once("race", "cli_a", expires) for _ in range(10)))

    assert sorted(results) == [False] * 9 + [True]


async def test_replicas_racing_on_one_jti_let_exactly_one_through(
    db_engine: AsyncEngine, database_url: str
) -> None:
    other = create_engine(database_url)
    try:
        expires = datetime.now(UTC) + timedelta(seconds=60)
        ledgers = [AssertionLedger(db_engine), AssertionLedger(other)] * 4
        results = await asyncio.gather(
            *(ledger.use_once("race", "c", expires) for ledger in ledgers)
        )
    finally:
        await other.dispose()

    assert sorted(results) == [False] * 7 + [True]


async def test_expired_assertions_are_pruned_after_a_grace_period(
    db_engine: AsyncEngine, clock: Clock
) -> None:
    ledger = AssertionLedger(db_engine, clock=clock)
    assert await ledger.use_once("old", "cli_a", T0 + timedelta(seconds=30))
    assert await ledger.use_once("late", "cli_a", T0 + timedelta(hours=1))

    # Just past its expiry the row is kept: a replica with a slower clock must still see it.
    clock.advance(120)
    assert await ledger.use_once("tick-1", "cli_a", clock.now + timedelta(hours=1))
    assert await _count(db_engine, "used_assertions") == 3

    clock.advance(600)
    assert await ledger.use_once("tick-2", "cli_a", clock.now + timedelta(hours=1))
    jtis = {row["jti"] for row in await _raw_rows(db_engine, "used_assertions")}
    assert jtis == {"late", "tick-1", "tick-2"}


async def test_an_unusable_jti_is_an_invalid_client(db_engine: AsyncEngine) -> None:
    ledger = AssertionLedger(db_engine)
    expires = datetime.now(UTC) + timedelta(seconds=60)
    with pytest.raises(InvalidClient):
        await ledger.use_once("x" * 256, "cli_a", expires)
    with pytest.raises(InvalidClient):
        await ledger.use_once("", "cli_a", expires)
    with pytest.raises(InvalidClient):
        await ledger.use_once("nul\x00byte", "cli_a", expires)
    assert await ledger.use_once("x" * 255, "cli_a", expires) is True


# --- revocation --------------------------------------------------------------------------------


async def test_revoked_tokens_are_active_until_they_expire(
    db_engine: AsyncEngine, clock: Clock
) -> None:
    store = RevocationStore(db_engine, clock=clock)

    await store.revoke("short", T0 + timedelta(seconds=30))
    await store.revoke("long", T0 + timedelta(seconds=300))
    await store.revoke("long", T0 + timedelta(seconds=300))  # idempotent

    assert await store.active() == {"short", "long"}
    assert await store.is_revoked("short")
    assert not await store.is_revoked("never")

    clock.advance(30)
    assert await store.active() == {"long"}
    assert not await store.is_revoked("short")

    clock.advance(300)
    assert await store.active() == set()
    # The expired rows are gone from the table too, not only from the answer.
    assert await _count(db_engine, "revoked_tokens") == 0


async def test_a_revocation_records_when_it_happened(db_engine: AsyncEngine, clock: Clock) -> None:
    store = RevocationStore(db_engine, clock=clock)
    await store.revoke("t", T0 + timedelta(seconds=60))
    (row,) = await _raw_rows(db_engine, "revoked_tokens")
    assert row["jti"] == "t"
    with pytest.raises(InvalidRequest):
        await store.revoke("x" * 256, T0)


async def test_naive_datetimes_are_refused(db_engine: AsyncEngine) -> None:
    naive = datetime(2030, 1, 1)
    with pytest.raises(InvalidRequest, match="timezone-aware"):
        await RevocationStore(db_engine).revoke("t", naive)
    with pytest.raises(InvalidRequest, match="timezone-aware"):
        await ApiKeyStore(db_engine).create("k", ["a"], expires_at=naive)
