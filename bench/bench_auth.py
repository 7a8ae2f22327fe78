"""Micro-benchmark of gateway authentication: µs per call, first time vs repeat caller.

Run: ``python bench/bench_auth.py`` (about fifteen seconds). "first" is a verifier with its
cache off, so every call does the full work (parse, key lookup, signature, claims); "cached" is
the same token again, which is what a client making many calls costs. Each figure is the best
of several timed rounds of process CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import secrets
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from hub.auth import (
    ApiKeyVerifier,
    InternalTokenSigner,
    InternalTokenVerifier,
    IssuerConfig,
    Principal,
    TokenVerifier,
)

ISSUER = "https://hub.example.gov"


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    id: str
    prefix: str
    secret_hash: str
    client_id: str | None
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class Ring:
    def __init__(self, keys: dict[str, Any]) -> None:
        self.keys = keys

    def public_key(self, kid: str) -> Any | None:
        return self.keys.get(kid)


def best_us(call: Callable[[], object], items: int, budget: float) -> float:
    """Best per-item CPU time over rounds of ``call`` (which handles ``items`` items), in µs."""
    best = float("inf")
    deadline = time.perf_counter() + budget
    rounds = 0
    while rounds < 3 or time.perf_counter() < deadline:
        started = time.process_time_ns()
        call()
        best = min(best, (time.process_time_ns() - started) / items)
        rounds += 1
    return best / 1000


def best_us_async(
    runner: asyncio.Runner,
    call: Callable[[], Coroutine[Any, Any, object]],
    items: int,
    budget: float,
) -> float:
    """As best_us, for a coroutine function that handles ``items`` items per call."""
    return best_us(lambda: runner.run(call()), items, budget)


def access_token(key: rsa.RSAPrivateKey) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": "hub",
        "sub": "vendor-1",
        "client_id": "vendor-1",
        "kind": "client",
        "scope": "payroll.read payroll.write",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per figure")
    args = parser.parse_args()
    budget = args.budget
    rows: list[tuple[str, float, float | None]] = []

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = access_token(rsa_key)
    issuers = [IssuerConfig(issuer=ISSUER, audiences=("hub",), algorithms=("RS256",))]
    ring = Ring({"k1": rsa_key.public_key()})
    revoked: set[str] = set()

    def verifier(cache_size: int) -> TokenVerifier:
        return TokenVerifier(
            issuers,
            local_issuer=ISSUER,
            local_keys=ring,
            jwks=None,
            is_revoked=revoked.__contains__,
            cache_size=cache_size,
        )

    n = 200
    with asyncio.Runner() as runner:
        cold, warm = verifier(0), verifier(10_000)

        async def verify_many(v: TokenVerifier, count: int) -> None:
            for _ in range(count):
                await v.verify(token)

        runner.run(verify_many(warm, 1))
        public = rsa_key.public_key()
        bare = best_us(
            lambda: [
                jwt.decode(token, public, algorithms=["RS256"], audience="hub") for _ in range(n)
            ],
            n,
            budget,
        )
        rows.append(("pyjwt.decode RS256 alone", bare, None))
        rows.append(
            (
                "TokenVerifier RS256",
                best_us_async(runner, lambda: verify_many(cold, n), n, budget),
                best_us_async(runner, lambda: verify_many(warm, 20 * n), 20 * n, budget),
            )
        )

        prefix = secrets.token_hex(5)
        plaintext = f"hub_{prefix}_{secrets.token_urlsafe(32)}"
        record = Record(
            id="key-1",
            prefix=prefix,
            secret_hash=hashlib.sha256(plaintext.encode()).hexdigest(),
            client_id="vendor-1",
            name="bench",
            scopes=("payroll.read",),
            created_at=datetime.now(UTC),
            expires_at=None,
            revoked_at=None,
        )

        async def lookup(wanted: str) -> Record | None:
            return record if wanted == prefix else None

        keys_cold = ApiKeyVerifier(lookup, cache_seconds=0)
        keys_warm = ApiKeyVerifier(lookup, cache_seconds=3600)

        async def keys_many(v: ApiKeyVerifier, count: int) -> None:
            for _ in range(count):
                await v.verify(plaintext)

        rows.append(
            (
                "ApiKeyVerifier (in-memory lookup)",
                best_us_async(runner, lambda: keys_many(keys_cold, 20 * n), 20 * n, budget),
                best_us_async(runner, lambda: keys_many(keys_warm, 20 * n), 20 * n, budget),
            )
        )

    ed_key = ed25519.Ed25519PrivateKey.generate()
    principal = Principal(
        subject="vendor-1",
        kind="client",
        issuer=ISSUER,
        client_id="vendor-1",
        scopes=frozenset({"payroll.read", "payroll.write"}),
        token_id=uuid.uuid4().hex,
        expires_at=time.time() + 3600,
    )
    signer_cold = InternalTokenSigner(lambda: ("i1", ed_key), issuer=ISSUER, max_entries=0)
    signer_warm = InternalTokenSigner(lambda: ("i1", ed_key), issuer=ISSUER)
    rows.append(
        (
            "InternalTokenSigner.mint EdDSA",
            best_us(lambda: [signer_cold.mint(principal, "payroll") for _ in range(n)], n, budget),
            best_us(
                lambda: [signer_warm.mint(principal, "payroll") for _ in range(20 * n)],
                20 * n,
                budget,
            ),
        )
    )
    internal = signer_warm.mint(principal, "payroll")
    public_ed = ed_key.public_key()

    def service_keys(kid: str) -> Any | None:
        return public_ed if kid == "i1" else None

    service_cold = InternalTokenVerifier(
        service_keys, issuer=ISSUER, audience="payroll", cache_size=0
    )
    service_warm = InternalTokenVerifier(service_keys, issuer=ISSUER, audience="payroll")
    rows.append(
        (
            "InternalTokenVerifier EdDSA",
            best_us(lambda: [service_cold.verify(internal) for _ in range(n)], n, budget),
            best_us(lambda: [service_warm.verify(internal) for _ in range(20 * n)], 20 * n, budget),
        )
    )

    print(f"{'µs per call':<36} {'first':>9} {'cached':>9}")
    for label, first, cached in rows:
        cached_text = "-" if cached is None else f"{cached:.2f}"
        print(f"{label:<36} {first:>9.2f} {cached_text:>9}")


if __name__ == "__main__":
    main()
