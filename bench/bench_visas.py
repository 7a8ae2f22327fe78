"""The visa pipeline benchmark: apply -> checks -> payment -> decision -> issue -> event -> notice.

Starts real processes on free loopback ports: the sandbox civil and commercial registries
(education too, the configuration names it), the sandbox payment provider, one hub
(``hub serve``) and one visa service, on the embedded back-ends (``--real`` for PostgreSQL and
RabbitMQ). A delegated vendor application then files ``--count`` work visa applications at
``--concurrency``, each one a skilled, well-paid occupation the automatic rules approve, and the
bench times each step of each visa:

- ``apply``: POST through the hub until the 201 (registrar checks through the hub's adapter,
  the fee requested from the payments API, the rows and events committed);
- ``paid_issued``: from the 201 until the application reads ``issued`` (the provider captures,
  its signed webhook reaches the hub, ``payment.captured`` crosses the bus, the visa service
  decides and issues);
- ``notified``: from the 201 until its ``notification.requested`` of the issue is on the bus;
- ``verify``: the public verification through the hub.

It reports visas per second (issued and notified, over the whole run), p50/p99 per step, and,
with ``--profile``, the visa service's own top functions by cumulative time (cProfile). Bounded:
at most ``--count`` applications and ``--timeout`` seconds. Usage::

    .venv/bin/python bench/bench_visas.py --count 300 --concurrency 32 [--real] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import hub_cli, policies  # noqa: E402

from hub.backends.events.base import Event  # noqa: E402
from hub.backends.factory import build_event_bus_for  # noqa: E402
from hub.db.engine import create_engine  # noqa: E402
from hub.db.people_store import PeopleStores  # noqa: E402
from services.visas.store import VisaStore  # noqa: E402
from tests.amqp_sweep import sweep_sync  # noqa: E402

REGISTRY_KEY = "bench-registry-key"
PROVIDER_KEY = "bench-provider-key"
WEBHOOK_SECRET = "whsec_bench_0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait(url: str, timeout: float = 40, *, ok_only: bool = False, in_a_row: int = 1) -> None:
    deadline = time.monotonic() + timeout
    run = 0
    while time.monotonic() < deadline:
        try:
            status = httpx.get(url, timeout=1).status_code
            run = run + 1 if (status == 200 if ok_only else status < 500) else 0
        except httpx.HTTPError:
            run = 0
        if run >= in_a_row:
            return
        time.sleep(0.1 if run == 0 else 0.01)
    raise SystemExit(f"{url} did not come up")


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User and system CPU of ``pid`` and its descendants (Linux ``/proc``; 0 elsewhere)."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += (int(fields[11]) + int(fields[12])) / _TICKS
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (OSError, ValueError, IndexError):
        return total
    return total + sum(cpu_seconds(int(child)) for child in children)


class Processes:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.children: list[subprocess.Popen[bytes]] = []
        self.names: dict[str, int] = {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{name}.log").open("wb")
        child = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.children.append(child)
        self.names[name] = child.pid
        return child

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each process started here, its workers included."""
        return {name: cpu_seconds(pid) for name, pid in self.names.items()}

    def stop(self) -> None:
        for child in reversed(self.children):
            child.send_signal(signal.SIGINT)  # cProfile writes its file on a clean exit
        for child in self.children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()


def large_establishments(url: str, wanted: int) -> list[dict[str, Any]]:
    found = []
    for n in range(10, 4000):
        cr = str(4030000000 + n)
        answer = httpx.get(
            f"{url}/v1/establishments/{cr}", headers={"X-Registry-Key": REGISTRY_KEY}
        )
        record = answer.json() if answer.status_code == 200 else {}
        if record.get("size") == "large" and record.get("status") == "active":
            found.append(record)
            if len(found) == wanted:
                return found
    raise SystemExit("the sandbox has too few large active establishments")


async def arrange(hub_db: str, records: list[dict[str, Any]], vendor: str) -> list[str]:
    engine = create_engine(hub_db)
    try:
        people = PeopleStores.on(engine)
        owner = await people.persons.create(
            kind="citizen", identifier="1000009999", given_name="Bench", family_name="Owner"
        )
        ids = []
        for record in records:
            est = await people.establishments.create(
                cr_number=record["cr_number"], name=record["name"], sector=record["sector"],
                size="large",
            )  # fmt: skip
            await people.establishments.add_member(est.id, owner.id, "owner")
            await people.delegations.grant(
                est.id, grantor=owner.id, scopes=["visas.apply"],
                valid_until=datetime.now(UTC) + timedelta(days=1), grantee_client=vendor,
            )  # fmt: skip
            ids.append(est.id)
        return ids
    finally:
        await engine.dispose()


async def declare(visas_db: str, schema: str | None, pairs: list[tuple[str, str]]) -> None:
    engine = create_engine(visas_db)
    if schema:
        engine = engine.execution_options(schema_translate_map={None: schema})
    store = VisaStore(engine, schema=schema)
    try:
        for establishment, cr in pairs:  # enough citizens for a platinum band all run long
            await store.declare_workforce(establishment, cr, 100_000)
    finally:
        await engine.dispose()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(
    hub_url: str,
    bus_args: dict[str, Any],
    tokens: list[tuple[str, str]],
    *,
    count: int,
    concurrency: int,
    timeout: float,
) -> dict[str, Any]:
    notified: dict[str, float] = {}
    issued: dict[str, asyncio.Future[float]] = {}
    loop = asyncio.get_running_loop()
    bus = build_event_bus_for(**bus_args)
    await bus.start()

    def arrived(application: str) -> asyncio.Future[float]:
        if application not in issued:
            issued[application] = loop.create_future()
        return issued[application]

    async def record(event: Event) -> None:
        now = time.perf_counter()
        if event.type == "visa.application.issued":
            waiter = arrived(event.payload["application_id"])
            if not waiter.done():
                waiter.set_result(now)
        elif event.payload.get("template") == "visa.application.issued":
            notified.setdefault(event.payload["data"]["application_id"], now)

    # One queue for both: the bench waits on the event instead of polling the API.
    queue_name = f"bench.visas.{uuid.uuid4().hex[:6]}"
    await bus.subscribe(queue_name, "visa.application.issued", record)
    await bus.subscribe(queue_name, "notification.requested", record)
    steps: dict[str, list[float]] = {"apply": [], "paid_issued": [], "notified": [], "verify": []}
    created: dict[str, float] = {}
    failures: dict[str, int] = {}
    limits = httpx.Limits(
        max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2
    )
    started = time.perf_counter()
    deadline = started + timeout
    async with httpx.AsyncClient(base_url=hub_url, timeout=30, limits=limits) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(count):
            queue.put_nowait(n)

        async def one(n: int) -> None:
            establishment, token = tokens[n % len(tokens)]
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"bench-{n}"}
            body = {
                "cr_number": establishment.split("|")[1],
                "worker": {"given_name": "Bench", "family_name": f"Worker{n}", "nationality": "IND",
                           "passport_number": f"B{n:08d}", "birth_date": "1990-01-01"},
                "occupation": "2512", "monthly_salary": 15000,
            }  # fmt: skip
            t0 = time.perf_counter()
            answer = await client.post(
                f"/api/visas/v1/establishments/{establishment.split('|')[0]}/applications",
                json=body, headers=headers,
            )  # fmt: skip
            if answer.status_code != 201:
                code = f"apply {answer.status_code} {answer.json().get('code')}"
                failures[code] = failures.get(code, 0) + 1
                return
            t1 = time.perf_counter()
            steps["apply"].append(t1 - t0)
            application = answer.json()["id"]
            created[application] = t1
            try:
                t2 = await asyncio.wait_for(
                    asyncio.shield(arrived(application)), max(deadline - time.perf_counter(), 0)
                )
            except TimeoutError:
                failures["not issued in time"] = failures.get("not issued in time", 0) + 1
                return
            # One read for the verification code, which no event carries.
            current = (
                await client.get(
                    f"/api/visas/v1/applications/{application}",
                    headers={"Authorization": headers["Authorization"]},
                )
            ).json()
            if current.get("state") != "issued":
                failures["issued event before the state"] = (
                    failures.get("issued event before the state", 0) + 1
                )
                return
            steps["paid_issued"].append(t2 - t1)
            visa = current["visa"]
            t3 = time.perf_counter()
            checked = await client.get(
                f"/api/visas/v1/verify/{visa['number']}", params={"code": visa["verification_code"]}
            )
            steps["verify"].append(time.perf_counter() - t3)
            if not checked.json().get("valid"):
                failures["verify"] = failures.get("verify", 0) + 1

        async def worker() -> None:
            while time.perf_counter() < deadline:
                try:
                    n = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                try:
                    await one(n)
                except httpx.HTTPError as exc:
                    failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        while time.perf_counter() < deadline and not set(created) <= set(notified):
            await asyncio.sleep(0.05)
    finished = time.perf_counter()
    for application, at in created.items():
        if application in notified:
            steps["notified"].append(notified[application] - at)
    await bus.aclose()
    elapsed = finished - started
    done = len(steps["notified"])
    return {
        "count": count,
        "concurrency": concurrency,
        "issued": len(steps["paid_issued"]),
        "notified": done,
        "seconds": round(elapsed, 2),
        "visas_per_second": round(done / elapsed, 1) if elapsed else 0.0,
        "failures": failures,
        "steps_ms": {
            name: {
                "p50": round(statistics.median(values) * 1000, 1) if values else None,
                "p99": round(pct(values, 0.99) * 1000, 1) if values else None,
                "n": len(values),
            }
            for name, values in steps.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=180)
    parser.add_argument("--real", action="store_true", help="PostgreSQL, Redis and RabbitMQ")
    parser.add_argument("--profile", action="store_true", help="cProfile the visa service")
    parser.add_argument("--hub-workers", type=int, default=1, help="HUB_WORKERS of the hub")
    parser.add_argument(
        "--outbox-poll", type=float, default=0.05, help="HUB_OUTBOX_POLL_SECONDS of the hub"
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-visas-"))
    procs = Processes(folder)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "VISAS_"))}
    ports = {
        name: free_port()
        for name in ("civil-registry", "commercial-registry", "education-registry",
                     "payment-provider", "visas", "hub")
    }  # fmt: skip
    hub_url = f"http://127.0.0.1:{ports['hub']}"
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    policy_dir = policies(folder, ports, upstream="visas")
    hub_env = {
        **base_env,
        "HUB_PORT": str(ports["hub"]), "HUB_DATA_DIR": str(folder / "data"),
        "HUB_POLICIES_DIR": str(policy_dir), "HUB_ADMIN_TOKEN": "bench",
        "HUB_ACCESS_LOG": "false", "HUB_LOG_LEVEL": "warning", "HUB_EVENTS_NAMESPACE": namespace,
        "HUB_WORKERS": str(args.hub_workers), "HUB_OUTBOX_POLL_SECONDS": str(args.outbox_poll),
        "HUB_ADAPTER_SECRET_CIVIL_REGISTRY_KEY": REGISTRY_KEY,
        "HUB_ADAPTER_SECRET_COMMERCIAL_REGISTRY_KEY": REGISTRY_KEY,
        "HUB_ADAPTER_SECRET_EDUCATION_REGISTRY_KEY": REGISTRY_KEY,
        "HUB_ADAPTER_SECRET_PAYMENT_PROVIDER_KEY": PROVIDER_KEY,
        "HUB_ADAPTER_SECRET_PAYMENT_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }  # fmt: skip
    schema = None
    if args.real:
        name = f"bench_visas_{uuid.uuid4().hex[:8]}"

        async def create_db() -> None:
            conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
            await conn.execute(f'CREATE DATABASE "{name}"')
            await conn.close()

        asyncio.run(create_db())
        hub_env["HUB_DATABASE_URL"] = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        hub_env["HUB_REDIS_URL"] = "redis://127.0.0.1:6379/14"
        hub_env["HUB_AMQP_URL"] = "amqp://guest:guest@127.0.0.1:5672/"
        schema = "visas"
    hub_db = hub_env.get("HUB_DATABASE_URL") or f"sqlite+aiosqlite:///{folder}/data/hub.db"
    visas_db = hub_db if args.real else f"sqlite+aiosqlite:///{folder}/visas/visas.db"
    try:
        for name, module in (("civil-registry", "civil_registry"),
                             ("commercial-registry", "commercial_registry"),
                             ("education-registry", "education_registry")):  # fmt: skip
            procs.start(name, [sys.executable, "-m", f"adapters.sandbox.{module}", "--port",
                               str(ports[name]), f"--api-key={REGISTRY_KEY}", "--quota", "0",
                               "--population", "5000", "--latency-ms", "0"], base_env)  # fmt: skip
        procs.start("provider", [sys.executable, "-m", "adapters.sandbox.payment_provider",
                                 "--port", str(ports["payment-provider"]),
                                 f"--api-key={PROVIDER_KEY}", f"--webhook-secret={WEBHOOK_SECRET}",
                                 f"--webhook-url={hub_url}/api/payments/v1/webhooks/payment-provider"],
                    base_env)  # fmt: skip
        subprocess.run([sys.executable, "-m", "hub", "migrate"], env=hub_env, cwd=ROOT, check=True,
                       capture_output=True, timeout=120)  # fmt: skip
        procs.start("hub", [sys.executable, "-m", "hub", "serve"], hub_env)
        for name in ("civil-registry", "commercial-registry", "payment-provider"):
            wait(f"http://127.0.0.1:{ports[name]}/_sandbox/health")
        wait(f"{hub_url}/readyz")
        scopes = "registry.visa-eligibility payments.write payments.read payments.refund"
        service = hub_cli(
            hub_env, "clients", "create", "--name", "Visa service", "--owner", "visas",
            "--scopes", scopes,
        )  # fmt: skip
        vendor = hub_cli(
            hub_env, "clients", "create", "--name", "Bench HR suite", "--owner", "bench",
            "--scopes", "visas.apply",
        )  # fmt: skip
        records = large_establishments(f"http://127.0.0.1:{ports['commercial-registry']}",
                                       max(1, args.count // 250 + 1))  # fmt: skip
        ids = asyncio.run(arrange(hub_db, records, vendor["client_id"]))
        visas_env = {
            **base_env,
            "VISAS_PORT": str(ports["visas"]), "VISAS_DATA_DIR": str(folder / "visas"),
            "VISAS_HUB_URL": hub_url, "VISAS_CLIENT_ID": service["client_id"],
            "VISAS_CLIENT_SECRET": service["client_secret"], "VISAS_EVENTS_NAMESPACE": namespace,
            "VISAS_DATABASE_URL": visas_db,
        }  # fmt: skip
        if args.real:
            visas_env["VISAS_AMQP_URL"] = hub_env["HUB_AMQP_URL"]
            visas_env["VISAS_DATABASE_SCHEMA"] = "visas"
        else:
            visas_env["VISAS_BUS_DATABASE_URL"] = hub_db
        command = [sys.executable]
        profile = folder / "visas.prof"
        if args.profile:
            command += ["-m", "cProfile", "-o", str(profile)]
        procs.start("visas", [*command, "-m", "services.visas"], visas_env)
        wait(f"http://127.0.0.1:{ports['visas']}/healthz")
        asyncio.run(
            declare(
                visas_db, schema, [(i, r["cr_number"]) for i, r in zip(ids, records, strict=True)]
            )
        )
        # Every hub worker checks upstream health on its own: wait until a run of answers
        # in a row says each of them sees the visa service (not just the first to answer).
        wait(f"{hub_url}/api/visas/v1/reasons", ok_only=True, in_a_row=10 * args.hub_workers)
        tokens = []
        for establishment, record in zip(ids, records, strict=True):
            answer = httpx.post(
                f"{hub_url}/oauth2/token",
                data={"grant_type": "client_credentials", "establishment": record["cr_number"],
                      "scope": "visas.apply"},
                auth=(vendor["client_id"], vendor["client_secret"]),
            )  # fmt: skip
            answer.raise_for_status()
            tokens.append((f"{establishment}|{record['cr_number']}", answer.json()["access_token"]))
        bus_args = {
            "amqp_url": hub_env.get("HUB_AMQP_URL"),
            "database_url": hub_db,
            "namespace": namespace,
        }
        load_before = list(os.getloadavg())
        cpu_before = procs.cpu()
        own_before = time.process_time()
        report = asyncio.run(
            drive(
                hub_url,
                bus_args,
                tokens,
                count=args.count,
                concurrency=args.concurrency,
                timeout=args.timeout,
            )
        )
        report["backends"] = "postgresql+redis+rabbitmq" if args.real else "embedded"
        report["hub_workers"] = args.hub_workers
        cpu_after = procs.cpu()
        cpu_after["bench"] = time.process_time() - own_before
        cpu_before["bench"] = 0.0
        done = max(report["notified"], 1)
        report["cpu_ms_per_visa"] = {
            name: round((cpu_after[name] - cpu_before.get(name, 0.0)) * 1000 / done, 1)
            for name in cpu_after
        }
        report["cpu_ms_per_visa"]["total"] = round(sum(report["cpu_ms_per_visa"].values()), 1)
        report["load_before"] = load_before
        report["load_after"] = list(os.getloadavg())
        print(json.dumps(report, indent=2))
    finally:
        procs.stop()
        if hub_env.get("HUB_AMQP_URL"):  # the bench's own queues, never anyone else's
            sweep_sync(hub_env["HUB_AMQP_URL"], (f"{namespace}.",))
    if args.profile and profile.exists():
        print("\nvisa service, top 25 by cumulative time:")
        pstats.Stats(str(profile)).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
