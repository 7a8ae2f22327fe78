"""API keys at the gateway (hub.auth.apikeys): format, hash check, expiry, revocation, cache."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.auth import ApiKeyVerifier, Principal, hash_api_key, parse_api_key
from hub.errors import InvalidToken

NOW = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """The shape of hub.db.identity_store.ApiKeyRecord."""

    id: str
    prefix: str
    secret_hash: str
    client_id: str | None
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


def new_key(**fields: object) -> tuple[Record, str]:
    prefix = secrets.token_hex(5)
    plaintext = f"hub_{prefix}_{secrets.token_urlsafe(32)}"
    record = Record(
        id=f"key-{prefix}",
        prefix=prefix,
        secret_hash=hashlib.sha256(plaintext.encode()).hexdigest(),
        client_id="vendor-1",
        name="payroll sync",
        scopes=("payroll.read", "payroll.write"),
        created_at=NOW - timedelta(days=1),
        expires_at=None,
        revoked_at=None,
    )
    return replace(record, **fields), plaintext  # type: ignore[arg-type]


class Store:
    """ApiKeyStore.by_prefix, counting look-ups."""

    def __init__(self, *records: Record) -> None:
        self.records = {record.prefix: record for record in records}
        self.lookups = 0

    async def by_prefix(self, prefix: str) -> Record | None:
        self.lookups += 1
        return self.records.get(prefix)


class Clock:
    def __init__(self) -> None:
        self.now = NOW.timestamp()

    def __call__(self) -> float:
        return self.now


def verifier(store: Store, clock: Clock, **options: int) -> ApiKeyVerifier:
    return ApiKeyVerifier(store.by_prefix, issuer="https://hub.example.gov", clock=clock, **options)


async def refused(keys: ApiKeyVerifier, text: str) -> str:
    with pytest.raises(InvalidToken) as caught:
        await keys.verify(text)
    error = caught.value
    assert error.status == 401
    assert error.headers["WWW-Authenticate"] == (
        f'Bearer realm="hub", error="invalid_token", error_description="{error.detail}"'
    )
    assert text not in error.detail
    return error.detail


def test_parse_api_key_splits_out_the_lookup_prefix() -> None:
    full = "hub_0a1b2c3d4e_" + "S3cr3t-value_with-URLsafe-chars0123456789ab"
    assert parse_api_key(full) == ("0a1b2c3d4e", full)
    assert parse_api_key("hub_abcdefghij_" + "x" * 43)[0] == "abcdefghij"  # base32 prefixes too


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hub_",
        "hub_0a1b2c3d4e",
        "hub_0a1b2c3d4e_",
        "hub_0a1b2c3d4e_short",
        "hub_0A1B2C3D4E_" + "x" * 43,
        "hub_0a1b2c3d4_" + "x" * 43,
        "hub_0a1b2c3d4ef_" + "x" * 43,
        "hubx_0a1b2c3d4e_" + "x" * 43,
        "HUB_0a1b2c3d4e_" + "x" * 43,
        " hub_0a1b2c3d4e_" + "x" * 43,
        "hub_0a1b2c3d4e_" + "x" * 43 + "\n",
        "hub_0a1b2c3d4e_" + "x" * 42 + "=",
        "hub_0a1b2c3d4e_" + "é" * 43,
        "hub_0a1b2c3d4e_" + "x" * 300,
        "Bearer hub_0a1b2c3d4e_" + "x" * 43,
    ],
)
def test_anything_else_is_a_malformed_api_key(text: str) -> None:
    with pytest.raises(InvalidToken, match=r"^malformed API key$"):
        parse_api_key(text)


def test_the_stored_hash_is_sha256_hex_of_the_whole_plaintext() -> None:
    _, plaintext = new_key()
    assert hash_api_key(plaintext) == hashlib.sha256(plaintext.encode()).hexdigest()


async def test_a_valid_key_becomes_an_api_key_principal() -> None:
    record, plaintext = new_key(expires_at=NOW + timedelta(days=30))
    keys = verifier(Store(record), Clock())
    assert await keys.verify(plaintext) == Principal(
        subject=record.id,
        kind="api_key",
        issuer="https://hub.example.gov",
        client_id="vendor-1",
        scopes=frozenset({"payroll.read", "payroll.write"}),
        expires_at=(NOW + timedelta(days=30)).timestamp(),
    )


async def test_refusals() -> None:
    good, plaintext = new_key()
    revoked, revoked_text = new_key(revoked_at=NOW - timedelta(minutes=1))
    expired, expired_text = new_key(expires_at=NOW - timedelta(seconds=1))
    naive, naive_text = new_key(expires_at=(NOW - timedelta(hours=1)).replace(tzinfo=None))
    keys = verifier(Store(good, revoked, expired, naive), Clock())
    wrong_secret = plaintext[:-4] + ("AAAA" if not plaintext.endswith("AAAA") else "BBBB")
    assert await refused(keys, wrong_secret) == "invalid API key"
    unknown = f"hub_{'f' * 10}_{secrets.token_urlsafe(32)}"
    assert await refused(keys, unknown) == "unknown API key"
    assert await refused(keys, revoked_text) == "API key revoked"
    assert await refused(keys, expired_text) == "API key expired"
    assert await refused(keys, naive_text) == "API key expired"  # naive timestamps are UTC
    assert await refused(keys, "not-a-key") == "malformed API key"
    assert len(keys) == 0


async def test_a_key_from_another_record_does_not_match_its_prefix() -> None:
    one, _ = new_key()
    two, two_text = new_key()
    # a store that (wrongly) answers another record for the prefix is not trusted
    store = Store(one)
    store.records[two.prefix] = one
    assert await refused(verifier(store, Clock()), two_text) == "unknown API key"


async def test_a_busy_key_costs_one_lookup_per_cache_window() -> None:
    record, plaintext = new_key()
    store, clock = Store(record), Clock()
    keys = verifier(store, clock, cache_seconds=30)
    first = await keys.verify(plaintext)
    for _ in range(50):
        assert await keys.verify(plaintext) is first
    assert store.lookups == 1
    clock.now += 30
    await keys.verify(plaintext)
    assert store.lookups == 2


async def test_a_wrong_secret_never_rides_on_a_cached_prefix() -> None:
    record, plaintext = new_key()
    store = Store(record)
    keys = verifier(store, Clock())
    await keys.verify(plaintext)
    forged = f"hub_{record.prefix}_{secrets.token_urlsafe(32)}"
    assert await refused(keys, forged) == "invalid API key"
    assert store.lookups == 2
    assert (await keys.verify(plaintext)).subject == record.id  # the good entry stays
    assert store.lookups == 2


async def test_invalidate_makes_a_revocation_effective_at_once() -> None:
    record, plaintext = new_key()
    store = Store(record)
    keys = verifier(store, Clock())
    await keys.verify(plaintext)
    store.records[record.prefix] = replace(record, revoked_at=NOW)
    assert (await keys.verify(plaintext)).subject == record.id  # still cached
    keys.invalidate(record.prefix)
    assert await refused(keys, plaintext) == "API key revoked"
    keys.invalidate("no-such-prefix")


async def test_a_cached_key_stops_at_its_expiry() -> None:
    record, plaintext = new_key(expires_at=NOW + timedelta(seconds=5))
    store, clock = Store(record), Clock()
    keys = verifier(store, clock, cache_seconds=30)
    await keys.verify(plaintext)
    clock.now += 5
    assert await refused(keys, plaintext) == "API key expired"


async def test_the_cache_is_bounded() -> None:
    pairs = [new_key() for _ in range(5)]
    store = Store(*(record for record, _ in pairs))
    keys = verifier(store, Clock(), max_entries=2)
    for _, plaintext in pairs:
        await keys.verify(plaintext)
    assert len(keys) == 2
    keys.clear()
    assert len(keys) == 0


async def test_no_caching_when_disabled() -> None:
    record, plaintext = new_key()
    store = Store(record)
    keys = verifier(store, Clock(), cache_seconds=0)
    await keys.verify(plaintext)
    await keys.verify(plaintext)
    assert store.lookups == 2
    assert len(keys) == 0


@settings(max_examples=300, deadline=None)
@given(st.text() | st.from_regex(r"hub_[a-z0-9]{8,12}_[A-Za-z0-9_=-]{10,50}", fullmatch=True))
def test_random_text_is_refused_with_invalid_token_only(text: str) -> None:
    record, _ = new_key()
    keys = verifier(Store(record), Clock())
    try:
        prefix, full = parse_api_key(text)
    except InvalidToken:
        pass
    else:
        assert full == text
        assert text.startswith(f"hub_{prefix}_")
    with pytest.raises(InvalidToken):
        asyncio.run(keys.verify(text))
