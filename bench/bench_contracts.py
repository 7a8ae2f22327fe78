"""The contracts service's own cost per step, in-process: draft, offer, accept, sign, verify, PDF.

The service runs in this process (``httpx.ASGITransport``, lifespan included) on its embedded
database (an SQLite file; ``--postgres URL`` for PostgreSQL in a schema of its own), with the
hub stood in for at its one door by ``tests/contracts_support.py`` (whose signing endpoint
signs as the hub's does): so the figures are the service's work (parsing, hashing, rows and
outbox events, JWS checks, rendering), not the hub's or the network's. ``--count`` contracts
go through their whole life at ``--concurrency``; each step's p50/p99 and contracts per second
are printed. Usage::

    .venv/bin/python bench/bench_contracts.py --count 200 --concurrency 8 [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.backends.events.memory import MemoryEventBus
from services.contracts.app import create_app
from services.contracts.settings import ContractSettings
from tests.contracts_support import ISSUER, ContractsHub

EST = "est_bench"


def _body(n: int) -> dict[str, Any]:
    return {
        "cr_number": "4030000001",
        "employee": {"id": f"p-{n}", "name": f"Worker {n}", "nationality": "IND",
                     "citizen": False, "visa_number": f"W{n:09d}"},
        "occupation": "2512",
        "salary": 15000,
        "allowances": {"housing": 3000},
        "start_date": (date.today() + timedelta(days=30)).isoformat(),
        "terms": {"clauses": ["Clause one.", "Clause two."]},
    }  # fmt: skip


async def _life(
    client: httpx.AsyncClient, hub: ContractsHub, n: int, times: dict[str, list[float]]
) -> None:
    employer = {"x-hub-principal-token": hub.token("p-owner", memberships=(f"{EST}:owner",))}
    employee = {"x-hub-principal-token": hub.token(f"p-{n}")}

    async def step(name: str, method: str, url: str, headers: dict[str, str], **kw: Any) -> Any:
        started = time.perf_counter()
        answer = await client.request(method, url, headers=headers, **kw)
        times[name].append(time.perf_counter() - started)
        assert answer.status_code in {200, 201}, answer.text
        return answer

    drafted = await step(
        "draft", "POST", f"/api/contracts/v1/establishments/{EST}/contracts",
        {**employer, "idempotency-key": f"b-{n}"}, json=_body(n),
    )  # fmt: skip
    one = f"/api/contracts/v1/contracts/{drafted.json()['id']}"
    await step("offer", "POST", f"{one}/offer", employer)
    await step("accept", "POST", f"{one}/accept", employee)
    await step("sign", "POST", f"{one}/sign", employee)
    await step("sign", "POST", f"{one}/sign", employer)
    verified = await step("verify", "GET", f"{one}/signatures/verify", employee)
    assert verified.json()["valid"] is True
    await step("pdf", "GET", f"{one}/document", employee, params={"format": "pdf"})


async def main(count: int, concurrency: int, postgres: str | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        settings = ContractSettings(
            data_dir=Path(folder),
            database_url=postgres or f"sqlite+aiosqlite:///{folder}/contracts.db",
            database_schema="contracts_bench" if postgres else None,
            hub_url=ISSUER,
            client_id="bench",
            client_secret="bench",
            sweep_seconds=3600,
        )
        hub = ContractsHub()
        app = create_app(settings, transport=hub.transport(), bus=MemoryEventBus())
        async with (
            app.lifespan(),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://contracts.bench"
            ) as client,
        ):
            probe = {"x-hub-principal-token": hub.token("p-owner")}
            while (
                await client.get("/api/contracts/v1/contracts/x", headers=probe)
            ).status_code == 401:
                await asyncio.sleep(0.05)  # the service fetches the stand-in's keys
            times: dict[str, list[float]] = defaultdict(list)
            gate = asyncio.Semaphore(concurrency)

            async def one(n: int) -> None:
                async with gate:
                    await _life(client, hub, n, times)

            started = time.perf_counter()
            await asyncio.gather(*(one(n) for n in range(count)))
            elapsed = time.perf_counter() - started
    backend = "PostgreSQL" if postgres else "SQLite"
    print(f"{count} contracts at {concurrency} on {backend}: {count / elapsed:.1f} contracts/s")
    for name, values in times.items():
        values.sort()
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        print(
            f"  {name:7} p50 {statistics.median(values) * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL (asyncpg)")
    options = parser.parse_args()
    asyncio.run(main(min(options.count, 10_000), options.concurrency, options.postgres))
