"""TOTP and recovery codes (hub.identity.totp): RFC vectors, windows, replay, enrolment URIs."""

from __future__ import annotations

import base64
import random
import re
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hub.identity.totp import (
    TotpVerifier,
    code_at,
    hash_recovery_code,
    hotp,
    new_recovery_codes,
    new_secret,
    otpauth_uri,
    use_recovery_code,
)

RFC_KEY_SHA1 = b"12345678901234567890"
RFC_KEY_SHA256 = b"12345678901234567890123456789012"
RFC_KEY_SHA512 = b"1234567890" * 6 + b"1234"
RFC_SECRET = base64.b32encode(RFC_KEY_SHA1).decode()


# RFC 4226 Appendix D: HOTP values for counters 0..9.
@pytest.mark.parametrize(
    ("counter", "expected"),
    list(
        enumerate(
            [
                "755224",
                "287082",
                "359152",
                "969429",
                "338314",
                "254676",
                "287922",
                "162583",
                "399871",
                "520489",
            ]
        )
    ),
)
def test_rfc4226_hotp_vectors(counter: int, expected: str) -> None:
    assert hotp(RFC_KEY_SHA1, counter) == expected


# RFC 6238 Appendix B: (time, SHA-1, SHA-256, SHA-512), 8 digits.
RFC6238 = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


@pytest.mark.parametrize(("t", "sha1", "sha256", "sha512"), RFC6238)
def test_rfc6238_vectors(t: int, sha1: str, sha256: str, sha512: str) -> None:
    step = t // 30
    assert hotp(RFC_KEY_SHA1, step, digits=8) == sha1
    assert hotp(RFC_KEY_SHA256, step, digits=8, digest="sha256") == sha256
    assert hotp(RFC_KEY_SHA512, step, digits=8, digest="sha512") == sha512
    # Six digits are the last six of the eight (both are the same value mod 10^n).
    assert code_at(RFC_SECRET, t) == sha1[-6:]
    assert (
        TotpVerifier(clock=lambda: float(t)).verify(RFC_SECRET, sha1[-6:], last_used_step=None)
        == step
    )


def test_secrets_are_160_bit_base32() -> None:
    secrets = {new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert re.fullmatch(r"[A-Z2-7]{32}", secret)
        assert len(base64.b32decode(secret)) == 20


def test_secret_decoding_is_lenient_about_presentation() -> None:
    grouped = " ".join(RFC_SECRET[i : i + 4] for i in range(0, 32, 4)).lower()
    assert code_at(grouped, 59) == "287082"


@pytest.mark.parametrize("bad", ["", "not base32!", "18"])
def test_invalid_secrets_raise_value_error(bad: str) -> None:
    with pytest.raises(ValueError):
        code_at(bad, 0)
    with pytest.raises(ValueError):
        otpauth_uri(bad, account="a")


@pytest.mark.parametrize("counter", [-1, 2**64])
def test_hotp_counter_range(counter: int) -> None:
    with pytest.raises(ValueError):
        hotp(RFC_KEY_SHA1, counter)
    assert hotp(RFC_KEY_SHA1, 2**64 - 1).isdigit()


def test_otpauth_uri_exact() -> None:
    assert otpauth_uri(RFC_SECRET, account="1234567890") == (
        "otpauth://totp/Hub:1234567890?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        "&issuer=Hub&algorithm=SHA1&digits=6&period=30"
    )


def test_otpauth_uri_percent_encodes() -> None:
    uri = otpauth_uri(RFC_SECRET, account="amina@example.gov/é ?&#", issuer="Job Hub & Co")
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth"
    assert parts.netloc == "totp"
    assert " " not in uri
    assert "+" not in uri
    issuer, account = unquote(parts.path.removeprefix("/")).split(":")
    assert (issuer, account) == ("Job Hub & Co", "amina@example.gov/é ?&#")
    query = parse_qs(parts.query)
    assert query == {
        "secret": [RFC_SECRET],
        "issuer": ["Job Hub & Co"],
        "algorithm": ["SHA1"],
        "digits": ["6"],
        "period": ["30"],
    }


@pytest.mark.parametrize(("account", "issuer"), [("a:b", "Hub"), ("a", "Hub:Two")])
def test_otpauth_uri_refuses_colons(account: str, issuer: str) -> None:
    with pytest.raises(ValueError):
        otpauth_uri(RFC_SECRET, account=account, issuer=issuer)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_window_edges() -> None:
    step = 50_000_000
    clock = Clock(step * 30 + 10)
    verifier = TotpVerifier(window=1, clock=clock)
    secret = new_secret()
    for offset in (-1, 0, 1):
        code = code_at(secret, (step + offset) * 30)
        assert verifier.verify(secret, code, last_used_step=None) == step + offset
    for offset in (-2, 2):
        code = code_at(secret, (step + offset) * 30)
        if code not in {code_at(secret, (step + o) * 30) for o in (-1, 0, 1)}:
            assert verifier.verify(secret, code, last_used_step=None) is None
    # The step changes exactly on the period boundary.
    current = code_at(secret, step * 30)
    strict = TotpVerifier(window=0, clock=clock)
    clock.now = step * 30 + 29.999
    assert strict.verify(secret, current, last_used_step=None) == step
    clock.now = step * 30 + 30
    if current != code_at(secret, clock.now):
        assert strict.verify(secret, current, last_used_step=None) is None


def test_replay_is_refused() -> None:
    secret = new_secret()
    step = 60_000_000
    clock = Clock(step * 30 + 1)
    verifier = TotpVerifier(clock=clock)
    code = code_at(secret, clock.now)
    used = verifier.verify(secret, code, last_used_step=None)
    assert used == step
    assert verifier.verify(secret, code, last_used_step=used) is None
    # An older code inside the window is refused once a newer one was used.
    previous = code_at(secret, (step - 1) * 30)
    if previous != code:
        assert verifier.verify(secret, previous, last_used_step=used) is None
    # The next code is accepted, also while its step is still ahead of the clock.
    following = code_at(secret, (step + 1) * 30)
    assert verifier.verify(secret, following, last_used_step=used) == step + 1
    clock.now += 30
    assert verifier.verify(secret, following, last_used_step=step + 1) is None


@pytest.mark.parametrize("shape", ["{} {}", "{}-{}", " {}{} "])
def test_codes_tolerate_grouping(shape: str) -> None:
    secret = new_secret()
    code = code_at(secret, 1_700_000_000)
    verifier = TotpVerifier(clock=lambda: 1_700_000_000.0)
    assert verifier.verify(secret, shape.format(code[:3], code[3:]), last_used_step=None)


@pytest.mark.parametrize("window", [-1, 11])
def test_window_bounds(window: int) -> None:
    with pytest.raises(ValueError):
        TotpVerifier(window=window)


@settings(max_examples=200, deadline=None)
@given(
    st.binary(min_size=10, max_size=40),
    st.floats(min_value=30, max_value=2**33, allow_nan=False),
    st.data(),
)
def test_random_non_codes_are_refused(key: bytes, now: float, data: st.DataObject) -> None:
    secret = base64.b32encode(key).decode()
    verifier = TotpVerifier(clock=lambda: now)
    valid = {code_at(secret, now + d) for d in (-30, 0, 30)}
    guess = data.draw(st.text(alphabet="0123456789", min_size=6, max_size=6))
    assume(guess not in valid)
    assert verifier.verify(secret, guess, last_used_step=None) is None
    junk = data.draw(st.text(max_size=12))
    assume(junk not in valid)
    assert verifier.verify(secret, junk, last_used_step=None) is None


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=10, max_size=40), st.floats(min_value=0, max_value=2**33))
def test_the_current_code_always_verifies(key: bytes, now: float) -> None:
    secret = base64.b32encode(key).decode()
    verifier = TotpVerifier(clock=lambda: now)
    code = code_at(secret, now)
    step = verifier.verify(secret, code, last_used_step=None)
    assert step is not None
    assert abs(step - int(now // 30)) <= 1
    assert verifier.verify(secret, code, last_used_step=step) in (None, step + 1)


# -- recovery codes ----------------------------------------------------------------------


def test_recovery_code_format() -> None:
    codes = new_recovery_codes()
    assert len(codes) == 10
    assert len(set(codes)) == 10
    for code in codes:
        assert re.fullmatch(r"[2-9a-hjkmnp-z]{4}-[2-9a-hjkmnp-z]{4}", code)
    assert len(new_recovery_codes(3)) == 3
    with pytest.raises(ValueError):
        new_recovery_codes(0)


def test_recovery_code_hash_ignores_presentation() -> None:
    code = "ab2c-de3f"
    digest = hash_recovery_code(code)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    for variant in ("AB2C-DE3F", "ab2cde3f", " ab2c de3f ", "AB2C - DE3F"):
        assert hash_recovery_code(variant) == digest
    with pytest.raises(ValueError):
        hash_recovery_code("ab2c-de3")
    with pytest.raises(ValueError):
        hash_recovery_code("ab1c-de0f")  # 1 and 0 are not in the alphabet


def test_a_recovery_code_works_once() -> None:
    codes = new_recovery_codes()
    hashes = [hash_recovery_code(c) for c in codes]
    remaining = use_recovery_code(codes[3].upper(), hashes)
    assert remaining == hashes[:3] + hashes[4:]
    assert use_recovery_code(codes[3], remaining) is None
    unknown = next(c for c in new_recovery_codes(20) if c not in codes)
    assert use_recovery_code(unknown, hashes) is None
    assert use_recovery_code("not a code", hashes) is None
    assert use_recovery_code("", hashes) is None
    assert use_recovery_code(codes[0], []) is None


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 12), st.randoms(use_true_random=False))
def test_recovery_codes_are_spent_in_any_order(n: int, rnd: random.Random) -> None:
    codes = new_recovery_codes(n)
    hashes = [hash_recovery_code(c) for c in codes]
    rnd.shuffle(codes)
    for spent, code in enumerate(codes, start=1):
        result = use_recovery_code(code, hashes)
        assert result is not None
        assert len(result) == n - spent
        hashes = result
    assert hashes == []


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=20), st.lists(st.text(max_size=70), max_size=5))
def test_use_recovery_code_never_raises(code: str, hashes: list[str]) -> None:
    assert use_recovery_code(code, hashes) is None
