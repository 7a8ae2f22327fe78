"""The principal passed upstream (hub.auth.internal): minting, reuse, verifying, no spoofing."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
import time_machine
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from hub.auth import (
    InternalTokenSigner,
    InternalTokenVerifier,
    IssuerConfig,
    Principal,
    TokenVerifier,
    load_jwks,
)
from hub.errors import InvalidToken

HUB = "https://hub.example.gov"
KEY = ed25519.Ed25519PrivateKey.generate()
OTHER = ed25519.Ed25519PrivateKey.generate()
PERSON = Principal(
    subject="person-784",
    kind="person",
    issuer="https://idp.example.gov",
    client_id="portal",
    scopes=frozenset({"payroll.read", "profile"}),
    acr="urn:hub:acr:totp",
    establishment="cr-1010",
    registrations=frozenset({"est_1:4030000001", "est_2:4030000002"}),
    national_id="1000000001",
    token_id="jti-1",
    expires_at=2e9,
)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class SigningKey:
    """The hub's active internal key, counting how often a signature was needed."""

    def __init__(self, kid: str = "int-1", key: Any = KEY) -> None:
        self.kid, self.key, self.calls = kid, key, 0

    def __call__(self) -> tuple[str, Any]:
        self.calls += 1
        return self.kid, self.key


def jwks(*pairs: tuple[str, Any]) -> dict[str, Any]:
    algorithm = jwt.get_algorithm_by_name("EdDSA")
    keys = [
        {**json.loads(algorithm.to_jwk(key.public_key())), "kid": kid, "alg": "EdDSA"}
        for kid, key in pairs
    ]
    return {"keys": keys}


class ServiceKeys:
    """A service's view of the hub's JWKS (load_jwks), counting look-ups."""

    def __init__(self, *pairs: tuple[str, Any]) -> None:
        self.keys = load_jwks(jwks(*pairs))
        self.lookups = 0

    def __call__(self, kid: str) -> Any | None:
        self.lookups += 1
        return self.keys.get(kid)


def service(audience: str = "payroll", **options: Any) -> InternalTokenVerifier:
    return InternalTokenVerifier(
        ServiceKeys(("int-1", KEY)), issuer=HUB, audience=audience, **options
    )


def refused(verifier: InternalTokenVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token)
    assert caught.value.status == 401
    assert "invalid_token" in caught.value.headers["WWW-Authenticate"]
    return caught.value.detail


def forge(claims: dict[str, Any], key: Any = KEY, **header: Any) -> str:
    headers = {"kid": "int-1", "typ": "hub-principal+jwt", **header}
    algorithm = headers.pop("alg", "EdDSA")
    headers = {name: value for name, value in headers.items() if value is not None}
    return jwt.api_jws.encode(
        json.dumps(claims).encode(), key, algorithm=algorithm, headers=headers
    )


def good_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": HUB,
        "aud": "payroll",
        "sub": "person-784",
        "kind": "person",
        "iat": now,
        "exp": now + 60,
        "jti": "j1",
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def test_the_principal_survives_the_trip_upstream() -> None:
    signer = InternalTokenSigner(SigningKey(), issuer=HUB)
    token = signer.mint(PERSON, "payroll")
    principal = service().verify(token)
    assert principal.subject == PERSON.subject
    assert principal.kind == "person"
    assert principal.issuer == PERSON.issuer  # who authenticated the subject, via "idp"
    assert principal.client_id == "portal"
    assert principal.scopes == PERSON.scopes
    assert principal.acr == PERSON.acr
    assert principal.establishment == "cr-1010"
    assert principal.registrations == PERSON.registrations
    assert principal.national_id == "1000000001"
    assert principal.token_id is not None
    assert principal.token_id != PERSON.token_id
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "kid": "int-1", "typ": "hub-principal+jwt"}
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == HUB
    assert claims["aud"] == "payroll"
    assert claims["exp"] - claims["iat"] == 60
    assert claims["scope"] == "payroll.read profile"


def test_absent_fields_are_absent_claims() -> None:
    client = Principal(subject="vendor-1", kind="client", issuer=HUB, client_id="vendor-1")
    token = InternalTokenSigner(SigningKey(), issuer=HUB).mint(client, "payroll")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert "acr" not in claims
    assert "establishment" not in claims
    assert "registrations" not in claims
    assert "national_id" not in claims
    assert claims["scope"] == ""
    principal = service().verify(token)
    assert (principal.subject, principal.kind, principal.issuer) == ("vendor-1", "client", HUB)
    assert principal.scopes == frozenset()
    assert principal.acr is None


def test_a_token_is_reused_until_half_its_lifetime() -> None:
    key, clock = SigningKey(), Clock()
    signer = InternalTokenSigner(key, issuer=HUB, lifetime=60, clock=clock)
    first = signer.mint(PERSON, "payroll")
    clock.now += 29
    assert signer.mint(PERSON, "payroll") == first
    assert key.calls == 1
    assert signer.mint(PERSON, "registry") != first
    other = Principal(**{**_fields(PERSON), "token_id": "jti-2"})
    assert signer.mint(other, "payroll") != first
    assert key.calls == 3
    clock.now += 1.5
    assert signer.mint(PERSON, "payroll") != first
    assert key.calls == 4


def test_the_mint_cache_is_bounded() -> None:
    key = SigningKey()
    signer = InternalTokenSigner(key, issuer=HUB, max_entries=2)
    for audience in ("a", "b", "c"):
        signer.mint(PERSON, audience)
    signer.mint(PERSON, "c")
    assert key.calls == 3
    signer.mint(PERSON, "a")  # evicted
    assert key.calls == 4


def test_a_service_verifies_each_token_once() -> None:
    keys = ServiceKeys(("int-1", KEY))
    verifier = InternalTokenVerifier(keys, issuer=HUB, audience="payroll")
    token = InternalTokenSigner(SigningKey(), issuer=HUB).mint(PERSON, "payroll")
    first = verifier.verify(token)
    assert verifier.verify(token) is first
    assert keys.lookups == 1


def test_a_cached_internal_token_still_expires() -> None:
    now = int(time.time())
    verifier = service()
    token = forge(good_claims(iat=now, exp=now + 60))
    verifier.verify(token)
    with time_machine.travel(now + 66, tick=False):
        assert refused(verifier, token) == "token expired"


def test_a_rotated_internal_key_verifies_after_the_jwks_has_it() -> None:
    signer = InternalTokenSigner(SigningKey("int-2", OTHER), issuer=HUB)
    token = signer.mint(PERSON, "payroll")
    assert refused(service(), token) == "unknown key"
    rotated = InternalTokenVerifier(
        ServiceKeys(("int-1", KEY), ("int-2", OTHER)), issuer=HUB, audience="payroll"
    )
    assert rotated.verify(token).subject == PERSON.subject


def test_refusals() -> None:
    verifier = service()
    now = int(time.time())
    assert refused(verifier, forge(good_claims(aud="registry"))) == "invalid audience"
    assert refused(verifier, forge(good_claims(iss="https://evil"))) == "invalid issuer"
    expired = good_claims(iat=now - 120, exp=now - 6)
    assert refused(verifier, forge(expired)) == "token expired"
    assert refused(verifier, forge(good_claims(), kid="int-9")) == "unknown key"
    assert refused(verifier, forge(good_claims(), kid=None)) == "missing key id"
    assert refused(verifier, forge(good_claims(), OTHER)) == "invalid signature"
    assert refused(verifier, forge(good_claims(), typ="JWT")) == "not an internal token"
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert refused(verifier, forge(good_claims(), rsa_key, alg="RS256")) == (
        "algorithm not allowed"
    )
    assert refused(verifier, forge(good_claims(jti=None))) == "missing claim: jti"
    assert refused(verifier, forge(good_claims(kind="root"))) == "malformed claim: kind"
    assert refused(verifier, forge(good_claims(kind=["person"]))) == "malformed claim: kind"
    header, _, signature = forge(good_claims()).split(".")
    payload = jwt.utils.base64url_encode(json.dumps(good_claims(sub="admin")).encode()).decode()
    assert refused(verifier, f"{header}.{payload}.{signature}") == "invalid signature"
    assert refused(verifier, "x" * 20_000) == "malformed token"


async def test_an_internal_token_is_no_access_token_at_the_gateway() -> None:
    token = InternalTokenSigner(SigningKey(), issuer=HUB).mint(PERSON, "hub")

    class Ring:
        def public_key(self, kid: str) -> Any | None:
            return KEY.public_key() if kid == "int-1" else None

    gateway = TokenVerifier(
        [IssuerConfig(issuer=HUB, audiences=("hub",), algorithms=("RS256",))],
        local_issuer=HUB,
        local_keys=Ring(),
        jwks=None,
    )
    with pytest.raises(InvalidToken, match="algorithm not allowed"):
        await gateway.verify(token)


def _fields(principal: Principal) -> dict[str, Any]:
    return {name: getattr(principal, name) for name in Principal.__slots__}
