"""The key ring: first keys, signing, the JWKS, and rotation that never strands a valid token."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from joserfc.jwk import OKPKey, RSAKey
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.db.identity_store import KeyStore
from hub.errors import Conflict, HubError, NotFound
from hub.identity.keys import KeyRing, generate_key, rotate_keys
from hub.settings import Settings

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SETTINGS = Settings(access_token_seconds=300, internal_token_seconds=60, key_publish_seconds=120)


class Clock:
    """A settable clock for the key ring."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> None:
        self.now = T0 + timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(db_engine: AsyncEngine) -> KeyStore:
    return KeyStore(db_engine)


def _kids(ring: KeyRing) -> list[str]:
    return [key["kid"] for key in ring.jwks()["keys"]]


def _sign(ring: KeyRing, use: Any = "access") -> str:
    kid, private, alg = ring.signing_key(use)
    return jwt.encode({"sub": "cli_x"}, private, algorithm=alg, headers={"kid": kid})


def _verify_with_jwks(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """Verify as a relying party would: pick the key by kid from the published set."""
    kid = jwt.get_unverified_header(token)["kid"]
    (jwk,) = [key for key in jwks["keys"] if key["kid"] == kid]
    key = jwt.PyJWK(jwk)
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=[jwk["alg"]])
    return claims


async def test_the_first_load_creates_an_active_key_per_use(store: KeyStore, clock: Clock) -> None:
    ring = await KeyRing.load(store, SETTINGS, clock=clock)

    access, internal = (await store.list("access")), (await store.list("internal"))
    assert [(k.alg, k.activates_at, k.retired_at) for k in access] == [("RS256", T0, None)]
    assert [(k.alg, k.activates_at, k.retired_at) for k in internal] == [("EdDSA", T0, None)]
    assert access[0].private_pem.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert ring.signing_key("access")[0] == access[0].kid
    assert ring.signing_key("internal")[0] == internal[0].kid
    (signature,) = await store.list("signature")
    assert (signature.alg, signature.activates_at) == ("EdDSA", T0)
    assert ring.signing_key("signature")[0] == signature.kid
    assert sorted(_kids(ring)) == sorted([access[0].kid, internal[0].kid, signature.kid])

    again = await KeyRing.load(store, SETTINGS, clock=clock)
    assert again.keys == ring.keys
    assert len(await store.list()) == 3


async def test_replicas_starting_together_create_one_key_per_use(
    store: KeyStore, clock: Clock
) -> None:
    rings = await asyncio.gather(*(KeyRing.load(store, SETTINGS, clock=clock) for _ in range(3)))

    assert len(await store.list("access")) == 1
    assert len(await store.list("internal")) == 1
    assert {ring.signing_key("access")[0] for ring in rings} == {
        (await store.list("access"))[0].kid
    }


async def test_published_jwks_verify_tokens_of_both_uses(store: KeyStore) -> None:
    ring = await KeyRing.load(store, SETTINGS)
    jwks = ring.jwks()

    for use, alg, kty in (("access", "RS256", "RSA"), ("internal", "EdDSA", "OKP")):
        token = _sign(ring, use)
        assert jwt.get_unverified_header(token)["alg"] == alg
        assert _verify_with_jwks(token, jwks) == {"sub": "cli_x"}
        kid = ring.signing_key(use)[0]
        (jwk,) = [key for key in jwks["keys"] if key["kid"] == kid]
        assert jwk["kty"] == kty
        assert jwk["use"] == "sig"
        assert "d" not in jwk
        assert "key_ops" not in jwk
        verifier = jwt.PyJWK(jwk).key
        public = ring.public_key(kid)
        assert public is not None
        if kty == "RSA":
            assert public.public_numbers() == verifier.public_numbers()
        else:
            assert public.public_bytes_raw() == verifier.public_bytes_raw()


async def test_a_kid_is_the_rfc7638_thumbprint(store: KeyStore) -> None:
    ring = await KeyRing.load(store, SETTINGS)
    for jwk in ring.jwks()["keys"]:
        members = {name: value for name, value in jwk.items() if name not in {"kid", "alg", "use"}}
        key = RSAKey.import_key(members) if jwk["kty"] == "RSA" else OKPKey.import_key(members)
        assert jwk["kid"] == key.thumbprint()


async def test_rotation_publishes_first_signs_later_and_keeps_the_old_key_for_its_tokens(
    store: KeyStore, clock: Clock
) -> None:
    ring = await KeyRing.load(store, SETTINGS, clock=clock)
    old = ring.signing_key("access")[0]
    internal = ring.signing_key("internal")[0]
    signature = ring.signing_key("signature")[0]

    clock.at(10)
    new = await ring.rotate(store, "access")
    assert new.activates_at == T0 + timedelta(seconds=10 + 120)
    assert new.kid != old

    # Published at once, so relying parties cache it before it signs anything.
    assert set(_kids(ring)) == {old, new.kid, internal, signature}
    assert ring.public_key(new.kid) is not None
    clock.at(129)
    assert ring.signing_key("access")[0] == old
    token_by_old = _sign(ring)

    clock.at(130)
    assert ring.signing_key("access")[0] == new.kid
    assert ring.signing_key("internal")[0] == internal
    # The last tokens the old key signed live access_token_seconds more: it stays published.
    clock.at(130 + 299)
    assert old in _kids(ring)
    assert _verify_with_jwks(token_by_old, ring.jwks()) == {"sub": "cli_x"}

    clock.at(130 + 300)
    assert set(_kids(ring)) == {new.kid, internal, signature}
    assert ring.public_key(old) is None
    (stored_old,) = [key for key in await store.list("access") if key.kid == old]
    assert stored_old.retired_at == new.activates_at


async def test_a_second_rotation_before_the_first_key_signs_retires_it_in_turn(
    store: KeyStore, clock: Clock
) -> None:
    ring = await KeyRing.load(store, SETTINGS, clock=clock)
    first = ring.signing_key("access")[0]

    second = await ring.rotate(store, "access")  # activates at 120
    clock.at(60)
    third = await ring.rotate(store, "access")  # activates at 180

    clock.at(150)
    assert ring.signing_key("access")[0] == second.kid
    clock.at(180)
    assert ring.signing_key("access")[0] == third.kid
    clock.at(180 + 300)
    assert set(_kids(ring)) == {
        third.kid,
        ring.signing_key("internal")[0],
        ring.signing_key("signature")[0],
    }
    assert first not in _kids(ring)


async def test_another_replica_sees_a_rotation_after_refresh(
    db_engine: AsyncEngine, clock: Clock
) -> None:
    store_a, store_b = KeyStore(db_engine), KeyStore(db_engine)
    ring_a = await KeyRing.load(store_a, SETTINGS, clock=clock)
    ring_b = await KeyRing.load(store_b, SETTINGS, clock=clock)

    new = await ring_a.rotate(store_a, "access")
    assert new.kid not in _kids(ring_b)

    await ring_b.refresh(store_b)
    assert new.kid in _kids(ring_b)
    clock.at(120)
    assert ring_b.signing_key("access")[0] == new.kid
    assert _verify_with_jwks(_sign(ring_b), ring_a.jwks()) == {"sub": "cli_x"}


async def test_rotate_keys_rotates_one_use_in_the_database(db_engine: AsyncEngine) -> None:
    await KeyRing.load(KeyStore(db_engine), SETTINGS)
    before = {key.kid for key in await KeyStore(db_engine).list()}

    new = await rotate_keys(db_engine, SETTINGS, "internal")

    after = await KeyStore(db_engine).list()
    assert new.use == "internal"
    assert new.alg == "EdDSA"
    assert {key.kid for key in after} == before | {new.kid}
    assert [key.use for key in after].count("access") == 1


async def test_no_active_key_is_an_error_not_a_guess(store: KeyStore, clock: Clock) -> None:
    key = generate_key("access", created_at=T0, activates_at=T0 + timedelta(seconds=60))
    ring = KeyRing([key], SETTINGS, clock=clock)

    assert _kids(ring) == [key.kid]
    with pytest.raises(HubError, match="no active access signing key"):
        ring.signing_key("access")
    with pytest.raises(HubError, match="no active internal signing key"):
        ring.signing_key("internal")


async def test_retiring_an_unknown_key_is_not_found(store: KeyStore) -> None:
    with pytest.raises(NotFound):
        await store.retire("nope", T0)


async def test_adding_a_kid_twice_is_a_conflict(store: KeyStore) -> None:
    key = generate_key("internal", created_at=T0, activates_at=T0)
    await store.add(key)
    with pytest.raises(Conflict, match="already exists"):
        await store.add(key)
    assert await store.list("internal") == [key]


async def test_a_retired_signature_key_stays_published_for_its_signatures(
    store: KeyStore, clock: Clock
) -> None:
    ring = await KeyRing.load(store, SETTINGS, clock=clock)
    old = ring.signing_key("signature")[0]
    new = await ring.rotate(store, "signature")  # activates at 120; the old one retires then
    clock.at(120)
    assert ring.signing_key("signature")[0] == new.kid
    clock.at(120 + 10 * 365 * 86400)  # years later: what the old key signed still verifies
    assert {old, new.kid} <= set(_kids(ring))
    assert ring.public_key(old) is not None
