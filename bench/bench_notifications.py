"""Notifications per second end to end: event → hub → e-mail sandbox → receipt → delivered.

Run: ``python bench/bench_notifications.py [--count 300] [--timeout 180]``.

Processes on free loopback ports, embedded back-ends (SQLite, the database-backed bus): a hub
(``hub serve``), the sandbox SMS and e-mail providers (receipts called back to the hub) and
the notification service. ``count`` ``notification.requested`` events are published on the
hub's bus at once; each is rendered, put in an inbox, sent through the hub's e-mail adapter
route to the sandbox, whose signed ``sent`` and ``delivered`` receipts come back through the
hub's callback endpoint and outbox to the service. It prints deliveries per second (first
publish to last ``delivered``) and p50/p99 of publish → delivered. Bounded: a fixed count and a
timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import hub_cli, policies  # noqa: E402

from hub.backends.events.base import Event  # noqa: E402
from hub.backends.factory import build_event_bus_for  # noqa: E402
from hub.db.engine import create_engine  # noqa: E402
from tests.amqp_sweep import sweep_sync  # noqa: E402

KEYS = {"sms": "bench-sms-key", "email": "bench-email-key"}
CALLBACK = {"sms": "cbsec_bench_sms", "email": "cbsec_bench_email"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait(url: str, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def snapshot(url: str, schema: str | None) -> tuple[int, int, dict[str, datetime]]:
    """Messages in the inbox, e-mails the provider accepted, and when each was delivered."""
    prefix = f'"{schema}".' if schema else ""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            inbox = await conn.scalar(text(f"SELECT count(*) FROM {prefix}notification_messages"))
            accepted = await conn.scalar(
                text(
                    f"SELECT count(*) FROM {prefix}notification_deliveries"
                    " WHERE provider_id IS NOT NULL"
                )
            )
            rows = (
                await conn.execute(
                    text(
                        "SELECT m.notification_id, d.updated_at"
                        f" FROM {prefix}notification_messages m"
                        f" JOIN {prefix}notification_deliveries d ON d.message_id = m.id"
                        " WHERE m.status = 'delivered' AND d.status = 'delivered'"
                    )
                )
            ).all()
    except Exception:  # the service has not made its tables yet
        return 0, 0, {}
    finally:
        await engine.dispose()
    found = {
        nid: at if isinstance(at, datetime) else datetime.fromisoformat(str(at)) for nid, at in rows
    }
    done = {nid: at if at.tzinfo else at.replace(tzinfo=UTC) for nid, at in found.items()}
    return int(inbox or 0), int(accepted or 0), done


async def publish(
    database_url: str, amqp_url: str | None, namespace: str, count: int
) -> dict[str, datetime]:
    bus = build_event_bus_for(amqp_url=amqp_url, database_url=database_url, namespace=namespace)
    await bus.start()
    sent: dict[str, datetime] = {}
    try:
        for index in range(count):
            notification_id = f"bench-{index}"
            event = Event(
                type="notification.requested",
                payload={
                    "notification_id": notification_id,
                    "recipient": {"kind": "person", "id": f"p-{index}",
                                  "email": f"p{index}@bench.example"},
                    "template": "visa.application.issued",
                    "subject": "Visa application: issued",
                    "body": f"The visa was issued: W{index:09d}.",
                    "data": {"application_id": f"app_{index}", "visa_number": f"W{index:09d}"},
                },
            )  # fmt: skip
            await bus.publish(event)
            sent[notification_id] = event.occurred_at
    finally:
        await bus.aclose()
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--timeout", type=float, default=180)
    parser.add_argument("--real", action="store_true", help="PostgreSQL, Redis and RabbitMQ")
    parser.add_argument("--profile", help="cProfile the service into this file (pstats)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-notify-"))
    names = ("hub", "sms-provider", "email-provider", "notifications")
    ports = {name: free_port() for name in names}
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    hub_url = f"http://127.0.0.1:{ports['hub']}"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "NOTIFICATIONS_"))}
    hub_db = f"sqlite+aiosqlite:///{folder}/data/hub.db"
    policy_dir = policies(folder, ports, upstream="notifications")
    hub_env = {
        **base,
        "HUB_PORT": str(ports["hub"]), "HUB_DATA_DIR": str(folder / "data"),
        "HUB_DATABASE_URL": hub_db, "HUB_POLICIES_DIR": str(policy_dir),
        "HUB_ADMIN_TOKEN": "bench", "HUB_ACCESS_LOG": "false", "HUB_LOG_LEVEL": "warning",
        "HUB_EVENTS_NAMESPACE": namespace,
    }  # fmt: skip
    database = ""
    if args.real:
        database = f"bench_notify_{uuid.uuid4().hex[:8]}"
        asyncio.run(_database("CREATE", database))
        hub_db = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
        hub_env["HUB_DATABASE_URL"] = hub_db
        hub_env["HUB_REDIS_URL"] = "redis://127.0.0.1:6379/14"
        hub_env["HUB_AMQP_URL"] = "amqp://guest:guest@127.0.0.1:5672/"
    amqp = hub_env.get("HUB_AMQP_URL")
    for kind in ("sms", "email"):
        hub_env[f"HUB_ADAPTER_SECRET_{kind.upper()}_PROVIDER_KEY"] = KEYS[kind]
        hub_env[f"HUB_ADAPTER_SECRET_{kind.upper()}_CALLBACK_SECRET"] = CALLBACK[kind]
    children: list[subprocess.Popen[bytes]] = []

    def start(name: str, argv: list[str], env: dict[str, str]) -> None:
        log = (folder / f"{name}.log").open("wb")
        children.append(
            subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        )

    try:
        (folder / "data").mkdir()
        subprocess.run([sys.executable, "-m", "hub", "migrate"], env=hub_env, cwd=ROOT,
                       check=True, timeout=120, capture_output=True)  # fmt: skip
        start("hub", [sys.executable, "-m", "hub", "serve"], hub_env)
        wait(f"{hub_url}/healthz")
        for kind in ("sms", "email"):
            port = ports[f"{kind}-provider"]
            start(kind, [
                sys.executable, "-m", f"adapters.sandbox.{kind}_provider", "--port", str(port),
                f"--api-key={KEYS[kind]}", f"--callback-secret={CALLBACK[kind]}",
                f"--callback-url={hub_url}/api/callbacks/v1/{kind}-provider",
            ], base)  # fmt: skip
            wait(f"http://127.0.0.1:{port}/_sandbox/health")
        client = hub_cli(hub_env, "clients", "create", "--name", "Notification service",
                         "--owner", "notifications", "--scopes", "notifications.send")  # fmt: skip
        service_env = {
            **base,
            "NOTIFICATIONS_PORT": str(ports["notifications"]),
            "NOTIFICATIONS_DATA_DIR": str(folder / "notifications"),
            "NOTIFICATIONS_HUB_URL": hub_url, "NOTIFICATIONS_EVENTS_NAMESPACE": namespace,
            "NOTIFICATIONS_CLIENT_ID": client["client_id"],
            "NOTIFICATIONS_CLIENT_SECRET": client["client_secret"],
        }  # fmt: skip
        service_db = f"sqlite+aiosqlite:///{folder}/notifications/notifications.db"
        schema = None
        if amqp:  # the real set: RabbitMQ, and the service's own schema in PostgreSQL
            service_env["NOTIFICATIONS_AMQP_URL"] = amqp
            service_env["NOTIFICATIONS_DATABASE_URL"] = service_db = hub_db
            service_env["NOTIFICATIONS_DATABASE_SCHEMA"] = schema = "notifications"
        else:
            service_env["NOTIFICATIONS_BUS_DATABASE_URL"] = hub_db
        profile = ["-m", "cProfile", "-o", args.profile] if args.profile else []
        start("notifications", [sys.executable, *profile, "-m", "services.notifications"],
              service_env)  # fmt: skip
        wait(f"http://127.0.0.1:{ports['notifications']}/healthz")
        started = time.monotonic()
        published = asyncio.run(publish(hub_db, amqp, namespace, args.count))
        done: dict[str, Any] = {}
        stages: dict[str, float] = {}
        while time.monotonic() - started < args.timeout:
            inbox, accepted, done = asyncio.run(snapshot(service_db, schema))
            for name, value in (("in the inbox", inbox), ("accepted by the provider", accepted)):
                if value >= args.count:
                    stages.setdefault(name, time.monotonic() - started)
            if len(done) >= args.count:
                break
            time.sleep(0.25)
        if not done:
            raise SystemExit("nothing was delivered; logs in " + str(folder))
        latencies = [(done[n] - published[n]).total_seconds() for n in done]
        first = min(published.values())
        span = (max(done.values()) - first).total_seconds()
        print(f"delivered {len(done)} of {args.count} in {span:.1f} s:"
              f" {len(done) / span:.1f} notifications/s")  # fmt: skip
        for name, at in stages.items():
            print(f"  all {name} after {at:.1f} s")
        print(f"publish → delivered  p50 {pct(latencies, 0.5):.2f} s"
              f"  p99 {pct(latencies, 0.99):.2f} s")  # fmt: skip
    finally:
        for child in reversed(children):
            child.send_signal(signal.SIGINT)  # cProfile writes its file on a clean exit
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
        shutil.rmtree(folder, ignore_errors=True)
        if database:
            asyncio.run(_database("DROP", database))
        if amqp:  # the bench's own queues, never anyone else's
            sweep_sync(amqp, (f"{namespace}.",))


async def _database(verb: str, name: str) -> None:
    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        await conn.execute(
            f'{verb} DATABASE "{name}"' + (" WITH (FORCE)" if verb == "DROP" else "")
        )
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
