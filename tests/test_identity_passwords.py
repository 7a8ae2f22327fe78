"""Password hashing and policy (hub.identity.passwords): argon2id round trips, garbage, timing."""

from __future__ import annotations

import statistics
import time
import unicodedata

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.errors import HubError
from hub.identity.passwords import (
    MAX_LENGTH,
    MIN_LENGTH,
    Argon2Parameters,
    PasswordHasher,
    check_policy,
)

CHEAP = Argon2Parameters(time_cost=1, memory_cost_kib=8, parallelism=1)
#: Heavy enough that hashing time dwarfs noise, light enough for a fast suite.
MODERATE = Argon2Parameters(time_cost=2, memory_cost_kib=16 * 1024, parallelism=1)
cheap = PasswordHasher(CHEAP)

passwords = st.text(max_size=200)


@settings(max_examples=60, deadline=None)
@given(passwords)
def test_hash_then_verify_round_trips(password: str) -> None:
    stored = cheap.hash(password)
    assert stored.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert cheap.verify(stored, password)


@settings(max_examples=60, deadline=None)
@given(passwords, passwords)
def test_a_different_password_does_not_verify(password: str, other: str) -> None:
    same = unicodedata.normalize("NFKC", password) == unicodedata.normalize("NFKC", other)
    assert cheap.verify(cheap.hash(password), other) is same


def test_each_hash_has_its_own_salt() -> None:
    assert cheap.hash("same password here") != cheap.hash("same password here")


def test_unicode_forms_of_one_password_verify() -> None:
    composed = "caf\u00e9-au-lait-2030"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    assert cheap.verify(cheap.hash(composed), decomposed)


@settings(max_examples=200, deadline=None)
@given(st.text(), st.text())
def test_verify_never_raises_on_garbage(stored: str, password: str) -> None:
    assert cheap.verify(stored, password) is False
    assert cheap.needs_rehash(stored) is True


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_verify_never_raises_on_a_mutated_hash(data: st.DataObject) -> None:
    stored = cheap.hash("the real password")
    index = data.draw(st.integers(0, len(stored) - 1))
    char = data.draw(st.characters())
    mutated = stored[:index] + char + stored[index + 1 :]
    assert isinstance(cheap.verify(mutated, "the real password"), bool)
    assert cheap.verify(mutated, "another password") is False


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "$argon2id$",
        "$argon2id$v=19$m=8,t=1,p=1$",
        "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$aGFzaA",
        "$2b$12$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui",  # bcrypt
        "\x00\udcff",
    ],
)
def test_malformed_hashes_are_refused(stored: str) -> None:
    assert cheap.verify(stored, "password") is False
    assert cheap.needs_rehash(stored) is True


def test_a_hostile_hash_is_refused_without_allocating() -> None:
    real = cheap.hash("pw")
    # 16 GiB of memory cost: attempting it would hang or crash the worker.
    hostile = real.replace("m=8,", "m=16777216,")
    started = time.perf_counter()
    assert cheap.verify(hostile, "pw") is False
    assert time.perf_counter() - started < 0.5


def test_unencodable_passwords() -> None:
    stored = cheap.hash("fine password")
    assert cheap.verify(stored, "lone \udcff surrogate") is False
    with pytest.raises(HubError):
        cheap.hash("lone \udcff surrogate")


def test_oversized_input_is_refused() -> None:
    stored = cheap.hash("x" * 1025)
    assert cheap.verify(stored, "x" * 1025) is False


def test_needs_rehash_follows_the_parameters() -> None:
    stored = cheap.hash("password for rehash")
    assert cheap.needs_rehash(stored) is False
    stronger = PasswordHasher(Argon2Parameters(time_cost=2, memory_cost_kib=16, parallelism=1))
    assert stronger.needs_rehash(stored) is True
    # An old hash still verifies, so it can be upgraded at the next login.
    assert stronger.verify(stored, "password for rehash")


def test_defaults_follow_owasp() -> None:
    p = Argon2Parameters()
    assert (p.time_cost, p.memory_cost_kib, p.parallelism) == (3, 65536, 1)
    stored = PasswordHasher().hash("default parameters")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=1$")


@pytest.mark.parametrize(
    "fields",
    [
        {"time_cost": 0},
        {"parallelism": 0},
        {"memory_cost_kib": 7},
        {"memory_cost_kib": 8, "parallelism": 2},
        {"hash_len": 8},
        {"salt_len": 8},
    ],
)
def test_unsafe_parameters_are_rejected(fields: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Argon2Parameters(**fields)


def _median_seconds(fn: object, runs: int = 5) -> float:
    assert callable(fn)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def test_missing_accounts_cost_as_much_as_real_ones() -> None:
    hasher = PasswordHasher(MODERATE)
    stored = hasher.hash("a real password")
    assert hasher.dummy_verify("guess") is False
    assert hasher.verify(None, "guess") is False
    real = _median_seconds(lambda: hasher.verify(stored, "wrong guess"))
    missing = _median_seconds(lambda: hasher.verify(None, "wrong guess"))
    dummy = _median_seconds(lambda: hasher.dummy_verify("wrong guess"))
    for measured in (missing, dummy):
        assert real / 3 < measured < real * 3


async def test_async_variants_keep_the_event_loop_running() -> None:
    hasher = PasswordHasher(MODERATE)
    ticks = 0
    done = anyio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await anyio.sleep(0.001)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        started = time.perf_counter()
        stored = await hasher.ahash("async password")
        assert await hasher.averify(stored, "async password")
        assert not await hasher.averify(stored, "wrong")
        assert not await hasher.averify(None, "wrong")
        assert not await hasher.adummy_verify("wrong")
        elapsed = time.perf_counter() - started
        done.set()
    # A blocked loop would tick once per hash at most.
    assert elapsed > 0.02
    assert ticks >= 10


async def test_concurrency_is_bounded() -> None:
    hasher = PasswordHasher(CHEAP, max_concurrency=1)
    results: list[bool] = []

    async def one(i: int) -> None:
        stored = await hasher.ahash(f"password number {i}")
        results.append(await hasher.averify(stored, f"password number {i}"))

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(one, i)
    assert results == [True] * 8


# -- policy ------------------------------------------------------------------------------

GOOD = "violet-harbour-tram-47"


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Tr4m-violet", f"at least {MIN_LENGTH} characters"),
        ("v" + "iolet-harbour" * 10, f"at most {MAX_LENGTH} characters"),
        ("violet\x00harbour-tram", "control characters"),
        ("violet\nharbour-tram", "control characters"),
        ("abababababababab", "different characters"),
        ("my-1234567890-violet", "identifier"),
        ("amina-harbour-tram", "name"),
        ("harbour-AL-FARSI-tram", "name"),
        ("Password2024!", "too common"),
        ("p@ssw0rd123456", "too common"),
        ("!!Welcome12345", "too common"),
        ("qwertyuiop123", "too common"),
        ("correct horse battery staple", "too common"),
    ],
)
def test_policy_gives_reasons(password: str, reason: str) -> None:
    reasons = check_policy(password, identifier="1234567890", names=["Amina Al-Farsi"])
    assert any(reason in r for r in reasons), reasons


def test_a_good_password_passes() -> None:
    assert check_policy(GOOD, identifier="1234567890", names=["Amina Al-Farsi"]) == []
    # Short name parts would forbid too much; they are not checked.
    assert check_policy(GOOD, identifier="1234567890", names=["Al Ma"]) == []


def test_several_reasons_at_once() -> None:
    reasons = check_policy("amina\x01", identifier="x-1", names=["Amina"])
    assert len(reasons) == 3


@settings(max_examples=100, deadline=None)
@given(
    st.text(min_size=3, max_size=20, alphabet="0123456789ABCDEFGHJK"),
    st.text(max_size=30),
    st.text(max_size=30),
)
def test_containing_the_identifier_is_always_refused(ident: str, before: str, after: str) -> None:
    password = before + ident.lower() + after
    reasons = check_policy(password, identifier=ident, names=())
    assert "Do not include your identifier." in reasons


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300), st.text(max_size=20), st.lists(st.text(max_size=20), max_size=3))
def test_policy_never_raises(password: str, ident: str, names: list[str]) -> None:
    reasons = check_policy(password, identifier=ident, names=names)
    assert all(isinstance(r, str) and r for r in reasons)
    length = len(unicodedata.normalize("NFKC", password))
    assert (f"Use at least {MIN_LENGTH} characters." in reasons) is (length < MIN_LENGTH)
    assert (f"Use at most {MAX_LENGTH} characters." in reasons) is (length > MAX_LENGTH)
