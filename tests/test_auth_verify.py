"""Strict bearer-token verification at the gateway (hub.auth.verify, hub.auth.jwks).

Every attack named in issue 3 has its own test, asserting the exact error the client sees.
External issuers publish their keys through ``httpx.MockTransport``; fetches are counted to show
the key cache and the rate-limited refresh on an unknown ``kid``.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
import time_machine
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.warnings import InsecureKeyLengthWarning

from hub.auth import IssuerConfig, JwksCache, Principal, TokenVerifier, load_jwks
from hub.errors import InvalidToken

LOCAL = "https://hub.example.gov"
ISSUER_A = "https://idp-a.example.gov"
ISSUER_B = "https://idp-b.example.gov"
JWKS_A = "https://idp-a.example.gov/jwks"
JWKS_B = "https://idp-b.example.gov/jwks"


@functools.cache
def rsa_key(name: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.cache
def ed_key(name: str) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Any) -> str:
    return b64(json.dumps(value).encode())


def claims(**overrides: Any) -> dict[str, Any]:
    """Claims of a valid local client token; an override of None removes the claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": LOCAL,
        "aud": "hub",
        "sub": "client-1",
        "client_id": "client-1",
        "kind": "client",
        "scope": "registry.read registry.write",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def sign(
    payload: dict[str, Any],
    key: Any = None,
    *,
    kid: str | None = "local-1",
    alg: str = "RS256",
) -> str:
    headers = {"kid": kid} if kid is not None else {}
    # signed at the JWS level: pyjwt's encode would refuse the malformed claims tests need
    body = json.dumps(payload).encode()
    return jwt.api_jws.encode(body, key or rsa_key("local"), algorithm=alg, headers=headers)


def jwk(public: Any, kid: str, alg: str = "RS256") -> dict[str, Any]:
    algorithm = jwt.get_algorithm_by_name(alg)
    data = json.loads(algorithm.to_jwk(public))
    return {**data, "kid": kid, "alg": alg, "use": "sig"}


class LocalKeyRing:
    """The hub's own keys, counting look-ups to show the cache spares them."""

    def __init__(self, keys: dict[str, Any]) -> None:
        self.keys = keys
        self.lookups = 0

    def public_key(self, kid: str) -> Any | None:
        self.lookups += 1
        return self.keys.get(kid)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Issuers:
    """Mock JWKS endpoints for issuers A and B, counting fetches per issuer."""

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {
            JWKS_A: {"keys": [jwk(rsa_key("a").public_key(), "a-1")]},
            JWKS_B: {"keys": [jwk(rsa_key("b").public_key(), "b-1")]},
        }
        self.fetches: dict[str, int] = {JWKS_A: 0, JWKS_B: 0}
        self.fail: Exception | int | None = None

    async def handler(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.fetches[url] += 1
        await asyncio.sleep(0.001)  # a real round trip: concurrent callers overlap
        if isinstance(self.fail, Exception):
            raise self.fail
        if isinstance(self.fail, int):
            return httpx.Response(self.fail, text="down")
        return httpx.Response(200, json=self.documents[url])


ISSUER_CONFIGS = (
    IssuerConfig(issuer=LOCAL, audiences=("hub",), algorithms=("RS256",)),
    IssuerConfig(issuer=ISSUER_A, audiences=("hub",), algorithms=("RS256",), jwks_uri=JWKS_A),
    IssuerConfig(issuer=ISSUER_B, audiences=("hub",), algorithms=("RS256",), jwks_uri=JWKS_B),
)


class Setup:
    def __init__(self, *, cache_size: int = 10_000, configs: tuple[IssuerConfig, ...] = ()) -> None:
        self.issuers = Issuers()
        self.clock = FakeClock()
        self.client = httpx.AsyncClient(transport=httpx.MockTransport(self.issuers.handler))
        self.jwks = JwksCache(self.client, ttl=300, min_refresh_interval=10, clock=self.clock)
        self.ring = LocalKeyRing({"local-1": rsa_key("local").public_key()})
        self.revoked: set[str] = set()
        self.verifier = TokenVerifier(
            configs or ISSUER_CONFIGS,
            local_issuer=LOCAL,
            local_keys=self.ring,
            jwks=self.jwks,
            is_revoked=self.revoked.__contains__,
            cache_size=cache_size,
        )


@pytest.fixture
async def env() -> AsyncIterator[Setup]:
    setup = Setup()
    yield setup
    await setup.client.aclose()


async def refused(verifier: TokenVerifier, token: str) -> InvalidToken:
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token)
    error = caught.value
    assert error.code == "invalid_token"
    assert error.status == 401
    assert error.headers == {
        "WWW-Authenticate": (
            f'Bearer realm="hub", error="invalid_token", error_description="{error.detail}"'
        )
    }
    assert token not in error.detail
    return error


# --- the accepted path --------------------------------------------------------------------------


async def test_a_local_token_becomes_its_principal(env: Setup) -> None:
    payload = claims(establishment="cr-1010", acr="urn:hub:acr:pwd")
    principal = await env.verifier.verify(sign(payload))
    assert principal == Principal(
        subject="client-1",
        kind="client",
        issuer=LOCAL,
        client_id="client-1",
        scopes=frozenset({"registry.read", "registry.write"}),
        acr="urn:hub:acr:pwd",
        establishment="cr-1010",
        token_id=payload["jti"],
        expires_at=float(payload["exp"]),
    )


async def test_an_external_token_is_verified_with_its_issuers_jwks(env: Setup) -> None:
    payload = claims(
        iss=ISSUER_A,
        sub="user-7",
        client_id=None,
        azp="portal",
        kind="client",
        establishment="cr-666",
        scope=None,
        scp=["profile", "email"],
    )
    principal = await env.verifier.verify(sign(payload, rsa_key("a"), kid="a-1"))
    assert principal.issuer == ISSUER_A
    assert principal.subject == "user-7"
    assert principal.client_id == "portal"
    assert principal.scopes == frozenset({"profile", "email"})
    # the hub's own claims are not taken from another issuer
    assert principal.kind == "person"
    assert principal.establishment is None
    assert env.issuers.fetches[JWKS_A] == 1


@pytest.mark.parametrize(
    ("claimed", "kept"),
    [
        ("urn:hub:acr:mfa", None),
        ("urn:hub:acr:national-idp", None),
        ("urn:idp:loa3", "urn:idp:loa3"),
    ],
)
async def test_another_issuer_cannot_claim_the_hubs_assurance_levels(
    env: Setup, claimed: str, kept: str | None
) -> None:
    payload = claims(iss=ISSUER_A, sub="user-7", acr=claimed)
    principal = await env.verifier.verify(sign(payload, rsa_key("a"), kid="a-1"))
    assert principal.acr == kept


async def test_the_hubs_own_tokens_keep_their_acr(env: Setup) -> None:
    principal = await env.verifier.verify(sign(claims(acr="urn:hub:acr:mfa")))
    assert principal.acr == "urn:hub:acr:mfa"


async def test_leeway_accepts_small_clock_skew(env: Setup) -> None:
    now = int(time.time())
    token = sign(claims(iat=now + 20, nbf=now + 20, exp=now - 20))
    assert (await env.verifier.verify(token)).subject == "client-1"


# --- attacks ------------------------------------------------------------------------------------


async def test_alg_none_is_refused(env: Setup) -> None:
    header = {"alg": "none", "typ": "JWT", "kid": "local-1"}
    token = f"{segment(header)}.{segment(claims())}."
    assert (await refused(env.verifier, token)).detail == "algorithm not allowed"
    for spelling in ("None", "NONE", ""):
        header["alg"] = spelling
        token = f"{segment(header)}.{segment(claims())}."
        assert (await refused(env.verifier, token)).detail == "algorithm not allowed"


async def test_hs256_signed_with_the_public_key_pem_is_refused(env: Setup) -> None:
    pem = (
        rsa_key("local")
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    signing_input = f"{segment({'alg': 'HS256', 'typ': 'JWT', 'kid': 'local-1'})}."
    signing_input += segment(claims())
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64(mac)}"
    assert (await refused(env.verifier, token)).detail == "algorithm not allowed"
    # nor does the issuer's key ever get handed to HMAC: only asymmetric algorithms configure
    with pytest.raises(ValueError, match="not allowed"):
        IssuerConfig(issuer=LOCAL, audiences=("hub",), algorithms=("RS256", "HS256"))
    with pytest.raises(ValueError, match="not allowed"):
        IssuerConfig(issuer=LOCAL, audiences=("hub",), algorithms=("none",))


async def test_an_allowed_algorithm_with_the_wrong_key_type_is_refused() -> None:
    configs = (
        IssuerConfig(issuer=LOCAL, audiences=("hub",), algorithms=("RS256", "ES256")),
        *ISSUER_CONFIGS[1:],
    )
    setup = Setup(configs=configs)
    token = sign(claims(), ec.generate_private_key(ec.SECP256R1()), alg="ES256")
    assert (await refused(setup.verifier, token)).detail == "unusable key"
    await setup.client.aclose()


async def test_wrong_audience_is_refused(env: Setup) -> None:
    token = sign(claims(aud="another-api"))
    assert (await refused(env.verifier, token)).detail == "invalid audience"
    token = sign(claims(aud=["another-api", "third"]))
    assert (await refused(env.verifier, token)).detail == "invalid audience"
    assert (await env.verifier.verify(sign(claims(aud=["another-api", "hub"])))).subject


async def test_an_untrusted_issuer_is_refused(env: Setup) -> None:
    token = sign(claims(iss="https://evil.example.com"))
    assert (await refused(env.verifier, token)).detail == "untrusted issuer"
    token = sign(claims(iss=None))
    assert (await refused(env.verifier, token)).detail == "untrusted issuer"
    token = sign(claims(iss=["https://hub.example.gov"]))
    assert (await refused(env.verifier, token)).detail == "untrusted issuer"


async def test_an_expired_token_is_refused(env: Setup) -> None:
    now = int(time.time())
    token = sign(claims(iat=now - 600, nbf=now - 600, exp=now - 31))
    assert (await refused(env.verifier, token)).detail == "token expired"


async def test_a_token_not_yet_valid_is_refused(env: Setup) -> None:
    now = int(time.time())
    token = sign(claims(nbf=now + 120))
    assert (await refused(env.verifier, token)).detail == "token not yet valid"


async def test_a_token_issued_in_the_future_is_refused(env: Setup) -> None:
    now = int(time.time())
    token = sign(claims(iat=now + 120, nbf=None, exp=now + 600))
    assert (await refused(env.verifier, token)).detail == "token not yet valid"


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub"])
async def test_required_claims(env: Setup, claim: str) -> None:
    token = sign(claims(**{claim: None}))
    expected = "untrusted issuer" if claim == "iss" else f"missing claim: {claim}"
    assert (await refused(env.verifier, token)).detail == expected


async def test_malformed_claims_are_refused(env: Setup) -> None:
    for bad, detail in (
        ({"kind": "admin"}, "malformed claim: kind"),
        ({"kind": None}, "malformed claim: kind"),
        ({"scope": ["a", "b"]}, "malformed claim: scope"),
        ({"exp": str(int(time.time()) + 60)}, "malformed claim: exp"),
        ({"sub": ""}, "missing claim: sub"),
        ({"establishment": 7}, "malformed claim: establishment"),
        ({"sub": 42}, "invalid token"),
        ({"iat": "yesterday"}, "invalid token"),
    ):
        assert (await refused(env.verifier, sign(claims(**bad)))).detail == detail


async def test_a_token_without_kid_is_refused(env: Setup) -> None:
    assert (await refused(env.verifier, sign(claims(), kid=None))).detail == "missing key id"
    token = sign(claims(), kid="")
    assert (await refused(env.verifier, token)).detail == "missing key id"


async def test_an_unknown_local_kid_is_refused(env: Setup) -> None:
    token = sign(claims(), kid="local-2")
    assert (await refused(env.verifier, token)).detail == "unknown key"


async def test_unknown_kids_cannot_force_unlimited_jwks_fetches(env: Setup) -> None:
    good = sign(claims(iss=ISSUER_A), rsa_key("a"), kid="a-1")
    await env.verifier.verify(good)
    assert env.issuers.fetches[JWKS_A] == 1
    env.clock.now += 11  # past the refresh interval: one refetch for a new kid is allowed
    for n in range(50):
        token = sign(claims(iss=ISSUER_A), rsa_key("a"), kid=f"made-up-{n}")
        assert (await refused(env.verifier, token)).detail == "unknown key"
    assert env.issuers.fetches[JWKS_A] == 2
    env.clock.now += 5
    await refused(env.verifier, sign(claims(iss=ISSUER_A), rsa_key("a"), kid="made-up-x"))
    assert env.issuers.fetches[JWKS_A] == 2
    env.clock.now += 6
    await refused(env.verifier, sign(claims(iss=ISSUER_A), rsa_key("a"), kid="made-up-y"))
    assert env.issuers.fetches[JWKS_A] == 3
    # the known key kept working throughout, and other issuers were never fetched
    assert (await env.verifier.verify(sign(claims(iss=ISSUER_A), rsa_key("a"), kid="a-1"))).subject
    assert env.issuers.fetches[JWKS_B] == 0


async def test_a_rotated_key_is_picked_up_by_refetching(env: Setup) -> None:
    await env.verifier.verify(sign(claims(iss=ISSUER_A), rsa_key("a"), kid="a-1"))
    env.issuers.documents[JWKS_A]["keys"].append(jwk(rsa_key("a2").public_key(), "a-2"))
    env.clock.now += 10
    token = sign(claims(iss=ISSUER_A), rsa_key("a2"), kid="a-2")
    assert (await env.verifier.verify(token)).issuer == ISSUER_A
    assert env.issuers.fetches[JWKS_A] == 2


async def test_a_tampered_payload_is_refused(env: Setup) -> None:
    header, _, signature = sign(claims()).split(".")
    forged = segment(claims(sub="admin", scope="everything"))
    token = f"{header}.{forged}.{signature}"
    assert (await refused(env.verifier, token)).detail == "invalid signature"


async def test_a_tampered_signature_is_refused(env: Setup) -> None:
    header, payload, signature = sign(claims()).split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[17] ^= 0x01
    token = f"{header}.{payload}.{b64(bytes(raw))}"
    assert (await refused(env.verifier, token)).detail == "invalid signature"


async def test_a_token_from_issuer_a_signed_with_issuer_bs_key_is_refused(env: Setup) -> None:
    # B's kid is not in A's key set
    token = sign(claims(iss=ISSUER_A), rsa_key("b"), kid="b-1")
    assert (await refused(env.verifier, token)).detail == "unknown key"
    # A's kid, B's signature
    token = sign(claims(iss=ISSUER_A), rsa_key("b"), kid="a-1")
    assert (await refused(env.verifier, token)).detail == "invalid signature"
    # the hub's own issuer, signed by an external issuer's key
    token = sign(claims(), rsa_key("a"), kid="local-1")
    assert (await refused(env.verifier, token)).detail == "invalid signature"


async def test_a_weak_rsa_key_is_refused(env: Setup) -> None:
    env.ring.keys["weak"] = rsa_key("weak", 1024).public_key()
    with pytest.warns(InsecureKeyLengthWarning):
        token = sign(claims(), rsa_key("weak", 1024), kid="weak")
    assert (await refused(env.verifier, token)).detail == "unusable key"


async def test_an_oversized_token_is_refused_before_parsing(env: Setup) -> None:
    token = sign(claims(padding="x" * 20_000))
    assert (await refused(env.verifier, token)).detail == "malformed token"


async def test_a_deeply_nested_header_is_a_malformed_token(env: Setup) -> None:
    token = f"{b64(b'[' * 5000)}.{segment(claims())}.c2ln"
    assert (await refused(env.verifier, token)).detail == "malformed token"


# --- revocation and the cache -------------------------------------------------------------------


async def test_a_revoked_token_is_refused_even_when_cached(env: Setup) -> None:
    payload = claims()
    token = sign(payload)
    await env.verifier.verify(token)
    assert len(env.verifier) == 1
    env.revoked.add(payload["jti"])
    assert (await refused(env.verifier, token)).detail == "token revoked"
    assert len(env.verifier) == 0
    assert (await refused(env.verifier, token)).detail == "token revoked"


async def test_a_repeat_caller_costs_no_verification(env: Setup) -> None:
    token = sign(claims())
    first = await env.verifier.verify(token)
    lookups = env.ring.lookups
    for _ in range(100):
        assert await env.verifier.verify(token) is first
    assert env.ring.lookups == lookups


async def test_the_cache_is_a_bounded_lru() -> None:
    setup = Setup(cache_size=2)
    one, two, three = (sign(claims()) for _ in range(3))
    await setup.verifier.verify(one)
    await setup.verifier.verify(two)
    await setup.verifier.verify(one)  # now most recent
    await setup.verifier.verify(three)  # evicts two
    assert len(setup.verifier) == 2
    lookups = setup.ring.lookups
    await setup.verifier.verify(one)
    assert setup.ring.lookups == lookups
    await setup.verifier.verify(two)
    assert setup.ring.lookups == lookups + 1
    await setup.client.aclose()


async def test_a_cached_token_expires_with_its_exp(env: Setup) -> None:
    now = int(time.time())
    token = sign(claims(exp=now + 60))
    await env.verifier.verify(token)
    with time_machine.travel(now + 60 + 29, tick=False):
        assert (await env.verifier.verify(token)).subject == "client-1"  # within leeway
    with time_machine.travel(now + 60 + 31, tick=False):
        assert (await refused(env.verifier, token)).detail == "token expired"
    assert len(env.verifier) == 0


async def test_a_failed_token_is_not_cached(env: Setup) -> None:
    await refused(env.verifier, sign(claims(aud="x")))
    assert len(env.verifier) == 0


# --- the JWKS cache -----------------------------------------------------------------------------


async def test_one_fetch_serves_many_tokens_until_the_ttl(env: Setup) -> None:
    for _ in range(20):
        await env.verifier.verify(sign(claims(iss=ISSUER_A), rsa_key("a"), kid="a-1"))
    assert env.issuers.fetches[JWKS_A] == 1
    env.clock.now += 301
    await env.verifier.verify(sign(claims(iss=ISSUER_A), rsa_key("a"), kid="a-1"))
    assert env.issuers.fetches[JWKS_A] == 2


async def test_concurrent_callers_share_one_fetch(env: Setup) -> None:
    tokens = [sign(claims(iss=ISSUER_A), rsa_key("a"), kid="a-1") for _ in range(10)]
    results = await asyncio.gather(*(env.verifier.verify(t) for t in tokens))
    assert {p.issuer for p in results} == {ISSUER_A}
    assert env.issuers.fetches[JWKS_A] == 1


@pytest.mark.parametrize(
    "failure", [httpx.ConnectError("refused"), 500, 404], ids=["network", "500", "404"]
)
async def test_an_unreachable_jwks_refuses_with_invalid_token(
    env: Setup, failure: Exception | int
) -> None:
    env.issuers.fail = failure
    token = sign(claims(iss=ISSUER_A), rsa_key("a"), kid="a-1")
    assert (await refused(env.verifier, token)).detail == "unknown key"
    await refused(env.verifier, token)
    assert env.issuers.fetches[JWKS_A] == 1  # failures are rate-limited too


@pytest.mark.parametrize("body", [{"keys": "nope"}, {"keys": []}, ["a", "list"], "<html>"])
async def test_an_unreadable_jwks_refuses_with_invalid_token(env: Setup, body: Any) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(200, text=body)
        return httpx.Response(200, json=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        verifier = TokenVerifier(
            ISSUER_CONFIGS, local_issuer=LOCAL, local_keys=env.ring, jwks=JwksCache(client)
        )
        token = sign(claims(iss=ISSUER_A), rsa_key("a"), kid="a-1")
        assert (await refused(verifier, token)).detail == "unknown key"


async def test_known_keys_survive_an_issuer_outage(env: Setup) -> None:
    token = sign(claims(iss=ISSUER_A), rsa_key("a"), kid="a-1")
    await env.verifier.verify(token)
    env.issuers.fail = 503
    env.clock.now += 301  # the set is stale: a refetch is tried, fails, the old set answers
    env.verifier.clear()
    assert (await env.verifier.verify(token)).issuer == ISSUER_A
    assert env.issuers.fetches[JWKS_A] == 2
    env.issuers.fail = None
    env.clock.now += 10
    await env.verifier.verify(sign(claims(iss=ISSUER_A), rsa_key("a"), kid="a-1"))
    assert env.issuers.fetches[JWKS_A] == 3


def test_load_jwks_keeps_only_public_signing_keys() -> None:
    public = rsa_key("a").public_key()
    private = json.loads(jwt.get_algorithm_by_name("RS256").to_jwk(rsa_key("a")))
    document = {
        "keys": [
            jwk(public, "good"),
            {**jwk(public, "enc"), "use": "enc"},
            {**jwk(public, "ps"), "alg": "PS256"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {**private, "kid": "private"},
            {**jwk(public, "nokid"), "kid": None},
            {"kty": "RSA", "kid": "broken", "n": "AQAB"},
            {**jwk(ed_key("e").public_key(), "ed", "EdDSA")},
            {**jwk(public, "good"), "alg": "RS512"},
            "not a key",
        ]
    }
    keys = load_jwks(document, algorithms=("RS256", "EdDSA"))
    assert set(keys) == {"good", "ed"}
    assert isinstance(keys["good"], rsa.RSAPublicKey)
    assert load_jwks({"keys": None}) == {}
    assert load_jwks([]) == {}


async def test_the_verifier_refuses_an_incoherent_configuration() -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    ring = LocalKeyRing({})
    with pytest.raises(ValueError, match="local issuer"):
        TokenVerifier(ISSUER_CONFIGS[1:], local_issuer=LOCAL, local_keys=ring, jwks=None)
    with pytest.raises(ValueError, match="jwks_uri"):
        TokenVerifier(ISSUER_CONFIGS, local_issuer=LOCAL, local_keys=ring, jwks=None)
    with pytest.raises(ValueError, match="twice"):
        TokenVerifier(
            ISSUER_CONFIGS[:1] * 2, local_issuer=LOCAL, local_keys=ring, jwks=JwksCache(client)
        )
    with pytest.raises(ValueError, match="audience"):
        IssuerConfig(issuer=LOCAL, audiences=(), algorithms=("RS256",))
    await client.aclose()


# --- nothing but InvalidToken, whatever arrives -------------------------------------------------

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner)
    ),
    max_leaves=8,
)


def mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, else any JSON: most tokens get deep in."""
    return st.integers(0, 7).flatmap(lambda n: json_values if n == 5 else good)


@st.composite
def jwt_looking(draw: st.DrawFn) -> str:
    header = draw(
        st.fixed_dictionaries(
            {
                "alg": mostly(st.sampled_from(["RS256"] * 4 + ["none", "HS256", "EdDSA", "ES256"])),
                "kid": mostly(st.sampled_from(["local-1", "a-1", "b-1", "x"])),
            },
            optional={"typ": json_values},
        )
    )
    if draw(st.integers(0, 9)) == 0:
        header[draw(st.sampled_from(["crit", "b64", "jku", "jwk"]))] = draw(json_values)
    now = int(time.time())
    payload = draw(
        st.fixed_dictionaries(
            {
                "iss": mostly(st.sampled_from([LOCAL, ISSUER_A, ISSUER_B])),
                "aud": mostly(st.just("hub")),
                "sub": mostly(st.text(min_size=1, max_size=8)),
                "exp": mostly(st.integers(-100, 100).map(now.__add__)),
                "iat": mostly(st.integers(-100, 100).map(now.__add__)),
                "kind": mostly(st.sampled_from(["client", "person"])),
            },
            optional={"nbf": json_values, "scope": json_values, "jti": json_values},
        )
    )
    signature = draw(st.binary(max_size=300))
    parts = [segment(header), segment(payload), b64(signature)]
    return ".".join(draw(st.permutations(parts)) if draw(st.integers(0, 9)) == 0 else parts)


def _all_refused(token_strategy: st.SearchStrategy[str], examples: int) -> None:
    setup = Setup()
    with asyncio.Runner() as runner:

        @settings(max_examples=examples, deadline=None)
        @given(token_strategy)
        def check(token: str) -> None:
            with pytest.raises(InvalidToken):
                runner.run(setup.verifier.verify(token))

        check()
        runner.run(setup.client.aclose())


def test_random_text_and_bytes_never_verify() -> None:
    latin1 = st.binary(max_size=400).map(lambda raw: raw.decode("latin-1"))  # as headers decode
    _all_refused(st.text() | latin1 | st.text(alphabet=_B64 + ".", max_size=400), 300)


def test_jwt_looking_strings_never_verify() -> None:
    _all_refused(jwt_looking(), 200)


@st.composite
def mutated(draw: st.DrawFn, original: str) -> str:
    index = draw(st.integers(0, len(original) - 1))
    replacement = draw(st.sampled_from(_B64 + ".").filter(lambda c: c != original[index]))
    return original[:index] + replacement + original[index + 1 :]


def test_no_single_character_change_of_a_valid_token_verifies() -> None:
    _all_refused(mutated(sign(claims(exp=int(time.time()) + 3600))), 300)
