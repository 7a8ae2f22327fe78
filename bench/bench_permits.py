"""The work permits service on its own: learn -> issue -> renew -> paid -> renewed, in-process.

The service's app runs in this process through its real lifespan (its tables, outbox, relay and
consumers); the hub is a small ``httpx.MockTransport`` at its one door (JWKS, token endpoint,
payments API) and the bus is the in-process one, so the figures are the service's own cost
without the gateway, the provider or RabbitMQ. For ``--count`` workers it publishes
``visa.application.issued`` and ``contract.activated``, then at ``--concurrency``:

- ``issue``: POST a permit until the 201 (the checks read the projections in the transaction;
  the events were applied before the clock starts);
- ``renew``: POST the renewal until the 202 (the fee requested from the stand-in payments API);
- ``renewed``: from publishing ``payment.captured`` until the permit reads ``renewals: 1``.

SQLite by default; ``--postgres URL`` uses that database (a schema of its own, dropped after).
Usage::

    .venv/bin/python bench/bench_permits.py --count 300 --concurrency 16 [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import text

from hub.auth.internal import INTERNAL_TYP
from hub.backends.events.base import Event
from hub.backends.events.memory import MemoryEventBus
from hub.db.engine import create_engine
from services.work_permits.app import create_app
from services.work_permits.settings import PermitSettings

ISSUER = "http://hub.bench"
EST = "est_bench"


class StandIn:
    """The hub at the service's door: keys, the token endpoint and an idempotent payments API."""

    def __init__(self) -> None:
        self.key = ed25519.Ed25519PrivateKey.generate()
        self.payments: dict[str, dict[str, Any]] = {}

    def token(self, subject: str, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": ISSUER, "aud": "permits", "sub": subject, "kind": "person", "scope": "",
            "iat": now, "exp": now + 3600, "jti": uuid.uuid4().hex, "idp": ISSUER, **claims,
        }  # fmt: skip
        return jwt.encode(
            body, self.key, algorithm="EdDSA", headers={"kid": "k", "typ": INTERNAL_TYP}
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/jwks.json":
            public = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self.key.public_key()))
            return httpx.Response(200, json={"keys": [{**public, "kid": "k", "alg": "EdDSA"}]})
        if request.url.path == "/oauth2/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        key = request.headers["idempotency-key"]
        body = json.loads(request.content)
        payment = self.payments.setdefault(
            key, {"id": f"pay_{len(self.payments):08d}", "state": "authorised", **body}
        )
        return httpx.Response(201, json=payment)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def main(count: int, concurrency: int, postgres: str | None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-permits-"))
    schema = f"bench_permits_{uuid.uuid4().hex[:8]}" if postgres else None
    settings = PermitSettings(
        data_dir=tmp,
        database_url=postgres or f"sqlite+aiosqlite:///{tmp}/permits.db",
        database_schema=schema,
        hub_url=ISSUER,
        client_id="bench",
        client_secret="bench",
        sweep_seconds=3600,
    )
    hub, bus = StandIn(), MemoryEventBus()
    app = create_app(settings, transport=httpx.MockTransport(hub.handle), bus=bus)
    owner = {"x-hub-principal-token": hub.token("p-owner", memberships=[f"{EST}:owner"])}
    timings: dict[str, list[float]] = {"issue": [], "renew": [], "renewed": []}
    try:
        async with app.lifespan():
            transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
            async with httpx.AsyncClient(transport=transport, base_url="http://p") as client:
                while (
                    await client.get("/api/permits/v1/permits/x", headers=owner)
                ).status_code == 401:
                    await asyncio.sleep(0.05)  # the service fetches the keys in the background
                for n in range(count):
                    number = f"W{n:09d}"
                    await bus.publish(Event(type="visa.application.issued", payload={
                        "application_id": f"va_{n}", "kind": "work", "state": "issued",
                        "establishment_id": EST, "visa_number": number, "occupation": "2512",
                        "nationality": "IND", "passport_number": f"P{n:07d}",
                        "worker_name": f"Worker {n}",
                    }))  # fmt: skip
                    await bus.publish(Event(type="contract.activated", payload={
                        "contract_id": f"ct_{n}", "establishment_id": EST,
                        "employee": {"id": f"person-{n}", "nationality": "IND", "citizen": False},
                        "occupation": "2512", "state": "active", "visa_number": number,
                    }))  # fmt: skip
                store = app.state["permits"].workflow.store
                while (await store.table_counts())["processed_events"] < 2 * count:
                    await asyncio.sleep(0.05)  # the projections first: the timings are the steps
                gate = asyncio.Semaphore(concurrency)

                async def one(n: int) -> None:
                    async with gate:
                        body = {"visa_number": f"W{n:09d}", "contract_id": f"ct_{n}"}
                        start = time.perf_counter()
                        while True:  # until the service applied both events
                            answer = await client.post(
                                f"/api/permits/v1/establishments/{EST}/permits",
                                json=body,
                                headers={**owner, "idempotency-key": f"i-{n}"},
                            )
                            if answer.status_code == 201:
                                break
                            await asyncio.sleep(0.01)
                        timings["issue"].append(time.perf_counter() - start)
                        permit = answer.json()["id"]
                        start = time.perf_counter()
                        renewal = await client.post(
                            f"/api/permits/v1/permits/{permit}/renew",
                            headers={**owner, "idempotency-key": f"r-{n}"},
                        )
                        assert renewal.status_code == 202, renewal.text
                        timings["renew"].append(time.perf_counter() - start)
                        payment = renewal.json()["renewal"]["payment_id"]
                        start = time.perf_counter()
                        await bus.publish(Event(type="payment.captured", payload={
                            "payment_id": payment, "reference": f"work-permit:{permit}",
                        }))  # fmt: skip
                        while (
                            await client.get(f"/api/permits/v1/permits/{permit}", headers=owner)
                        ).json()["renewals"] != 1:
                            await asyncio.sleep(0.01)
                        timings["renewed"].append(time.perf_counter() - start)

                began = time.perf_counter()
                await asyncio.gather(*(one(n) for n in range(count)))
                elapsed = time.perf_counter() - began
    finally:
        if postgres and schema:
            engine = create_engine(postgres)
            async with engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            await engine.dispose()
    back_end = "PostgreSQL" if postgres else "SQLite"
    print(f"{back_end}: {count} permits at {concurrency}: {count / elapsed:.1f} issued+renewed/s")
    for step, values in timings.items():
        print(
            f"  {step:<8} p50 {_pct(values, 0.5):7.1f} ms  p99 {_pct(values, 0.99):7.1f} ms"
            f"  mean {statistics.mean(values) * 1000:7.1f} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--postgres", default=None, help="a PostgreSQL URL (postgresql+asyncpg://...)"
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.count, arguments.concurrency, arguments.postgres))
