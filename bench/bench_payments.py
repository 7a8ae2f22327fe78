"""Payments per second through the hub against the sandbox provider, and the provider alone.

Run: ``python bench/bench_payments.py [--payments 400] [--concurrency 16] [--database URL]``.

One payment is a create (``Idempotency-Key``) and a capture. In the same run it is made
directly against the sandbox provider (create intent and capture, each with its own key: the
baseline) and through a hub process on SQLite (or ``--database``) with its whole path: bearer
token check, route, payments API, idempotency records, the adapter's resilience path and the
provider, the state change and its outbox event in one transaction; the provider's webhooks are
delivered to the hub meanwhile. It prints payments/s, p50 and p99 of one payment, and the
ratio hub/provider. Bounded: a fixed number of payments, not a duration.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-provider-key"
SECRET = "whsec_bench_0123456789"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _wait(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(trust_env=False) as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url, timeout=1)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def _drive(
    count: int, concurrency: int, one: Callable[[int], Awaitable[None]]
) -> tuple[float, list[float]]:
    queue = iter(range(count))
    latencies: list[float] = []

    async def worker() -> None:
        for index in queue:
            started = time.perf_counter()
            await one(index)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started), latencies


def _report(name: str, rate: float, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(
        f"{name:<10} {rate:8.1f} payments/s   p50 {statistics.median(ordered) * 1000:6.1f} ms"
        f"   p99 {p99 * 1000:6.1f} ms"
    )


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-payments-"))
    provider_port, hub_port = _port(), _port()
    provider_url, hub_url = f"http://127.0.0.1:{provider_port}", f"http://127.0.0.1:{hub_port}"
    webhook = f"{hub_url}/api/payments/v1/webhooks/payment-provider"
    policies = tmp / "policies"
    policies.mkdir()
    for name in ("routes", "products", "permissions"):
        data = yaml.safe_load((ROOT / "policies" / f"{name}.yaml").read_text())
        items = data[name]
        if name == "routes":
            items = [r for r in items if r.get("product") == "payments"]
            for route in items:
                route.pop("rate_limit", None)
        elif name == "products":
            items = [p for p in items if p["id"] == "payments"]
        else:
            items = [p for p in items if p["id"] == "payments.refund"]
        (policies / f"{name}.yaml").write_text(yaml.safe_dump({name: items}))
    adapters = yaml.safe_load((ROOT / "policies" / "adapters.yaml").read_text())["adapters"]
    adapter = next(a for a in adapters if a["id"] == "payment-provider")
    adapter["base_url"] = provider_url
    (policies / "adapters.yaml").write_text(yaml.safe_dump({"adapters": [adapter]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        HUB_PORT=str(hub_port),
        HUB_POLICIES_DIR=str(policies),
        HUB_DATA_DIR=str(tmp / "data"),
        HUB_ACCESS_LOG="false",
        HUB_LOG_LEVEL="warning",
        HUB_ADAPTER_SECRET_PAYMENT_PROVIDER_KEY=KEY,
        HUB_ADAPTER_SECRET_PAYMENT_WEBHOOK_SECRET=SECRET,
    )
    if args.database:
        env["HUB_DATABASE_URL"] = args.database
    provider = subprocess.Popen(
        [sys.executable, "-m", "adapters.sandbox.payment_provider", "--port", str(provider_port),
         f"--api-key={KEY}", f"--webhook-secret={SECRET}", f"--webhook-url={webhook}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    subprocess.run([sys.executable, "-m", "hub", "migrate"], cwd=ROOT, env=env, check=True)
    made = subprocess.run(
        [sys.executable, "-m", "hub", "clients", "create", "--name", "bench", "--owner", "bench",
         "--scopes", "payments.read,payments.write"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    fields = {
        k.strip(): v.strip()
        for k, _, v in (line.partition(":") for line in made.stdout.splitlines())
    }
    log = (tmp / "hub.log").open("wb")
    hub = subprocess.Popen(
        [sys.executable, "-m", "hub", "serve"], cwd=ROOT, env=env,
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    print(f"hub log: {tmp / 'hub.log'}")
    try:
        await _wait(provider_url + "/_sandbox/health")
        await _wait(hub_url + "/readyz")
        limits = httpx.Limits(max_connections=args.concurrency * 2)
        async with httpx.AsyncClient(timeout=30, limits=limits, trust_env=False) as client:
            token = (
                await client.post(
                    hub_url + "/oauth2/token",
                    data={"grant_type": "client_credentials", "scope": "payments.write"},
                    auth=(fields["client_id"], fields["client_secret"]),
                )
            ).json()["access_token"]
            direct = {"Authorization": f"Bearer {KEY}"}

            async def at_provider(index: int) -> None:
                intent = await client.post(
                    provider_url + "/v1/payment_intents",
                    json={"amount": 1000 + index, "currency": "SAR",
                          "merchant_reference": f"b{index}", "payment_method": "pm_card_ok",
                          "capture_method": "manual"},
                    headers={**direct, "Idempotency-Key": str(uuid.uuid4())},
                )  # fmt: skip
                captured = await client.post(
                    f"{provider_url}/v1/payment_intents/{intent.json()['id']}/capture",
                    json={},
                    headers={**direct, "Idempotency-Key": str(uuid.uuid4())},
                )
                assert captured.status_code == 200, captured.text

            auth = {"Authorization": f"Bearer {token}"}
            pay = hub_url + "/api/payments/v1/payments"

            async def through_hub(index: int) -> None:
                made = await client.post(
                    pay,
                    json={"amount": 1000 + index, "currency": "SAR"},
                    headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
                )
                assert made.status_code == 201, made.text
                captured = await client.post(
                    f"{pay}/{made.json()['id']}/capture",
                    json={},
                    headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
                )
                assert captured.status_code == 200, captured.text

            # The hub first: the baseline's events are about payments the hub does not have
            # (404, retried by the provider), which would load the hub's phase.
            await _drive(20, 4, through_hub)  # warm-up
            try:
                hub_rate, hub_lat = await _drive(args.payments, args.concurrency, through_hub)
            except AssertionError:
                metrics = (await client.get(hub_url + "/metrics")).text.splitlines()
                print(*(m for m in metrics if m.startswith("hub_adapter_")), sep="\n")
                raise
            await client.post(provider_url + "/_sandbox/webhooks", json={"url": None})
            await _drive(20, 4, at_provider)
            base_rate, base_lat = await _drive(args.payments, args.concurrency, at_provider)
        print(f"{args.payments} payments (create + capture), concurrency {args.concurrency}")
        _report("provider", base_rate, base_lat)
        _report("hub", hub_rate, hub_lat)
        print(f"hub/provider {hub_rate / base_rate:.2f}")
    finally:
        for process in (hub, provider):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database", help="an EMPTY database (HUB_DATABASE_URL); default SQLite")
    asyncio.run(main(parser.parse_args()))
